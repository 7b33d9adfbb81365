"""Optimizers and learning-rate schedules from `config.optimizer`."""

import ml_collections
import optax

from vae_jax import errors

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine")


def default_config() -> ml_collections.ConfigDict:
  """An optimizer section: the seed's Adam at 1e-3."""
  config = ml_collections.ConfigDict()
  config.name = "adam"  # 'adam', 'adamw', 'rmsprop' or 'sgd'.
  config.learning_rate = 1e-3  # Peak learning rate.
  config.schedule = "constant"  # 'constant' or 'cosine' decay.
  config.warmup_steps = 0  # Linear warm-up from 0.
  config.b1 = 0.9  # Adam's first-moment decay.
  config.b2 = 0.999  # Adam's second-moment decay.
  config.weight_decay = 0.0  # Used by 'adamw' only.
  config.momentum = 0.0  # Used by 'sgd' only.
  config.grad_clip_norm = 0.0  # Global-norm clipping; 0 is off.
  return config


def check_config(opt_config: ml_collections.ConfigDict, field: str) -> None:
  """Raises ConfigError for an optimizer section `field` ('optimizer')
  that no run could use."""
  errors.require_choice(opt_config.name, OPTIMIZERS, f"{field}.name")
  errors.require_choice(opt_config.schedule, SCHEDULES, f"{field}.schedule")
  errors.require(opt_config.learning_rate > 0, f"{field}.learning_rate must "
                 f"be positive, got {opt_config.learning_rate}.")


def make_schedule(opt_config: ml_collections.ConfigDict,
                  total_steps: int) -> optax.Schedule:
  lr, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == "constant":
    if warmup == 0:
      return optax.constant_schedule(lr)
    return optax.linear_schedule(0.0, lr, warmup)
  if opt_config.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0 if warmup else lr, lr, warmup, max(total_steps, warmup + 1))
  raise errors.ConfigError(f"optimizer.schedule {opt_config.schedule!r} is unknown; "
                    "choose 'constant' or 'cosine'.")


def make_optimizer(opt_config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  schedule = make_schedule(opt_config, total_steps)
  name = opt_config.name
  if name == "adam":
    tx = optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2)
  elif name == "adamw":
    tx = optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2,
                     weight_decay=opt_config.weight_decay)
  elif name == "rmsprop":
    tx = optax.rmsprop(schedule)
  elif name == "sgd":
    tx = optax.sgd(schedule, momentum=opt_config.momentum or None)
  else:
    raise errors.ConfigError(f"optimizer.name {name!r} is unknown; choose one of "
                      "'adam', 'adamw', 'rmsprop', 'sgd'.")
  if opt_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx
