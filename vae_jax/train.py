"""Training and evaluation of VAEs, as module-level pure functions.

`train_step` is the whole update in one XLA graph: reparameterized sample,
negative ELBO (`losses.negative_elbo`), gradient and optimizer update. Config
values are bound with `functools.partial`, never traced, and the step is
jitted once with explicit shardings, so it runs data parallel on any mesh.
"""

import functools
import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax import checkpoints
from vae_jax import image_grid
from vae_jax import input_pipeline
from vae_jax import models
from vae_jax import objectives
from vae_jax import optimizers
from vae_jax import outputs
from vae_jax import sharding
from vae_jax import validation
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
    raise validation.ConfigError(
        f"model {config.model.name!r} needs input.pixel_range="
        f"{expected_range!r}, got {config.input.pixel_range!r}.")
  if config.loss.likelihood == "gaussian_learned":
    if not variational:
      raise validation.ConfigError(
          "loss.likelihood 'gaussian_learned' needs a VAE model, got "
          f"{config.model.name!r}.")
    shared = config.loss.learned_variance == "shared"
    model = model.clone(pixel_logvar_shape=() if shared else image_shape)
  return model


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, terms_fn) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update on `batch`; `rng` is the run's base key, folded with the step.

  `terms_fn` (bound with functools.partial) gives per-image loss terms:
  see `objectives.terms_fn_for`.
  """
  step_rng = jax.random.fold_in(rng, state.step)

  def objective(params):
    terms, batch_stats = terms_fn(params, state, batch["image"], step_rng,
                                  train=True)
    return terms["loss"].mean(), (terms, batch_stats)

  (_, (terms, batch_stats)), grads = jax.value_and_grad(
      objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {name: value.mean() for name, value in terms.items()}


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
  totals = jax.device_get(totals)
  count = totals.pop("count")
  return {f"test_{name}": float(value / count) for name, value in totals.items()}


def make_jitted_steps(config: ml_collections.ConfigDict, model, mesh):
  """`train_step` and `eval_step` of `model` compiled for `mesh`.

  The state is replicated and donated (updated in place); batches are split
  over the mesh's data axis.
  """
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  terms_fn = objectives.terms_fn_for(model, config.loss)
  jitted_train_step = jax.jit(
      functools.partial(train_step, terms_fn=terms_fn),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=(replicated, replicated), donate_argnums=0)
  jitted_eval_step = jax.jit(
      functools.partial(eval_step, terms_fn=terms_fn),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=replicated)
  return jitted_train_step, jitted_eval_step


def image_grids(state: TrainState, test_images: np.ndarray, fixed_z: jax.Array,
                reconstruct, decode, pixel_range: str) -> dict[str, np.ndarray]:
  """Reconstruction grid, and for VAEs (`decode` given) a sample grid."""
  originals = test_images if pixel_range == "unit" else (test_images + 1) / 2
  recons = np.asarray(reconstruct(state, jnp.asarray(test_images)))
  num_cols = min(16, len(originals))
  # Rows alternate: num_cols test images, then their reconstructions.
  rows = [part for start in range(0, len(originals), num_cols)
          for part in (originals[start:start + num_cols],
                       recons[start:start + num_cols])]
  grids = {"reconstructions": image_grid.make_grid(
      image_grid.to_uint8(np.concatenate(rows)), num_cols=num_cols)}
  if decode is not None:
    grids["samples"] = image_grid.make_grid(
        image_grid.to_uint8(np.asarray(decode(state, fixed_z))))
  return grids


def _write_image_grids(writer, workdir: str, step: int,
                       grids: dict[str, np.ndarray]) -> None:
  writer.write_images(step, {name: grid[None] for name, grid in grids.items()})
  if jax.process_index() == 0:
    for name, grid in grids.items():
      outputs.write_png(os.path.join(workdir, f"{name}_{step:06d}.png"), grid)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run in `workdir`; returns the final metrics."""
  validation.validate_config(config)
  validation.validate_workdir(workdir)
  run_start = time.perf_counter()
  # Data first: a run that cannot read its data leaves no workdir behind.
  data_source = input_pipeline.prepare(config.input)
  logging.info("Reading %s from the TFDS data dir (source: %s).",
               config.input.dataset, data_source)
  image_shape = input_pipeline.image_shape(config.input)
  model = build_model(config, image_shape)  # Can still reject the config.
  variational = isinstance(model, vae.VAE)
  local_batch_size = sharding.local_batch_size(config.batch_size)
  steps_per_epoch = input_pipeline.steps_per_epoch(config.input,
                                                   local_batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  tf.io.gfile.makedirs(workdir)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "config.json"),
                           config.to_json_best_effort(indent=2))

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  init_rng, train_rng, eval_rng, sample_rng = jax.random.split(
      jax.random.PRNGKey(config.seed), 4)
  state = jax.jit(
      functools.partial(create_train_state, config, model, image_shape,
                        total_steps=total_steps),
      out_shardings=replicated)(init_rng)
  train_rng = jax.device_put(train_rng, replicated)

  manager = checkpoints.make_manager(workdir, config)
  restored = checkpoints.restore(manager, state, train_rng)
  if restored is not None:
    state, train_rng = restored
  start_step = int(jax.device_get(state.step))
  logging.info("Starting at step %d of %d (%d per epoch).", start_step,
               total_steps, steps_per_epoch)

  jitted_train_step, jitted_eval_step = make_jitted_steps(config, model, mesh)
  reconstruct = jax.jit(functools.partial(objectives.reconstruct_images,
                                          variational=variational))
  decode = jax.jit(objectives.decode_images) if variational else None

  eval_ds = input_pipeline.eval_dataset(config.input, local_batch_size)
  # The same latents and test images every epoch, so the grids show progress.
  fixed_z = (jax.random.normal(sample_rng, (config.num_image_samples,
                                             model.latent_size))
             if variational else None)
  test_images = next(eval_ds.as_numpy_iterator())["image"][
      :config.num_image_samples // 2]
  batches = sharding.prefetch_to_mesh(
      input_pipeline.train_batches(config.input, local_batch_size,
                                   config.seed, start_step),
      data_sharding)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=total_steps, writer=writer)

  def run_eval(state: TrainState, step: int) -> dict[str, float]:
    metrics = evaluate(jitted_eval_step, state, eval_ds, eval_rng,
                       data_sharding)
    writer.write_scalars(step, metrics)
    _write_image_grids(writer, workdir, step, image_grids(
        state, test_images, fixed_z, reconstruct, decode,
        config.input.pixel_range))
    return metrics

  eval_metrics, eval_seconds = None, 0.0
  pending_metrics = []
  loop_start = time.perf_counter()
  for step in range(start_step + 1, total_steps + 1):
    state, metrics = jitted_train_step(state, next(batches), train_rng)
    pending_metrics.append(metrics)
    report_progress(step)
    save_now = step % config.checkpoint_every_steps == 0 or step == total_steps
    # Host reads happen only here, so the device queue stays full otherwise;
    # before every save too, so a non-finite state is never checkpointed.
    if step % config.log_every_steps == 0 or save_now:
      summary = jax.tree.map(lambda *v: float(np.mean(v)),
                             *jax.device_get(pending_metrics))
      pending_metrics = []
      if not np.isfinite(summary["loss"]):
        manager.wait_until_finished()
        raise FloatingPointError(
            f"training loss became {summary['loss']} by step {step}; the "
            f"newest good checkpoint is step {manager.latest_step()}.")
      writer.write_scalars(step, {f"train_{k}": v for k, v in summary.items()})
    if step % steps_per_epoch == 0:
      eval_start = time.perf_counter()
      eval_metrics = run_eval(state, step)
      eval_seconds += time.perf_counter() - eval_start
    if save_now:
      checkpoints.save(manager, state, train_rng)
  jax.block_until_ready(state)
  train_seconds = time.perf_counter() - loop_start
  if eval_metrics is None:  # Resumed a finished run: nothing was trained.
    eval_metrics = run_eval(state, total_steps)
  manager.wait_until_finished()
  writer.flush()

  steps_run = total_steps - start_step
  results = {
      **eval_metrics,
      "num_params": models.count_params(state.params),
      "steps": total_steps,
      "start_step": start_step,  # Above 0 when this run resumed another.
      "train_seconds": train_seconds,
      # Training throughput, with per-epoch evaluation time left out.
      "images_per_second": (steps_run * config.batch_size
                            / max(train_seconds - eval_seconds, 1e-9)),
      "total_seconds": time.perf_counter() - run_start,
      "data_source": data_source,
  }
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "results.json"), results)
  logging.info("Final metrics: %s", results)
  return results
