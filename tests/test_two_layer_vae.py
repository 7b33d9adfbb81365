"""The two-stochastic-layer VAE: its bounds use both layers' priors and
posteriors (checked against a direct computation with SciPy's densities),
and only the k-sample objectives train it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats

from test_models import TWO_LAYER_PARAMS
from testbed import assemble
from testbed import initial_state
from vae_jax import errors
from vae_jax.objectives import objective
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network

IMAGE_SHAPE = (2, 3, 1)
NUM_IMAGES = 4


def tiny_config(objective="vae_k", num_samples=1):
  config = run_config.default_config("two_layer_vae", objective)
  config.model.hidden_sizes = (5,)
  config.model.bottom_latent_size = 3
  config.model.upper_hidden_sizes = (4,)
  config.model.latent_size = 2
  config.loss.num_samples = num_samples
  return config


def bound_and_state(config, x, rng):
  """Per-image -bound from the eval step, and the state it evaluated."""
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  _, eval_step = single_network.make_steps(config, parts)
  network = objective.Network(
    parts.model,
    single_network.variables(state),
    train=False,
    compute_dtype="float32",
  )
  terms, _ = parts.objective.terms(
    network, x, rng, state.step, loss_config=config.loss
  )
  sums = eval_step(
    state,
    {
      "image": x,
      "label": np.zeros(len(x), np.int32),
      "mask": np.ones(len(x), bool),
    },
    rng,
  )
  np.testing.assert_allclose(
    float(sums["loss"]), float(jnp.sum(terms["loss"])), rtol=1e-6
  )
  return np.asarray(terms["loss"], np.float64), state


def network(state, name, inputs):
  """One of the model's four networks applied to `inputs`, in float64."""
  out = state.apply_fn(
    {"params": state.params},
    jnp.asarray(inputs),
    method=lambda m, h: getattr(m, name)(h),
  )
  return jax.tree.map(lambda a: np.asarray(a, np.float64), out)


def direct_log_weights(state, x, rng, k):
  """log p(x|h1) + log p(h1|h2) + log p(h2) - log q(h1|x) - log q(h2|h1),
  with the draws the objective makes (h1's noise from rng, h2's from
  fold_in(rng, 1)), every density SciPy's."""

  def normal(mu, logvar, h):
    return stats.norm.logpdf(h, mu, np.exp(0.5 * logvar)).sum(-1)

  mu1, logvar1 = network(state, "q_h1", x)
  eps1 = np.asarray(jax.random.normal(rng, (k, *mu1.shape)), np.float64)
  h1 = (mu1 + np.exp(0.5 * logvar1) * eps1).reshape(k * len(x), -1)
  mu2, logvar2 = network(state, "q_h2", h1.astype(np.float32))
  eps2 = np.asarray(
    jax.random.normal(jax.random.fold_in(rng, 1), mu2.shape), np.float64
  )
  h2 = mu2 + np.exp(0.5 * logvar2) * eps2
  prior_mu, prior_logvar = network(state, "p_h1", h2.astype(np.float32))
  p = special.expit(network(state, "p_x", h1.astype(np.float32)))
  tiled = np.tile(x, (k, 1, 1, 1)).astype(np.float64)
  log_px = (
    (tiled * np.log(p) + (1 - tiled) * np.log1p(-p))
    .reshape(k * len(x), -1)
    .sum(-1)
  )
  log_weights = (
    log_px
    + normal(prior_mu, prior_logvar, h1)
    + stats.norm.logpdf(h2).sum(-1)
    - normal(np.tile(mu1, (k, 1)), np.tile(logvar1, (k, 1)), h1)
    - normal(mu2, logvar2, h2)
  )
  return log_weights.reshape(k, len(x))


def binary_images(seed=0):
  return (
    np.random.default_rng(seed).uniform(size=(NUM_IMAGES, *IMAGE_SHAPE)) < 0.5
  ).astype(np.float32)


@pytest.mark.parametrize("objective,k", [("vae_k", 1), ("iwae", 3)])
def test_bound_uses_both_layers_as_a_direct_computation_does(objective, k):
  x, rng = binary_images(), jax.random.PRNGKey(4)
  loss, state = bound_and_state(tiny_config(objective, k), x, rng)
  weights = direct_log_weights(state, x, rng, k)
  expected = -(special.logsumexp(weights, axis=0) - np.log(k))
  np.testing.assert_allclose(loss, expected, rtol=2e-5)


def test_the_k_sample_vae_averages_the_same_log_weights():
  x, rng = binary_images(1), jax.random.PRNGKey(2)
  loss, state = bound_and_state(tiny_config("vae_k", 3), x, rng)
  np.testing.assert_allclose(
    loss, -direct_log_weights(state, x, rng, 3).mean(axis=0), rtol=2e-5
  )


def test_closed_form_elbo_refuses_two_stochastic_layers():
  config = run_config.default_config("two_layer_vae", "negative_elbo")
  with pytest.raises(
    errors.ConfigError,
    match="'negative_elbo' trains models of one stochastic "
    "layer; model 'two_layer_vae' has 2",
  ):
    assemble(config, IMAGE_SHAPE)
  assemble(run_config.default_config("two_layer_vae", "iwae"), IMAGE_SHAPE)


def test_paper_model_has_the_papers_layer_shapes():
  config = run_config.default_config("two_layer_vae")
  state = loop.abstract_train_state(config, (28, 28, 1))
  assert sum(p.size for p in jax.tree.leaves(state.params)) == (
    TWO_LAYER_PARAMS
  )
