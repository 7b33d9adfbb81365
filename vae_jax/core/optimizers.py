"""Optimizers and learning-rate schedules from `config.optimizer`."""

import ml_collections
import optax

from vae_jax.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine")


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
  raise ConfigError(f"optimizer.schedule {opt_config.schedule!r} is unknown; "
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
    raise ConfigError(f"optimizer.name {name!r} is unknown; choose one of "
                      "'adam', 'adamw', 'rmsprop', 'sgd'.")
  if opt_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx
