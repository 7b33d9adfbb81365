"""β-TCVAE and DIP-VAE-I: their batch estimators against NumPy on batches
built by hand, their losses against the negative ELBO they extend, and a
few steps of each through the trainer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats
import tensorflow_datasets as tfds

from testbed import assemble
from testbed import initial_state
from testbed import make_tiny_config
from vae_jax.objectives import beta_tcvae
from vae_jax.objectives import dip_vae
from vae_jax.objectives import objective as objective_lib
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

IMAGE_SHAPE = (4, 4, 1)


def hand_built_posteriors(batch_size=6, latent_size=3, seed=0):
  """mu, logvar and eps [M, D], float64, and z = mu + sigma * eps."""
  rng = np.random.default_rng(seed)
  mu = rng.normal(size=(batch_size, latent_size))
  logvar = rng.uniform(-2.0, 0.5, size=(batch_size, latent_size))
  eps = rng.normal(size=(batch_size, latent_size))
  return mu, logvar, eps, mu + np.exp(0.5 * logvar) * eps


def numpy_mws(z, mu, sigma, log_prior, dataset_size):
  """Chen et al.'s minibatch-weighted sampling, per image, in float64."""
  batch_size = len(z)
  # [i, j, d]: log q(z_id | x_j).
  pairwise = stats.norm.logpdf(z[:, None, :], mu[None], sigma[None])
  log_nm = np.log(batch_size * dataset_size)
  log_qz = special.logsumexp(pairwise.sum(-1), axis=1) - log_nm
  log_marginals = (special.logsumexp(pairwise, axis=1) - log_nm).sum(-1)
  log_qz_x = stats.norm.logpdf(z, mu, sigma).sum(-1)
  return {
    "mutual_info": log_qz_x - log_qz,
    "total_correlation": log_qz - log_marginals,
    "dimension_wise_kl": log_marginals - log_prior,
  }


def run_mws(mu, logvar, eps, z, log_prior, dataset_size):
  as32 = [jnp.asarray(x, jnp.float32) for x in (z, eps, mu, logvar, log_prior)]
  return beta_tcvae.mws_decomposition(*as32, dataset_size=dataset_size)


def test_mws_parts_match_numpy_and_add_up_to_the_sampled_kl():
  mu, logvar, eps, z = hand_built_posteriors()
  log_prior = stats.norm.logpdf(z).sum(-1)  # N(0, I).
  parts = run_mws(mu, logvar, eps, z, log_prior, dataset_size=50)
  expected = numpy_mws(z, mu, np.exp(0.5 * logvar), log_prior, 50)
  for name, values in expected.items():
    np.testing.assert_allclose(parts[name], values, rtol=1e-4, atol=1e-4)
  # The estimator's own KL: the batch mean of log q(z|x) - log p(z).
  sampled_kl = np.mean(
    stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(-1) - log_prior
  )
  total = sum(np.mean(np.asarray(parts[name], np.float64)) for name in parts)
  np.testing.assert_allclose(total, sampled_kl, rtol=1e-5)


def test_mws_of_one_shared_posterior():
  """Every image with the same factorized posterior: q(z) = q(z|x), but MWS
  counts the batch as M of N images, so MI = log N and TC = (D - 1) log N."""
  mu, logvar, eps, _ = hand_built_posteriors(batch_size=5, latent_size=4)
  mu, logvar = (
    np.broadcast_to(mu[:1], mu.shape),
    np.broadcast_to(logvar[:1], logvar.shape),
  )
  z = mu + np.exp(0.5 * logvar) * eps
  parts = run_mws(mu, logvar, eps, z, np.zeros(5), dataset_size=30)
  np.testing.assert_allclose(parts["mutual_info"], math.log(30), rtol=1e-5)
  np.testing.assert_allclose(
    parts["total_correlation"], 3 * math.log(30), rtol=1e-5
  )


def test_covariance_penalties_vanish_for_an_identity_covariance():
  rng = np.random.default_rng(1)
  batch_size, latent_size = 16, 5
  centered = rng.normal(size=(batch_size, latent_size))
  centered -= centered.mean(axis=0)
  # Orthonormal columns spanning the centered ones: still of mean 0.
  columns, _ = np.linalg.qr(centered)
  mu = math.sqrt(batch_size) * columns + rng.normal(size=latent_size)
  assert np.allclose(np.cov(mu, rowvar=False, bias=True), np.eye(latent_size))
  off_diagonal, diagonal = dip_vae.covariance_penalties(jnp.asarray(mu))
  np.testing.assert_allclose([off_diagonal, diagonal], 0.0, atol=1e-5)


