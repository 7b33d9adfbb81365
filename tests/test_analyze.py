"""vae_jax.analyze on tiny mock-MNIST runs, and the IWAE estimator's math."""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from testbed import TINY_AUTOENCODER
from testbed import make_tiny_config
from testbed import save_untrained_run
from vae_jax import errors
from vae_jax.analysis import latent_metrics
from vae_jax.analysis import pretrained
from vae_jax.analysis import report as report_lib
from vae_jax.analysis import runs as runs_lib
from vae_jax.core import provenance
from vae_jax.core import weights_file
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

NUM_EXAMPLES = 40  # Mock MNIST: 40 test images too.
ALL_FIGURES = (
  "learning_curves.png",
  "reconstructions.png",
  "samples.png",
  "traversal.png",
  "interpolation.png",
  "latent_2d.png",
  "frechet_over_training.png",
)


def autoencoder_config():
  config = make_tiny_config(
    base=run_config.default_config("fc_autoencoder"), model=TINY_AUTOENCODER
  )
  assert config.input.pixel_range == "symmetric"
  return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Workdirs of a trained VAE and conditional VAE, and of an untrained
  plain autoencoder."""
  workdirs = {
    "vae": tmp_path_factory.mktemp("vae"),
    "cvae": tmp_path_factory.mktemp("cvae"),
    "autoencoder": tmp_path_factory.mktemp("autoencoder"),
  }
  # The MNIST classifier that judges samples is cached in the data dir.
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  for name, base in (
    ("vae", None),
    ("cvae", run_config.default_config("conditional_vae")),
  ):
    config = make_tiny_config(base=base)
    config.num_epochs = 1  # 5 steps: enough to log curves, and quicker.
    config.input.data_dir = data_dir
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      loop.train_and_evaluate(config, str(workdirs[name]))
  save_untrained_run(autoencoder_config(), workdirs["autoencoder"])
  return workdirs


def run_analyze(workdir, **kwargs):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    return report_lib.analyze(str(workdir), **kwargs)


def test_conditional_vae_analysis_judges_each_class_asked_for(
  runs, monkeypatch
):
  monkeypatch.setattr(report_lib, "NUM_METRIC_SAMPLES", 200)
  report = run_analyze(runs["cvae"], num=4, iwae_k=3, iwae_examples=10)
  out_dir = runs["cvae"] / "analysis"
  for name in (*ALL_FIGURES, "pairs.png"):
    assert (out_dir / name).stat().st_size > 0, name
  # 200 samples, every digit in turn: 20 asked for each.
  per_class = report["conditioning_accuracy_per_class"]
  assert len(per_class) == 10 and None not in per_class
  np.testing.assert_allclose(
    report["conditioning_accuracy"], np.mean(per_class), rtol=1e-6
  )
  # The conditional -log p(x | y), from the same draws as its -ELBO.
  assert report["iwae_nll_k3"] <= report["iwae_examples_nelbo"]


def test_vae_analysis_writes_every_figure_and_sane_numbers(runs, monkeypatch):
  # Enough samples for k-NN balls; 10,000 would add seconds of distances.
  monkeypatch.setattr(report_lib, "NUM_METRIC_SAMPLES", 200)
  report = run_analyze(runs["vae"], num=4, iwae_k=3, iwae_examples=10)
  out_dir = runs["vae"] / "analysis"
  for name in ALL_FIGURES:
    assert (out_dir / name).stat().st_size > 0, name
  assert json.loads((out_dir / "analysis.json").read_text()) == json.loads(
    json.dumps(report)
  )
  assert report["skipped"] == {}
  # MNIST has no factor grid: nothing to score disentanglement against.
  assert "disentanglement" not in report
  assert not (out_dir / "traversal_per_unit.png").exists()
  assert report["step"] == 5 and report["model"] == "mlp_vae"
  assert report["num_test_images"] == NUM_EXAMPLES
  for key in (
    "test_loss",
    "test_nelbo",
    "test_recon",
    "test_kl",
    "test_mse",
    "iwae_nll_k3",
    "iwae_examples_nelbo",
    "sample_diversity",
    "test_image_diversity",
    "frechet_distance_classifier_features",
  ):
    assert np.isfinite(report[key]) and report[key] > 0, key
  np.testing.assert_allclose(
    report["test_nelbo"], report["test_recon"] + report["test_kl"], rtol=1e-5
  )
  assert len(report["kl_per_dim"]) == 4
  # The per-dimension KLs of the test codes add up to the eval's KL term.
  np.testing.assert_allclose(
    sum(report["kl_per_dim"]), report["test_kl"], rtol=1e-4
  )
  assert report["active_units"] == sum(
    kl > report["active_unit_threshold_nats"] for kl in report["kl_per_dim"]
  )
  assert 0 <= report["active_units_by_variance"] <= 4
  assert report["likelihood_of"].startswith("grey-level pixels")
  # The traversal varies the two dims with the most KL by default.
  assert sorted(report["traversal"]["dims"]) == sorted(
    np.argsort(report["kl_per_dim"])[-2:].tolist()
  )
  separation = report["class_separation"]
  assert separation["num_points"] == NUM_EXAMPLES
  assert 0 <= separation["knn_accuracy"] <= 1
  assert -1 <= separation["silhouette"] <= 1
  assert report["iwae_examples"] == 10
  # From the same samples, the IWAE bound is the tighter one.
  assert report["iwae_nll_k3"] <= report["iwae_examples_nelbo"]
  assert report["frechet_num_samples"] == 200
  curve = report["frechet_over_training"]
  assert curve["steps"] == runs_lib.kept_steps(str(runs["vae"]))
  assert len(curve["frechet_distance"]) == len(curve["steps"])
  assert_sample_quality_keys(report)


def assert_sample_quality_keys(report):
  """`sample_quality.quality_metrics`'s keys in analysis.json, in range."""
  assert report["precision_recall_k"] == 3
  for key in (
    "precision_classifier_features",
    "recall_classifier_features",
    "precision_real_train_images",
    "recall_real_train_images",
  ):
    assert 0.0 <= report[key] <= 1.0, key
  for key in ("sample_sharpness", "test_image_sharpness"):
    assert np.isfinite(report[key]) and report[key] > 0, key
  np.testing.assert_allclose(
    report["relative_sharpness"],
    report["sample_sharpness"] / report["test_image_sharpness"],
  )


