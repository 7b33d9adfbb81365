"""The "linear" VAE: fully connected encoder and decoder with ReLU.

The seed's MNIST model is 784-400-200-(mu, logvar: 20) and back 20-200-400-784;
its 32x32 variant is 1024-512-(4) and back. Both are this module with other
sizes in the config.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import ml_collections

from vae_jax.models import family
from vae_jax.models import vae


class MlpEncoder(nn.Module):
  hidden_sizes: Sequence[int]
  latent_size: int

  @nn.compact
  def __call__(self, images: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    del train  # No layer behaves differently in training.
    h = images.reshape(images.shape[0], -1)
    for size in self.hidden_sizes:
      h = nn.relu(nn.Dense(size)(h))
    return (nn.Dense(self.latent_size, name="mu")(h),
            nn.Dense(self.latent_size, name="logvar")(h))


class MlpDecoder(nn.Module):
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = z
    for size in self.hidden_sizes:
      h = nn.relu(nn.Dense(size)(h))
    logits = nn.Dense(math.prod(self.image_shape), name="logits")(h)
    return logits.reshape((z.shape[0], *self.image_shape))


def default_config() -> ml_collections.ConfigDict:
  """The seed's MNIST model."""
  config = ml_collections.ConfigDict()
  config.name = "mlp_vae"  # vae_jax/models/mlp_vae.py.
  config.hidden_sizes = (400, 200)  # Encoder; the decoder mirrors it.
  config.latent_size = 20  # Dimensions of z.
  return config


def build(model_config: ml_collections.ConfigDict,
          image_shape: Sequence[int]) -> nn.Module:
  hidden_sizes = tuple(model_config.hidden_sizes)
  return vae.VAE(
      encoder=MlpEncoder(hidden_sizes, model_config.latent_size),
      decoder=MlpDecoder(hidden_sizes[::-1], tuple(image_shape)),
      latent_size=model_config.latent_size)


FAMILIES = (family.Family(
    name="mlp_vae", kind=family.Kind.LATENT_VARIABLE, build=build,
    default_config=default_config, pixel_range=family.reads("unit"),
    objective="negative_elbo", trainer="single_network"),)

