"""Optimizers and learning-rate schedules from `config.optimizer`."""

import ml_collections
import optax

from vae_jax import errors

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "stages")


def default_config() -> ml_collections.ConfigDict:
  """An optimizer section: the seed's Adam at 1e-3."""
  config = ml_collections.ConfigDict()
  config.name = "adam"  # 'adam', 'adamw', 'rmsprop' or 'sgd'.
  config.learning_rate = 1e-3  # Peak learning rate.
  # 'constant', 'cosine' decay, or 'stages': piecewise constant, stage i
  # at learning_rate * stage_decay**i for a share of the run proportional to
  # stage_lengths[i].
  config.schedule = "constant"
  config.warmup_steps = 0  # Linear warm-up from 0.
  # 'stages': relative lengths and the decay between stages. Burda et al.'s
  # IWAE schedule: 3**i epochs at 1e-3 * 10**(-i / 7), i = 0..7.
  config.stage_lengths = (1, 3, 9, 27, 81, 243, 729, 2187)
  config.stage_decay = 10 ** (-1 / 7)
  config.b1 = 0.9  # Adam's first-moment decay.
  config.b2 = 0.999  # Adam's second-moment decay.
  config.eps = 1e-8  # Adam's denominator offset (Burda et al.: 1e-4).
  config.weight_decay = 0.0  # Used by 'adamw' only.
  config.momentum = 0.0  # Used by 'sgd' only.
  config.grad_clip_norm = 0.0  # Global-norm clipping; 0 is off.
  return config


def check_config(opt_config: ml_collections.ConfigDict, field: str) -> None:
  """Raises ConfigError for an optimizer section `field` ('optimizer')
  that no run could use."""
  errors.require_choice(opt_config.name, OPTIMIZERS, f"{field}.name")
  errors.require_choice(opt_config.schedule, SCHEDULES, f"{field}.schedule")
  errors.require(
    opt_config.learning_rate > 0,
    f"{field}.learning_rate must be positive, got {opt_config.learning_rate}.",
  )
  if opt_config.schedule == "stages":
    errors.require(
      len(opt_config.stage_lengths) > 0
      and all(length > 0 for length in opt_config.stage_lengths),
      f"{field}.stage_lengths must be positive numbers, got "
      f"{tuple(opt_config.stage_lengths)}.",
    )


def make_schedule(
  opt_config: ml_collections.ConfigDict, total_steps: int
) -> optax.Schedule:
  """The learning rate of a section that passed `check_config`."""
  lr, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == "constant":
    if warmup == 0:
      return optax.constant_schedule(lr)
    return optax.linear_schedule(0.0, lr, warmup)
  if opt_config.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
      0.0 if warmup else lr, lr, warmup, max(total_steps, warmup + 1)
    )
  return stage_schedule(  # 'stages'.
    lr, opt_config.stage_lengths, opt_config.stage_decay, total_steps
  )


def stage_boundaries(stage_lengths, total_steps: int) -> list[int]:
  """The steps at which stages 1, 2, ... begin: `total_steps` split in
  proportion to `stage_lengths`, rounded to steps."""
  total_length = sum(stage_lengths)
  ends, elapsed = [], 0.0
  for length in stage_lengths[:-1]:
    elapsed += length
    ends.append(round(total_steps * elapsed / total_length))
  return ends


def stage_schedule(
  learning_rate: float, stage_lengths, stage_decay: float, total_steps: int
) -> optax.Schedule:
  """Piecewise constant: stage i at learning_rate * stage_decay**i."""
  scales = {}  # Stages shorter than a step begin together.
  for step in stage_boundaries(stage_lengths, total_steps):
    scales[step] = scales.get(step, 1.0) * stage_decay
  return optax.piecewise_constant_schedule(learning_rate, scales)


def make_optimizer(
  opt_config: ml_collections.ConfigDict, total_steps: int
) -> optax.GradientTransformation:
  """The optimizer of a section that passed `check_config`."""
  schedule = make_schedule(opt_config, total_steps)
  name = opt_config.name
  if name == "adam":
    tx = optax.adam(
      schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps
    )
  elif name == "adamw":
    tx = optax.adamw(
      schedule,
      b1=opt_config.b1,
      b2=opt_config.b2,
      eps=opt_config.eps,
      weight_decay=opt_config.weight_decay,
    )
  elif name == "rmsprop":
    tx = optax.rmsprop(schedule)
  else:  # 'sgd'.
    tx = optax.sgd(schedule, momentum=opt_config.momentum or None)
  if opt_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx
