"""The ELBO's terms against closed forms computed independently in NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax.models import priors
from vae_jax.objectives import autoencoder_mse
from vae_jax.objectives import likelihoods
from vae_jax.objectives import negative_elbo


def test_kl_matches_diagonal_gaussian_formula():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(5, 7)).astype(np.float32)
  logvar = rng.normal(size=(5, 7)).astype(np.float32)
  sigma = np.exp(0.5 * logvar)
  # KL(N(mu, sigma^2) || N(0, 1)) = log(1/sigma) + (sigma^2 + mu^2)/2 - 1/2.
  expected = np.sum(-np.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5, axis=-1)
  np.testing.assert_allclose(
    priors.kl_to_standard_normal(jnp.asarray(mu), jnp.asarray(logvar)),
    expected,
    rtol=1e-5,
  )


def test_kl_is_zero_only_at_the_prior():
  zeros = jnp.zeros((2, 3))
  np.testing.assert_allclose(priors.kl_to_standard_normal(zeros, zeros), 0.0)
  assert float(priors.kl_to_standard_normal(zeros + 0.1, zeros)[0]) > 0


def test_bernoulli_nll_is_summed_binary_cross_entropy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  images = rng.uniform(size=(3, 4, 4, 1)).astype(np.float32)
  p = 1 / (1 + np.exp(-logits))
  expected = -np.sum(
    images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3)
  )
  np.testing.assert_allclose(
    likelihoods.bernoulli_nll(jnp.asarray(logits), jnp.asarray(images)),
    expected,
    rtol=1e-5,
  )


def test_bernoulli_nll_is_stable_and_its_gradient_is_sigmoid_minus_x():
  logits = jnp.asarray([[-200.0, -30.0, -1.0, 0.0, 2.0, 40.0, 200.0]])
  images = jnp.asarray([[0.0, 1.0, 0.5, 1.0, 0.0, 0.25, 1.0]])
  nll = likelihoods.bernoulli_nll(logits, images)
  x, y = np.float64(logits), np.float64(images)
  np.testing.assert_allclose(nll, np.sum(np.logaddexp(0, x) - x * y), rtol=1e-6)
  gradient = jax.grad(lambda x: likelihoods.bernoulli_nll(x, images).sum())(
    logits
  )
  np.testing.assert_allclose(
    gradient, jax.nn.sigmoid(logits) - images, atol=1e-7
  )


def test_gaussian_nll_is_the_normal_log_density():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(2, 6)).astype(np.float32)
  images = rng.uniform(size=(2, 6)).astype(np.float32)
  variance = 0.3
  mean = 1 / (1 + np.exp(-logits))
  log_density = -0.5 * (images - mean) ** 2 / variance - 0.5 * math.log(
    2 * math.pi * variance
  )
  np.testing.assert_allclose(
    likelihoods.gaussian_nll(
      jnp.asarray(logits), jnp.asarray(images), gaussian_variance=variance
    ),
    -log_density.sum(axis=-1),
    rtol=1e-5,
  )


def test_negative_elbo_weights_only_the_kl_term():
  logits = jnp.zeros((2, 3))
  images = jnp.full((2, 3), 0.5)
  kl = jnp.ones((2,))
  terms = negative_elbo.negative_elbo(
    logits, kl, images, likelihood="bernoulli", kl_weight=0.25
  )
  np.testing.assert_allclose(
    terms["loss"], terms["recon"] + 0.25 * terms["kl"], rtol=1e-6
  )
  np.testing.assert_allclose(
    terms["nelbo"], terms["recon"] + terms["kl"], rtol=1e-6
  )
  np.testing.assert_allclose(terms["recon"], 3 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(terms["kl"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(terms["mse"], 0.0)


@pytest.mark.parametrize(
  "step,expected", [(0, 0.0), (50, 0.5), (100, 1.0), (500, 1.0)]
)
def test_kl_warmup_ramps_linearly(step, expected):
  weight = negative_elbo.kl_weight_at(
    jnp.asarray(step), 2.0, kl_warmup_steps=100
  )
  np.testing.assert_allclose(weight, 2.0 * expected, rtol=1e-6)


def test_kl_weight_without_warmup_is_constant():
  np.testing.assert_allclose(
    negative_elbo.kl_weight_at(jnp.asarray(0), 0.3, 0), 0.3
  )


def test_reparameterize_has_the_posterior_moments_and_gradients():
  mu = jnp.array([1.0, -2.0])
  logvar = jnp.log(jnp.array([0.25, 4.0]))
  z = jax.vmap(lambda key: negative_elbo.reparameterize(key, mu, logvar)[0])(
    jax.random.split(jax.random.PRNGKey(0), 20000)
  )
  np.testing.assert_allclose(z.mean(0), mu, atol=0.05)
  np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.03)
  # The sample is differentiable in mu: d z / d mu = 1.
  grad = jax.grad(
    lambda m: negative_elbo.reparameterize(jax.random.PRNGKey(1), m, logvar)[
      0
    ].sum()
  )(mu)
  np.testing.assert_allclose(grad, 1.0)


def test_learned_variance_has_a_floor():
  images = jnp.zeros((1, 4))
  logits = jnp.full((1, 4), -30.0)  # Predicts the zeros almost exactly.
  nll = likelihoods.gaussian_learned_nll(
    logits, images, pixel_logvar=jnp.full((), -1e4)
  )
  # Bounded below by the density at the floor variance, not -infinity.
  floor = 4 * 0.5 * (likelihoods.MIN_PIXEL_LOGVAR + math.log(2 * math.pi))
  assert np.isfinite(float(nll[0])) and float(nll[0]) >= floor - 1e-4


def test_learned_variance_nll_is_the_normal_density_at_its_mapped_variance():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
  images = jnp.asarray(rng.uniform(size=(3, 5)), jnp.float32)
  raw = jnp.asarray(rng.normal(size=(5,)), jnp.float32)  # One per pixel.
  nll = likelihoods.gaussian_learned_nll(logits, images, pixel_logvar=raw)
  # The parameter maps to log σ² = floor + softplus(raw - floor).
  floor = likelihoods.MIN_PIXEL_LOGVAR
  logvar = floor + np.log1p(np.exp(np.asarray(raw, np.float64) - floor))
  mean = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  expected = -stats.norm.logpdf(
    np.asarray(images, np.float64), mean, np.exp(0.5 * logvar)
  ).sum(-1)
  np.testing.assert_allclose(nll, expected, rtol=1e-5)
  # 0 maps to a log-variance of about 0 (variance 1), as its comment says.
  assert abs(floor + math.log1p(math.exp(-floor))) < 1e-3


def test_autoencoder_loss_is_mse_in_its_range_and_a_quarter_of_it_in_unit():
  rng = np.random.default_rng(1)
  outputs = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  images = jnp.asarray(rng.uniform(-1, 1, size=(2, 4, 4, 1)), jnp.float32)
  terms = autoencoder_mse.autoencoder_loss(outputs, images)
  predicted = np.tanh(np.asarray(outputs, np.float64)).reshape(2, -1)
  target = np.asarray(images, np.float64).reshape(2, -1)
  np.testing.assert_allclose(
    terms["loss"], ((predicted - target) ** 2).mean(-1), rtol=1e-5
  )
  # The same error on [0, 1] pixels: both mapped by (x + 1) / 2.
  unit_error = (((predicted + 1) / 2 - (target + 1) / 2) ** 2).mean(-1)
  np.testing.assert_allclose(terms["mse"], unit_error, rtol=1e-5)
  np.testing.assert_allclose(
    autoencoder_mse.to_unit_images(outputs).reshape(2, -1),
    (predicted + 1) / 2,
    rtol=1e-5,
  )
