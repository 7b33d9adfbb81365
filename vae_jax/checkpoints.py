"""Orbax checkpoints of the train state, saved and restored with shardings.

A checkpoint holds the whole `TrainState` (params, optimizer state, BatchNorm
statistics, step) and the run's base RNG key. Restoring against an abstract
target that carries shardings lets a run resume on any device count.
"""

import os
from typing import Any

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


def restore_latest(manager: ocp.CheckpointManager, state: Any,
                   rng: jax.Array) -> tuple[Any, jax.Array] | None:
  """The newest checkpoint laid out like `state` and `rng`, or None if none.

  `state` and `rng` only give shapes, dtypes and shardings; their values are
  not used.
  """
  step = manager.latest_step()
  if step is None:
    return None
  target = _abstract({"state": state, "rng": rng})
  try:
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  # Orbax reports a different tree or shape in several exception types.
  except Exception as e:  # pylint: disable=broad-exception-caught
    cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise validation.UserInputError(
        f"the checkpoint at step {step} in {manager.directory} does not fit "
        f"this config's model or optimizer ({cause[:200]}); use a new "
        "--workdir, or the config that wrote it.") from e
  return restored["state"], restored["rng"]
