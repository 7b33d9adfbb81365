"""The one training loop, shared by every trainer, as module-level functions.

`train_and_evaluate(config, workdir)` prepares the data once, assembles the
model, its objective and its trainer (`parts`), resumes from the newest
checkpoint, and then compiles the trainer's steps once and runs them: as
one compiled loop over a split held on the devices, or one step per host
batch. The host acts only at log, checkpoint and epoch boundaries: it logs
one line per log window, evaluates the test split and draws image grids
every `eval_every_epochs` epochs, saves checkpoints, stops on repeated
non-finite steps and on SIGTERM, and writes results.json at the end.

`train_group(members)` does the same for a vectorized group
(`members.Members`): one loop, the host's work done for each member in its
own workdir. A run alone is a group of one without the member axis.
"""

from collections.abc import Callable
import contextlib
import dataclasses
import functools
import os
import time
from typing import Any, NamedTuple

from absl import logging
from clu import metric_writers
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.core import outputs
from vae_jax.core import preemption
from vae_jax.core import provenance
from vae_jax.core import resume
from vae_jax.core import sharding
from vae_jax.core import workdir_lock
from vae_jax.data import device_held
from vae_jax.models import registry as models
from vae_jax.trainers import code_grids
from vae_jax.trainers import console as console_lib
from vae_jax.trainers import members as members_lib
from vae_jax.trainers import parts as parts_lib
from vae_jax.trainers import run_config


def abstract_train_state(
  config: ml_collections.ConfigDict, image_shape: tuple[int, ...]
) -> Any:
  """Shapes and dtypes of `config`'s train state, computing nothing."""
  parts = parts_lib.assemble(config, image_shape)
  return jax.eval_shape(
    functools.partial(
      parts.trainer.create_train_state,
      config,
      parts,
      image_shape,
      total_steps=1,
    ),
    jax.random.PRNGKey(0),
  )


def evaluate(
  jitted_eval_step,
  state,
  eval_ds: tf.data.Dataset,
  rng: jax.Array,
  data_sharding,
  fold_in: Callable[[jax.Array, Any], jax.Array] = jax.random.fold_in,
) -> dict[str, jax.Array]:
  """Sums of every objective term over the whole eval split, batch by batch
  from the host; batch i's key is `fold_in(rng, i)`."""
  totals = None
  for i, batch in enumerate(eval_ds.as_numpy_iterator()):
    sums = jitted_eval_step(
      state, sharding.to_global(batch, data_sharding), fold_in(rng, i)
    )
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return totals


def per_image_means(totals: dict[str, jax.Array]) -> dict[str, float]:
  """'test_<term>' means from an eval step's sums, added over batches."""
  totals = jax.device_get(totals)
  count = totals.pop("count")
  return {
    f"test_{name}": float(value / count) for name, value in totals.items()
  }


def summarize_window(
  window: list[dict[str, np.ndarray]], nonfinite_streak: int
) -> tuple[dict[str, float], int]:
  """Means over a log window's applied steps, and the non-finite streak.

  `window` holds each step's metrics in order; the streak counts the skipped
  (non-finite) steps at its end, carried over from earlier windows.
  """
  applied = []
  for step_metrics in window:
    metrics = dict(step_metrics)
    if metrics.pop("finite"):
      applied.append(metrics)
      nonfinite_streak = 0
    else:
      nonfinite_streak += 1
  summary = (
    jax.tree.map(lambda *v: float(np.mean(v)), *applied) if applied else {}
  )
  summary["nonfinite_steps"] = float(len(window) - len(applied))
  return summary, nonfinite_streak


def _device_held_steps(
  data,
  eval_ds,
  steps,
  mesh,
  local_batch_size: int,
  members: members_lib.Members,
  rngs,
  max_steps: int,
):
  """A `device_held.StepRunner` and an evaluator (state -> sums) on the
  splits held on the devices, each step chunk one compiled loop of the
  uncompiled `steps` (train, eval)."""
  train_step, eval_step = steps
  train_rng, eval_rng = rngs
  run_steps = device_held.DeviceSteps(
    data.device_split(),
    train_step,
    mesh,
    local_batch_size,
    [config.seed for config in members.configs],
    train_rng,
    max_steps=max_steps,
    leading_axes=members.leading_axes,
  )
  return run_steps, device_held.device_evaluator(
    eval_ds, eval_step, mesh, eval_rng, members.fold_in
  )


