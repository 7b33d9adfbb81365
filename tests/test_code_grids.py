"""The VQ-VAE's second stage: a prior trained on a finished VQ-VAE run's code
grids (`input.codes_of`), against the VQ-VAE and the prior applied by hand."""

from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import mnist_vqvae_prior
from test_exact_resume import check_sigterm_then_rerun_is_exact
from test_vq_vae import NUM_EXAMPLES
from test_vq_vae import tiny_run_config as tiny_vq_vae_config
import testbed
from vae_jax import errors
from vae_jax.analysis import code_prior_report
from vae_jax.analysis import runs
from vae_jax.analysis import sampling
from vae_jax.core import image_grid
from vae_jax.data import binarize
from vae_jax.data import sources
from vae_jax.models import code_prior
from vae_jax.models import registry
from vae_jax.trainers import code_grids
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import saved_runs

TINY_PRIOR = {
  "model.codebook_size": 8,  # TINY_VQ_VAE's.
  "model.width": 16,
  "model.num_layers": 1,
  "model.num_heads": 2,
  "model.mlp_ratio": 2,
}


def mock_data():
  return tfds.testing.mock_data(num_examples=NUM_EXAMPLES)


@pytest.fixture(scope="module")
def vq_vae_run(tmp_path_factory):
  """A finished tiny VQ-VAE run on dynamically binarized mock MNIST."""
  workdir = tmp_path_factory.mktemp("vq_vae")
  config = tiny_vq_vae_config({"num_epochs": 1, "input.binarize": "dynamic"})
  config.input.data_dir = str(tmp_path_factory.mktemp("tfds"))
  with mock_data():
    loop.train_and_evaluate(config, str(workdir))
  return str(workdir)


def prior_config(codes_of, overrides=None):
  return testbed.make_tiny_config(
    {"input.codes_of": codes_of, **TINY_PRIOR, **(overrides or {})},
    base=run_config.default_config("code_prior"),
    model={},
  )


def test_code_grids_are_the_nearest_entries_of_the_fixed_draws(vq_vae_run):
  """Each position's code is the index of the codebook entry nearest the
  encoder's vector, for the VQ-VAE's fixed binarizations of its images."""
  with mock_data():
    grids = code_grids.CodeGrids(prior_config(vq_vae_run).input)
    config = saved_runs.load_config(vq_vae_run)
    run = grids.quantizer_run
    variables = {
      "params": run.state.params,
      "batch_stats": run.state.batch_stats,
    }
    for split, draw in (
      ("train", binarize.STATIC_TRAIN_DRAW),
      ("test", binarize.TEST_DRAW),
    ):
      examples = binarize.fixed_draw(
        sources.load(config.input, split, per_process=False), draw
      )
      images = np.stack([ex["image"] for ex in examples.as_numpy_iterator()])
      grid = run.parts.model.apply(
        variables, images / np.float32(255), method="encode"
      )
      codebook = variables["batch_stats"]["quantizer"]["embeddings"]
      flat = np.asarray(grid).reshape(-1, grid.shape[-1])
      distances = ((flat[:, None] - np.asarray(codebook)[None]) ** 2).sum(-1)
      expected = distances.argmin(-1).reshape(grid.shape[:-1])
      got = grids.grids(split)
      assert got.dtype == np.int32 and got.shape == (NUM_EXAMPLES, 7, 7)
      np.testing.assert_array_equal(got, expected, err_msg=split)
  assert grids.image_shape == (7, 7)
  assert grids.source == f"codes of {vq_vae_run} at step 5"


