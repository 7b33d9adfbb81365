"""Training and evaluation of VAEs, as module-level pure functions.

`train_step` is the whole update in one XLA graph: reparameterized sample,
negative ELBO (`losses.negative_elbo`), gradient and optimizer update. Config
values are bound with `functools.partial`, never traced, and the step is
jitted once with explicit shardings, so it runs data parallel on any mesh.
"""

import functools
import os
import time
from typing import Any, Callable, NamedTuple

from absl import logging
from clu import metric_writers
from clu import periodic_actions
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax.core import checkpoints
from vae_jax.data import device_held
from vae_jax.core import finite_guard
from vae_jax.trainers import adversarial
from vae_jax.core import image_grid
from vae_jax.data import batches
from vae_jax import models
from vae_jax.objectives import negative_elbo
from vae_jax.core import optimizers
from vae_jax.core import outputs
from vae_jax.core import preemption
from vae_jax.core import resume
from vae_jax.core import sharding
from vae_jax import errors
from vae_jax.models import vae


class TrainState(train_state.TrainState):
  # Non-trainable model state (BatchNorm statistics); {} for models without.
  batch_stats: Any = None


def create_train_state(config: ml_collections.ConfigDict, model,
                       image_shape: tuple[int, ...], rng: jax.Array,
                       total_steps: int) -> TrainState:
  """Fresh parameters and optimizer state; jit it to initialize on devices."""
  param_rng, sample_rng = jax.random.split(rng)
  variables = model.init(param_rng, jnp.zeros((1, *image_shape)), sample_rng)
  state = TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=optimizers.make_optimizer(config.optimizer, total_steps))
  # A weakly typed Python 0 would become strong int32 after one update and
  # make the jitted step compile a second time.
  return state.replace(step=jnp.zeros((), jnp.int32))


def build_model(config: ml_collections.ConfigDict,
                image_shape: tuple[int, ...]):
  """The configured model, with the likelihood's parameters if it has any."""
  model = models.build_model(config.model, image_shape)
  variational = isinstance(model, vae.VAE)
  expected_range = "unit" if variational else "symmetric"
  if config.input.pixel_range != expected_range:
    raise errors.ConfigError(
        f"model {config.model.name!r} needs input.pixel_range="
        f"{expected_range!r}, got {config.input.pixel_range!r}.")
  if config.loss.likelihood == "gaussian_learned":
    if not variational:
      raise errors.ConfigError(
          "loss.likelihood 'gaussian_learned' needs a VAE model, got "
          f"{config.model.name!r}.")
    shared = config.loss.learned_variance == "shared"
    model = model.clone(pixel_logvar_shape=() if shared else image_shape)
  return model


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, terms_fn) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update on `batch`; `rng` is the run's base key, folded with the step.

  `terms_fn` (bound with functools.partial) gives per-image loss terms:
  see `negative_elbo.terms_fn_for`.
  """
  step_rng = jax.random.fold_in(rng, state.step)

  def objective(params):
    terms, batch_stats = terms_fn(params, state, batch["image"], step_rng,
                                  train=True)
    return terms["loss"].mean(), (terms, batch_stats)

  (loss, (terms, batch_stats)), grads = jax.value_and_grad(
      objective, has_aux=True)(state.params)
  finite = finite_guard.all_finite(loss, grads)
  # A branch, not a select of both outcomes: only one of them is computed,
  # and an applied update makes no extra pass over the parameters and the
  # optimizer state.
  state = jax.lax.cond(
      finite,
      lambda s: s.apply_gradients(grads=grads, batch_stats=batch_stats),
      lambda s: s.replace(step=s.step + 1), state)
  metrics = {name: value.mean() for name, value in terms.items()}
  return state, {**metrics, "finite": finite}


def eval_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
              *, terms_fn) -> dict[str, jax.Array]:
  """Sums of the per-image terms over the unpadded images of `batch`."""
  terms, _ = terms_fn(state.params, state, batch["image"], rng, train=False)
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: jnp.sum(value * mask) for name, value in terms.items()}
  return {**sums, "count": jnp.sum(mask)}


def evaluate(jitted_eval_step, state: TrainState, eval_ds: tf.data.Dataset,
             rng: jax.Array, data_sharding) -> dict[str, float]:
  """Per-image means of every objective term over the whole eval split."""
  totals = None
  for i, batch in enumerate(eval_ds.as_numpy_iterator()):
    sums = jitted_eval_step(state, sharding.to_global(batch, data_sharding),
                            jax.random.fold_in(rng, i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  return per_image_means(totals)


def per_image_means(totals: dict[str, jax.Array]) -> dict[str, float]:
  """'test_<term>' means from an eval step's sums, added over batches."""
  totals = jax.device_get(totals)
  count = totals.pop("count")
  return {f"test_{name}": float(value / count)
          for name, value in totals.items()}