def _host_fed_steps(
  data,
  eval_ds,
  steps,
  mesh,
  local_batch_size: int,
  members: members_lib.Members,
  rngs,
  start_step: int,
):
  """A one-step `device_held.StepRunner` on batches from the host, from
  `start_step` on, and an evaluator (state -> sums) batch by batch: the
  `steps` (train, eval) compiled for `mesh`."""
  train_step, eval_step = steps
  train_rng, eval_rng = rngs
  train_sharding = sharding.batch_sharded(mesh, members.leading_axes)
  run_steps = device_held.HostSteps(
    sharding.prefetch_to_mesh(
      members.train_batches(data, local_batch_size, start_step),
      train_sharding,
    ),
    sharding.jit_train_step(train_step, mesh, members.leading_axes),
    train_rng,
  )
  return run_steps, functools.partial(
    evaluate,
    sharding.jit_eval_step(eval_step, mesh),
    eval_ds=eval_ds,
    rng=eval_rng,
    data_sharding=sharding.batch_sharded(mesh),
    fold_in=members.fold_in,
  )


def _write_image_grids(
  writer, workdir: str, step: int, grids: dict[str, np.ndarray]
) -> None:
  writer.write_images(step, {name: grid[None] for name, grid in grids.items()})
  if jax.process_index() == 0:
    for name, grid in grids.items():
      outputs.write_png(os.path.join(workdir, f"{name}_{step:06d}.png"), grid)


def _make_writer(workdir: str) -> metric_writers.MetricWriter:
  """TensorBoard summaries from process 0; `console.Console` prints. A
  failed write raises WriteError at the next write or flush."""
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return outputs.EventWriter(workdir)


