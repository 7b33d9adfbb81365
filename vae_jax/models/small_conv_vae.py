"""The seed's three-layer convolutional VAE.

Seed listing (32x32 input, d = 32, latent 16 or 256): encoder Conv 3x3 stride 2
padding 1 with bias, d -> 2d -> 4d channels, ReLU after each, flattened
(4x4x4d) into Linear -> 256 with ReLU and linear mu and σ heads; decoder
Linear latent -> 256 -> 4d·4·4 with ReLU, reshaped to 4x4x4d, then three
ConvTranspose 3x3 stride 2 (output_padding 1): 4d -> 2d -> d -> image channels,
ReLU between them. Other sizes divisible by 8 scale the flattened size.

Differences from the listing, on purpose:
- The σ head predicts log σ² (same parameter count), like every family here.
- The decoder's final sigmoid is left to the likelihood: it returns logits.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import ml_collections

from vae_jax.models import family
from vae_jax.models import layers
from vae_jax.models import priors
from vae_jax.models import vae

# Three stride-2 levels: the decoder can only rebuild sizes divisible by 2**3.
_NUM_LEVELS = 3


def _level_channels(base_channels: int) -> tuple[int, ...]:
  return tuple(base_channels * 2**level for level in range(_NUM_LEVELS))


class SmallConvEncoder(nn.Module):
  """Conv 3x3 stride 2 with ReLU per level, a dense layer, mu/logvar heads."""

  base_channels: int
  dense_size: int
  latent_size: int
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    del train  # No layer behaves differently in training.
    h = images
    for features in _level_channels(self.base_channels):
      h = nn.relu(
        layers.StridedConv(  # s=2, p=1.
          features, kernel_size=3, conv_impl=self.conv_impl
        )(h)
      )
    h = nn.relu(nn.Dense(self.dense_size)(h.reshape(h.shape[0], -1)))
    return (
      nn.Dense(self.latent_size, name="mu")(h),
      nn.Dense(self.latent_size, name="logvar")(h),
    )


class SmallConvDecoder(nn.Module):
  """Two dense layers, then ConvTranspose 3x3 stride 2 doubling each level."""

  base_channels: int
  dense_size: int
  image_shape: Sequence[int]
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    del train
    height, width, image_channels = self.image_shape
    channels = _level_channels(self.base_channels)
    scale = 2**_NUM_LEVELS
    start_shape = (height // scale, width // scale, channels[-1])
    h = nn.relu(nn.Dense(self.dense_size)(z))
    h = nn.relu(nn.Dense(start_shape[0] * start_shape[1] * start_shape[2])(h))
    h = h.reshape((z.shape[0], *start_shape))
    for features in channels[-2::-1]:
      # PyTorch k=3, s=2, p=1, output_padding=1: doubles the size.
      h = nn.relu(
        layers.UpConv(features, kernel_size=3, conv_impl=self.conv_impl)(h)
      )
    return layers.UpConv(
      image_channels, kernel_size=3, name="logits", conv_impl=self.conv_impl
    )(h)


def default_config() -> ml_collections.ConfigDict:
  """The listing's sizes (32x32 input, d = 32)."""
  config = ml_collections.ConfigDict()
  config.name = "small_conv_vae"  # vae_jax/models/small_conv_vae.py.
  config.latent_size = 16  # 16 or 256 in the seed.
  config.base_channels = 32  # d: convs have d, 2d, 4d channels.
  config.dense_size = 256  # Linear between the convs and the heads.
  config.conv_impl = "auto"  # layers.CONV_IMPLS: the conv layers' form.
  config.prior = priors.default_config()  # p(z): models/priors.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  layers.require_halvable("small_conv_vae", image_shape, _NUM_LEVELS)
  base_channels = model_config.base_channels
  dense_size = model_config.dense_size
  conv_impl = layers.check_conv_impl(model_config.conv_impl)
  return vae.VAE(
    encoder=SmallConvEncoder(
      base_channels, dense_size, model_config.latent_size, conv_impl
    ),
    decoder=SmallConvDecoder(
      base_channels, dense_size, tuple(image_shape), conv_impl
    ),
    latent_size=model_config.latent_size,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
  )


FAMILIES = (
  family.Family(
    name="small_conv_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="negative_elbo",
    trainer="single_network",
  ),
)
