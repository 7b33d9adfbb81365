"""Orbax checkpoints of the train state, saved and restored with shardings.

A checkpoint holds the whole `TrainState` (params, optimizer state, BatchNorm
statistics, step) and the run's base RNG key. Restoring against an abstract
target that carries shardings lets a run resume on any device count.
"""

from collections.abc import Mapping, Sequence
import contextlib
import os
import re
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp
import tensorflow as tf

from vae_jax import errors


def make_manager(
  workdir: str, config: ml_collections.ConfigDict
) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    # A save killed midway leaves a `<step>.orbax-checkpoint-tmp` folder,
    # which Orbax never lists as a step and replaces when it saves that
    # step again.
    max_to_keep=config.max_checkpoints_to_keep,
    create=True,
    # A step's folder made in the background and failing (a read-only or
    # full disk) leaves Orbax's other threads waiting for it for minutes,
    # and the process cannot exit; made by `save`, it fails there.
    async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
  )
  # Orbax wants an absolute path; a bucket (gs://...) already is one.
  if "://" not in workdir:
    workdir = os.path.abspath(workdir)
  return ocp.CheckpointManager(
    os.path.join(workdir, "checkpoints"), options=options
  )


# What TensorStore appends to its errors for debugging: JSON payloads such
# as the whole spec of the array it was opening (kilobytes), and the C++
# source locations; not the cause, [os_error_code='27'].
_TENSORSTORE_ANNOTATIONS = re.compile(
  r"\s*\[(?:[\w ]+='\{[^']*\}'|source locations='[^']*')\]"
)


def _first_line(error: Exception) -> str:
  line = (str(error).strip().splitlines() or [type(error).__name__])[0]
  # Without its annotations, TensorStore's root cause ("File too large
  # [os_error_code='27']") is last.
  line = _TENSORSTORE_ANNOTATIONS.sub("", line)
  return line if len(line) <= 300 else f"{line[:100]} ... {line[-180:]}"


class SaveError(RuntimeError):
  """A checkpoint could not be written (a full disk, a lost bucket)."""


def _stop_after_failure(manager: ocp.CheckpointManager) -> None:
  """Lets the failed save's other writes end, then stops Orbax's threads,
  which must not outlive the run."""
  for stop in (manager.wait_until_finished, manager.close):
    try:
      stop()
    except Exception:  # pylint: disable=broad-exception-caught
      pass  # The first failure is the one reported.


@contextlib.contextmanager
def _reporting_save_errors(manager: ocp.CheckpointManager):
  # Saves are asynchronous: a failure surfaces at the next save or wait.
  try:
    yield
  except Exception as e:  # pylint: disable=broad-exception-caught
    message = (
      f"writing a checkpoint in {manager.directory} failed "
      f"({_first_line(e)}); the steps it lists, "
      f"{manager.all_steps() or 'none'}, are complete."
    )
    _stop_after_failure(manager)
    raise SaveError(message) from e


def save(manager: ocp.CheckpointManager, state: Any, rng: jax.Array) -> None:
  """Saves asynchronously; the next save or `wait_until_finished` joins it."""
  step = int(jax.device_get(state.step))
  with _reporting_save_errors(manager):
    manager.save(
      step, args=ocp.args.StandardSave({"state": state, "rng": rng}), force=True
    )


def close(manager: ocp.CheckpointManager) -> None:
  """Waits until every save is durable (or raises SaveError), then stops
  Orbax's background threads, which must not outlive the run."""
  with _reporting_save_errors(manager):
    manager.wait_until_finished()
  manager.close()


def _abstract(tree: Any) -> Any:
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
  )