def test_autoencoder_analysis_skips_what_needs_a_prior(runs):
  report = run_analyze(runs["autoencoder"], iwae_k=3)
  out_dir = runs["autoencoder"] / "analysis"
  for name in ("reconstructions.png", "interpolation.png", "latent_2d.png"):
    assert (out_dir / name).stat().st_size > 0, name
  for name in ("samples.png", "traversal.png"):
    assert not (out_dir / name).exists()
    assert "no prior" in report["skipped"][name]
  # Never trained, so it logged no losses to plot.
  assert "no scalars" in report["skipped"]["learning_curves.png"]
  for key in ("sample_diversity", "kl_per_dim", "active_units", "iwae"):
    assert key in report["skipped"]
  assert "iwae_nll_k3" not in report and "test_kl" not in report
  assert np.isfinite(report["test_mse"])
  assert 0 <= report["class_separation"]["knn_accuracy"] <= 1


@pytest.mark.parametrize(
  "kwargs,message",
  [
    ({"dims": (0, 4)}, "two different latent dims in \\[0, 4\\)"),
    ({"dims": (1, 1)}, "two different latent dims"),
    ({"traversal_center": "first"}, "'zero' or a test image index"),
    ({"attribute": "Smiling"}, "needs a celeb_a run"),
    ({"iwae_k": -1}, "--iwae_k must be >= 0"),
    ({"num": 0}, "--num must be >= 1"),
    ({"curve_samples": -1}, "--curve_samples must be >= 0"),
  ],
)
def test_bad_options_are_user_errors(runs, kwargs, message):
  with pytest.raises(errors.UserInputError, match=message):
    run_analyze(runs["vae"], **kwargs)


def test_active_units_count_the_dimensions_a_known_posterior_uses():
  rng = np.random.default_rng(0)
  # Dims 0 and 1 carry the image (means vary, variances small); 2 ignores
  # it (mean 0, variance 1: the prior); 3 varies its mean by only 0.05.
  mu = np.stack(
    [
      rng.normal(size=5000),
      2 * rng.normal(size=5000),
      np.zeros(5000),
      0.05 * rng.normal(size=5000),
    ],
    axis=1,
  )
  logvar = np.log(np.array([0.01, 0.01, 1.0, 1.0]))[None].repeat(5000, 0)
  kl = latent_metrics.kl_per_dimension(mu, logvar)
  # KL of N(m, s^2) to N(0, 1): (s^2 + m^2 - 1 - log s^2) / 2, averaged.
  np.testing.assert_allclose(
    kl,
    [
      (0.01 + 1 - 1 - math.log(0.01)) / 2,
      (0.01 + 4 - 1 - math.log(0.01)) / 2,
      0.0,
      0.0025 / 2,
    ],
    rtol=0.05,
  )
  assert latent_metrics.active_units_by_variance(mu) == 2
  assert int(np.sum(kl > latent_metrics.ACTIVE_UNIT_NATS)) == 2