def make_jitted_steps(config: ml_collections.ConfigDict, model, mesh):
  """`train_step` and `eval_step` of `model` compiled for `mesh`.

  The state is replicated and donated (updated in place); batches are split
  over the mesh's data axis.
  """
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  terms_fn = negative_elbo.terms_fn_for(model, config.loss, config.compute_dtype)
  jitted_train_step = jax.jit(
      functools.partial(train_step, terms_fn=terms_fn),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=(replicated, replicated), donate_argnums=0)
  jitted_eval_step = jax.jit(
      functools.partial(eval_step, terms_fn=terms_fn),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=replicated)
  return jitted_train_step, jitted_eval_step


def make_image_grids(config: ml_collections.ConfigDict, model,
                     test_images: np.ndarray, rng: jax.Array
                     ) -> Callable[[TrainState], dict[str, np.ndarray]]:
  """The grids shown each epoch, as a function of the state.

  Reconstructions of `test_images`, and for VAEs decodings of latents drawn
  once from `rng`: the same images and latents every epoch show progress.
  """
  variational = isinstance(model, vae.VAE)
  reconstruct = jax.jit(functools.partial(negative_elbo.reconstruct_images,
                                          variational=variational))
  decode = jax.jit(negative_elbo.decode_images)
  fixed_z = (jax.random.normal(rng, (config.num_image_samples,
                                     model.latent_size))
             if variational else None)
  originals = (test_images if config.input.pixel_range == "unit"
               else (test_images + 1) / 2)
  num_cols = min(16, len(originals))

  def image_grids(state: TrainState) -> dict[str, np.ndarray]:
    # NumPy inputs: on multi-process runs jit takes them as the same value on
    # every process, as these test images are.
    recons = sharding.to_host(reconstruct(state, test_images))
    # Rows alternate: num_cols test images, then their reconstructions.
    rows = [part for start in range(0, len(originals), num_cols)
            for part in (originals[start:start + num_cols],
                         recons[start:start + num_cols])]
    grids = {"reconstructions": image_grid.make_grid(
        image_grid.to_uint8(np.concatenate(rows)), num_cols=num_cols)}
    if variational:
      grids["samples"] = image_grid.make_grid(
          image_grid.to_uint8(sharding.to_host(decode(state, fixed_z))))
    return grids

  return image_grids


class Trainer(NamedTuple):
  """What `train_and_evaluate` needs from an objective.

  VAEs and plain autoencoders are trained by this module's functions; other
  objectives supply their own, and `config.trainer` picks from TRAINERS.
  """
  # (config, image_shape) -> model
  build_model: Callable[..., Any]
  # (config, model, image_shape, rng, total_steps) -> state with .step and
  # .params
  create_train_state: Callable[..., Any]
  # (config, model, mesh) -> jitted (train_step, eval_step); see
  # `make_jitted_steps` for their contract.
  make_jitted_steps: Callable[..., tuple[Any, Any]]
  # (config, model, test_images, rng) -> (state -> {name: uint8 grid})
  make_image_grids: Callable[..., Callable[[Any], dict[str, np.ndarray]]]


TRAINERS = {
    "autoencoder": Trainer(build_model, create_train_state, make_jitted_steps,
                           make_image_grids),
    "gan": Trainer(adversarial.build_model, adversarial.create_train_state,
                   adversarial.make_jitted_steps, adversarial.make_image_grids),
}


def _write_image_grids(writer, workdir: str, step: int,
                       grids: dict[str, np.ndarray]) -> None:
  writer.write_images(step, {name: grid[None] for name, grid in grids.items()})
  if jax.process_index() == 0:
    for name, grid in grids.items():
      outputs.write_png(os.path.join(workdir, f"{name}_{step:06d}.png"), grid)


def abstract_train_state(config: ml_collections.ConfigDict, *,
                         trainer: Trainer,
                         image_shape: tuple[int, ...]) -> Any:
  """Shapes and dtypes of `config`'s train state, computing nothing."""
  model = trainer.build_model(config, image_shape)
  return jax.eval_shape(functools.partial(
      trainer.create_train_state, config, model, image_shape, total_steps=1),
                        jax.random.PRNGKey(0))


