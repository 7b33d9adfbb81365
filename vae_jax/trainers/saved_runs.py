"""A run's config and train state, read back from its workdir.

The train state of its newest checkpoint, of a chosen step, or of the
weights in a pretrained model's folder (`core.weights_file`). Analysis
reads runs through `analysis.runs`; training reads one here when it learns
from another run's outputs (`code_grids`).
"""

import functools
import os
from typing import Any

import jax
import ml_collections
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.core import sharding
from vae_jax.core import weights_file
from vae_jax.trainers import parts as parts_lib
from vae_jax.trainers import run_config


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config the run in `workdir` was trained with (its config.json), as
  `run_config.load_saved` reads it back."""
  config = run_config.load_saved(workdir)
  if config is None:
    raise errors.UserInputError(
      f"{workdir!r} holds no config.json; is it the --workdir of a run?"
    )
  return config


def check_has_state(workdir: str) -> None:
  """Raises UserInputError when `workdir` holds neither checkpoints nor
  pretrained weights."""
  if not (
    weights_file.holds_weights(workdir)
    or tf.io.gfile.isdir(os.path.join(workdir, "checkpoints"))
  ):
    raise errors.UserInputError(f"{workdir!r} holds no checkpoints.")


def _from_checkpoint(
  workdir: str,
  config: ml_collections.ConfigDict,
  init: Any,
  rng: jax.Array,
  replicated: jax.sharding.Sharding,
  step: int | None,
) -> Any:
  """The state of checkpoint `step` (None: the newest readable one), into
  the shapes `init` gives."""
  abstract_state = jax.eval_shape(init, rng)
  manager = checkpoints.make_manager(workdir, config)
  try:
    restored = checkpoints.restore(
      manager, abstract_state, jax.device_put(rng, replicated), step=step
    )
  finally:
    manager.close()
  if restored is None:
    raise errors.UserInputError(f"{workdir!r} holds no checkpoints.")
  state, _ = restored
  return state


def restore_state(
  workdir: str,
  config: ml_collections.ConfigDict,
  parts: parts_lib.Parts,
  image_shape: tuple[int, ...],
  step: int | None,
) -> Any:
  """The trainer's state of the run in `workdir` (built from `config` and
  `parts`) at checkpoint `step`, None for the newest; replicated."""
  replicated = sharding.replicated(sharding.make_mesh())
  # A checkpoint fills in its shapes; pretrained weights fill a fresh state
  # (with the optimizer states they lack). The schedule's length is
  # irrelevant, as a loaded state is evaluated, not trained further.
  init = jax.jit(
    functools.partial(
      parts.trainer.create_train_state,
      config,
      parts,
      image_shape,
      total_steps=1,
    ),
    out_shardings=replicated,
  )
  rng = jax.random.PRNGKey(0)
  if not weights_file.holds_weights(workdir):
    return _from_checkpoint(workdir, config, init, rng, replicated, step)
  saved_step = weights_file.saved_step(workdir)
  if step not in (None, saved_step):
    raise errors.UserInputError(
      f"{workdir!r} holds the weights of step {saved_step} only."
    )
  return jax.device_put(weights_file.restore(workdir, init(rng)), replicated)
