"""The one training loop, shared by every trainer, as module-level functions.

`train_and_evaluate(config, workdir)` prepares the data once, assembles the
model, its objective and its trainer (`parts`), resumes from the newest
checkpoint, and then compiles the trainer's steps once and runs them: as
one compiled loop over a split held on the devices, or one step per host
batch. The host acts only at log, checkpoint and epoch boundaries: it logs
one line per log window, evaluates the test split and draws image grids each
epoch, saves checkpoints, stops on repeated non-finite steps and on SIGTERM,
and writes results.json at the end.
"""

import functools
import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax.core import checkpoints
from vae_jax.core import outputs
from vae_jax.core import preemption
from vae_jax.core import resume
from vae_jax.core import sharding
from vae_jax.core import workdir_lock
from vae_jax.data import device_held
from vae_jax.data import pipeline
from vae_jax.models import registry as models
from vae_jax.trainers import console as console_lib
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
) -> dict[str, jax.Array]:
  """Sums of every objective term over the whole eval split, batch by batch
  from the host."""
  totals = None
  for i, batch in enumerate(eval_ds.as_numpy_iterator()):
    sums = jitted_eval_step(
      state,
      sharding.to_global(batch, data_sharding),
      jax.random.fold_in(rng, i),
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
  train_step,
  eval_step,
  mesh,
  local_batch_size: int,
  seed: int,
  rngs,
  max_steps: int,
):
  """A `device_held.StepRunner` and an evaluator (state -> sums) on the
  splits held on the devices, each step chunk one compiled loop of the
  uncompiled steps."""
  train_rng, eval_rng = rngs
  run_steps = device_held.DeviceSteps(
    data.device_split(),
    train_step,
    mesh,
    local_batch_size,
    seed,
    train_rng,
    max_steps=max_steps,
  )
  return run_steps, device_held.device_evaluator(
    eval_ds, eval_step, mesh, eval_rng
  )


