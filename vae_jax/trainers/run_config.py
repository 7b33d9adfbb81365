"""A run's whole config: its defaults, its checks, and reading it back.

Each section's defaults come from the piece that reads it: the loop's own
fields are here, `input` from `data.pipeline`, `model` from the family, `loss`
from the objective and the rest from the trainer. Configs (configs/*.py) start
from `default_config`, so they need not import the training loop.
`load_saved` reads the config.json a run wrote, from any release, for the
loop (to resume it) and for analysis alike.
"""

import json
import os
from typing import Any

from absl import logging
import ml_collections
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import precision
from vae_jax.core import sharding
from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.models import registry as models
from vae_jax.objectives import registry as objectives
from vae_jax.trainers import parts as parts_lib

# The loop's own fields, positive integers all.
_POSITIVE_FIELDS = (
  "batch_size",
  "num_epochs",
  "log_every_steps",
  "checkpoint_every_steps",
  "eval_every_epochs",
  "max_checkpoints_to_keep",
  "max_consecutive_nonfinite",
)


def _loop_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameters, sampling noise and data order.
  config.num_epochs = 30  # Passes over the training split.
  # Train steps instead, when positive: for data too large to pass over
  # often (dSprites' 737,280 images; disentanglement_lib counts steps).
  config.num_steps = 0
  config.batch_size = 128  # Global batch, split over all devices.
  # True: batch_size is each device's share instead, so the global batch is
  # batch_size × device count and grows with the slice (per-step work per
  # device stays fixed). False keeps the global batch, and with it the
  # learning-rate tuning, the same on any device count.
  config.batch_size_per_device = False
  config.log_every_steps = 100  # Train metrics are averaged over this window.
  config.checkpoint_every_steps = 2000  # Also saved at the end of training.
  # The test split is evaluated, and image grids drawn, after every this
  # many epochs and at the end of training. More than 1 saves the time of
  # an evaluation pass where a step is cheap against it (the GANs).
  config.eval_every_epochs = 1
  config.max_checkpoints_to_keep = 3  # Older checkpoints are deleted.
  config.num_image_samples = 64  # Samples per grid; half as many recons.
  # Updates with a non-finite loss or gradient are skipped; this many in a
  # row stop the run (the checkpoints before them stay intact).
  config.max_consecutive_nonfinite = 20
  # A workdir whose saved config differs in a field that changes the train
  # state's shapes is refused; True starts over there instead, keeping the
  # old checkpoints in checkpoints.before_<time>/.
  config.allow_config_change = False
  # 'bfloat16': models compute in bfloat16 (mixed precision, for GPUs and
  # TPUs); parameters, optimizer state and the loss stay float32. Slower than
  # 'float32' on CPUs.
  config.compute_dtype = "float32"
  return config


def default_config(
  model_name: str, objective: str | None = None
) -> ml_collections.ConfigDict:
  """A whole config for family `model_name`, each section from its piece:
  the loop's fields, `input` (`data.pipeline`), `model` (the family), `loss`
  (`objective`, by default the family's) and the trainer's fields."""
  family = models.get(model_name)
  config = _loop_config()
  config.input = pipeline.default_config()
  config.input.pixel_range = family.pixel_range(family.default_config())
  config.model = family.default_config()
  config.loss = objectives.get(objective or family.objective).default_config()
  config.update(parts_lib.TRAINERS[family.trainer].default_config())
  return config


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """The train steps of a run: `num_steps`, or `num_epochs` passes."""
  return config.num_steps or config.num_epochs * steps_per_epoch


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for values no run could use, before any work."""
  for field in _POSITIVE_FIELDS:
    errors.require(
      config[field] > 0, f"{field} must be positive, got {config[field]}."
    )
  errors.require(
    config.num_steps >= 0, f"num_steps must be >= 0, got {config.num_steps}."
  )
  errors.require(
    config.num_image_samples >= 2,  # Half are reconstructed.
    f"num_image_samples must be >= 2, got {config.num_image_samples}.",
  )
  sharding.global_batch_size(config)  # Raises if devices cannot share it.
  precision.check_config(config.compute_dtype)
  pipeline.check_config(config.input)
  models.check_config(config.model)
  model_family, objective, trainer = parts_lib.declared(config)
  if model_family.conditional:  # Raises for data without class labels.
    sources.num_classes(config.input)
  errors.require_fields(
    config.loss,
    objective.default_config().to_dict(),
    "loss",
    f"loss.objective {objective.name!r}",
    f"; start it from run_config.default_config({config.model.name!r}, "
    f"{objective.name!r})",
  )
  objective.check_config(config.loss)
  trainer.check_config(config)


def _as_tuples(value: Any) -> Any:
  """JSON lists back to the tuples configs use (hashable module fields)."""
  if isinstance(value, dict):
    return {key: _as_tuples(item) for key, item in value.items()}
  if isinstance(value, list):
    return tuple(_as_tuples(item) for item in value)
  return value


def _merge(
  base: ml_collections.ConfigDict, written: dict[str, Any], prefix: str = ""
) -> list[str]:
  """Sets `written`'s values over `base`, in place; the fields `written`
  lacks keep `base`'s. Returns the dotted names of the fields it leaves out:
  those `base` lacks, or holds as a section where `written` has a value (or
  the reverse)."""
  ignored = []
  for key, value in written.items():
    name = f"{prefix}{key}"
    is_section = isinstance(value, dict)
    if key not in base or is_section != isinstance(
      base[key], ml_collections.ConfigDict
    ):
      ignored.append(name)
    elif is_section:
      ignored += _merge(base[key], value, f"{name}.")
    else:
      # Assigning None to a typed field, or an int to a float field, is
      # how JSON round-trips them; ConfigDict would reject the first.
      with base.ignore_type():
        base[key] = value
  return ignored


def load_saved(workdir: str) -> ml_collections.ConfigDict | None:
  """The config the run in `workdir` saved (its config.json), or None if it
  saved none.

  So that a run written by an earlier release reads back whole, the fields
  added since take today's defaults (`default_config` of its family and
  objective), and the fields this code no longer reads are left out, with a
  warning: nothing reads them, so they cannot change the train state.
  """
  path = os.path.join(workdir, "config.json")
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      written = _as_tuples(json.load(f))
    except json.JSONDecodeError as e:
      raise errors.UserInputError(
        f"{path} is not valid JSON ({e.msg}, line {e.lineno})."
      ) from None
  try:
    config = default_config(
      written["model"]["name"], written.get("loss", {}).get("objective")
    )
  except (KeyError, TypeError, AttributeError, errors.ConfigError) as e:
    raise errors.UserInputError(
      f"{path} names no model family vae_jax knows ({e})."
    ) from None
  ignored = _merge(config, written)
  if ignored:
    logging.warning(
      "%s holds fields this vae_jax no longer reads; ignoring %s.",
      path,
      ", ".join(sorted(ignored)),
    )
  return config