def test_covariance_penalties_match_numpy():
  mu = np.random.default_rng(2).normal(size=(10, 4)) * [1.0, 2.0, 0.5, 1.0]
  mu[:, 3] += 0.8 * mu[:, 0]  # Correlated, so both penalties are large.
  covariance = np.cov(mu, rowvar=False, bias=True)
  off_mask = ~np.eye(4, dtype=bool)
  off_diagonal, diagonal = dip_vae.covariance_penalties(
    jnp.asarray(mu, jnp.float32)
  )
  np.testing.assert_allclose(
    off_diagonal, np.sum(covariance[off_mask] ** 2), rtol=1e-5
  )
  np.testing.assert_allclose(
    diagonal, np.sum((np.diag(covariance) - 1) ** 2), rtol=1e-5
  )


def tiny_network(name, **loss_fields):
  """The objective `name`, its loss config, and a tiny MLP VAE as a train
  step runs it: the same parameters for every objective (PRNGKey(0))."""
  config = run_config.default_config("mlp_vae", name)
  config.model.hidden_sizes = (8,)
  config.model.latent_size = 3
  config.loss.update(loss_fields)
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  network = objective_lib.Network(
    parts.model,
    {"params": state.params, "batch_stats": state.batch_stats},
    train=True,
    compute_dtype="float32",
  )
  return parts.objective, config.loss, network


def terms_of(name, step=5, **loss_fields):
  objective, loss_config, network = tiny_network(name, **loss_fields)
  images = np.random.default_rng(3).uniform(size=(6, *IMAGE_SHAPE))
  terms, _ = objective.terms(
    network,
    jnp.asarray(images, jnp.float32),
    jax.random.PRNGKey(4),
    jnp.asarray(step),
    loss_config=loss_config,
  )
  return terms, network


def test_beta_tcvae_at_beta_one_is_the_negative_elbo_and_weights_the_tc():
  warmup = {
    "kl_warmup_steps": 10
  }  # At step 5, the latent term's weight is 0.5.
  elbo, _ = terms_of("negative_elbo", **warmup)
  at_one, _ = terms_of("beta_tcvae", tc_weight=1.0, **warmup)
  at_four, _ = terms_of("beta_tcvae", tc_weight=4.0, **warmup)
  np.testing.assert_allclose(at_one["loss"], elbo["loss"], rtol=1e-6)
  for name in ("nelbo", "recon", "kl"):
    np.testing.assert_allclose(at_one[name], elbo[name], rtol=1e-6)
  np.testing.assert_allclose(
    at_four["loss"] - elbo["loss"],
    0.5 * 3.0 * at_four["total_correlation"],
    rtol=1e-4,
    atol=1e-4,
  )


def test_dip_vae_adds_its_penalty_on_the_posterior_means():
  elbo, _ = terms_of("negative_elbo")
  dip, network = terms_of(
    "dip_vae", lambda_off_diagonal=2.0, lambda_diagonal=30.0
  )
  images = np.random.default_rng(3).uniform(size=(6, *IMAGE_SHAPE))
  mu, _ = network.module.apply(
    network.variables, jnp.asarray(images, jnp.float32), method="encode"
  )
  covariance = np.cov(np.asarray(mu, np.float64), rowvar=False, bias=True)
  penalty = 2.0 * np.sum(
    (covariance - np.diag(np.diag(covariance))) ** 2
  ) + 30.0 * np.sum((np.diag(covariance) - 1) ** 2)
  np.testing.assert_allclose(
    dip["loss"] - elbo["loss"], np.full(6, penalty), rtol=1e-4, atol=1e-4
  )


@pytest.mark.parametrize(
  "name,reported",
  [
    ("beta_tcvae", ("mutual_info", "total_correlation", "dimension_wise_kl")),
    ("dip_vae", ("off_diagonal_covariance", "diagonal_covariance")),
  ],
)
def test_trains_a_tiny_vae_without_nans(name, reported, tmp_path):
  config = make_tiny_config(
    {"num_epochs": 1}, base=run_config.default_config("mlp_vae", name)
  )
  if name == "beta_tcvae":
    config.loss.dataset_size = 40  # The mock training split's.
  with tfds.testing.mock_data(num_examples=40):
    results = loop.train_and_evaluate(config, str(tmp_path))
  assert results["steps"] == 5
  assert results["nonfinite_steps"] == 0  # None skipped by the guard.
  for term in ("loss", "recon", "kl", "nelbo", *reported):
    assert np.isfinite(results[f"test_{term}"]), term