def _set_aside(manager: ocp.CheckpointManager, step: int) -> None:
  directory = str(manager.directory)
  aside = f"{directory}.unreadable"
  tf.io.gfile.makedirs(aside)
  tf.io.gfile.rename(
    os.path.join(directory, str(step)),
    os.path.join(aside, f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"),
  )
  logging.warning("Moved it to %s.", aside)


def _difference(
  manager: ocp.CheckpointManager, step: int, target: Any
) -> str | None:
  """How checkpoint `step`'s arrays, as its saved metadata lists them, differ
  from `target`'s; None where they match or the metadata is unreadable: then
  the checkpoint is damaged, not another model's."""
  try:
    metadata = manager.item_metadata(step)
  except Exception:  # pylint: disable=broad-exception-caught
    return None  # Damaged; its restore error says how.
  if metadata is None:  # Orbax knows no handler for it: nothing to compare.
    return None
  saved = ocp.tree.to_flat_dict(metadata, sep=".")
  wanted = ocp.tree.to_flat_dict(target, sep=".")
  return shape_difference(
    {name: leaf.shape for name, leaf in saved.items()},
    {name: leaf.shape for name, leaf in wanted.items()},
  )


def shape_difference(
  saved: Mapping[str, Sequence[int]], wanted: Mapping[str, Sequence[int]]
) -> str | None:
  """How saved arrays (name -> shape) differ from those a config's state
  wants, in words; None where they match."""
  for name in sorted(saved.keys() | wanted.keys()):
    if name not in wanted:
      return f"it holds {name}, which this config's state lacks"
    if name not in saved:
      return f"it lacks this config's {name}"
    if tuple(saved[name]) != tuple(wanted[name]):
      return (
        f"its {name} has shape {tuple(saved[name])}, this config's "
        f"{tuple(wanted[name])}"
      )
  return None


def restore(
  manager: ocp.CheckpointManager,
  state: Any,
  rng: jax.Array,
  step: int | None = None,
  *,
  set_aside_unreadable: bool = False,
) -> tuple[Any, jax.Array] | None:
  """A checkpoint laid out like `state` and `rng`, or None if there is none.

  `state` and `rng` only give shapes, dtypes and shardings; their values are
  not used. With `step` unset, the newest checkpoint that reads back: newer
  ones that are corrupt (a damaged file, a disk that filled up) are reported
  and passed over, never deleted; with `set_aside_unreadable` (a run that
  will save those steps again) they are moved to `checkpoints.unreadable/`.
  When none reads back, the error says whether they hold another model's
  arrays (their saved metadata differs from `state`'s) or are all damaged.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise errors.UserInputError(
        f"no checkpoint at step {step} in {manager.directory}; it has "
        f"steps {sorted(steps) or 'none'}."
      )
    steps = [step]
  if not steps:
    return None
  target = _abstract({"state": state, "rng": rng})
  failures = []
  for candidate in steps:
    try:
      restored = manager.restore(
        candidate, args=ocp.args.StandardRestore(target)
      )
    # Orbax reports a different tree, a wrong shape or a damaged file in
    # several exception types.
    except Exception as e:  # pylint: disable=broad-exception-caught
      failures.append((candidate, e, _difference(manager, candidate, target)))
      continue
    for failed_step, error, difference in failures:
      logging.warning(
        "Checkpoint at step %d in %s %s; restored step %d instead.",
        failed_step,
        manager.directory,
        f"does not fit this config ({difference})"
        if difference
        else f"is unreadable ({_first_line(error)})",
        candidate,
      )
      if set_aside_unreadable and jax.process_index() == 0:
        _set_aside(manager, failed_step)
    if failures and set_aside_unreadable:
      if jax.process_count() > 1:  # Process 0 moved them: wait for it.
        multihost_utils.sync_global_devices("vae_jax: unreadable set aside")
      manager.reload()
    return restored["state"], restored["rng"]
  misfits = [failure for failure in failures if failure[2]]
  if misfits:
    failed_step, error, difference = misfits[0]
    raise errors.UserInputError(
      f"no checkpoint in {manager.directory} fits this config's model and "
      f"optimizer (step {failed_step}: {difference}); use a new --workdir, "
      "or the config that wrote it."
    ) from error
  failed_step, error, _ = failures[0]
  raise errors.UserInputError(
    f"{'the checkpoint' if step is not None else 'every checkpoint'} in "
    f"{manager.directory} is unreadable (steps {sorted(steps)}; step "
    f"{failed_step}, the newest: {_first_line(error)}); use a new --workdir, "
    "or move its checkpoints aside to start over there."
  ) from error
