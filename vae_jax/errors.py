"""Checks on what the user gives us, so mistakes stop the run before it starts.

Every problem a user can fix raises `UserInputError` with a message that names
the cause; `main.py` prints it as one line instead of a traceback.
"""

import os

import ml_collections


class UserInputError(ValueError):
  """A problem with the config, the workdir or the data that the user can fix."""


class ConfigError(UserInputError):
  """A config field has a value the run cannot use."""


class DataError(UserInputError):
  """The dataset is missing, corrupt or unusable."""


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def _require_choice(config: ml_collections.ConfigDict, field: str,
                    choices) -> None:
  """`field` (dotted) must name one of `choices`, e.g. a registry's keys."""
  value = config
  for part in field.split("."):
    value = value[part]
  _require(value in choices, f"{field} {value!r} is unknown; choose one of "
           f"{sorted(choices)}.")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for values no run could use."""
  # Imported here: models and losses import this module for the error types.
  # pylint: disable=g-import-not-at-top
  from vae_jax.data import augment
  from vae_jax.data import sources
  from vae_jax.data import device_held
  from vae_jax.data import mnist_mirror
  from vae_jax import models
  from vae_jax.core import precision
  from vae_jax.core import sharding
  from vae_jax.trainers import loop
  # pylint: enable=g-import-not-at-top

  _require(config.batch_size > 0,
           f"batch_size must be positive, got {config.batch_size}.")
  _require(config.num_epochs > 0,
           f"num_epochs must be positive, got {config.num_epochs}.")
  sharding.global_batch_size(config)  # Raises if devices cannot share it.
  _require(config.num_image_samples >= 2,  # Half are reconstructed.
           f"num_image_samples must be >= 2, got {config.num_image_samples}.")
  for field in ("log_every_steps", "checkpoint_every_steps",
                "max_checkpoints_to_keep", "max_consecutive_nonfinite"):
    _require(config[field] > 0, f"{field} must be positive, got {config[field]}.")
  _require_choice(config, "input.mnist_source", mnist_mirror.SOURCES)
  _require_choice(config, "trainer", loop.TRAINERS)
  _require_choice(config, "model.name", models.MODELS)
  sources.check_config(config.input)
  augment.check_config(config.input)
  device_held.check_config(config.input)
  precision.check_config(config.compute_dtype)
  if "latent_size" in config.model:  # The plain autoencoders have none.
    _require(config.model.latent_size > 0, "model.latent_size must be "
             f"positive, got {config.model.latent_size}.")
  _require(config.input.pixel_range in ("unit", "symmetric"),
           "input.pixel_range must be 'unit' or 'symmetric', got "
           f"{config.input.pixel_range!r}.")
  if config.trainer == "gan":  # Its own loss and two optimizers.
    _validate_gan_config(config)
  else:
    _validate_autoencoder_config(config)


def _validate_autoencoder_config(config: ml_collections.ConfigDict) -> None:
  """The loss and optimizer of trainer 'autoencoder' (VAEs, autoencoders)."""
  # pylint: disable=g-import-not-at-top
  from vae_jax.objectives import likelihoods
  from vae_jax import models
  from vae_jax.core import optimizers
  # pylint: enable=g-import-not-at-top
  _require(config.model.name not in models.GAN_MODELS,
           f"model.name {config.model.name!r} is a GAN; set trainer='gan'.")
  _require_choice(config, "optimizer.name", optimizers.OPTIMIZERS)
  _require_choice(config, "optimizer.schedule", optimizers.SCHEDULES)
  _require_choice(config, "loss.likelihood", likelihoods.LIKELIHOODS)
  _require(config.loss.learned_variance in ("shared", "per_pixel"),
           "loss.learned_variance must be 'shared' or 'per_pixel', got "
           f"{config.loss.learned_variance!r}.")
  _require(config.loss.kl_weight >= 0,
           f"loss.kl_weight must be >= 0, got {config.loss.kl_weight}.")
  _require(config.loss.kl_warmup_steps >= 0,
           f"loss.kl_warmup_steps must be >= 0, got {config.loss.kl_warmup_steps}.")
  _require(config.loss.gaussian_variance > 0,
           "loss.gaussian_variance must be positive, got "
           f"{config.loss.gaussian_variance}.")
  _require(config.optimizer.learning_rate > 0,
           "optimizer.learning_rate must be positive, got "
           f"{config.optimizer.learning_rate}.")


def _validate_gan_config(config: ml_collections.ConfigDict) -> None:
  """The update schedule, loss and two optimizers of trainer 'gan'."""
  # pylint: disable=g-import-not-at-top
  from vae_jax.trainers import adversarial
  from vae_jax import models
  from vae_jax.core import optimizers
  # pylint: enable=g-import-not-at-top
  _require(config.model.name in models.GAN_MODELS,
           f"trainer 'gan' trains models {list(models.GAN_MODELS)}, not "
           f"{config.model.name!r}.")
  _require(config.n_critic >= 1,
           f"n_critic must be >= 1, got {config.n_critic}.")
  _require(config.loss.aux_weight >= 0,
           f"loss.aux_weight must be >= 0, got {config.loss.aux_weight}.")
  for network in ("generator", "discriminator"):
    _require_choice(config, f"optimizer.{network}.name", optimizers.OPTIMIZERS)
    _require_choice(config, f"optimizer.{network}.schedule",
                    optimizers.SCHEDULES)
    learning_rate = config.optimizer[network].learning_rate
    _require(learning_rate > 0, f"optimizer.{network}.learning_rate must be "
             f"positive, got {learning_rate}.")
  if config.model.name == "acgan":
    adversarial.num_classes(config.input)  # Raises for data without labels.


def validate_workdir(workdir: str) -> None:
  """Raises UserInputError when `workdir` cannot hold a run's outputs."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserInputError(f"workdir {workdir!r} exists and is not a directory.")