def _host_fed_steps(
  data,
  eval_ds,
  train_step,
  eval_step,
  mesh,
  local_batch_size: int,
  seed: int,
  rngs,
  start_step: int,
):
  """A one-step `device_held.StepRunner` on batches from the host, from
  `start_step` on, and an evaluator (state -> sums) batch by batch: the
  steps compiled for `mesh`."""
  train_rng, eval_rng = rngs
  data_sharding = sharding.batch_sharded(mesh)
  run_steps = device_held.host_step_runner(
    sharding.prefetch_to_mesh(
      data.train_batches(local_batch_size, seed, start_step), data_sharding
    ),
    sharding.jit_train_step(train_step, mesh),
    train_rng,
  )
  return run_steps, functools.partial(
    evaluate,
    sharding.jit_eval_step(eval_step, mesh),
    eval_ds=eval_ds,
    rng=eval_rng,
    data_sharding=data_sharding,
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


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str
) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`; returns the final metrics.

  The run holds the workdir (`workdir_lock`) from before its data loads to
  its end: a second run there fails at once, naming this one.
  """
  run_config.check_config(config)
  outputs.check_workdir(workdir)
  with workdir_lock.hold(workdir):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str
) -> dict[str, Any]:
  """`train_and_evaluate`'s work, in the workdir it holds."""
  run_start = time.perf_counter()
  # Data first: a run that cannot read its data leaves no workdir behind
  # (`workdir_lock.hold` removes the one it made).
  data = pipeline.prepare(config.input)
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
  trainer = parts.trainer
  batch_size = sharding.global_batch_size(config)
  local_batch_size = sharding.local_batch_size(batch_size)
  steps_per_epoch = data.steps_per_epoch(local_batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  resume.check_config_change(
    config,
    run_config.load_saved(workdir),
    workdir,
    functools.partial(abstract_train_state, image_shape=image_shape),
  )
  if jax.process_count() > 1:  # Process 0 may have moved checkpoints aside.
    multihost_utils.sync_global_devices("vae_jax: config checked")
  tf.io.gfile.makedirs(workdir)
  if jax.process_index() == 0:
    outputs.write_json(
      os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2)
    )

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  # Made inside jit, so that on multi-process runs they are global arrays.
  init_rng, train_rng, eval_rng, sample_rng = jax.jit(
    lambda: tuple(jax.random.split(jax.random.PRNGKey(config.seed), 4)),
    out_shardings=replicated,
  )()
  state = jax.jit(
    functools.partial(
      trainer.create_train_state,
      config,
      parts,
      image_shape,
      total_steps=total_steps,
    ),
    out_shardings=replicated,
  )(init_rng)

  eval_ds = data.eval_dataset(local_batch_size)
  image_grids = trainer.make_image_grids(
    config,
    parts,
    data.first_test_images(config.num_image_samples // 2),
    sample_rng,
  )

  # Orbax's threads start with the manager; under tfds.testing.mock_data,
  # building a dataset swaps the filesystem for every thread, so the tests
  # need the data read first.
  manager = checkpoints.make_manager(workdir, config)
  restored = checkpoints.restore(
    manager, state, train_rng, set_aside_unreadable=True
  )
  if restored is not None:
    state, train_rng = restored
  start_step = int(jax.device_get(state.step))
  logging.info(
    "%s (%s, %d parameters) trained on %s by the %s trainer; "
    "step %d of %d (%d per epoch).",
    config.model.name,
    parts.family.kind.value,
    models.count_params(state.params),
    parts.objective.name,
    trainer.name,
    start_step,
    total_steps,
    steps_per_epoch,
  )
  # Uncompiled: compiled once below, as one step or inside the device loop.
  train_step, eval_step = trainer.make_steps(config, parts)
  train_step = data.on_device_input(train_step, config.seed)
  # The host must act at these multiples of steps; between them, a
  # device-resident split runs the steps as one compiled loop.
  periods = (
    config.log_every_steps,
    config.checkpoint_every_steps,
    steps_per_epoch,
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
      train_step,
      eval_step,
      mesh,
      local_batch_size,
      config.seed,
      (train_rng, eval_rng),
      max_steps=min(periods),
    )
  else:
    run_steps, eval_sums = _host_fed_steps(
      data,
      eval_ds,
      train_step,
      eval_step,
      mesh,
      local_batch_size,
      config.seed,
      (train_rng, eval_rng),
      start_step,
    )
    periods = (1,)

  writer = _make_writer(workdir)
  console = console_lib.Console(
    total_steps, steps_per_epoch, start_step, batch_size
  )

  def run_eval(state, step: int) -> dict[str, float]:
    metrics = per_image_means(eval_sums(state))
    writer.write_scalars(step, metrics)
    _write_image_grids(writer, workdir, step, image_grids(state))
    return metrics

  eval_metrics, eval_seconds = None, 0.0
  pending_metrics, nonfinite_streak, nonfinite_steps = [], 0, 0
  loop_start = time.perf_counter()
  step = start_step
  with preemption.StopRequests() as stop_requests:
    while step < total_steps:
      end_step = device_held.next_stop(step, total_steps, periods)
      state, metrics = run_steps(state, step, end_step)
      pending_metrics.append(metrics)
      first_step, step = step + 1, end_step
      stop = stop_requests.should_stop(manager, first_step, step)
      save_now = (
        step % config.checkpoint_every_steps == 0 or step == total_steps or stop
      )
      # Host reads happen only here, so the device queue stays full
      # otherwise; before every save too, to stop on non-finite steps first.
      if step % config.log_every_steps == 0 or save_now:
        summary, nonfinite_streak = summarize_window(
          device_held.per_step_metrics(pending_metrics), nonfinite_streak
        )
        pending_metrics = []
        nonfinite_steps += int(summary["nonfinite_steps"])
        if nonfinite_streak >= config.max_consecutive_nonfinite:
          checkpoints.close(manager)
          raise FloatingPointError(
            f"the last {nonfinite_streak} steps, to step {step}, had a "
            "non-finite loss or gradient and were skipped; stopping "
            f"(max_consecutive_nonfinite={config.max_consecutive_nonfinite}"
            "). Skipped updates never reach a checkpoint; the newest is "
            f"step {manager.latest_step()}. Try a lower "
            "optimizer.learning_rate or optimizer.grad_clip_norm."
          )
        writer.write_scalars(
          step, {f"train_{k}": v for k, v in summary.items()}
        )
        console.window(step, summary)
      if step % steps_per_epoch == 0:
        eval_start = time.perf_counter()
        eval_metrics = run_eval(state, step)
        eval_seconds += time.perf_counter() - eval_start
        console.epoch(step, eval_metrics)
      if save_now:
        checkpoints.save(manager, state, train_rng)
      if stop:
        checkpoints.close(manager)  # Durable before the process exits.
        writer.flush()
        raise preemption.Preempted(step, stop_requests.signal_name)
  jax.block_until_ready(state)
  train_seconds = time.perf_counter() - loop_start
  if eval_metrics is None:  # Resumed a finished run: nothing was trained.
    eval_metrics = run_eval(state, total_steps)
  checkpoints.close(manager)
  writer.flush()

  steps_run = total_steps - start_step
  results = {
    **eval_metrics,
    "num_params": models.count_params(state.params),
    "steps": total_steps,
    "start_step": start_step,  # Above 0 when this run resumed another.
    "nonfinite_steps": nonfinite_steps,  # Skipped updates, since start_step.
    "train_seconds": train_seconds,
    # Training throughput, with per-epoch evaluation time left out.
    "images_per_second": (
      steps_run * batch_size / max(train_seconds - eval_seconds, 1e-9)
    ),
    "total_seconds": time.perf_counter() - run_start,
    "data_source": data.source,
    "devices": jax.device_count(),  # The global batch is split over these,
    "processes": jax.process_count(),  # whose hosts each read a share.
    "batches_on_device": batches_on_device,  # See input.device_resident.
  }
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "results.json"), results)
  console.final(eval_metrics, steps_run, train_seconds)
  return results