class Outcome(NamedTuple):
  """How one member's training ended: its final metrics, or why it
  stopped."""

  results: dict[str, Any] | None
  # The non-finite steps that stopped it before the end; None if it ran to
  # the end.
  error: str | None = None


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str
) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`; returns the final metrics.

  Raises FloatingPointError when `config.max_consecutive_nonfinite` steps in
  a row were skipped.
  """
  (outcome,) = train_group(members_lib.Members.alone(config, workdir))
  if outcome.error is not None:
    raise FloatingPointError(outcome.error)
  return outcome.results


def train_group(members: members_lib.Members) -> list[Outcome]:
  """Trains (or resumes) every member in its workdir, in one loop; returns
  their outcomes, in order.

  Each member holds its workdir (`workdir_lock`) from before the data loads
  to the end: a second run there fails at once, naming this one.
  """
  for config, workdir in zip(members.configs, members.workdirs):
    run_config.check_config(config)
    outputs.check_workdir(workdir)
  with contextlib.ExitStack() as held:
    for workdir in members.workdirs:
      held.enter_context(workdir_lock.hold(workdir))
    return _train_group(members)


@dataclasses.dataclass
class _MemberRun:
  """What the host keeps of one member while the loop runs."""

  config: ml_collections.ConfigDict
  workdir: str
  writer: metric_writers.MetricWriter
  console: console_lib.Console
  manager: Any  # Its Orbax CheckpointManager.
  image_grids: Callable[[Any], dict[str, np.ndarray]]  # Of its state.
  nonfinite_streak: int = 0  # Skipped steps in a row, to the last log.
  nonfinite_steps: int = 0  # Skipped steps since the loop started.
  eval_metrics: dict[str, float] | None = None  # The newest evaluation's.
  error: str | None = None  # Set when its non-finite steps stopped it.


def _nonfinite_error(run: _MemberRun, step: int) -> str:
  return (
    f"the last {run.nonfinite_streak} steps, to step {step}, had a "
    "non-finite loss or gradient and were skipped; stopping "
    f"(max_consecutive_nonfinite={run.config.max_consecutive_nonfinite}). "
    "Skipped updates never reach a checkpoint; the newest is step "
    f"{run.manager.latest_step()}. Try a lower optimizer.learning_rate or "
    "optimizer.grad_clip_norm."
  )


def _restore_all(
  members: members_lib.Members, managers: list[Any], state, rng: jax.Array
) -> tuple[Any, jax.Array]:
  """Every member's newest readable checkpoint, stacked; `state` and `rng`
  as they are where none has one. Members must resume from one step."""
  restored = [
    checkpoints.restore(
      manager,
      members.take(state, i),
      members.take(rng, i),
      set_aside_unreadable=True,
    )
    for i, manager in enumerate(managers)
  ]
  steps = [
    None if r is None else int(jax.device_get(r[0].step)) for r in restored
  ]
  if len(set(steps)) > 1:
    raise errors.UserInputError(
      "members trained together must resume from one step; their newest "
      "checkpoints are at "
      + ", ".join(
        f"{name}: {step or 'none'}"
        for name, step in zip(members.names(), steps)
      )
      + ". Train them apart, or from the same step."
    )
  if restored[0] is None:
    return state, rng
  return (
    members.stack([r[0] for r in restored]),
    members.stack([r[1] for r in restored]),
  )


def _train_group(members: members_lib.Members) -> list[Outcome]:
  """`train_group`'s work, in the workdirs it holds."""
  run_start = time.perf_counter()
  commit = provenance.source_commit()  # At the start: the code that runs.
  config = members.config  # The fields all members share.
  # Data first: a run that cannot read its data leaves no workdir behind
  # (`workdir_lock.hold` removes the one it made).
  data = code_grids.prepare_data(config)
  data.read_into_memory()
  logging.info(
    "Reading %s (source: %s): %d training images of shape %s.",
    config.input.dataset,
    data.source,
    data.num_train_examples,
    "x".join(map(str, data.image_shape)),
  )
  image_shape = data.image_shape
  parts = parts_lib.assemble(config, image_shape)  # May reject the config.
  members = members.checked(parts)
  trainer = parts.trainer
  batch_size = sharding.global_batch_size(config)
  local_batch_size = sharding.local_batch_size(batch_size)
  steps_per_epoch = data.steps_per_epoch(local_batch_size)
  total_steps = run_config.total_steps(config, steps_per_epoch)
  for member_config, workdir in zip(members.configs, members.workdirs):
    resume.check_config_change(
      member_config,
      run_config.load_saved(workdir),
      workdir,
      functools.partial(abstract_train_state, image_shape=image_shape),
    )
  if jax.process_count() > 1:  # Process 0 may have moved checkpoints aside.
    multihost_utils.sync_global_devices("vae_jax: config checked")
  for member_config, workdir in zip(members.configs, members.workdirs):
    tf.io.gfile.makedirs(workdir)
    if jax.process_index() == 0:
      outputs.write_json(
        os.path.join(workdir, "config.json"),
        member_config.to_json_best_effort(indent=2),
      )

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  # Made inside jit, so that on multi-process runs they are global arrays.
  init_rng, train_rng, eval_rng, sample_rng = jax.jit(
    members.from_seeds(
      lambda seed: tuple(jax.random.split(jax.random.PRNGKey(seed), 4))
    ),
    out_shardings=replicated,
  )()
  # The first member's optimizers; each member's step rebinds its own.
  state = jax.jit(
    members.over_members(
      functools.partial(
        trainer.create_train_state,
        config,
        parts,
        image_shape,
        total_steps=total_steps,
      )
    ),
    out_shardings=replicated,
  )(init_rng)

  eval_ds = data.eval_dataset(local_batch_size)
  test_batch = data.first_test_batch(config.num_image_samples // 2)

  # Orbax's threads start with the manager; under tfds.testing.mock_data,
  # building a dataset swaps the filesystem for every thread, so the tests
  # need the data read first.
  managers = [
    checkpoints.make_manager(workdir, member_config)
    for member_config, workdir in zip(members.configs, members.workdirs)
  ]
  state, train_rng = _restore_all(members, managers, state, train_rng)
  start_step = int(jax.device_get(members.take(state.step, 0)))
  logging.info(
    "%s (%s, %d parameters) trained on %s by the %s trainer; "
    "step %d of %d (%d per epoch).",
    config.model.name,
    parts.family.kind.value,
    models.count_params(members.take(state.params, 0)),
    parts.objective.name,
    trainer.name,
    start_step,
    total_steps,
    steps_per_epoch,
  )
  if members.vectorized:
    logging.info(
      "Training %d members together, differing in %s: %s.",
      len(members),
      ", ".join(members.traced) or "nothing",
      ", ".join(members.names()),
    )
  # Uncompiled: compiled once below, as one step or inside the device loop.
  steps = members.steps(parts, data.on_device_input, total_steps)
  eval_every_steps = steps_per_epoch * config.eval_every_epochs
  # The host must act at these multiples of steps; between them, a
  # device-resident split runs the steps as one compiled loop.
  periods = (
    config.log_every_steps,
    config.checkpoint_every_steps,
    eval_every_steps,
  )
  batches_on_device = data.is_device_resident()
  logging.info(
    "Training on %d devices; batches gathered %s.",
    jax.device_count(),
    "on the devices from the split held there"
    if batches_on_device
    else "on the host",
  )
  if batches_on_device:
    run_steps, eval_sums = _device_held_steps(
      data,
      eval_ds,
      steps,
      mesh,
      local_batch_size,
      members,
      (train_rng, eval_rng),
      max_steps=min(periods),
    )
  else:
    run_steps, eval_sums = _host_fed_steps(
      data,
      eval_ds,
      steps,
      mesh,
      local_batch_size,
      members,
      (train_rng, eval_rng),
      start_step,
    )
    periods = (1,)

  # Before the first step: a group too large for the devices fails here, in
  # one line, not in the allocator.
  members.check_memory(
    lambda: run_steps.lower(
      state, start_step, device_held.next_stop(start_step, total_steps, periods)
    )
  )
  runs = [
    _MemberRun(
      config=member_config,
      workdir=workdir,
      writer=_make_writer(workdir),
      console=console_lib.Console(
        total_steps,
        steps_per_epoch,
        start_step,
        batch_size,
        name=name if members.vectorized else "",
      ),
      manager=manager,
      image_grids=trainer.make_image_grids(
        member_config, parts, test_batch, members.take(sample_rng, i)
      ),
    )
    for i, (member_config, workdir, name, manager) in enumerate(
      zip(members.configs, members.workdirs, members.names(), managers)
    )
  ]

  def active() -> list[tuple[int, _MemberRun]]:
    return [(i, run) for i, run in enumerate(runs) if run.error is None]

  def run_eval(state, step: int) -> None:
    sums = eval_sums(state)
    for i, run in active():
      run.eval_metrics = per_image_means(members.take(sums, i))
      run.writer.write_scalars(step, run.eval_metrics)
      _write_image_grids(
        run.writer, run.workdir, step, run.image_grids(members.take(state, i))
      )

  def save_all(state) -> None:
    for i, run in active():
      checkpoints.save(
        run.manager, members.take(state, i), members.take(train_rng, i)
      )

  eval_seconds = 0.0
  pending_metrics = []
  loop_start = time.perf_counter()
  step = start_step
  with preemption.StopRequests() as stop_requests:
    while step < total_steps and active():
      end_step = device_held.next_stop(step, total_steps, periods)
      state, metrics = run_steps(state, step, end_step)
      pending_metrics.append(metrics)
      first_step, step = step + 1, end_step
      stop = stop_requests.should_stop(managers[0], first_step, step)
      save_now = (
        step % config.checkpoint_every_steps == 0 or step == total_steps or stop
      )
      # Host reads happen only here, so the device queue stays full
      # otherwise; before every save too, to stop on non-finite steps first.
      if step % config.log_every_steps == 0 or save_now:
        window = device_held.per_step_metrics(pending_metrics)
        pending_metrics = []
        for i, run in active():
          summary, run.nonfinite_streak = summarize_window(
            [members.take(metrics, i) for metrics in window],
            run.nonfinite_streak,
          )
          run.nonfinite_steps += int(summary["nonfinite_steps"])
          if run.nonfinite_streak >= run.config.max_consecutive_nonfinite:
            run.error = _nonfinite_error(run, step)
            logging.error("Run %s stopped: %s", run.workdir, run.error)
            checkpoints.close(run.manager)
            continue
          run.writer.write_scalars(
            step, {f"train_{k}": v for k, v in summary.items()}
          )
          run.console.window(step, summary)
      if not active():
        break
      if step % eval_every_steps == 0 or step == total_steps:
        eval_start = time.perf_counter()
        run_eval(state, step)
        eval_seconds += time.perf_counter() - eval_start
        for _, run in active():
          run.console.epoch(step, run.eval_metrics)
      if save_now:
        save_all(state)
      if stop:
        for _, run in active():
          checkpoints.close(run.manager)  # Durable before the process exits.
          run.writer.flush()
        raise preemption.Preempted(step, stop_requests.signal_name)
  jax.block_until_ready(state)
  train_seconds = time.perf_counter() - loop_start
  if any(run.eval_metrics is None for _, run in active()):
    run_eval(state, total_steps)  # Resumed a finished run: nothing trained.

  steps_run = total_steps - start_step
  outcomes = []
  for i, run in enumerate(runs):
    run.writer.flush()
    if run.error is not None:
      outcomes.append(Outcome(results=None, error=run.error))
      continue
    checkpoints.close(run.manager)
    results = {
      **run.eval_metrics,
      "num_params": models.count_params(members.take(state.params, i)),
      "steps": total_steps,
      "start_step": start_step,  # Above 0 when this run resumed another.
      "nonfinite_steps": run.nonfinite_steps,  # Skipped, since start_step.
      # The wall time of the loop, which the members of a group share.
      "train_seconds": train_seconds,
      # Training throughput, with per-epoch evaluation time left out.
      "images_per_second": (
        steps_run * batch_size / max(train_seconds - eval_seconds, 1e-9)
      ),
      "total_seconds": time.perf_counter() - run_start,
      # Runs trained in this loop: 1 for a run alone, N for the members of
      # a vectorized group.
      "trained_together": len(members),
      "data_source": data.source,
      "devices": jax.device_count(),  # The global batch is split over these,
      "processes": jax.process_count(),  # whose hosts each read a share.
      "batches_on_device": batches_on_device,  # See input.device_resident.
      "commit": commit,  # The code's (`core.provenance`); None: unknown.
      "hardware": provenance.hardware(),
    }
    if jax.process_index() == 0:
      outputs.write_json(os.path.join(run.workdir, "results.json"), results)
    run.console.final(run.eval_metrics, steps_run, train_seconds)
    outcomes.append(Outcome(results=results))
  return outcomes
