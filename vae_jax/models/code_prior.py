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


class Block(nn.Module):
  """x + Attention(LN(x)) under the causal mask, then x + MLP(LN(x))."""

  width: int
  num_heads: int
  mlp_ratio: int
  dropout: float

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
    attended = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      qkv_features=self.width,
      dropout_rate=self.dropout,
      deterministic=not train,
    )(nn.LayerNorm()(x), mask=mask)
    x = x + nn.Dropout(self.dropout, deterministic=not train)(attended)
    hidden = nn.gelu(nn.Dense(self.mlp_ratio * self.width)(nn.LayerNorm()(x)))
    update = nn.Dense(self.width)(hidden)
    return x + nn.Dropout(self.dropout, deterministic=not train)(update)


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
  dropout: float = 0.0

  @nn.compact
  def __call__(self, codes: jax.Array, train: bool = False) -> jax.Array:
    if tuple(codes.shape[1:]) != tuple(self.grid_shape):
      raise ValueError(
        f"codes of shape {codes.shape} do not hold [B, h, w] grids of "
        f"grid_shape {self.grid_shape}."
      )
    batch_size = codes.shape[0]
    num_positions = self.grid_shape[0] * self.grid_shape[1]
    flat_codes = codes.reshape(batch_size, num_positions)
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
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    mask = nn.make_causal_mask(inputs)
    for _ in range(self.num_layers):
      x = Block(self.width, self.num_heads, self.mlp_ratio, self.dropout)(
        x, mask, train
      )
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
  config.width = 128  # The embeddings' and residual stream's size.
  config.num_layers = 4  # Transformer blocks.
  config.num_heads = 4  # Attention heads per block; they divide `width`.
  config.mlp_ratio = 4  # Each block's MLP hidden size, in `width`s.
  config.dropout = 0.0  # On embeddings, attention and residual updates.
  return config


def build(
  model_config: ml_collections.ConfigDict,
  grid_shape: tuple[int, int],
  codebook_size: int,
) -> CodePrior:
  """The prior over grids of `grid_shape` (h, w) of codes in
  [0, `codebook_size`)."""
  errors.require(
    len(grid_shape) == 2,
    f"the code prior's grid_shape is (h, w), got {tuple(grid_shape)}.",
  )
  errors.require(
    codebook_size > 0, f"codebook_size must be positive, got {codebook_size}."
  )
  for field in ("width", "num_layers", "num_heads", "mlp_ratio"):
    errors.require(
      model_config[field] > 0,
      f"model.{field} must be positive, got {model_config[field]}.",
    )
  errors.require(
    model_config.width % model_config.num_heads == 0,
    f"model.num_heads ({model_config.num_heads}) must divide model.width "
    f"({model_config.width}).",
  )
  errors.require(
    0 <= model_config.dropout < 1,
    f"model.dropout must be in [0, 1), got {model_config.dropout}.",
  )
  return CodePrior(
    codebook_size=codebook_size,
    grid_shape=tuple(grid_shape),
    width=model_config.width,
    num_layers=model_config.num_layers,
    num_heads=model_config.num_heads,
    mlp_ratio=model_config.mlp_ratio,
    dropout=model_config.dropout,
  )
