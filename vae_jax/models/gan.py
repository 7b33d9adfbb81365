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
z's size), as the common PyTorch ACGAN does: concatenated to z instead, the
class lets a narrow generator ignore z and draw one image per class.
"""

from collections.abc import Sequence
import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import layers

OUTPUT_ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
# The pixel range ('symmetric' [-1, 1] or 'unit' [0, 1]) each one produces.
OUTPUT_PIXEL_RANGES = {"tanh": "symmetric", "sigmoid": "unit"}


class Generator(nn.Module):
  """z [B, latent] (and labels [B] if conditional) -> images in the range."""

  channels: Sequence[int]  # Per level, in the discriminator's order.
  image_shape: Sequence[int]
  num_classes: int = 0  # 0: unconditional.
  output_activation: str = "tanh"
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  @nn.compact
  def __call__(
    self, z: jax.Array, labels: jax.Array | None = None, train: bool = False
  ) -> jax.Array:
    if self.num_classes:
      embed = nn.Embed(
        self.num_classes,
        z.shape[-1],
        embedding_init=nn.initializers.normal(1.0),
        name="label_embedding",
      )
      z = z * embed(labels)
    height, width, image_channels = self.image_shape
    scale = 2 ** len(self.channels)
    start_shape = (height // scale, width // scale, self.channels[-1])
    # No biases before BatchNorm: its shift does their job.
    h = nn.Dense(math.prod(start_shape), use_bias=False, name="project")(z)
    h = nn.relu(layers.batch_norm(train)(h.reshape((z.shape[0], *start_shape))))
    for features in tuple(self.channels[-2::-1]):
      h = layers.UpConv(
        features,
        use_bias=False,  # PyTorch k=4, s=2, p=1.
        conv_impl=self.conv_impl,
      )(h)
      h = nn.relu(layers.batch_norm(train)(h))
    h = layers.UpConv(image_channels, name="output", conv_impl=self.conv_impl)(
      h
    )
    return OUTPUT_ACTIVATIONS[self.output_activation](h)


class Discriminator(nn.Module):
  """images -> (real/fake logit [B], class logits [B, K] or None)."""

  channels: Sequence[int]
  num_classes: int = 0  # 0: no class head.
  # DCGAN's BatchNorm on every level but the first. Off, the network is the
  # same function in training and evaluation, which keeps its test accuracy
  # comparable with its training accuracy.
  batch_norm: bool = False
  # Miyato et al. 2018: every weight matrix (a conv kernel as [k*k*in, out])
  # divided by its largest singular value, estimated by one power iteration
  # per training step; the iterate is kept with the BatchNorm statistics.
  spectral_norm: bool = False
  conv_impl: str = "auto"  # layers.CONV_IMPLS: the conv layers' form.

  def _layer(self, layer: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    if self.spectral_norm:
      return nn.SpectralNorm(layer)(x, update_stats=train)
    return layer(x)

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array | None]:
    h = images
    for level, features in enumerate(self.channels):
      normalized = self.batch_norm and level > 0
      conv = layers.StridedConv(
        features,
        use_bias=not normalized,  # k=4, s=2.
        conv_impl=self.conv_impl,
      )
      h = self._layer(conv, h, train)
      if normalized:
        h = layers.batch_norm(train)(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    logits = self._layer(nn.Dense(1, name="real_fake"), h, train)[:, 0]
    if not self.num_classes:
      return logits, None
    return logits, self._layer(
      nn.Dense(self.num_classes, name="classes"), h, train
    )


@dataclasses.dataclass(frozen=True)
class Gan:
  """The two networks, initialized and trained apart (see
  `trainers.adversarial`)."""

  generator: Generator
  discriminator: Discriminator
  latent_size: int
  num_classes: int  # 0: unconditional; else an ACGAN with this many classes.


def default_config(name: str = "gan") -> ml_collections.ConfigDict:
  """DCGAN's networks for 64x64 images; `name` 'acgan' conditions them."""
  config = ml_collections.ConfigDict()
  config.name = name  # 'gan' or 'acgan' (vae_jax/models/gan.py).
  config.latent_size = 100  # Dimensions of z ~ N(0, I); DCGAN's.
  # Discriminator convs, each halving the image.
  config.channels = (64, 128, 256, 512)
  # The generator's, in the same order (it runs them backwards); None
  # mirrors `channels`.
  config.generator_channels = (64, 128, 256, 512)
  # DCGAN's BatchNorm in the discriminator (all levels but the first).
  config.discriminator_batch_norm = True
  # Spectral normalization of every discriminator layer (Miyato et al.
  # 2018), a cheaper alternative to an R1 penalty (trainer's r1_weight).
  config.discriminator_spectral_norm = False
  # 'tanh' ([-1, 1], pixel_range 'symmetric') or 'sigmoid' ([0, 1], 'unit').
  config.output_activation = "tanh"
  config.conv_impl = "auto"  # layers.CONV_IMPLS: the conv layers' form.
  return config


def _output_activation(model_config: ml_collections.ConfigDict) -> str:
  """model.output_activation, checked: both the model and its pixel range
  (read before the model is built) follow it."""
  errors.require_choice(
    model_config.output_activation,
    OUTPUT_ACTIVATIONS,
    "model.output_activation",
  )
  return model_config.output_activation


def _build(
  model_config: ml_collections.ConfigDict,
  image_shape: Sequence[int],
  num_classes: int,
) -> Gan:
  channels = tuple(model_config.channels)
  layers.require_halvable(model_config.name, image_shape, len(channels))
  generator_channels = tuple(model_config.generator_channels or channels)
  if len(generator_channels) != len(channels):
    raise errors.ConfigError(
      f"model.generator_channels {generator_channels} must have as many "
      f"levels as model.channels {channels}."
    )
  activation = _output_activation(model_config)
  conv_impl = layers.check_conv_impl(model_config.conv_impl)
  return Gan(
    generator=Generator(
      generator_channels, tuple(image_shape), num_classes, activation, conv_impl
    ),
    discriminator=Discriminator(
      channels,
      num_classes,
      batch_norm=model_config.discriminator_batch_norm,
      spectral_norm=model_config.discriminator_spectral_norm,
      conv_impl=conv_impl,
    ),
    latent_size=model_config.latent_size,
    num_classes=num_classes,
  )


def build_gan(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Gan:
  return _build(model_config, image_shape, num_classes=0)


def build_acgan(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Gan:
  """`model_config.num_classes` is set from the dataset's labels
  (`models.registry.build`)."""
  if model_config.get("num_classes", 0) < 2:
    raise errors.ConfigError(
      "an ACGAN needs data with at least 2 classes, got "
      f"{model_config.get('num_classes', 0)}."
    )
  return _build(model_config, image_shape, model_config.num_classes)


def _pixel_range(model_config: ml_collections.ConfigDict) -> str:
  return OUTPUT_PIXEL_RANGES[_output_activation(model_config)]


FAMILIES = (
  family.Family(
    name="gan",
    kind=family.Kind.GAN,
    build=build_gan,
    default_config=default_config,
    pixel_range=_pixel_range,
    objective="nonsaturating_gan",
    trainer="adversarial",
  ),
  family.Family(
    name="acgan",
    kind=family.Kind.GAN,
    build=build_acgan,
    default_config=lambda: default_config("acgan"),
    pixel_range=_pixel_range,
    objective="nonsaturating_gan",
    trainer="adversarial",
    conditional=True,
  ),
)
