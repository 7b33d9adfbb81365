"""An autoregressive prior over a VQ-VAE's grid of codes.

p(c) = Π_i p(c_i | c_<i) over the h x w grid of codebook indices in
[0, K), flattened in raster order. Sampling it ancestrally and decoding the
codes draws images; its log-loss -log p(c(x)) is the second term of the
VQ-VAE's likelihood bound -log p(x) ≤ -log p(x | z_q(x)) - log p(c(x)).

The network is a small causal Transformer (GPT-style, pre-LayerNorm
blocks) rather than a gated PixelCNN: over a flattened sequence, exact
causality is one triangular attention mask and a one-position shift of the
input, where a PixelCNN needs masked convolutions split into vertical and
horizontal stacks to be causal without a blind spot. Attention costs n² in
the n = h * w positions, nothing at a 7x7 grid.

Position i reads the code at i - 1 (a start token at i = 0) plus a learned
embedding of i, and attends to positions ≤ i, so its logits depend on the
codes before i only. `sample` fills the grid one position at a time,
re-running the whole network each step: O(n) passes, exact, without a
key-value cache.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family


class Block(nn.Module):
  """x + Attention(LN(x)) under the causal mask, then x + MLP(LN(x))."""

  width: int
  num_heads: int
  mlp_ratio: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    attended = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads, qkv_features=self.width
    )(nn.LayerNorm()(x), mask=mask)
    x = x + attended
    hidden = nn.gelu(nn.Dense(self.mlp_ratio * self.width)(nn.LayerNorm()(x)))
    return x + nn.Dense(self.width)(hidden)


class CodePrior(nn.Module):
  """codes int32 [B, h, w] -> logits [B, h, w, K]: at (r, c), the
  distribution of the code at (r, c) given every code before it in raster
  order."""

  codebook_size: int  # K.
  grid_shape: tuple[int, int]  # (h, w).
  width: int
  num_layers: int
  num_heads: int
  mlp_ratio: int

  @nn.compact
  def __call__(self, codes: jax.Array, train: bool = False) -> jax.Array:
    del train  # The same in training and evaluation: no dropout, no BatchNorm.
    if tuple(codes.shape[1:]) != tuple(self.grid_shape):
      raise ValueError(
        f"codes of shape {codes.shape} do not hold [B, h, w] grids of "
        f"grid_shape {self.grid_shape}."
      )
    batch_size = codes.shape[0]
    num_positions = self.grid_shape[0] * self.grid_shape[1]
    # Integers of any dtype (a trainer initializes on float zeros).
    flat_codes = codes.reshape(batch_size, num_positions).astype(jnp.int32)
    # Index K is the start token; shifting by one position keeps each
    # position's own code out of its input.
    start = jnp.full((batch_size, 1), self.codebook_size, flat_codes.dtype)
    inputs = jnp.concatenate([start, flat_codes[:, :-1]], axis=1)
    x = nn.Embed(self.codebook_size + 1, self.width, name="token_embedding")(
      inputs
    )
    position_embedding = self.param(
      "position_embedding",
      nn.initializers.normal(0.02),
      (num_positions, self.width),
    )
    x = x + position_embedding[None]
    mask = nn.make_causal_mask(inputs)
    for _ in range(self.num_layers):
      x = Block(self.width, self.num_heads, self.mlp_ratio)(x, mask)
    logits = nn.Dense(self.codebook_size, name="logits")(nn.LayerNorm()(x))
    return logits.reshape(*codes.shape, self.codebook_size)


def log_likelihood(logits: jax.Array, codes: jax.Array) -> jax.Array:
  """[B]: log p(codes) in nats per grid, from `logits` [B, h, w, K] of
  codes int32 [B, h, w]."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  chosen = jnp.take_along_axis(log_probs, codes[..., None], axis=-1)
  return jnp.sum(chosen, axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=("module", "num", "grid_shape"))