def test_class_separation_is_perfect_on_apart_clusters_and_chance_on_noise():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 50)
  centers = 10 * np.eye(4)[labels]
  apart = latent_metrics.class_separation(
    centers + rng.normal(size=(200, 4)), labels, seed=0
  )
  assert apart["knn_accuracy"] == 1.0 and apart["silhouette"] > 0.7
  noise = latent_metrics.class_separation(
    rng.normal(size=(200, 4)), labels, seed=0
  )
  assert noise["knn_accuracy"] < 0.45 and abs(noise["silhouette"]) < 0.1


def test_likelihood_of_names_what_the_loss_measures(tiny_config):
  assert report_lib.likelihood_of(tiny_config).startswith(
    "grey-level pixels read as Bernoulli"
  )
  tiny_config.loss.likelihood = "gaussian"
  assert "under the gaussian likelihood" in report_lib.likelihood_of(
    tiny_config
  )
  tiny_config.input.binarize = "dynamic"
  assert "binarized-MNIST literature" in report_lib.likelihood_of(tiny_config)
  autoencoder = run_config.default_config("fc_autoencoder")
  assert report_lib.likelihood_of(autoencoder).startswith("no likelihood")


@pytest.mark.parametrize("num_codes", [60, 300])  # Exact and Barnes-Hut.
def test_a_collapsed_posterior_maps_to_one_point(num_codes):
  # A KL weight large enough leaves every test image with the same code.
  codes = np.full((num_codes, 16), 0.25, np.float32)
  coords, method = latent_metrics.embed_2d(codes, seed=0)
  assert method == "raw" and coords.shape == (num_codes, 2)
  assert np.all(coords == 0.25)
  spread = codes + np.random.default_rng(0).normal(size=codes.shape)
  assert latent_metrics.embed_2d(spread, seed=0)[1] == "t-SNE"


def test_interpolation_pairs_mix_classes_then_repeat_one():
  labels = np.array([3, 1, 3, 0, 1, 2, 0])
  pairs = latent_metrics.interpolation_pairs(labels, num_pairs=3)
  # Classes 0-1 and 2-3 (first of each), then the two 0s.
  assert pairs == [(3, 1), (5, 0), (3, 6)]


def test_slerp_keeps_the_norm_of_equal_norm_codes():
  start, end = np.array([3.0, 0.0]), np.array([0.0, 3.0])
  path = latent_metrics.slerp(start, end, np.linspace(0, 1, 5))
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0)
  np.testing.assert_allclose(path[[0, -1]], [start, end], atol=1e-12)


def linear_gaussian_log_weights(model, x, key, num):
  """log w [num, B] of z ~ q(z|x) = N(A (x - b) + 0.3, exp(logvar)) under
  p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I); x [B, X]."""
  w, b, s, a, logvar = model
  mu = (x - b[None]) @ a.T + 0.3
  eps = jax.random.normal(key, (num, *mu.shape))
  logvar = jnp.broadcast_to(logvar, eps.shape)
  z = mu[None] + jnp.exp(0.5 * logvar) * eps
  mean = jnp.einsum("sbd,xd->sbx", z, w) + b[None, None]
  log_px_z = -0.5 * jnp.sum(
    jnp.square((x[None] - mean) / s) + 2 * jnp.log(s) + math.log(2 * math.pi),
    axis=-1,
  )
  log_pz = -0.5 * jnp.sum(jnp.square(z) + math.log(2 * math.pi), axis=-1)
  log_qz = -0.5 * jnp.sum(
    jnp.square(eps) + logvar + math.log(2 * math.pi), axis=-1
  )
  return log_px_z + log_pz - log_qz


