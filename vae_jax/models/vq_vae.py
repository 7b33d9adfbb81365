"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017).

An encoder maps an image to a grid of D-dim vectors z (28x28 -> 7x7 by two
stride-2 convs), each replaced by its nearest entry e of a codebook of K
vectors, and a decoder maps the grid of entries back to logits. The layers
are the Sonnet VQ-VAE example's, narrower for CPUs: Conv 4x4 stride 2 with
ReLU per level, Conv 3x3, residual blocks (ReLU, Conv 3x3, ReLU, Conv 1x1,
added), ReLU, Conv 1x1 to D; the decoder mirrors it with ConvTranspose 4x4
stride 2.

The gradient passes the quantization straight through:
quantized = z + stop_gradient(e - z), e in value and the identity in
gradient. The codebook is learned one of two ways (`model.codebook_update`):
- 'loss': a parameter, moved by the objective's codebook loss
  ||sg[z] - e||² (`objectives.vq_vae`);
- 'ema': the paper's appendix, as Sonnet's VectorQuantizerEMA: each entry is
  the moving average of the vectors assigned to it, e_k = m_k / N_k, with
  N_k <- γ N_k + (1 - γ) n_k (n_k: the batch's vectors assigned to k),
  m_k <- γ m_k + (1 - γ) Σ z assigned to k, and N_k Laplace-smoothed,
  (N_k + ε) / (Σ N + K ε) · Σ N, before the division. The statistics and the
  entries live in the 'batch_stats' collection, which the single-network
  trainer already updates inside its jitted step (from `objective.apply`'s
  mutable 'batch_stats') and checkpoints: no trainer change, and the
  entries are not parameters, so the optimizer never touches them. Unlike
  Sonnet's, the averages are not zero-debiased: they start from the initial
  codebook as if each entry had been the mean of one vector (N_k = 1,
  m_k = e_k), so an entry no vector picks keeps its place, instead of
  jumping to 0 (Sonnet 2) or to 1e5 times itself (Sonnet 1).

Dead-code restart (`model.dead_code_restart_steps` = W > 0, 'ema' only):
each entry counts the training steps since a vector of the batch last chose
it; after the EMA update, every entry unchosen for W steps in a row is set
to an encoder output of the current batch, drawn uniformly (without
replacement when the batch has at least K vectors) with the step's rng, and
its statistics restart from it (N_k = 1, m_k = that vector, count 0).
"""

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import layers

CODEBOOK_UPDATES = ("loss", "ema")
# Sonnet's codebook initializer: uniform with variance 1 / D.
_CODEBOOK_INIT = nn.initializers.variance_scaling(
  1.0, "fan_in", "uniform", in_axis=1, out_axis=0
)


class Quantization(NamedTuple):
  """A grid [B, h, w, D] quantized."""

  # The chosen entries in value, the identity in gradient: z + sg(e - z).
  quantized: jax.Array
  indices: jax.Array  # int32 [B, h, w]: each vector's nearest entry.
  # The chosen entries e, with the gradient of a codebook learned by loss.
  codes: jax.Array


def nearest_entries(flat_z: jax.Array, codebook: jax.Array) -> jax.Array:
  """int32 [N]: the index of the entry of `codebook` [K, D] nearest to each
  row of `flat_z` [N, D] in squared distance (the first, on ties)."""
  distances = (
    jnp.sum(jnp.square(flat_z), axis=1, keepdims=True)
    - 2 * flat_z @ codebook.T
    + jnp.sum(jnp.square(codebook), axis=1)[None, :]
  )
  return jnp.argmin(distances, axis=1).astype(jnp.int32)


def ema_update(
  stats: dict[str, jax.Array],
  flat_z: jax.Array,
  indices: jax.Array,
  *,
  decay: float,
  epsilon: float,
) -> dict[str, jax.Array]:
  """`stats` ({'cluster_size' [K], 'embedding_sums' [K, D], 'embeddings'
  [K, D], 'steps_unused' int32 [K]}) after one batch of vectors `flat_z`
  [N, D] assigned to entries `indices` [N] (the module docstring's
  formulas)."""
  num_codes = stats["cluster_size"].shape[0]
  one_hot = jax.nn.one_hot(indices, num_codes, dtype=flat_z.dtype)
  counts = jnp.sum(one_hot, axis=0)
  cluster_size = decay * stats["cluster_size"] + (1 - decay) * counts
  embedding_sums = decay * stats["embedding_sums"] + (1 - decay) * (
    one_hot.T @ flat_z
  )
  total = jnp.sum(cluster_size)
  smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total
  return {
    "cluster_size": cluster_size,
    "embedding_sums": embedding_sums,
    "embeddings": embedding_sums / smoothed[:, None],
    "steps_unused": jnp.where(counts > 0, 0, stats["steps_unused"] + 1),
  }


def restart_dead_codes(
  stats: dict[str, jax.Array],
  flat_z: jax.Array,
  rng: jax.Array,
  *,
  window: int,
) -> dict[str, jax.Array]:
  """`stats` with every entry unchosen for `window` steps set to a random
  row of `flat_z` [N, D], and its statistics restarted from it."""
  num_codes = stats["cluster_size"].shape[0]
  num_vectors = flat_z.shape[0]
  candidates = flat_z[
    jax.random.choice(
      rng, num_vectors, (num_codes,), replace=num_vectors < num_codes
    )
  ]
  dead = stats["steps_unused"] >= window
  return {
    "cluster_size": jnp.where(dead, 1.0, stats["cluster_size"]),
    "embedding_sums": jnp.where(
      dead[:, None], candidates, stats["embedding_sums"]
    ),
    "embeddings": jnp.where(dead[:, None], candidates, stats["embeddings"]),
    "steps_unused": jnp.where(dead, 0, stats["steps_unused"]),
  }


class VectorQuantizer(nn.Module):
  """Nearest-entry quantization of a grid [B, h, w, D], straight through."""

  codebook_size: int  # K.
  embedding_dim: int  # D.
  codebook_update: str  # One of CODEBOOK_UPDATES.
  ema_decay: float = 0.99  # γ of 'ema'.
  ema_epsilon: float = 1e-5  # ε, the Laplace smoothing of 'ema'.
  dead_code_restart_steps: int = 0  # W of the restart; 0: never.

  def _ema_statistics(self) -> dict[str, nn.Variable]:
    shape = (self.codebook_size, self.embedding_dim)
    embeddings = self.variable(
      "batch_stats",
      "embeddings",
      lambda: _CODEBOOK_INIT(self.make_rng("params"), shape),
    )
    return {
      "embeddings": embeddings,
      "cluster_size": self.variable(
        "batch_stats", "cluster_size", jnp.ones, (self.codebook_size,)
      ),
      "embedding_sums": self.variable(
        "batch_stats", "embedding_sums", lambda: embeddings.value
      ),
      "steps_unused": self.variable(
        "batch_stats",
        "steps_unused",
        jnp.zeros,
        (self.codebook_size,),
        jnp.int32,
      ),
    }

  @nn.compact
  def __call__(
    self, z: jax.Array, train: bool = False, rng: jax.Array | None = None
  ) -> Quantization:
    """`rng` picks the restarted entries' vectors: needed when training
    with a dead-code restart."""
    flat_z = z.reshape(-1, self.embedding_dim).astype(jnp.float32)
    if self.codebook_update == "loss":
      codebook = self.param(
        "codebook", _CODEBOOK_INIT, (self.codebook_size, self.embedding_dim)
      )
      statistics = None
    else:
      statistics = self._ema_statistics()
      codebook = statistics["embeddings"].value
    # The assignment and the statistics take no gradient.
    indices = nearest_entries(jax.lax.stop_gradient(flat_z), codebook)
    codes = jnp.take(codebook, indices, axis=0).reshape(z.shape)
    if train and statistics is not None:
      stats = ema_update(
        {name: variable.value for name, variable in statistics.items()},
        jax.lax.stop_gradient(flat_z),
        indices,
        decay=self.ema_decay,
        epsilon=self.ema_epsilon,
      )
      if self.dead_code_restart_steps:
        if rng is None:
          raise ValueError("A dead-code restart needs the step's rng.")
        stats = restart_dead_codes(
          stats,
          jax.lax.stop_gradient(flat_z),
          rng,
          window=self.dead_code_restart_steps,
        )
      for name, variable in statistics.items():
        variable.value = stats[name]
    codes = codes.astype(z.dtype)
    return Quantization(
      quantized=z + jax.lax.stop_gradient(codes - z),
      indices=indices.reshape(z.shape[:-1]),
      codes=codes,
    )

  def codebook(self) -> jax.Array:
    """[K, D]: the entries as trained (read; `__call__` creates them)."""
    if self.codebook_update == "loss":
      return self.get_variable("params", "codebook")
    return self.get_variable("batch_stats", "embeddings")


def _conv(features: int, size: int, conv_impl: str, **kwargs) -> nn.Module:
  """A stride-1 'same' convolution (size 1 or 3)."""
  return layers.StridedConv(
    features,
    kernel_size=size,
    stride=1,
    padding=size // 2,
    conv_impl=conv_impl,
    **kwargs,
  )


class ResidualStack(nn.Module):
  """Blocks x + Conv1x1(ReLU(Conv3x3(ReLU(x)))), then a ReLU."""

  channels: int
  residual_channels: int
  num_blocks: int
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    for _ in range(self.num_blocks):
      inner = _conv(self.residual_channels, 3, self.conv_impl)(nn.relu(h))
      h = h + _conv(self.channels, 1, self.conv_impl)(nn.relu(inner))
    return nn.relu(h)


class Encoder(nn.Module):
  """images -> the pre-quantization grid [B, H / 2^L, W / 2^L, D]."""

  channels: Sequence[int]  # The L stride-2 convs'; the last, the stack's.
  residual_channels: int
  num_residual_blocks: int
  embedding_dim: int
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    del train  # No layer behaves differently in training.
    h = images
    for features in self.channels:
      h = nn.relu(layers.StridedConv(features, conv_impl=self.conv_impl)(h))
    h = _conv(self.channels[-1], 3, self.conv_impl)(h)
    h = ResidualStack(
      self.channels[-1],
      self.residual_channels,
      self.num_residual_blocks,
      self.conv_impl,
    )(h)
    return _conv(self.embedding_dim, 1, self.conv_impl, name="to_codes")(h)


class Decoder(nn.Module):
  """A quantized grid -> logits shaped like the images."""

  channels: Sequence[int]  # The encoder's, in encoder order.
  residual_channels: int
  num_residual_blocks: int
  image_channels: int
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, quantized: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = _conv(self.channels[-1], 3, self.conv_impl)(quantized)
    h = ResidualStack(
      self.channels[-1],
      self.residual_channels,
      self.num_residual_blocks,
      self.conv_impl,
    )(h)
    for features in self.channels[-2::-1]:
      h = nn.relu(layers.UpConv(features, conv_impl=self.conv_impl)(h))
    return layers.UpConv(
      self.image_channels, name="logits", conv_impl=self.conv_impl
    )(h)


class VQVAE(nn.Module):
  """The `family.Kind.VECTOR_QUANTIZED` contract: `encode`, `quantize`,
  `decode`, `codebook_size` and `grid_shape`; and `decode_indices`."""

  encoder: nn.Module
  quantizer: VectorQuantizer
  decoder: nn.Module
  grid_shape: tuple[int, int, int]  # (h, w, D) of the encoder's grid.

  @property
  def codebook_size(self) -> int:
    return self.quantizer.codebook_size

  def encode(self, images: jax.Array, train: bool = False) -> jax.Array:
    return self.encoder(images, train=train)

  def quantize(
    self, grid: jax.Array, train: bool = False, rng: jax.Array | None = None
  ) -> Quantization:
    return self.quantizer(grid, train, rng)

  def decode(self, quantized: jax.Array, train: bool = False) -> jax.Array:
    return self.decoder(quantized, train=train)

  def decode_indices(self, indices: jax.Array) -> jax.Array:
    """The decoder's outputs for grids of codebook indices [B, h, w]: what
    a prior's samples decode through."""
    return self.decode(jnp.take(self.quantizer.codebook(), indices, axis=0))

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    quantization = self.quantize(self.encode(images, train), train)
    return self.decode(quantization.quantized, train)


def default_config() -> ml_collections.ConfigDict:
  """Sonnet's example's layers at half its widths and an eighth of its
  codebook, for 28x28 MNIST on CPUs."""
  config = ml_collections.ConfigDict()
  config.name = "vq_vae"  # vae_jax/models/vq_vae.py.
  # The stride-2 convs' widths, each halving the image (28 -> 14 -> 7); the
  # last is the width of the residual stacks. Sonnet's: (64, 128).
  config.channels = (32, 64)
  config.residual_channels = 32  # Inside each residual block (Sonnet: 32).
  config.num_residual_blocks = 2  # Per stack, encoder and decoder (Sonnet: 2).
  config.embedding_dim = 16  # D, of each grid vector and entry (Sonnet: 64).
  config.codebook_size = 64  # K, the entries (Sonnet: 512).
  # How the codebook learns: 'ema' (moving averages, in 'batch_stats') or
  # 'loss' (a parameter under the codebook loss); the module docstring.
  config.codebook_update = "ema"
  config.ema_decay = 0.99  # γ of 'ema' (the paper's).
  config.ema_epsilon = 1e-5  # ε, Laplace smoothing of 'ema' (Sonnet's).
  # 'ema' only: entries unchosen for this many steps in a row are restarted
  # at encoder outputs of the batch; 0 never restarts (the paper's).
  config.dead_code_restart_steps = 0
  config.conv_impl = "auto"  # layers.CONV_IMPLS: the conv layers' form.
  return config


def _check(model_config: ml_collections.ConfigDict) -> None:
  errors.require_choice(
    model_config.codebook_update, CODEBOOK_UPDATES, "model.codebook_update"
  )
  for field in ("embedding_dim", "codebook_size", "residual_channels"):
    errors.require(
      model_config[field] > 0,
      f"model.{field} must be positive, got {model_config[field]}.",
    )
  errors.require(
    0 <= model_config.ema_decay < 1,
    f"model.ema_decay must be in [0, 1), got {model_config.ema_decay}.",
  )
  errors.require(
    model_config.dead_code_restart_steps >= 0,
    "model.dead_code_restart_steps must be >= 0, got "
    f"{model_config.dead_code_restart_steps}.",
  )
  errors.require(
    not model_config.dead_code_restart_steps
    or model_config.codebook_update == "ema",
    "model.dead_code_restart_steps restarts entries inside the 'ema' "
    "update; set model.codebook_update='ema' or the restart to 0.",
  )


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  _check(model_config)
  channels = tuple(model_config.channels)
  layers.require_halvable("vq_vae", image_shape, len(channels))
  conv_impl = layers.check_conv_impl(model_config.conv_impl)
  height, width, image_channels = image_shape
  scale = 2 ** len(channels)
  stacks = (model_config.residual_channels, model_config.num_residual_blocks)
  return VQVAE(
    encoder=Encoder(
      channels, *stacks, model_config.embedding_dim, conv_impl=conv_impl
    ),
    quantizer=VectorQuantizer(
      codebook_size=model_config.codebook_size,
      embedding_dim=model_config.embedding_dim,
      codebook_update=model_config.codebook_update,
      ema_decay=model_config.ema_decay,
      ema_epsilon=model_config.ema_epsilon,
      dead_code_restart_steps=model_config.dead_code_restart_steps,
    ),
    decoder=Decoder(channels, *stacks, image_channels, conv_impl=conv_impl),
    grid_shape=(height // scale, width // scale, model_config.embedding_dim),
  )


FAMILIES = (
  family.Family(
    name="vq_vae",
    kind=family.Kind.VECTOR_QUANTIZED,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="vq_vae",
    trainer="single_network",
  ),
)
