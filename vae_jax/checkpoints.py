"""Orbax checkpoints of the train state, saved and restored with shardings.

A checkpoint holds the whole `TrainState` (params, optimizer state, BatchNorm
statistics, step) and the run's base RNG key. Restoring against an abstract
target that carries shardings lets a run resume on any device count.
"""

import os
from typing import Any

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

from vae_jax import validation


def make_manager(workdir: str,
                 config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.max_checkpoints_to_keep, create=True)
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def save(manager: ocp.CheckpointManager, state: Any, rng: jax.Array) -> None:
  """Saves asynchronously; the next save or `wait_until_finished` joins it."""
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave({"state": state, "rng": rng}),
               force=True)


def _abstract(tree: Any) -> Any:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      tree)


def _first_line(error: Exception) -> str:
  return ((str(error).strip().splitlines() or [type(error).__name__])[0])[:200]


def restore(manager: ocp.CheckpointManager, state: Any, rng: jax.Array,
            step: int | None = None) -> tuple[Any, jax.Array] | None:
  """A checkpoint laid out like `state` and `rng`, or None if there is none.

  `state` and `rng` only give shapes, dtypes and shardings; their values are
  not used. With `step` unset, the newest checkpoint that reads back: a
  newer one left incomplete or corrupt (a crash during its save, a damaged
  file) is reported and passed over, never deleted.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise validation.UserInputError(
          f"no checkpoint at step {step} in {manager.directory}; it has "
          f"steps {sorted(steps) or 'none'}.")
    steps = [step]
  if not steps:
    return None
  target = _abstract({"state": state, "rng": rng})
  failures = []
  for candidate in steps:
    try:
      restored = manager.restore(candidate,
                                 args=ocp.args.StandardRestore(target))
    # Orbax reports a different tree, a wrong shape or a damaged file in
    # several exception types.
    except Exception as e:  # pylint: disable=broad-exception-caught
      failures.append((candidate, e))
      continue
    for failed_step, error in failures:
      logging.warning("Checkpoint at step %d in %s is unreadable (%s); "
                      "restored step %d instead.", failed_step,
                      manager.directory, _first_line(error), candidate)
    return restored["state"], restored["rng"]
  failed_step, error = failures[0]
  raise validation.UserInputError(
      f"no checkpoint in {manager.directory} fits this config's model and "
      f"optimizer (step {failed_step}: {_first_line(error)}); use a new "
      "--workdir, or the config that wrote it.") from error