def summarize_window(window: list[dict[str, np.ndarray]],
                     nonfinite_streak: int) -> tuple[dict[str, float], int]:
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
  summary = (jax.tree.map(lambda *v: float(np.mean(v)), *applied)
             if applied else {})
  summary["nonfinite_steps"] = float(len(window) - len(applied))
  return summary, nonfinite_streak


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`; returns the final metrics."""
  errors.validate_config(config)
  errors.validate_workdir(workdir)
  run_start = time.perf_counter()
  # Data first: a run that cannot read its data leaves no workdir behind.
  data_source = batches.prepare(config.input)
  logging.info("Reading %s from the TFDS data dir (source: %s).",
               config.input.dataset, data_source)
  image_shape = batches.image_shape(config.input)
  trainer = TRAINERS[config.trainer]
  model = trainer.build_model(config, image_shape)  # May reject the config.
  batch_size = sharding.global_batch_size(config)
  local_batch_size = sharding.local_batch_size(batch_size)
  steps_per_epoch = batches.steps_per_epoch(config.input,
                                                   local_batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  resume.check_config_change(config, workdir, functools.partial(
      abstract_train_state, trainer=trainer, image_shape=image_shape))
  if jax.process_count() > 1:  # Process 0 may have moved checkpoints aside.
    multihost_utils.sync_global_devices("vae_jax: config checked")
  tf.io.gfile.makedirs(workdir)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "config.json"),
                       config.to_json_best_effort(indent=2))

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  # Made inside jit, so that on multi-process runs they are global arrays.
  init_rng, train_rng, eval_rng, sample_rng = jax.jit(
      lambda: tuple(jax.random.split(jax.random.PRNGKey(config.seed), 4)),
      out_shardings=replicated)()
  state = jax.jit(
      functools.partial(trainer.create_train_state, config, model,
                        image_shape, total_steps=total_steps),
      out_shardings=replicated)(init_rng)

  eval_ds = batches.eval_dataset(config.input, local_batch_size)
  image_grids = trainer.make_image_grids(
      config, model, batches.first_test_images(
          config.input, config.num_image_samples // 2), sample_rng)

  # Orbax's threads start with the manager; under tfds.testing.mock_data,
  # building a dataset swaps the filesystem for every thread, so the tests
  # need the data read first.
  manager = checkpoints.make_manager(workdir, config)
  restored = checkpoints.restore(manager, state, train_rng,
                                 set_aside_unreadable=True)
  if restored is not None:
    state, train_rng = restored
  start_step = int(jax.device_get(state.step))
  logging.info("Starting at step %d of %d (%d per epoch).", start_step,
               total_steps, steps_per_epoch)
  jitted_train_step, jitted_eval_step = trainer.make_jitted_steps(
      config, model, mesh)
  # The host must act at these multiples of steps; between them, a
  # device-resident split runs the steps as one compiled loop.
  periods = (config.log_every_steps, config.checkpoint_every_steps,
             steps_per_epoch)
  batches_on_device = device_held.is_device_resident(config.input, image_shape)
  logging.info("Training on %d devices; batches gathered %s.",
               jax.device_count(), "on the devices from the split held there"
               if batches_on_device else "on the host")
  if batches_on_device:
    run_steps = device_held.DeviceSteps(
        config.input, jitted_train_step, mesh, local_batch_size, config.seed,
        train_rng, max_steps=min(periods))
    eval_sums = device_held.device_evaluator(eval_ds, jitted_eval_step, mesh,
                                             eval_rng)
  else:
    run_steps = device_held.host_step_runner(
        sharding.prefetch_to_mesh(
            batches.train_batches(config.input, local_batch_size,
                                         config.seed, start_step),
            data_sharding),
        jitted_train_step, train_rng)
    periods = (1,)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=total_steps, writer=writer)

  def run_eval(state, step: int) -> dict[str, float]:
    metrics = (per_image_means(eval_sums(state)) if batches_on_device else
               evaluate(jitted_eval_step, state, eval_ds, eval_rng,
                        data_sharding))
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
      report_progress(step)
      stop = stop_requests.should_stop(manager, first_step, step)
      save_now = (step % config.checkpoint_every_steps == 0
                  or step == total_steps or stop)
      # Host reads happen only here, so the device queue stays full
      # otherwise; before every save too, to stop on non-finite steps first.
      if step % config.log_every_steps == 0 or save_now:
        summary, nonfinite_streak = summarize_window(
            device_held.per_step_metrics(pending_metrics), nonfinite_streak)
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
              "optimizer.learning_rate or optimizer.grad_clip_norm.")
        writer.write_scalars(step, {f"train_{k}": v
                                    for k, v in summary.items()})
      if step % steps_per_epoch == 0:
        eval_start = time.perf_counter()
        eval_metrics = run_eval(state, step)
        eval_seconds += time.perf_counter() - eval_start
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
      "images_per_second": (steps_run * batch_size
                            / max(train_seconds - eval_seconds, 1e-9)),
      "total_seconds": time.perf_counter() - run_start,
      "data_source": data_source,
      "devices": jax.device_count(),  # The global batch is split over these,
      "processes": jax.process_count(),  # whose hosts each read a share.
      "batches_on_device": batches_on_device,  # See input.device_resident.
  }
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "results.json"), results)
  logging.info("Final metrics: %s", results)
  return results
