"""The one training loop, shared by every trainer, as module-level functions.

`train_and_evaluate(config, workdir)` prepares the data once, assembles the
model, its objective and its trainer (`parts`), resumes from the newest
checkpoint, and then runs the trainer's compiled steps: as one compiled loop
over a split held on the devices, or one step per host batch. The host
acts only at log, checkpoint and epoch boundaries: it logs one line per log
window, evaluates the test split and draws image grids each epoch, saves
checkpoints, stops on repeated non-finite steps and on SIGTERM, and writes
results.json at the end.
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

from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.core import outputs
from vae_jax.core import precision
from vae_jax.core import preemption
from vae_jax.core import resume
from vae_jax.core import sharding
from vae_jax.data import device_held
from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.models import registry as models
from vae_jax.objectives import registry as objectives
from vae_jax.trainers import console as console_lib
from vae_jax.trainers import parts as parts_lib

# The loop's own fields, positive integers all.
_POSITIVE_FIELDS = (
  "batch_size",
  "num_epochs",
  "log_every_steps",
  "checkpoint_every_steps",
  "max_checkpoints_to_keep",
  "max_consecutive_nonfinite",
)


def _loop_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameters, sampling noise and data order.
  config.num_epochs = 30  # Passes over the training split.
  config.batch_size = 128  # Global batch, split over all devices.
  # True: batch_size is each device's share instead, so the global batch is
  # batch_size × device count and grows with the slice (per-step work per
  # device stays fixed). False keeps the global batch, and with it the
  # learning-rate tuning, the same on any device count.
  config.batch_size_per_device = False
  config.log_every_steps = 100  # Train metrics are averaged over this window.
  config.checkpoint_every_steps = 2000  # Also saved at the end of training.
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


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for values no run could use, before any work."""
  for field in _POSITIVE_FIELDS:
    errors.require(
      config[field] > 0, f"{field} must be positive, got {config[field]}."
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
    f"; start it from loop.default_config({config.model.name!r}, "
    f"{objective.name!r})",
  )
  objective.check_config(config.loss)
  trainer.check_config(config)


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
  for metrics in window:
    metrics = dict(metrics)
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
  jitted_train_step,
  jitted_eval_step,
  mesh,
  local_batch_size: int,
  seed: int,
  rngs,
  max_steps: int,
):
  """A `device_held.StepRunner` and an evaluator (state -> sums) on the
  splits held on the devices, each step chunk one compiled loop."""
  train_rng, eval_rng = rngs
  run_steps = device_held.DeviceSteps(
    data.device_split(),
    jitted_train_step,
    mesh,
    local_batch_size,
    seed,
    train_rng,
    max_steps=max_steps,
  )
  return run_steps, device_held.device_evaluator(
    eval_ds, jitted_eval_step, mesh, eval_rng
  )


def _host_fed_steps(
  data,
  eval_ds,
  jitted_train_step,
  jitted_eval_step,
  mesh,
  local_batch_size: int,
  seed: int,
  rngs,
  start_step: int,
):
  """A one-step `device_held.StepRunner` on batches from the host, from
  `start_step` on, and an evaluator (state -> sums) batch by batch."""
  train_rng, eval_rng = rngs
  data_sharding = sharding.batch_sharded(mesh)
  run_steps = device_held.host_step_runner(
    sharding.prefetch_to_mesh(
      data.train_batches(local_batch_size, seed, start_step), data_sharding
    ),
    jitted_train_step,
    train_rng,
  )
  return run_steps, functools.partial(
    evaluate,
    jitted_eval_step,
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
  """TensorBoard summaries from process 0; the console is `console.Console`'s."""
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str
) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`; returns the final metrics."""
  check_config(config)
  outputs.check_workdir(workdir)
  run_start = time.perf_counter()
  # Data first: a run that cannot read its data leaves no workdir behind.
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
  jitted_train_step, jitted_eval_step = trainer.make_jitted_steps(
    config, parts, mesh
  )
  jitted_train_step = data.on_device_input(jitted_train_step, config.seed, mesh)
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
      jitted_train_step,
      jitted_eval_step,
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
      jitted_train_step,
      jitted_eval_step,
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
