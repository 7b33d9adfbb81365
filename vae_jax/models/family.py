"""What a model family declares about itself, so no code has to guess.

Every family module exports `FAMILIES`, a tuple of `Family` declarations;
`registry` finds them. The trainers, objectives and analysis read the
declaration (its `kind`, the pixels it reads, its default objective and
trainer) instead of testing the model's class.
"""

from collections.abc import Callable, Sequence
import dataclasses
import enum
from typing import Any

import ml_collections


class Kind(enum.Enum):
  """What a model is, as far as training and analysis are concerned."""

  # An encoder q(z|x) with a prior p(z) to sample from, and a decoder
  # p(x|z): `encode(images) -> (mu, logvar)`, `decode(z) -> logits`, and
  # its number of `stochastic_layers` (`models.vae`).
  LATENT_VARIABLE = "latent_variable"
  # A deterministic code: `encode(images) -> code`, `decode(code) -> outputs`.
  AUTOENCODER = "autoencoder"
  # A generator and a discriminator, trained apart (`models.gan.Gan`).
  GAN = "gan"
  # A grid of codebook entries (`models.vq_vae`): `encode(images) -> grid`
  # [B, h, w, D] before quantization, `quantize(grid) -> (quantized,
  # indices, codes)` (a `vq_vae.Quantization`: the nearest entries, passed
  # straight through, their indices [B, h, w] and the entries themselves),
  # `decode(quantized) -> logits`, `decode_indices(indices) -> logits`, its
  # `codebook_size` K and `grid_shape` (h, w, D). A prior over its codes is
  # a model of its own (CODE_PRIOR).
  VECTOR_QUANTIZED = "vector_quantized"
  # An autoregressive model of a VECTOR_QUANTIZED run's code grids
  # (`models.code_prior`), trained on them as its data (`input.codes_of`):
  # `__call__(codes) -> logits` [B, h, w, K], each position's distribution
  # given the codes before it, and its `codebook_size` K and `grid_shape`.
  CODE_PRIOR = "code_prior"


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family: how to build it and what it is."""

  name: str  # config.model.name.
  kind: Kind
  # (model_config, image_shape) -> the model: a Flax module, or for GANs a
  # `gan.Gan` of two.
  build: Callable[[ml_collections.ConfigDict, Sequence[int]], Any]
  # () -> the config.model section with every field the family reads.
  default_config: Callable[[], ml_collections.ConfigDict]
  # model_config -> the pixel range it reads: 'unit' ([0, 1]),
  # 'symmetric' ([-1, 1]) or 'codes' (a VQ-VAE's code grids, as int32), one
  # of `data.batching.PIXEL_RANGES`.
  pixel_range: Callable[[ml_collections.ConfigDict], str]
  objective: str  # The objective module trained unless loss.objective says.
  trainer: str  # 'single_network' or 'adversarial'.
  # Conditioned on the data's classes: the registry sets model.num_classes
  # from the dataset before `build`.
  conditional: bool = False


def reads(pixel_range: str) -> Callable[[ml_collections.ConfigDict], str]:
  """`Family.pixel_range` of a family that always reads `pixel_range`."""
  return lambda unused_model_config: pixel_range
