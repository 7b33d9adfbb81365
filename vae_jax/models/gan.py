"""DCGAN-style generator and discriminator, unconditional ('gan') or ACGAN.

The generator has the conv decoder's shape: z is projected to the smallest
feature map, then each UpConv 4x4 stride 2 doubles it (BatchNorm and ReLU
after all but the last), and tanh or sigmoid gives the image. The
discriminator has the conv encoder's shape: StridedConv 4x4 stride 2 with
LeakyReLU(0.2) per level, then one real/fake logit; an ACGAN's has a second
head with a logit per class. `channels` lists the discriminator's levels;
the generator mirrors them, as the VAE decoders mirror their encoders, unless
`generator_channels` gives its own (same number of levels).

An ACGAN's generator multiplies z elementwise by the class's embedding (of
z's size), as the common PyTorch ACGAN does. Concatenating them instead let
a narrow MNIST generator ignore z: within two epochs each digit was one
image whatever z, and the discriminator lost track.
"""

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import validation
from vae_jax.models import layers

DEFAULT_CHANNELS = (64, 128, 256, 512)  # DCGAN's, for 64x64 images.
OUTPUT_ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
# The pixel range ('symmetric' [-1, 1] or 'unit' [0, 1]) each one produces.
OUTPUT_PIXEL_RANGES = {"tanh": "symmetric", "sigmoid": "unit"}


def _batch_norm(train: bool) -> nn.BatchNorm:
  # momentum 0.9 keeps 90% of the old running average: PyTorch's momentum 0.1.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5)


class Generator(nn.Module):
  """z [B, latent] (and labels [B] if conditional) -> images in the range."""
  channels: Sequence[int]  # Per level, in the discriminator's order.
  image_shape: Sequence[int]
  num_classes: int = 0  # 0: unconditional.
  output_activation: str = "tanh"
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    if self.num_classes:
      embed = nn.Embed(self.num_classes, z.shape[-1],
                       embedding_init=nn.initializers.normal(1.0),
                       name="label_embedding")
      z = z * embed(labels)
    height, width, image_channels = self.image_shape
    scale = 2 ** len(self.channels)
    start_shape = (height // scale, width // scale, self.channels[-1])
    # No biases before BatchNorm: its shift does their job.
    h = nn.Dense(math.prod(start_shape), use_bias=False, name="project")(z)
    h = nn.relu(_batch_norm(train)(h.reshape((z.shape[0], *start_shape))))
    for features in tuple(self.channels[-2::-1]):
      h = layers.UpConv(features, use_bias=False,  # PyTorch k=4, s=2, p=1.
                        conv_impl=self.conv_impl)(h)
      h = nn.relu(_batch_norm(train)(h))
    h = layers.UpConv(image_channels, name="output",
                      conv_impl=self.conv_impl)(h)
    return OUTPUT_ACTIVATIONS[self.output_activation](h)


class Discriminator(nn.Module):
  """images -> (real/fake logit [B], class logits [B, K] or None)."""
  channels: Sequence[int]
  num_classes: int = 0  # 0: no class head.
  # DCGAN's BatchNorm on every level but the first. Off, the network is the
  # same function in training and evaluation, which keeps its test accuracy
  # comparable with its training accuracy.
  batch_norm: bool = False
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False
               ) -> tuple[jax.Array, jax.Array | None]:
    h = images
    for level, features in enumerate(self.channels):
      normalized = self.batch_norm and level > 0
      h = layers.StridedConv(features, use_bias=not normalized,  # k=4, s=2.
                             conv_impl=self.conv_impl)(h)
      if normalized:
        h = _batch_norm(train)(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    logits = nn.Dense(1, name="real_fake")(h)[:, 0]
    if not self.num_classes:
      return logits, None
    return logits, nn.Dense(self.num_classes, name="classes")(h)


@dataclasses.dataclass(frozen=True)
class Gan:
  """The two networks, initialized and trained apart (see gan_train)."""
  generator: Generator
  discriminator: Discriminator
  latent_size: int
  num_classes: int  # 0: unconditional; else an ACGAN with this many classes.
  # The networks' arithmetic: 'float32' or 'bfloat16' (vae_jax.precision).
  compute_dtype: str = "float32"


def _build(model_config: ml_collections.ConfigDict, image_shape: Sequence[int],
           num_classes: int) -> Gan:
  channels = tuple(model_config.get("channels", DEFAULT_CHANNELS))
  layers.require_halvable(model_config.name, image_shape, len(channels))
  generator_channels = tuple(model_config.get("generator_channels")
                             or channels)
  if len(generator_channels) != len(channels):
    raise validation.ConfigError(
        f"model.generator_channels {generator_channels} must have as many "
        f"levels as model.channels {channels}.")
  activation = model_config.get("output_activation", "tanh")
  if activation not in OUTPUT_ACTIVATIONS:
    raise validation.ConfigError(
        f"model.output_activation {activation!r} is unknown; choose one of "
        f"{sorted(OUTPUT_ACTIVATIONS)}.")
  conv_impl = layers.check_conv_impl(model_config.get("conv_impl", "auto"))
  return Gan(
      generator=Generator(generator_channels, tuple(image_shape), num_classes,
                          activation, conv_impl),
      discriminator=Discriminator(
          channels, num_classes,
          model_config.get("discriminator_batch_norm", False), conv_impl),
      latent_size=model_config.latent_size, num_classes=num_classes)


def build_gan(model_config: ml_collections.ConfigDict,
              image_shape: Sequence[int]) -> Gan:
  return _build(model_config, image_shape, num_classes=0)


def build_acgan(model_config: ml_collections.ConfigDict,
                image_shape: Sequence[int]) -> Gan:
  """`model_config.num_classes` is set by gan_train from the dataset."""
  if model_config.get("num_classes", 0) < 2:
    raise validation.ConfigError(
        "an ACGAN needs model.num_classes >= 2 (gan_train.build_model sets it "
        "from the dataset's labels).")
  return _build(model_config, image_shape, model_config.num_classes)