@pytest.fixture(scope="module")
def prior_run(vq_vae_run, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("prior")
  with mock_data():
    results = loop.train_and_evaluate(prior_config(vq_vae_run), str(workdir))
  return str(workdir), results


def test_prior_run_reports_the_log_loss_of_the_test_grids(
  vq_vae_run, prior_run
):
  """Its test loss is the mean -log p(c) of the test split's grids, by the
  trained prior applied to them directly."""
  workdir, results = prior_run
  assert results["steps"] == 10 and results["nonfinite_steps"] == 0
  with mock_data():
    grids = code_grids.CodeGrids(prior_config(vq_vae_run).input)
  config = prior_config(vq_vae_run)
  parts = testbed.assemble(config, (7, 7))
  state = saved_runs.restore_state(workdir, config, parts, (7, 7), step=None)
  test_codes = grids.grids("test")
  logits = parts.model.apply({"params": state.params}, test_codes)
  log_p = np.asarray(code_prior.log_likelihood(logits, test_codes))
  np.testing.assert_allclose(results["test_loss"], -log_p.mean(), rtol=1e-5)
  np.testing.assert_allclose(
    results["test_bits_per_code"], -log_p.mean() / (49 * np.log(2)), rtol=1e-5
  )


def test_codes_of_a_run_without_codes_is_refused(tmp_path):
  config = testbed.make_tiny_config()
  testbed.save_untrained_run(config, tmp_path)
  with pytest.raises(errors.UserInputError, match="not of a vector-quantized"):
    with mock_data():
      code_grids.prepare_data(prior_config(str(tmp_path)))


def test_a_codebook_size_other_than_the_runs_is_refused(vq_vae_run):
  config = prior_config(vq_vae_run, {"model.codebook_size": 16})
  with pytest.raises(errors.ConfigError, match="codebook_size=8"):
    with mock_data():
      code_grids.prepare_data(config)


@pytest.mark.parametrize(
  "fields,message",
  [
    ({"input.codes_of": None}, "set both it and input.codes_of"),
    ({"input.pixel_range": "unit"}, "set both it and input.codes_of"),
  ],
)
def test_codes_and_their_pixel_range_go_together(fields, message):
  config = prior_config("/nonexistent", fields)
  with pytest.raises(errors.ConfigError, match=message):
    run_config.check_config(config)


@pytest.mark.slow
def test_sigterm_then_rerun_equals_the_uninterrupted_run(vq_vae_run, tmp_path):
  def run(config, workdir):
    with mock_data():
      return loop.train_and_evaluate(config, str(workdir))

  check_sigterm_then_rerun_is_exact(
    run,
    lambda: prior_config(vq_vae_run, {"num_epochs": 2}),
    tmp_path,
    "token_embedding",
  )


def bernoulli_nll(logits, images):
  """-log p(x | logits) per image, summed over pixels (SciPy's log-sigmoid
  form, independent of the objectives' code)."""
  logits = np.asarray(logits, np.float64).reshape(len(images), -1)
  pixels = np.asarray(images, np.float64).reshape(len(images), -1)
  return -(
    pixels * -np.logaddexp(0, -logits) + (1 - pixels) * -np.logaddexp(0, logits)
  ).sum(-1)


def test_analyze_reports_the_bound_as_its_two_terms_by_hand(
  vq_vae_run, prior_run
):
  """nll_bound = the VQ-VAE's -log p(x | z_q(x)) of the fixed test draw,
  decoded from the test grids, plus the prior's -log p(c(x)) of them."""
  workdir, _ = prior_run
  with mock_data():
    run = runs.load(workdir)
    report = code_prior_report.analyze(run, num_metric_samples=20)
    config = saved_runs.load_config(vq_vae_run)
    examples = binarize.fixed_draw(
      sources.load(config.input, "test", per_process=False), binarize.TEST_DRAW
    )
    images = np.stack([ex["image"] for ex in examples.as_numpy_iterator()])
  grids = run.data.grids("test")
  quantizer = run.data.quantizer_run
  logits = quantizer.parts.model.apply(
    {
      "params": quantizer.state.params,
      "batch_stats": quantizer.state.batch_stats,
    },
    grids,
    method="decode_indices",
  )
  reconstruction = bernoulli_nll(logits, images / 255).mean()
  prior_logits = run.model.apply({"params": run.state.params}, grids)
  code_log_loss = -np.asarray(
    code_prior.log_likelihood(prior_logits, grids)
  ).mean()
  terms = report["nll_bound_terms"]
  np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
  np.testing.assert_allclose(terms["code_log_loss"], code_log_loss, rtol=1e-5)
  assert report["nll_bound"] == terms["reconstruction"] + terms["code_log_loss"]
  assert report["likelihood_of"].startswith("nll_bound, an upper bound")
  assert "binarized-MNIST literature" in report["likelihood_of"]
  assert report["codebook_use"]["test"]["codes_used"] == len(np.unique(grids))
  assert 1 <= report["codebook_use"]["samples"]["codes_used"] <= 8
  assert report["frechet_num_samples"] == 20
  assert (Path(workdir) / "analysis" / "samples.png").stat().st_size > 0


def test_sample_decodes_the_priors_grids_through_the_vq_vae(prior_run):
  workdir, _ = prior_run
  with mock_data():
    run = runs.load(workdir)
    images = sampling.sample_images(run, 5, seed=3)
    again = sampling.sample_images(run, 5, seed=3)
    with pytest.raises(errors.UserInputError, match="conditional model"):
      sampling.sample_images(run, 5, label=1)
  grids = runs.sample_code_grids(run, jax.random.PRNGKey(3), 5)
  expected = code_grids.decode_grids(run.data.quantizer_run, grids)
  assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
  np.testing.assert_array_equal(images, again)
  np.testing.assert_array_equal(images, image_grid.to_uint8(expected))


def transformer_params(width, layers, mlp_ratio, codebook_size, positions):
  """A GPT-style prior's parameter count, layer by layer."""
  layer_norm = 2 * width
  dense = lambda inputs, outputs: inputs * outputs + outputs  # noqa: E731
  block = (
    2 * layer_norm
    + 4 * dense(width, width)  # Query, key, value, output.
    + dense(width, mlp_ratio * width)
    + dense(mlp_ratio * width, width)
  )
  return (
    (codebook_size + 1) * width  # Codes and the start token.
    + positions * width
    + layers * block
    + layer_norm
    + dense(width, codebook_size)
  )


def test_the_configs_prior_has_the_listed_params():
  config = mnist_vqvae_prior.get_config()
  state = loop.abstract_train_state(config, image_shape=(7, 7))
  assert registry.count_params(state.params) == transformer_params(
    128, 4, 4, 64, 49
  )


def test_codes_step_pins_the_vq_vae_checkpoint(vq_vae_run):
  """The grids of an older checkpoint differ from the newest one's, and
  the source names the step."""
  with mock_data():
    newest = code_grids.CodeGrids(prior_config(vq_vae_run).input)
    pinned = code_grids.CodeGrids(
      prior_config(vq_vae_run, {"input.codes_step": 3}).input
    )
  assert pinned.source == f"codes of {vq_vae_run} at step 3"
  assert (pinned.grids("test") != newest.grids("test")).any()
