"""Training and evaluation of VAEs, as module-level pure functions.

`train_step` is the whole update in one XLA graph: reparameterized sample,
negative ELBO (`losses.negative_elbo`), gradient and optimizer update. Config
values are bound with `functools.partial`, never traced, and the step is
jitted once with explicit shardings, so it runs data parallel on any mesh.
"""

import functools
import json
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
from vae_jax import losses
from vae_jax import models
from vae_jax import optimizers
from vae_jax import sharding
from vae_jax import validation


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


def _elbo_terms(params, state: TrainState, images: jax.Array, rng: jax.Array,
                loss_config: ml_collections.ConfigDict,
                train: bool) -> tuple[dict[str, jax.Array], Any]:
  """Per-image objective terms and the (possibly updated) BatchNorm stats."""
  variables = {"params": params, "batch_stats": state.batch_stats}
  if train:
    (logits, mu, logvar), updates = state.apply_fn(
        variables, images, rng, train=True, mutable=["batch_stats"])
    batch_stats = updates.get("batch_stats", state.batch_stats)
  else:
    logits, mu, logvar = state.apply_fn(variables, images, rng, train=False)
    batch_stats = state.batch_stats
  kl_weight = losses.kl_weight_at(state.step, loss_config.kl_weight,
                                  loss_config.kl_warmup_steps)
  terms = losses.negative_elbo(
      logits, mu, logvar, images, likelihood=loss_config.likelihood,
      kl_weight=kl_weight, gaussian_variance=loss_config.gaussian_variance)
  return terms, batch_stats


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, loss_config: ml_collections.ConfigDict
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update on `batch`; `rng` is the run's base key, folded with the step."""
  step_rng = jax.random.fold_in(rng, state.step)

  def objective(params):
    terms, batch_stats = _elbo_terms(params, state, batch["image"], step_rng,
                                     loss_config, train=True)
    return terms["loss"].mean(), (terms, batch_stats)

  (_, (terms, batch_stats)), grads = jax.value_and_grad(
      objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {name: value.mean() for name, value in terms.items()}


def eval_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
              *, loss_config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums of the per-image terms over the unpadded images of `batch`."""
  terms, _ = _elbo_terms(state.params, state, batch["image"], rng,
                         loss_config, train=False)
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: jnp.sum(value * mask) for name, value in terms.items()}
  return {**sums, "count": jnp.sum(mask)}


def decode_images(state: TrainState, z: jax.Array) -> jax.Array:
  """Mean images p(x|z) in [0, 1]."""
  logits = state.apply_fn({"params": state.params,
                           "batch_stats": state.batch_stats}, z,
                          method="decode")
  return jax.nn.sigmoid(logits)


def reconstruct_images(state: TrainState, images: jax.Array) -> jax.Array:
  """Decodes the posterior mean of each image (no sampling noise)."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  mu, _ = state.apply_fn(variables, images, method="encode")
  return decode_images(state, mu)


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


def make_jitted_steps(config: ml_collections.ConfigDict, mesh):
  """`train_step` and `eval_step` compiled for `mesh`: data parallel.

  The state is replicated and donated (updated in place); batches are split
  over the mesh's data axis.
  """
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  jitted_train_step = jax.jit(
      functools.partial(train_step, loss_config=config.loss),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=(replicated, replicated), donate_argnums=0)
  jitted_eval_step = jax.jit(
      functools.partial(eval_step, loss_config=config.loss),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=replicated)
  return jitted_train_step, jitted_eval_step


def _write_json_atomically(path: str, payload: Any) -> None:
  tmp_path = path + ".tmp"
  with tf.io.gfile.GFile(tmp_path, "w") as f:
    f.write(payload if isinstance(payload, str) else
            json.dumps(payload, indent=2, sort_keys=True))
  tf.io.gfile.rename(tmp_path, path, overwrite=True)


def _write_image_grids(writer, workdir: str, step: int,
                       grids: dict[str, np.ndarray]) -> None:
  writer.write_images(step, {name: grid[None] for name, grid in grids.items()})
  if jax.process_index() == 0:
    for name, grid in grids.items():
      image_grid.write_png(os.path.join(workdir, f"{name}_{step:06d}.png"), grid)


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
  tf.io.gfile.makedirs(workdir)
  if jax.process_index() == 0:
    _write_json_atomically(os.path.join(workdir, "config.json"),
                           config.to_json_best_effort(indent=2))
  image_shape = input_pipeline.image_shape(config.input)
  local_batch_size = sharding.local_batch_size(config.batch_size)
  steps_per_epoch = input_pipeline.steps_per_epoch(config.input,
                                                   local_batch_size)
  total_steps = steps_per_epoch * config.num_epochs

  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  model = models.build_model(config.model, image_shape)
  init_rng, train_rng, eval_rng, sample_rng = jax.random.split(
      jax.random.PRNGKey(config.seed), 4)
  state = jax.jit(
      functools.partial(create_train_state, config, model, image_shape,
                        total_steps=total_steps),
      out_shardings=replicated)(init_rng)
  train_rng = jax.device_put(train_rng, replicated)

  manager = checkpoints.make_manager(workdir, config)
  restored = checkpoints.restore_latest(manager, state, train_rng)
  if restored is not None:
    state, train_rng = restored
  start_step = int(jax.device_get(state.step))
  logging.info("Starting at step %d of %d (%d per epoch).", start_step,
               total_steps, steps_per_epoch)

  jitted_train_step, jitted_eval_step = make_jitted_steps(config, mesh)
  jitted_decode = jax.jit(decode_images, out_shardings=replicated)
  jitted_reconstruct = jax.jit(reconstruct_images, out_shardings=replicated)

  eval_ds = input_pipeline.eval_dataset(config.input, local_batch_size)
  # The same latents and test images every epoch, so the grids show progress.
  fixed_z = jax.device_put(jax.random.normal(
      sample_rng, (config.num_image_samples, config.model.latent_size)),
      replicated)
  recon_images = next(eval_ds.as_numpy_iterator())["image"][
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
    samples = image_grid.to_uint8(np.asarray(jitted_decode(state, fixed_z)))
    recons = image_grid.to_uint8(np.asarray(
        jitted_reconstruct(state, jnp.asarray(recon_images))))
    originals = image_grid.to_uint8(recon_images)
    num_cols = len(originals)
    _write_image_grids(writer, workdir, step, {
        "samples": image_grid.make_grid(samples),
        # Top row: test images; bottom row: their reconstructions.
        "reconstructions": image_grid.make_grid(
            np.concatenate([originals, recons]), num_cols=num_cols)})
    return metrics

  eval_metrics, eval_seconds = None, 0.0
  pending_metrics = []
  loop_start = time.perf_counter()
  for step in range(start_step + 1, total_steps + 1):
    state, metrics = jitted_train_step(state, next(batches), train_rng)
    pending_metrics.append(metrics)
    report_progress(step)
    # Host reads happen only here, so the device queue stays full otherwise.
    if step % config.log_every_steps == 0 or step == total_steps:
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
    if step % config.checkpoint_every_steps == 0 or step == total_steps:
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
    _write_json_atomically(os.path.join(workdir, "results.json"), results)
  logging.info("Final metrics: %s", results)
  return results
