"""The train step, evaluation, and whole runs on mock MNIST."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from testbed import assemble
from testbed import batchnorm_config
from testbed import initial_state
from vae_jax import errors
from vae_jax.analysis import event_logs
from vae_jax.core import checkpoints
from vae_jax.core import finite_guard
from vae_jax.models import registry
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network


def make_state(config, image_shape=(28, 28, 1)):
  return initial_state(
    config, assemble(config, image_shape), image_shape, total_steps=100
  )


def train_step(config):
  return single_network.make_steps(config, assemble(config))[0]


def random_batch(size=8, seed=0):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.uniform(size=(size, 28, 28, 1)).astype(np.float32),
    "label": rng.integers(0, 10, size).astype(np.int32),
  }


def test_train_step_compiles_once_and_learns(tiny_config):
  step = jax.jit(train_step(tiny_config), donate_argnums=0)
  state = make_state(tiny_config)
  batch = random_batch()
  rng = jax.random.PRNGKey(1)
  losses = []
  for _ in range(20):
    state, metrics = step(state, batch, rng)
    losses.append(float(metrics["loss"]))
  assert step._cache_size() == 1  # pylint: disable=protected-access
  assert int(state.step) == 20
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0]
  for name in ("loss", "recon", "kl", "mse"):
    assert metrics[name].shape == ()


def test_train_step_uses_a_fresh_sample_each_step(tiny_config):
  state = make_state(tiny_config)
  batch = random_batch()
  rng = jax.random.PRNGKey(1)
  step = jax.jit(train_step(tiny_config))
  _, first = step(state, batch, rng)
  _, same_step = step(state, batch, rng)
  _, next_step = step(state.replace(step=state.step + 1), batch, rng)
  assert float(first["loss"]) == float(same_step["loss"])
  assert float(first["loss"]) != float(next_step["loss"])


@pytest.mark.parametrize(
  "learned_variance,shape", [("shared", ()), ("per_pixel", (28, 28, 1))]
)
def test_learned_gaussian_variance_is_a_trained_parameter(
  tiny_config, learned_variance, shape
):
  tiny_config.loss.likelihood = "gaussian_learned"
  tiny_config.loss.learned_variance = learned_variance
  state = make_state(tiny_config)
  assert state.params["pixel_logvar"].shape == shape
  step = jax.jit(train_step(tiny_config))
  new_state, metrics = step(state, random_batch(), jax.random.PRNGKey(1))
  assert np.isfinite(float(metrics["loss"]))
  assert not np.allclose(
    new_state.params["pixel_logvar"], state.params["pixel_logvar"]
  )


def test_pixel_range_must_match_the_model(tiny_config):
  tiny_config.input.pixel_range = "symmetric"
  with pytest.raises(errors.ConfigError, match="pixel_range='unit'"):
    make_state(tiny_config)


def test_eval_step_ignores_padding(tiny_config):
  state = make_state(tiny_config)
  batch = random_batch(size=8)
  batch["mask"] = np.array([True] * 5 + [False] * 3)
  eval_step = jax.jit(
    single_network.make_steps(tiny_config, assemble(tiny_config))[1]
  )
  sums = eval_step(state, batch, jax.random.PRNGKey(0))
  unpadded = {k: v[:5] for k, v in batch.items()}
  unpadded_sums = eval_step(state, unpadded, jax.random.PRNGKey(0))
  assert float(sums["count"]) == 5
  # The same key draws different noise for different batch sizes, so compare
  # the deterministic reconstruction error only.
  np.testing.assert_allclose(sums["mse"], unpadded_sums["mse"], rtol=1e-5)


def run(config, workdir, num_examples=40):
  with tfds.testing.mock_data(num_examples=num_examples):
    return loop.train_and_evaluate(config, str(workdir))


def test_train_and_evaluate_writes_every_output(tiny_config, tmp_path):
  results = run(tiny_config, tmp_path)
  steps_per_epoch = 40 // tiny_config.batch_size
  assert results["steps"] == 2 * steps_per_epoch
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk == pytest.approx(results)
  for key in ("test_loss", "test_recon", "test_kl", "test_mse"):
    assert np.isfinite(on_disk[key])
  np.testing.assert_allclose(
    on_disk["test_loss"], on_disk["test_recon"] + on_disk["test_kl"], rtol=1e-5
  )
  assert on_disk["num_params"] == registry.count_params(
    make_state(tiny_config).params
  )
  assert on_disk["images_per_second"] > 0 and on_disk["train_seconds"] > 0
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 8
  assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
  for name in ("samples", "reconstructions"):
    for step in (steps_per_epoch, 2 * steps_per_epoch):
      assert (tmp_path / f"{name}_{step:06d}.png").stat().st_size > 0
  checkpoints = sorted(int(p) for p in os.listdir(tmp_path / "checkpoints"))
  assert checkpoints[-1] == 2 * steps_per_epoch
  assert len(checkpoints) <= tiny_config.max_checkpoints_to_keep


def test_evaluates_every_eval_every_epochs_and_at_the_end(
  tiny_config, tmp_path
):
  tiny_config.num_epochs = 3
  tiny_config.eval_every_epochs = 2
  run(tiny_config, tmp_path)
  steps_per_epoch = 40 // tiny_config.batch_size
  drawn = sorted(p.name for p in tmp_path.glob("samples_*.png"))
  assert drawn == [
    f"samples_{step:06d}.png"
    for step in (2 * steps_per_epoch, 3 * steps_per_epoch)
  ]
  test_steps, _ = event_logs.read_scalars(str(tmp_path))["test_loss"]
  assert list(test_steps) == [2 * steps_per_epoch, 3 * steps_per_epoch]


def test_num_steps_trains_that_many_steps_across_epochs(tiny_config, tmp_path):
  """num_steps, when set, replaces num_epochs: here 1.4 epochs, evaluated
  at the end of the first and at the last step."""
  steps_per_epoch = 40 // tiny_config.batch_size
  tiny_config.num_steps = steps_per_epoch + 2
  results = run(tiny_config, tmp_path)
  assert results["steps"] == steps_per_epoch + 2
  test_steps, _ = event_logs.read_scalars(str(tmp_path))["test_loss"]
  assert list(test_steps) == [steps_per_epoch, steps_per_epoch + 2]
  tiny_config.num_steps = -1
  with pytest.raises(errors.ConfigError, match="num_steps must be >= 0"):
    run_config.check_config(tiny_config)


def test_rerun_resumes_from_the_newest_checkpoint(tiny_config, tmp_path):
  # Dynamically binarized: its draws, too, must continue where they stopped.
  # (tests/test_exact_resume.py checks the same on the executables
  # production compiles.)
  tiny_config.input.binarize = "dynamic"
  steps_per_epoch = 40 // tiny_config.batch_size
  uninterrupted = run(tiny_config, tmp_path / "uninterrupted")
  tiny_config.num_epochs = 1
  first = run(tiny_config, tmp_path / "resumed")
  tiny_config.num_epochs = 2
  resumed = run(tiny_config, tmp_path / "resumed")
  assert first["start_step"] == 0 and first["steps"] == steps_per_epoch
  assert resumed["start_step"] == steps_per_epoch
  assert resumed["steps"] == 2 * steps_per_epoch
  # Batches, draws and noise depend on the step alone: resuming changes
  # nothing, to the last bit.
  for key in ("test_loss", "test_recon", "test_kl", "test_mse"):
    assert resumed[key] == uninterrupted[key], key
  finished = run(tiny_config, tmp_path / "resumed")  # Evaluates only.
  assert finished["start_step"] == finished["steps"] == 2 * steps_per_epoch
  assert finished["test_mse"] == resumed["test_mse"]


def test_non_finite_step_is_skipped_but_counted(tiny_config):
  state = make_state(tiny_config)
  step = jax.jit(train_step(tiny_config))
  poisoned = random_batch()
  poisoned["image"][0, 0, 0, 0] = np.nan
  skipped, metrics = step(state, poisoned, jax.random.PRNGKey(1))
  assert not bool(metrics["finite"])
  assert int(skipped.step) == 1  # Its batch is used up all the same.
  for before, after in zip(
    jax.tree.leaves((state.params, state.opt_state)),
    jax.tree.leaves((skipped.params, skipped.opt_state)),
  ):
    np.testing.assert_array_equal(before, after)
  applied, metrics = step(skipped, random_batch(), jax.random.PRNGKey(1))
  assert bool(metrics["finite"])
  assert not np.array_equal(
    applied.params["encoder"]["mu"]["kernel"],
    state.params["encoder"]["mu"]["kernel"],
  )


def test_non_finite_step_keeps_the_batchnorm_statistics(tiny_config):
  # A NaN batch gives NaN statistics; kept, they would poison every later
  # evaluation (which normalizes with them) though no parameter changed.
  config = batchnorm_config(tiny_config)
  image_shape = (16, 16, 1)
  parts = assemble(config, image_shape)
  state = initial_state(config, parts, image_shape, total_steps=10)
  step = jax.jit(single_network.make_steps(config, parts)[0])
  # The step and batch shapes of test_checkpoints: one compilation a session.
  images = np.random.default_rng(0).uniform(size=(8, *image_shape))
  images = images.astype(np.float32)
  poisoned = images.copy()
  poisoned[0, 0, 0, 0] = np.nan
  skipped, metrics = step(
    state,
    {"image": poisoned, "label": np.zeros(len(poisoned), np.int32)},
    jax.random.PRNGKey(1),
  )
  assert not bool(metrics["finite"])
  flat = jax.tree_util.tree_flatten_with_path
  assert flat(state.batch_stats)[0]  # The model has BatchNorm statistics.
  for (path, before), (_, after) in zip(
    flat(state.batch_stats)[0], flat(skipped.batch_stats)[0]
  ):
    assert np.array_equal(before, after), (
      f"batch_stats{jax.tree_util.keystr(path)} changed by a skipped step"
    )
  applied, metrics = step(
    skipped,
    {"image": images, "label": np.zeros(len(images), np.int32)},
    jax.random.PRNGKey(1),
  )
  assert bool(metrics["finite"])
  assert not all(
    np.array_equal(before, after)
    for before, after in zip(
      jax.tree.leaves(skipped.batch_stats), jax.tree.leaves(applied.batch_stats)
    )
  )


def test_window_summary_averages_applied_steps_and_carries_the_streak():
  def step(loss):
    return {"loss": np.float32(loss), "finite": np.bool_(np.isfinite(loss))}

  summary, streak = loop.summarize_window(
    [step(1.0), step(np.nan), step(3.0), step(np.inf), step(np.nan)], 4
  )
  assert summary == {"loss": 2.0, "nonfinite_steps": 3.0}
  assert streak == 2
  summary, streak = loop.summarize_window([step(np.nan)] * 2, streak)
  assert summary == {"nonfinite_steps": 2.0} and streak == 4


def test_diverging_run_stops_and_keeps_its_good_checkpoint(
  tiny_config, tmp_path
):
  tiny_config.optimizer.learning_rate = 1e30
  tiny_config.max_consecutive_nonfinite = 2
  tiny_config.checkpoint_every_steps = 1
  with pytest.raises(FloatingPointError, match="non-finite loss or gradient"):
    run(tiny_config, tmp_path)
  assert not (tmp_path / "results.json").exists()
  saved = sorted(
    int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit()
  )
  manager = checkpoints.make_manager(str(tmp_path), tiny_config)
  state, _ = checkpoints.restore(
    manager, make_state(tiny_config), jax.random.PRNGKey(0)
  )
  assert int(state.step) == saved[-1]
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_exactly_max_consecutive_nonfinite_skipped_steps_stop_the_run(
  tiny_config, tmp_path, monkeypatch
):
  # Steps 2 and 4-5 of the first epoch's 5 are skipped, as non-finite ones
  # are: the single skip (one fewer than the limit of 2) lets the run go on,
  # the two in a row stop it at step 5.
  skipped_steps = jnp.array([2, 4, 5])
  train_step = single_network.train_step

  def train_step_skipping(state, batch, rng, *, settings):
    updated, metrics = train_step(state, batch, rng, settings=settings)
    finite = metrics["finite"] & ~jnp.isin(state.step + 1, skipped_steps)
    updated = finite_guard.keep_if_finite(
      finite, updated, state.replace(step=state.step + 1)
    )
    return updated, {**metrics, "finite": finite}

  monkeypatch.setattr(single_network, "train_step", train_step_skipping)
  tiny_config.max_consecutive_nonfinite = 2
  tiny_config.log_every_steps = 1  # The streak read after every step.
  with pytest.raises(
    FloatingPointError, match=r"^the last 2 steps, to step 5,"
  ):
    run(tiny_config, tmp_path)


def test_shape_changing_config_is_refused_unless_allowed(tiny_config, tmp_path):
  run(tiny_config, tmp_path)
  tiny_config.model.latent_size = 3
  with pytest.raises(
    errors.UserInputError, match=r"model.latent_size \(4 -> 3\).*shapes"
  ):
    run(tiny_config, tmp_path)
  assert (
    json.loads((tmp_path / "config.json").read_text())["model"]["latent_size"]
    == 4
  )
  tiny_config.allow_config_change = True
  tiny_config.num_epochs = 1
  results = run(tiny_config, tmp_path)
  assert results["start_step"] == 0  # Started over...
  assert glob.glob(str(tmp_path / "checkpoints.before_*" / "10"))  # ...kept.
  assert glob.glob(str(tmp_path / "config.before_*.json"))
