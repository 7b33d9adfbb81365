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
codes before i only. `sample` fills the grid one position at a time
with a key-value cache (`CodePrior.decode`): each position costs one
position's pass. `sample_by_recomputing` re-runs the whole network at each
position instead, for any causal model: the reference the cache is tested
against.
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
  decode: bool = False  # Attend through the key-value cache (`CodePrior`).

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
    attended = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads, qkv_features=self.width, decode=self.decode
    )(nn.LayerNorm()(x), mask=mask)
    x = x + attended
    hidden = nn.gelu(nn.Dense(self.mlp_ratio * self.width)(nn.LayerNorm()(x)))
    return x + nn.Dense(self.width)(hidden)


class CodePrior(nn.Module):
  """codes int32 [B, h, w] -> logits [B, h, w, K]: at (r, c), the
  distribution of the code at (r, c) given every code before it in raster
  order.

  With `decode`, it instead reads the input tokens of the next positions,
  [B, L] (the start token K, then each drawn code), and gives their logits
  [B, L, K], keeping each attention's keys and values, and the position
  reached, in the 'cache' collection: ancestral sampling one position per
  call. Its parameters are the same.
  """

  codebook_size: int  # K.
  grid_shape: tuple[int, int]  # (h, w).
  width: int
  num_layers: int
  num_heads: int
  mlp_ratio: int
  decode: bool = False

  @nn.compact
  def __call__(self, codes: jax.Array, train: bool = False) -> jax.Array:
    del train  # The same in training and evaluation: no dropout, no BatchNorm.
    if self.decode:
      return self._next_logits(codes)
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
    logits = self._network(inputs, 0, nn.make_causal_mask(inputs))
    return logits.reshape(*codes.shape, self.codebook_size)

  def _network(
    self, inputs: jax.Array, first_position: jax.Array, mask: jax.Array | None
  ) -> jax.Array:
    """Logits [B, L, K] of input tokens [B, L] at positions from
    `first_position` on."""
    x = nn.Embed(self.codebook_size + 1, self.width, name="token_embedding")(
      inputs
    )
    position_embedding = self.param(
      "position_embedding",
      nn.initializers.normal(0.02),
      (self.grid_shape[0] * self.grid_shape[1], self.width),
    )
    x = (
      x
      + jax.lax.dynamic_slice_in_dim(
        position_embedding, first_position, inputs.shape[1]
      )[None]
    )
    for _ in range(self.num_layers):
      x = Block(self.width, self.num_heads, self.mlp_ratio, self.decode)(
        x, mask
      )
    return nn.Dense(self.codebook_size, name="logits")(nn.LayerNorm()(x))

  def _next_logits(self, inputs: jax.Array) -> jax.Array:
    # Initializing, the inputs are a whole grid's, which sizes the caches;
    # after that, one position per call.
    initialized = self.has_variable("cache", "position")
    position = self.variable("cache", "position", jnp.zeros, (), jnp.int32)
    logits = self._network(inputs.astype(jnp.int32), position.value, None)
    if initialized:
      position.value = position.value + inputs.shape[1]
    return logits


def log_likelihood(logits: jax.Array, codes: jax.Array) -> jax.Array:
  """[B]: log p(codes) in nats per grid, from `logits` [B, h, w, K] of
  codes int32 [B, h, w]."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  chosen = jnp.take_along_axis(log_probs, codes[..., None], axis=-1)
  return jnp.sum(chosen, axis=(1, 2, 3))


def _draw(
  logits: jax.Array, rng: jax.Array, temperature: jax.Array
) -> jax.Array:
  """int32 [B]: one code per row of `logits` [B, K] at `temperature` (0:
  the most likely)."""
  logits = logits.astype(jnp.float32)
  # The maximum only keeps the division finite at temperature 0, where the
  # draw is discarded for the argmax.
  drawn = jax.random.categorical(rng, logits / jnp.maximum(temperature, 1e-30))
  greedy = jnp.argmax(logits, axis=-1)
  return jnp.where(temperature > 0, drawn, greedy).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("module", "num", "grid_shape"))
def _sample_by_recomputing(
  module, variables, rng, temperature, *, num, grid_shape
):
  height, width = grid_shape
  num_positions = height * width

  def fill_position(position, flat_codes):
    logits = module.apply(variables, flat_codes.reshape(num, height, width))
    position_logits = jax.lax.dynamic_index_in_dim(
      logits.reshape(num, num_positions, -1), position, axis=1, keepdims=False
    )
    chosen = _draw(
      position_logits, jax.random.fold_in(rng, position), temperature
    )
    return jax.lax.dynamic_update_index_in_dim(
      flat_codes, chosen, position, axis=1
    )

  # Positions not yet drawn hold 0; by causality no drawn position reads
  # them.
  flat_codes = jax.lax.fori_loop(
    0, num_positions, fill_position, jnp.zeros((num, num_positions), jnp.int32)
  )
  return flat_codes.reshape(num, height, width)


@functools.partial(jax.jit, static_argnames=("module", "num"))
def _sample_cached(module, params, rng, temperature, *, num):
  decoder = module.clone(decode=True)
  height, width = module.grid_shape
  num_positions = height * width
  whole_grid = jnp.zeros((num, num_positions), jnp.int32)
  cache = jax.tree.map(
    lambda shape: jnp.zeros(shape.shape, shape.dtype),
    jax.eval_shape(decoder.init, jax.random.PRNGKey(0), whole_grid)["cache"],
  )

  def fill_position(position, carry):
    cache, previous, flat_codes = carry
    logits, updated = decoder.apply(
      {"params": params, "cache": cache}, previous[:, None], mutable=["cache"]
    )
    chosen = _draw(logits[:, 0], jax.random.fold_in(rng, position), temperature)
    flat_codes = jax.lax.dynamic_update_index_in_dim(
      flat_codes, chosen, position, axis=1
    )
    return updated["cache"], chosen, flat_codes

  start = jnp.full((num,), module.codebook_size, jnp.int32)
  _, _, flat_codes = jax.lax.fori_loop(
    0, num_positions, fill_position, (cache, start, whole_grid)
  )
  return flat_codes.reshape(num, height, width)


def _check_temperature(temperature: float) -> None:
  errors.require(
    temperature >= 0, f"temperature must be >= 0, got {temperature}."
  )


def sample(
  module: CodePrior,
  params,
  rng: jax.Array,
  num: int,
  temperature: float = 1.0,
) -> jax.Array:
  """int32 [num, h, w]: `num` grids drawn ancestrally from the prior
  `module` with `params`, a pure function of `rng`, through its key-value
  cache. Each logit is divided by `temperature`; 0 takes the most likely
  code at each position (the greedy path)."""
  _check_temperature(temperature)
  return _sample_cached(module, params, rng, jnp.float32(temperature), num=num)


def sample_by_recomputing(
  module: nn.Module,
  variables,
  rng: jax.Array,
  num: int,
  grid_shape: tuple[int, int],
  temperature: float = 1.0,
) -> jax.Array:
  """`sample` of any module whose `apply(variables, codes)` gives causal
  logits [B, h, w, K], re-running it whole at each position: the same
  draws from the same `rng`, n times the work."""
  _check_temperature(temperature)
  return _sample_by_recomputing(
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
