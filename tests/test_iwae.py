"""The IWAE and k-sample VAE objectives: exact at k = 1, tighter with k, and
differentiated correctly. The module is the whole of both objectives: these
tests reach them only through the config and the trainer's step."""

import math

import jax
from jax import test_util as jax_test_util
import jax.numpy as jnp
import numpy as np
import pytest

from testbed import assemble
from testbed import initial_state
from vae_jax import errors
from vae_jax.objectives import iwae
from vae_jax.objectives import objective as objective_lib
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network

IMAGE_SHAPE = (4, 4, 1)


def training_network(parts, state, params) -> objective_lib.Network:
  """The model as a train step runs it, with `params` differentiated."""
  return objective_lib.Network(
    parts.model,
    {"params": params, "batch_stats": state.batch_stats},
    train=True,
    compute_dtype="float32",
  )


def tiny_config(objective, num_samples):
  config = run_config.default_config("mlp_vae", objective)
  config.model.hidden_sizes = (8,)
  config.model.latent_size = 3
  if objective != "negative_elbo":
    config.loss.num_samples = num_samples
  return config


def images(size=6):
  return (
    np.random.default_rng(0)
    .uniform(size=(size, *IMAGE_SHAPE))
    .astype(np.float32)
  )


def eval_terms(config, rng=3):
  """Per-image means of the eval step's terms, and the state."""
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  _, eval_step = single_network.make_steps(config, parts)
  x = images()
  sums = jax.jit(eval_step)(
    state,
    {
      "image": x,
      "label": np.zeros(len(x), np.int32),
      "mask": np.ones(len(x), bool),
    },
    jax.random.PRNGKey(rng),
  )
  return {k: float(v) / len(x) for k, v in sums.items() if k != "count"}, state


def test_at_one_sample_the_iwae_bound_is_the_elbo_of_that_sample():
  iwae_terms, state = eval_terms(tiny_config("iwae", 1))
  vae_terms, _ = eval_terms(tiny_config("vae_k", 1))
  assert iwae_terms == vae_terms  # logsumexp of one term is the term.
  # The same sample's ELBO, computed here from the model's own outputs.
  x = jnp.asarray(images())
  variables = single_network.variables(state)
  mu, logvar = state.apply_fn(variables, x, method="encode")
  eps = jax.random.normal(jax.random.PRNGKey(3), (1, *mu.shape))
  z = mu + jnp.exp(0.5 * logvar) * eps[0]
  p = jax.nn.sigmoid(state.apply_fn(variables, z, method="decode"))
  log_px_z = jnp.sum(
    (x * jnp.log(p) + (1 - x) * jnp.log1p(-p)).reshape(len(x), -1), axis=-1
  )
  log_pz = jnp.sum(-0.5 * (z**2 + math.log(2 * math.pi)), axis=-1)
  log_qz = jnp.sum(
    -0.5 * (eps[0] ** 2 + logvar + math.log(2 * math.pi)), axis=-1
  )
  elbo = float(jnp.mean(log_px_z + log_pz - log_qz))
  np.testing.assert_allclose(iwae_terms["loss"], -elbo, rtol=1e-5)


def test_k_sample_vae_averages_and_iwae_bounds_above_it():
  iwae_terms, _ = eval_terms(tiny_config("iwae", 8))
  vae_terms, _ = eval_terms(tiny_config("vae_k", 8))
  # Jensen: the log of the mean weight is at least the mean log weight.
  assert iwae_terms["loss"] < vae_terms["loss"]
  assert iwae_terms["recon"] == pytest.approx(vae_terms["recon"])


def test_reported_terms_are_means_over_the_k_draws():
  """recon, kl and both bounds at k = 8, computed here from the model's own
  outputs for the eval key's 8 draws per image."""
  k = 8  # As above: the same programs, compiled once.
  iwae_terms, state = eval_terms(tiny_config("iwae", k))
  vae_terms, _ = eval_terms(tiny_config("vae_k", k))
  x = jnp.asarray(images())
  variables = single_network.variables(state)
  mu, logvar = state.apply_fn(variables, x, method="encode")
  eps = jax.random.normal(jax.random.PRNGKey(3), (k, *mu.shape))
  z = mu[None] + jnp.exp(0.5 * logvar)[None] * eps  # [k, B, latent]
  p = jax.nn.sigmoid(
    state.apply_fn(variables, z.reshape(-1, mu.shape[-1]), method="decode")
  ).reshape(k, len(x), -1)
  flat_x = x.reshape(1, len(x), -1)
  log_px_z = jnp.sum(flat_x * jnp.log(p) + (1 - flat_x) * jnp.log1p(-p), -1)
  log_pz = jnp.sum(-0.5 * (z**2 + math.log(2 * math.pi)), axis=-1)
  log_qz = jnp.sum(
    -0.5 * (eps**2 + logvar[None] + math.log(2 * math.pi)), axis=-1
  )
  log_w = log_px_z + log_pz - log_qz  # [k, B]
  expected = {
    "recon": -jnp.mean(log_px_z),
    "kl": jnp.mean(log_qz - log_pz),  # Averaged over draws, not summed.
    "nelbo": -jnp.mean(log_w),
  }
  for terms in (iwae_terms, vae_terms):
    for name, value in expected.items():
      np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(vae_terms["loss"], -jnp.mean(log_w), rtol=1e-5)
  iwae_bound = jax.nn.logsumexp(log_w, axis=0) - math.log(k)
  np.testing.assert_allclose(
    iwae_terms["loss"], -jnp.mean(iwae_bound), rtol=1e-5
  )


