"""The "linear" VAE: fully connected encoder and decoder.

The seed's MNIST model is 784-400-200-(mu, logvar: 20) and back 20-200-400-784
with ReLU; its 32x32 variant is 1024-512-(4) and back. Burda et al.'s
one-stochastic-layer IWAE model is 784-200-200-(50) and back with tanh. All
are this module with other sizes in the config.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import priors
from vae_jax.models import vae

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}


class MlpEncoder(nn.Module):
  hidden_sizes: Sequence[int]
  latent_size: int
  activation: str = "relu"  # A key of ACTIVATIONS.

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    del train  # No layer behaves differently in training.
    h = images.reshape(images.shape[0], -1)
    for size in self.hidden_sizes:
      h = ACTIVATIONS[self.activation](nn.Dense(size)(h))
    return (
      nn.Dense(self.latent_size, name="mu")(h),
      nn.Dense(self.latent_size, name="logvar")(h),
    )


class MlpDecoder(nn.Module):
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]
  activation: str = "relu"  # A key of ACTIVATIONS.

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = z
    for size in self.hidden_sizes:
      h = ACTIVATIONS[self.activation](nn.Dense(size)(h))
    logits = nn.Dense(math.prod(self.image_shape), name="logits")(h)
    return logits.reshape((z.shape[0], *self.image_shape))


def default_config() -> ml_collections.ConfigDict:
  """The seed's MNIST model."""
  config = ml_collections.ConfigDict()
  config.name = "mlp_vae"  # vae_jax/models/mlp_vae.py.
  config.hidden_sizes = (400, 200)  # Encoder; the decoder mirrors it.
  config.latent_size = 20  # Dimensions of z.
  config.activation = "relu"  # Of the hidden layers: 'relu' or 'tanh'.
  config.prior = priors.default_config()  # p(z): models/priors.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  errors.require_choice(
    model_config.activation, ACTIVATIONS, "model.activation"
  )
  hidden_sizes = tuple(model_config.hidden_sizes)
  return vae.VAE(
    encoder=MlpEncoder(
      hidden_sizes, model_config.latent_size, model_config.activation
    ),
    decoder=MlpDecoder(
      hidden_sizes[::-1], tuple(image_shape), model_config.activation
    ),
    latent_size=model_config.latent_size,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
  )


FAMILIES = (
  family.Family(
    name="mlp_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="negative_elbo",
    trainer="single_network",
  ),
)
