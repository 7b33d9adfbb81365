"""The seed's DCGAN-style VAE: strided convolutions with BatchNorm.

Seed listing (32x32x1 MNIST, latent 128): encoder four Conv 4x4 stride 2
(64, 128, 256, 128 channels, no bias), each followed by ReLU then BatchNorm,
flattened to 2x2x128 = 512 and read by linear mu and σ heads; decoder Linear
latent->512->512 with ReLU, reshaped to 2x2x128, then four ConvTranspose 4x4
stride 2 (256, 128, 64, image channels) with ReLU then BatchNorm after all but
the last. Other image sizes keep the layers and let the flattened size follow
the input (64x64x3 flattens to 4x4x128 = 2048).

Differences from the listing, on purpose:
- The σ head predicts log σ² (same parameter count), like every family here,
  so the KL and the sample are computed in one place
  (`objectives.negative_elbo`).
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


class DcganEncoder(nn.Module):
  """Conv 4x4 stride 2 -> ReLU -> BatchNorm per level, then mu/logvar heads."""

  channels: Sequence[int]
  latent_size: int
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    h = images
    for features in self.channels:
      # No bias: the BatchNorm that follows has its own shift.
      h = layers.StridedConv(
        features, use_bias=False, conv_impl=self.conv_impl
      )(h)  # k=4, s=2, p=1.
      h = layers.batch_norm(train)(nn.relu(h))
    h = h.reshape(h.shape[0], -1)
    return (
      nn.Dense(self.latent_size, name="mu")(h),
      nn.Dense(self.latent_size, name="logvar")(h),
    )


class DcganDecoder(nn.Module):
  """Two dense layers, then ConvTranspose 4x4 stride 2 doubling each level."""

  channels: Sequence[int]  # The encoder's, in encoder order.
  dense_size: int
  image_shape: Sequence[int]
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    height, width, image_channels = self.image_shape
    scale = 2 ** len(self.channels)
    start_shape = (height // scale, width // scale, self.channels[-1])
    h = nn.relu(nn.Dense(self.dense_size)(z))
    h = nn.relu(nn.Dense(start_shape[0] * start_shape[1] * start_shape[2])(h))
    h = h.reshape((z.shape[0], *start_shape))
    for features in tuple(self.channels[-2::-1]):
      h = layers.UpConv(
        features,
        use_bias=False,  # PyTorch k=4, s=2, p=1.
        conv_impl=self.conv_impl,
      )(h)
      h = layers.batch_norm(train)(nn.relu(h))
    return layers.UpConv(
      image_channels, use_bias=False, name="logits", conv_impl=self.conv_impl
    )(h)


def default_config() -> ml_collections.ConfigDict:
  """The listing's sizes (32x32x1 MNIST)."""
  config = ml_collections.ConfigDict()
  config.name = "dcgan_vae"  # vae_jax/models/dcgan_vae.py.
  config.latent_size = 128  # The listing's mu/sigma heads: 512 -> 128.
  config.channels = (64, 128, 256, 128)  # Encoder convs; mirrored back.
  config.dense_size = 512  # Decoder's first Linear: latent -> 512.
  config.conv_impl = "auto"  # layers.CONV_IMPLS: the conv layers' form.
  config.prior = priors.default_config()  # p(z): models/priors.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  channels = tuple(model_config.channels)
  layers.require_halvable("dcgan_vae", image_shape, len(channels))
  conv_impl = layers.check_conv_impl(model_config.conv_impl)
  return vae.VAE(
    encoder=DcganEncoder(channels, model_config.latent_size, conv_impl),
    decoder=DcganDecoder(
      channels, model_config.dense_size, tuple(image_shape), conv_impl
    ),
    latent_size=model_config.latent_size,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
  )


FAMILIES = (
  family.Family(
    name="dcgan_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="negative_elbo",
    trainer="single_network",
  ),
)