def test_bound_rises_toward_the_exact_log_likelihood():
  """p(z) = N(0, 1), p(x|z) = N(sigmoid(z), 0.1) on one pixel; q(z|x) =
  N(-0.5, 3), wider than the posterior and off its center. log p(x) by
  quadrature on a fine grid of z."""
  variance, x = 0.1, np.float32(0.7)
  grid = np.linspace(-12, 12, 200_001)
  log_joint = -0.5 * (grid**2 + math.log(2 * math.pi)) - 0.5 * (
    (x - 1 / (1 + np.exp(-grid))) ** 2 / variance
    + math.log(2 * math.pi * variance)
  )
  log_px = np.log(np.sum(np.exp(log_joint)) * (grid[1] - grid[0]))
  mu, logvar = jnp.full((1, 1), -0.5), jnp.full((1, 1), math.log(3.0))
  image = jnp.full((1, 1, 1, 1), x)
  bounds = []
  for k in (1, 2, 5, 50):
    eps = jax.random.normal(jax.random.PRNGKey(k), (400, k, 1, 1))

    def bound(eps, k=k):
      z = mu[None] + jnp.exp(0.5 * logvar)[None] * eps
      log_ratio = jnp.sum(-0.5 * z**2, axis=-1) + jnp.sum(
        0.5 * (eps**2 + logvar[None]), axis=-1
      )
      weights, _ = iwae.log_weights(
        z.reshape(k, 1, 1, 1),
        log_ratio,
        image,
        likelihood="gaussian",
        gaussian_variance=variance,
      )
      return jax.nn.logsumexp(weights, axis=0) - math.log(k)

    bounds.append(
      float(jnp.mean(jax.jit(jax.vmap(bound))(eps)))
    )  # 400 repeats.
  assert bounds == sorted(bounds), bounds
  assert all(b <= log_px + 1e-3 for b in bounds)
  assert log_px - bounds[-1] < 0.1 * (log_px - bounds[0]), (bounds, log_px)


@pytest.mark.parametrize("objective", ["iwae", "vae_k"])
def test_gradient_matches_finite_differences(objective):
  config = tiny_config(objective, 4)
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  x = images(3)

  def loss(params):
    network = training_network(parts, state, params)
    terms, _ = parts.objective.terms(
      network, x, jax.random.PRNGKey(5), state.step, loss_config=config.loss
    )
    return terms["loss"].mean()

  # Jitted: op by op, the finite differences' evaluations took seconds.
  jax_test_util.check_grads(
    jax.jit(loss),
    (state.params,),
    order=1,
    modes=["rev"],
    eps=1e-2,
    atol=2e-2,
    rtol=2e-2,
  )


def test_num_samples_must_be_positive():
  config = tiny_config("iwae", 0)
  with pytest.raises(errors.ConfigError, match="num_samples"):
    run_config.check_config(config)


def test_an_objective_whose_fields_the_config_lacks_is_refused():
  config = tiny_config("negative_elbo", 1)
  config.loss.objective = "iwae"
  with pytest.raises(
    errors.ConfigError,
    match=r"loss.num_samples.*"
    r"default_config\('mlp_vae', 'iwae'\)",
  ):
    run_config.check_config(config)


def test_many_draws_are_decoded_in_chunks_to_the_same_bound(monkeypatch):
  """k x batch above MAX_DRAWS_PER_PASS: chunks of draws from keys split
  off the step's key, decoded one at a time, give the bound of those draws;
  its gradient still matches finite differences."""
  config = tiny_config("iwae", 7)
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  x, rng = images(3), jax.random.PRNGKey(5)

  def loss(params):
    network = training_network(parts, state, params)
    terms, _ = parts.objective.terms(
      network, x, rng, state.step, loss_config=config.loss
    )
    return terms["loss"]

  one_pass = jax.jit(loss)(state.params)
  monkeypatch.setattr(iwae, "MAX_DRAWS_PER_PASS", 3 * len(x))  # 3 per pass.
  # A new function, so traced anew under the patched limit (jax.jit(loss)
  # would reuse the trace above).
  chunked_loss = jax.jit(lambda params: loss(params))  # noqa: PLW0108
  chunked = chunked_loss(state.params)
  # The same bound, over draws three at a time from split keys (7 of 9).
  weights = jnp.concatenate(
    [
      iwae.log_weights(
        *state.apply_fn(
          single_network.variables(state),
          x,
          key,
          train=False,
          method=lambda vae, *args, train: iwae.draw_latents(
            vae, *args, train, num_samples=3
          ),
        ),
        x,
        likelihood="bernoulli",
      )[0]
      for key in jax.random.split(rng, 3)
    ]
  )[:7]
  expected = -(jax.nn.logsumexp(weights, axis=0) - math.log(7))
  np.testing.assert_allclose(chunked, expected, rtol=1e-5)
  assert not np.allclose(chunked, one_pass)  # Other draws: it did chunk.
  jax_test_util.check_grads(
    lambda p: chunked_loss(p).mean(),
    (state.params,),
    order=1,
    modes=["rev"],
    eps=1e-2,
    atol=2e-2,
    rtol=2e-2,
  )
