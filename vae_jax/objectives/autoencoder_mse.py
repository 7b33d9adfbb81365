"""Plain autoencoders: mean squared error between tanh(outputs) and images.

Images are in [-1, 1], the range of tanh. `mse` is reported on [0, 1]
pixels like the VAEs': (a - b)^2 / 4.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.models import family
from vae_jax.objectives import likelihoods
from vae_jax.objectives import objective


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.objective = "autoencoder_mse"  # vae_jax/objectives/autoencoder_mse.py.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  del loss_config  # MSE has no settings.


def autoencoder_loss(
  outputs: jax.Array, images: jax.Array
) -> dict[str, jax.Array]:
  """Per-image MSE on [-1, 1] pixels, and on [0, 1] pixels as 'mse'."""
  outputs, images = likelihoods.flat_pixels(outputs, images)
  error = likelihoods.squared_error(jnp.tanh(outputs), images)
  return {"loss": error, "mse": error / 4}


def _reconstruct(autoencoder: Any, images: jax.Array, train: bool) -> jax.Array:
  return autoencoder.decode(autoencoder.encode(images, train), train)


def terms(
  autoencoder: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  del rng, step, loss_config  # Deterministic, with no settings.
  outputs, batch_stats = objective.apply(
    autoencoder, images, method=_reconstruct
  )
  return autoencoder_loss(outputs, images), batch_stats


def to_unit_images(outputs: jax.Array) -> jax.Array:
  return (jnp.tanh(outputs) + 1) / 2


OBJECTIVES = (
  objective.Objective(
    name="autoencoder_mse",
    kinds=(family.Kind.AUTOENCODER,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=to_unit_images,
  ),
)
