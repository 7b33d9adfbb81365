"""The priors over z: the VampPrior against SciPy's mixture density and
Monte Carlo, and both priors inside a model."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import special
from scipy import stats

from testbed import assemble
from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.models import priors

IMAGE_SHAPE = (2, 3, 1)  # Pseudo-inputs of 6 pixels.
LATENT_SIZE = 3


def fake_encode(images):
  """A fixed map of images [K, 2, 3, 1] to (mu, logvar) [K, 3]: a stand-in
  posterior whose components are known in closed form."""
  pixels = images.reshape(images.shape[0], -1)
  return 4 * pixels[:, :3] - 2, pixels[:, 3:] - 0.5


def vamp_prior(num_pseudo_inputs, mean=0.5, std=0.3):
  return priors.VampPrior(
    num_pseudo_inputs=num_pseudo_inputs,
    image_shape=IMAGE_SHAPE,
    pseudo_input_mean=mean,
    pseudo_input_std=std,
  )


def init_vamp(num_pseudo_inputs, **kwargs):
  prior = vamp_prior(num_pseudo_inputs, **kwargs)
  variables = prior.init(
    jax.random.PRNGKey(0),
    jnp.zeros((1, LATENT_SIZE)),
    fake_encode,
    method="log_density",
  )
  return prior, variables


def components(prior, variables):
  mu, logvar = prior.apply(variables, fake_encode, method="components")
  return np.asarray(mu, np.float64), np.asarray(logvar, np.float64)


def scipy_log_mixture(z, mu, logvar):
  """log (1/K) sum_k N(z; mu_k, diag(exp(logvar_k))), by SciPy."""
  per_component = np.stack(
    [
      stats.multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z)
      for m, lv in zip(mu, logvar)
    ],
    axis=-1,
  )
  return special.logsumexp(per_component, axis=-1) - np.log(len(mu))


def test_pseudo_inputs_start_as_configured_and_stay_in_pixel_range():
  prior, variables = init_vamp(400, mean=0.05, std=0.01)
  raw = np.asarray(variables["params"]["pseudo_inputs"])
  assert raw.shape == (400, *IMAGE_SHAPE)
  np.testing.assert_allclose(raw.mean(), 0.05, atol=0.002)
  np.testing.assert_allclose(raw.std(), 0.01, rtol=0.1)
  wide = {"params": {"pseudo_inputs": jnp.asarray(raw * 100 - 5)}}
  images = np.asarray(prior.apply(wide, method="pseudo_inputs"))
  assert images.min() == 0.0 and images.max() == 1.0


def test_vamp_log_density_is_scipys_mixture():
  prior, variables = init_vamp(5)
  z = np.random.default_rng(0).normal(size=(7, LATENT_SIZE))
  ours = prior.apply(
    variables, jnp.asarray(z, jnp.float32), fake_encode, method="log_density"
  )
  np.testing.assert_allclose(
    ours, scipy_log_mixture(z, *components(prior, variables)), rtol=1e-5
  )


def test_vamp_samples_have_the_mixtures_moments():
  prior, variables = init_vamp(4)
  draws = np.asarray(
    prior.apply(
      variables,
      jax.random.PRNGKey(1),
      200_000,
      fake_encode,
      method="sample",
    ),
    np.float64,
  )
  mu, logvar = components(prior, variables)
  mean = mu.mean(axis=0)
  variance = (np.exp(logvar) + mu**2).mean(axis=0) - mean**2
  standard_error = np.sqrt(variance / len(draws))
  np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 5 * standard_error)
  np.testing.assert_allclose(draws.var(0), variance, rtol=0.02)


def posterior(rng, batch=4):
  mu = jnp.asarray(rng.normal(size=(batch, LATENT_SIZE)), jnp.float32)
  logvar = jnp.asarray(rng.uniform(-1, 0.5, (batch, LATENT_SIZE)), jnp.float32)
  return mu, logvar


def mean_sampled_kl(prior, variables, mu, logvar, num_draws):
  eps = jax.random.normal(jax.random.PRNGKey(2), (num_draws, *mu.shape))
  kl = jax.vmap(
    lambda e: prior.apply(variables, mu, logvar, e, fake_encode, method="kl")
  )(eps)
  return np.asarray(kl).mean(axis=0)


def test_vamp_sampled_kl_mean_is_a_monte_carlo_kl():
  prior, variables = init_vamp(3)
  mu, logvar = posterior(np.random.default_rng(3))
  ours = mean_sampled_kl(prior, variables, mu, logvar, 100_000)
  # An independent estimate: NumPy draws, SciPy densities.
  rng = np.random.default_rng(4)
  prior_mu, prior_logvar = components(prior, variables)
  for i in range(len(mu)):
    m, lv = np.asarray(mu[i], np.float64), np.asarray(logvar[i], np.float64)
    z = m + np.exp(lv / 2) * rng.normal(size=(100_000, LATENT_SIZE))
    log_q = stats.multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z)
    reference = log_q - scipy_log_mixture(z, prior_mu, prior_logvar)
    standard_error = reference.std() / np.sqrt(len(z))
    assert abs(ours[i] - reference.mean()) < 5 * standard_error, i


def test_vamp_of_standard_normal_components_has_the_closed_form_kl():
  # Every pseudo-input at 0.5 encodes to N(0, I): the mixture is N(0, I).
  prior, variables = init_vamp(3, mean=0.5, std=0.0)
  mu, logvar = posterior(np.random.default_rng(5))
  np.testing.assert_allclose(
    mean_sampled_kl(prior, variables, mu, logvar, 200_000),
    priors.kl_to_standard_normal(mu, logvar),
    rtol=0.01,
  )


def test_standard_normal_log_density_and_kl():
  prior = priors.StandardNormal(latent_size=LATENT_SIZE)
  z = np.random.default_rng(6).normal(size=(5, LATENT_SIZE))
  np.testing.assert_allclose(
    prior.apply({}, jnp.asarray(z), None, method="log_density"),
    stats.multivariate_normal(np.zeros(LATENT_SIZE)).logpdf(z),
    rtol=1e-5,
  )
  mu, logvar = posterior(np.random.default_rng(7))
  closed_form = prior.apply({}, mu, logvar, None, None, method="kl")
  np.testing.assert_allclose(
    closed_form,
    0.5 * np.sum(np.exp(logvar) + np.square(mu) - 1 - logvar, axis=-1),
    rtol=1e-5,
  )


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("name", "gaussian_mixture", "model.prior.name"),
    ("num_pseudo_inputs", 0, "num_pseudo_inputs"),
    ("pseudo_input_std", -1.0, "pseudo_input_std"),
  ],
)
def test_bad_prior_configs_are_refused(field, value, match):
  config = priors.default_config()
  config[field] = value
  with pytest.raises(errors.ConfigError, match=match):
    priors.check_config(config)


def vamp_mlp_config() -> ml_collections.ConfigDict:
  config = make_tiny_config()
  config.model.prior.name = "vamp"
  config.model.prior.num_pseudo_inputs = 6
  return config


def test_a_vamp_model_learns_its_pseudo_inputs_and_samples_from_them():
  model = assemble(vamp_mlp_config()).model
  images = jnp.asarray(
    np.random.default_rng(8).uniform(size=(4, 28, 28, 1)), jnp.float32
  )
  variables = model.init(jax.random.PRNGKey(0), images)
  pseudo_inputs = variables["params"]["prior"]["pseudo_inputs"]
  assert pseudo_inputs.shape == (6, 28, 28, 1)

  def kl(params):
    mu, logvar = model.apply({"params": params}, images, method="encode")
    eps = jnp.ones_like(mu)
    return model.apply(
      {"params": params}, mu, logvar, eps, method="prior_kl"
    ).sum()

  grads = jax.grad(kl)(variables["params"])
  assert float(jnp.abs(grads["prior"]["pseudo_inputs"]).max()) > 0
  # The model's samples are the prior's, drawn through its own encoder.
  samples = model.apply(
    variables, jax.random.PRNGKey(1), 5, method="sample_prior"
  )
  mu, logvar = model.apply(
    variables,
    jnp.clip(pseudo_inputs, 0, 1),
    method="encode",
  )
  log_density = model.apply(variables, samples, method="log_prior")
  np.testing.assert_allclose(
    log_density,
    scipy_log_mixture(
      np.asarray(samples, np.float64),
      np.asarray(mu, np.float64),
      np.asarray(logvar, np.float64),
    ),
    rtol=1e-4,
  )