def test_iwae_converges_to_the_exact_log_likelihood():
  # p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): p(x) = N(b, W W^T + s^2 I).
  rng = np.random.default_rng(0)
  latent, observed, batch, s = 3, 6, 100, 0.5
  w, b = rng.normal(size=(observed, latent)), rng.normal(size=observed)
  x = (
    rng.normal(size=(batch, latent)) @ w.T
    + b
    + s * rng.normal(size=(batch, observed))
  )
  cov = w @ w.T + s**2 * np.eye(observed)
  centered = x - b
  exact = -0.5 * (
    np.einsum("bi,ij,bj->b", centered, np.linalg.inv(cov), centered)
    + np.linalg.slogdet(cov)[1]
    + observed * math.log(2 * math.pi)
  )
  # q is deliberately off: the true posterior's mean shifted, its
  # correlations dropped and its variances doubled.
  posterior_cov = np.linalg.inv(np.eye(latent) + w.T @ w / s**2)
  a = posterior_cov @ w.T / s**2  # mu = A (x - b) + 0.3.
  logvar = np.log(2 * np.diag(posterior_cov))
  model = tuple(jnp.asarray(v, jnp.float32) for v in (w, b, s, a, logvar))
  errors = {}
  for k in (1, 10, 100, 5000):
    # 7-image batches and 256-draw chunks: both end in padding or a mask.
    estimate, elbo = latent_metrics.importance_weighted_log_likelihood(
      linear_gaussian_log_weights,
      model,
      x.astype(np.float32),
      jax.random.PRNGKey(k),
      num_samples=k,
      batch_size=7,
      chunk_size=256,
    )
    errors[k] = np.mean(exact - estimate)
    # log of a mean >= mean of logs, sample by sample (Jensen).
    assert np.all(elbo <= estimate + 1e-4)
  overshoot = np.max(estimate - exact)
  assert errors[1] > 1.0  # K = 1 is the ELBO, well below log p(x) here.
  assert errors[1] > errors[10] > errors[100] > abs(errors[5000])
  assert abs(errors[5000]) < 0.02
  # A lower bound in expectation: above exact only by sampling noise, which
  # shrinks like 1/sqrt(K) (0.08 nats at most here).
  assert overshoot < 0.2
  # 5000 samples pin the ELBO down; a single sample scatters around it.
  # (A 100-image mean of single draws scatters by ~0.9 nats around 9.7 here.)
  np.testing.assert_allclose(np.mean(exact - elbo), errors[1], rtol=0.25)


def test_exported_model_loads_as_its_run_and_checks_its_card(
  runs, tmp_path, monkeypatch
):
  monkeypatch.setattr(report_lib, "NUM_METRIC_SAMPLES", 200)
  monkeypatch.setattr(pretrained, "CHECK_EXAMPLES", 16)
  monkeypatch.setattr(pretrained, "CHECK_IMPORTANCE_SAMPLES", 5)
  run_analyze(runs["cvae"], iwae_k=3, iwae_examples=8, curve_samples=0)
  folder = tmp_path / "pretrained" / "tiny_cvae"
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    card = pretrained.export(str(runs["cvae"]), str(folder), command="train")
    trained = runs_lib.load(str(runs["cvae"]))
    exported = runs_lib.load(str(folder))
  assert sorted(os.listdir(tmp_path / "pretrained")) == ["tiny_cvae"]
  # The weights, BatchNorm statistics and step; no optimizer state.
  names = set(weights_file.read(str(folder)))
  assert "step" in names and any(n.startswith("params.") for n in names)
  assert not any("opt_state" in name for name in names)
  assert exported.step == trained.step == card["steps"]
  jax.tree.map(
    np.testing.assert_array_equal,
    jax.device_get(exported.state.params),
    jax.device_get(trained.state.params),
  )
  codes = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
  np.testing.assert_array_equal(
    runs_lib.decode(exported, codes), runs_lib.decode(trained, codes)
  )
  # The card: provenance the run recorded, and check figures that the
  # folder's own weights and images give again.
  results = json.loads((runs["cvae"] / "results.json").read_text())
  assert card["commit"] == {
    "value": provenance.source_commit(),
    "source": "recorded by the run",
  }
  assert card["hardware"]["value"] == results["hardware"]
  assert card == json.loads((folder / "card.json").read_text())
  assert card["check"]["examples"] == 16
  again = pretrained.check_figures(
    exported, pretrained.read_check_examples(str(folder))
  )
  assert {name: pretrained.printed(v) for name, v in again.items()} == {
    name: card["check"][name] for name in again
  }
  assert (folder / "README.md").read_text() == pretrained.card_markdown(
    "tiny_cvae", card
  )
  # analyze reads the folder as a run: one kept step, the one it holds.
  report = run_analyze(folder, iwae_k=3, iwae_examples=8, curve_samples=16)
  assert report["step"] == trained.step
  assert report["frechet_over_training"]["steps"] == [trained.step]
  # A folder whose config does not fit its weights names the difference.
  config = json.loads((folder / "config.json").read_text())
  config["model"]["latent_size"] = 5
  (folder / "config.json").write_text(json.dumps(config))
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    with pytest.raises(errors.UserInputError, match="does not fit the config"):
      runs_lib.load(str(folder))


def test_export_refuses_a_model_without_likelihood_and_writes_nothing(
  runs, tmp_path
):
  workdir = tmp_path / "autoencoder"
  shutil.copytree(runs["autoencoder"], workdir)
  (workdir / "results.json").write_text('{"steps": 0}')
  (workdir / "analysis").mkdir(exist_ok=True)
  (workdir / "analysis" / "analysis.json").write_text("{}")
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    with pytest.raises(errors.UserInputError, match="has no likelihood"):
      pretrained.export(str(workdir), str(tmp_path / "out"), command="train")
  assert sorted(os.listdir(tmp_path)) == ["autoencoder"]
