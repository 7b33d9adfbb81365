"""The gated MLP VAE of Tomczak & Welling's VampPrior paper (AISTATS 2018).

    q(z | x): x -> GatedDense 300 -> GatedDense 300 -> (mu, logvar: 40)
    p(x | z): z -> GatedDense 300 -> GatedDense 300 -> logits (784)

A gated dense layer is (W x + b) * sigmoid(V x + c) (Dauphin et al. 2017).
As in the paper's code, every weight starts as N(0, 2 / fan_in) (He), and
the posterior's log-variance is clipped to [-6, 2] (a hard tanh). The prior
is `model.prior`: the paper compares N(0, I) with the VampPrior.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import priors
from vae_jax.models import vae

_HE_NORMAL = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _dense(features: int, name: str | None = None) -> nn.Dense:
  return nn.Dense(features, kernel_init=_HE_NORMAL, name=name)


class GatedDense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return _dense(self.features, "h")(x) * nn.sigmoid(
      _dense(self.features, "gate")(x)
    )


class GatedEncoder(nn.Module):
  hidden_sizes: Sequence[int]
  latent_size: int
  logvar_range: tuple[float, float]

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    del train  # No layer behaves differently in training.
    h = images.reshape(images.shape[0], -1)
    for size in self.hidden_sizes:
      h = GatedDense(size)(h)
    logvar = _dense(self.latent_size, "logvar")(h)
    return _dense(self.latent_size, "mu")(h), jnp.clip(
      logvar, *self.logvar_range
    )


class GatedDecoder(nn.Module):
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = z
    for size in self.hidden_sizes:
      h = GatedDense(size)(h)
    logits = _dense(math.prod(self.image_shape), "logits")(h)
    return logits.reshape((z.shape[0], *self.image_shape))


def default_config() -> ml_collections.ConfigDict:
  """The paper's MNIST model, with the standard prior."""
  config = ml_collections.ConfigDict()
  config.name = "gated_mlp_vae"  # vae_jax/models/gated_mlp_vae.py.
  config.hidden_sizes = (300, 300)  # Encoder; the decoder mirrors it.
  config.latent_size = 40  # Dimensions of z.
  # The posterior's log-variance is clipped to this range (the paper's
  # hard tanh), which keeps a VampPrior's components from collapsing.
  config.logvar_range = (-6.0, 2.0)
  config.prior = priors.default_config()  # p(z): models/priors.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  low, high = model_config.logvar_range
  errors.require(
    low < high,
    f"model.logvar_range must rise, got {tuple(model_config.logvar_range)}.",
  )
  hidden_sizes = tuple(model_config.hidden_sizes)
  return vae.VAE(
    encoder=GatedEncoder(
      hidden_sizes, model_config.latent_size, (float(low), float(high))
    ),
    decoder=GatedDecoder(hidden_sizes[::-1], tuple(image_shape)),
    latent_size=model_config.latent_size,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
  )


FAMILIES = (
  family.Family(
    name="gated_mlp_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="negative_elbo",
    trainer="single_network",
  ),
)
