"""The seed's plain (non-variational) autoencoders on 64x64x3 images.

No sampling and no KL: images come in scaled to [-1, 1] and the listings end in
tanh. The decoder here returns the pre-tanh output; the objective
(`objectives.autoencoder_mse`) applies tanh, in its MSE loss and its images,
as the VAE likelihoods apply the sigmoid.

Two families:
- `fc_autoencoder`: Linear layers with ReLU between them, none after the code
  or the output. The seed's variants are in `SEED_FC_SIZES`. The listing's
  fcn2/fcn3 encoders had Linear(64, 32) followed by Linear(12, 3), which cannot
  run; we build the evident 64 -> 32 -> 12 -> 3.
- `conv_autoencoder`: Conv 4x4 stride 2 padding 1 (3 -> 64 -> 128 -> 256 ->
  512, 64x64 -> 4x4) with ReLU, mirrored by ConvTranspose 4x4 stride 2. The
  listing's decoder produced 16x16 from a 64x64 input; we build the evident
  intent, an exact mirror back to 64x64x3.

Codes are flat [B, code_size] for both families, so code-space tools (e.g.
interpolation) need not know which one they hold.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import ml_collections

from vae_jax.models import family
from vae_jax.models import layers

# (encoder_sizes, decoder_sizes) of the seed's variants on 12288 inputs; the
# input and the output layer's H*W*C come from the image shape.
SEED_FC_SIZES = {
  # The listing's decoder really starts 3 -> 12 -> 256.
  "fcn1": ((2048, 1024, 512, 256, 128, 3), (12, 256, 512, 1024, 2048)),
  "fcn2": ((1024, 128, 64, 32, 12, 3), (12, 32, 64, 128, 1024)),
  "fcn3": ((512, 128, 64, 32, 12, 3), (12, 32, 64, 128, 512)),
}


class Autoencoder(nn.Module):
  """images -> code -> pre-tanh outputs shaped like the images."""

  encoder: nn.Module
  decoder: nn.Module
  code_size: int

  def encode(self, images: jax.Array, train: bool = False) -> jax.Array:
    return self.encoder(images, train=train)

  def decode(self, code: jax.Array, train: bool = False) -> jax.Array:
    return self.decoder(code, train=train)

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    return self.decode(self.encode(images, train), train)


class FcEncoder(nn.Module):
  sizes: Sequence[int]  # Hidden sizes, then the code size.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = images.reshape(images.shape[0], -1)
    for size in self.sizes[:-1]:
      h = nn.relu(nn.Dense(size)(h))
    return nn.Dense(self.sizes[-1], name="code")(h)


class FcDecoder(nn.Module):
  sizes: Sequence[int]  # Hidden sizes; the output layer follows the image.
  image_shape: Sequence[int]

  @nn.compact
  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = code
    for size in self.sizes:
      h = nn.relu(nn.Dense(size)(h))
    outputs = nn.Dense(math.prod(self.image_shape), name="outputs")(h)
    return outputs.reshape((code.shape[0], *self.image_shape))


class ConvEncoder(nn.Module):
  channels: Sequence[int]
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = images
    for features in self.channels:
      h = nn.relu(
        layers.StridedConv(  # k=4, s=2, p=1.
          features, conv_impl=self.conv_impl
        )(h)
      )
    return h.reshape(h.shape[0], -1)


class ConvDecoder(nn.Module):
  channels: Sequence[int]  # The encoder's, in encoder order.
  image_shape: Sequence[int]
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    del train
    height, width, image_channels = self.image_shape
    scale = 2 ** len(self.channels)
    h = code.reshape(
      (code.shape[0], height // scale, width // scale, self.channels[-1])
    )
    for features in tuple(self.channels[-2::-1]):
      h = nn.relu(
        layers.UpConv(  # PyTorch k=4, s=2, p=1.
          features, conv_impl=self.conv_impl
        )(h)
      )
    return layers.UpConv(
      image_channels, name="outputs", conv_impl=self.conv_impl
    )(h)


def default_fc_config() -> ml_collections.ConfigDict:
  """The seed's fcn1."""
  config = ml_collections.ConfigDict()
  config.name = "fc_autoencoder"  # vae_jax/models/autoencoders.py.
  encoder_sizes, decoder_sizes = SEED_FC_SIZES["fcn1"]
  config.encoder_sizes = encoder_sizes  # After the H*W*C inputs.
  config.decoder_sizes = decoder_sizes  # Before the H*W*C outputs.
  return config


def default_conv_config() -> ml_collections.ConfigDict:
  """The seed's conv autoencoder."""
  config = ml_collections.ConfigDict()
  config.name = "conv_autoencoder"  # vae_jax/models/autoencoders.py.
  config.channels = (64, 128, 256, 512)  # Encoder; mirrored back.
  config.conv_impl = "auto"  # layers.CONV_IMPLS: the conv layers' form.
  return config


def build_fc(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  encoder_sizes = tuple(model_config.encoder_sizes)
  return Autoencoder(
    encoder=FcEncoder(encoder_sizes),
    decoder=FcDecoder(tuple(model_config.decoder_sizes), tuple(image_shape)),
    code_size=encoder_sizes[-1],
  )


def build_conv(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  channels = tuple(model_config.channels)
  layers.require_halvable("conv_autoencoder", image_shape, len(channels))
  conv_impl = layers.check_conv_impl(model_config.conv_impl)
  scale = 2 ** len(channels)
  height, width, _ = image_shape
  return Autoencoder(
    encoder=ConvEncoder(channels, conv_impl),
    decoder=ConvDecoder(channels, tuple(image_shape), conv_impl),
    code_size=(height // scale) * (width // scale) * channels[-1],
  )


# Both read [-1, 1] pixels, for their tanh outputs.
FAMILIES = (
  family.Family(
    name="fc_autoencoder",
    kind=family.Kind.AUTOENCODER,
    build=build_fc,
    default_config=default_fc_config,
    pixel_range=family.reads("symmetric"),
    objective="autoencoder_mse",
    trainer="single_network",
  ),
  family.Family(
    name="conv_autoencoder",
    kind=family.Kind.AUTOENCODER,
    build=build_conv,
    default_config=default_conv_config,
    pixel_range=family.reads("symmetric"),
    objective="autoencoder_mse",
    trainer="single_network",
  ),
)