def _sample(module, variables, rng, temperature, *, num, grid_shape):
  height, width = grid_shape
  num_positions = height * width

  def fill_position(position, flat_codes):
    logits = module.apply(variables, flat_codes.reshape(num, height, width))
    position_logits = jax.lax.dynamic_index_in_dim(
      logits.reshape(num, num_positions, -1), position, axis=1, keepdims=False
    ).astype(jnp.float32)
    drawn = jax.random.categorical(
      jax.random.fold_in(rng, position),
      # The maximum only keeps the division finite at temperature 0, where
      # the draw is discarded for the argmax.
      position_logits / jnp.maximum(temperature, 1e-30),
    )
    greedy = jnp.argmax(position_logits, axis=-1)
    chosen = jnp.where(temperature > 0, drawn, greedy).astype(jnp.int32)
    return jax.lax.dynamic_update_index_in_dim(
      flat_codes, chosen, position, axis=1
    )

  # Positions not yet drawn hold 0; by causality no drawn position reads
  # them.
  flat_codes = jax.lax.fori_loop(
    0, num_positions, fill_position, jnp.zeros((num, num_positions), jnp.int32)
  )
  return flat_codes.reshape(num, height, width)


def sample(
  module: nn.Module,
  variables,
  rng: jax.Array,
  num: int,
  grid_shape: tuple[int, int],
  temperature: float = 1.0,
) -> jax.Array:
  """int32 [num, h, w]: `num` grids drawn ancestrally from `module` (any
  module whose `apply(variables, codes)` gives causal logits [B, h, w, K]),
  a pure function of `rng`. Each logit is divided by `temperature`; 0 takes
  the most likely code at each position (the greedy path)."""
  errors.require(
    temperature >= 0, f"temperature must be >= 0, got {temperature}."
  )
  return _sample(
    module,
    variables,
    rng,
    jnp.float32(temperature),
    num=num,
    grid_shape=tuple(grid_shape),
  )


def default_config() -> ml_collections.ConfigDict:
  """A small Transformer, quick on CPUs, for 7x7 grids of 64 codes."""
  config = ml_collections.ConfigDict()
  config.name = "code_prior"  # vae_jax/models/code_prior.py.
  # K, the codebook's entries: the input.codes_of run's, checked there.
  config.codebook_size = 64
  config.width = 128  # The embeddings' and residual stream's size.
  config.num_layers = 4  # Transformer blocks.
  config.num_heads = 4  # Attention heads per block; they divide `width`.
  config.mlp_ratio = 4  # Each block's MLP hidden size, in `width`s.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: tuple[int, ...]
) -> CodePrior:
  """The prior over code grids of shape `image_shape` (h, w): the data's
  'image', int32 indices in [0, model.codebook_size)."""
  errors.require(
    len(image_shape) == 2,
    f"model 'code_prior' reads code grids [h, w], got data of shape "
    f"{tuple(image_shape)}; train it with input.codes_of=<a VQ-VAE run>.",
  )
  for field in (
    "codebook_size",
    "width",
    "num_layers",
    "num_heads",
    "mlp_ratio",
  ):
    errors.require(
      model_config[field] > 0,
      f"model.{field} must be positive, got {model_config[field]}.",
    )
  errors.require(
    model_config.width % model_config.num_heads == 0,
    f"model.num_heads ({model_config.num_heads}) must divide model.width "
    f"({model_config.width}).",
  )
  return CodePrior(
    codebook_size=model_config.codebook_size,
    grid_shape=tuple(image_shape),
    width=model_config.width,
    num_layers=model_config.num_layers,
    num_heads=model_config.num_heads,
    mlp_ratio=model_config.mlp_ratio,
  )


FAMILIES = (
  family.Family(
    name="code_prior",
    kind=family.Kind.CODE_PRIOR,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("codes"),
    objective="code_log_loss",
    trainer="single_network",
  ),
)
