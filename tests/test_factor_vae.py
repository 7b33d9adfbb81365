"""FactorVAE: its shuffle, its terms against NumPy, where its gradients go,
the two optimizers of a step, and runs through the trainer, alone,
resumed and vectorized."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special
import tensorflow_datasets as tfds

from test_exact_resume import check_sigterm_then_rerun_is_exact
from test_members import assert_trees_close
from test_members import random_batches
from test_members import vectorized_step_and_states
import testbed
from vae_jax import errors
from vae_jax.core import optimizers
from vae_jax.models import vae as vae_lib
from vae_jax.objectives import factor_vae
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective as objective_lib
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network

IMAGE_SHAPE = (4, 4, 1)
BATCH_SIZE = 6
# A narrow discriminator: the tests check its arithmetic, not its width.
SMALL_DISCRIMINATOR = (5, 3)
DISCRIMINATOR = "objective_network"  # Its key in the params.


def tiny_parts(objective="factor_vae", **loss_fields):
  """A tiny MLP VAE under `objective`: its config, parts and first state."""
  config = run_config.default_config("mlp_vae", objective)
  config.model.hidden_sizes = (8,)
  config.model.latent_size = 3
  if objective == "factor_vae":
    config.loss.discriminator_sizes = SMALL_DISCRIMINATOR
  config.loss.update(loss_fields)
  parts = testbed.assemble(config, IMAGE_SHAPE)
  state = testbed.initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  return config, parts, state


def tiny_images(seed=3):
  images = np.random.default_rng(seed).uniform(size=(BATCH_SIZE, *IMAGE_SHAPE))
  return jnp.asarray(images, jnp.float32)


def network_of(parts, params, batch_stats):
  return objective_lib.Network(
    parts.model,
    {"params": params, "batch_stats": batch_stats},
    train=True,
    compute_dtype="float32",
  )


def numpy_discriminator(params, z):
  """fc_discriminator in float64: leaky ReLU (0.2) layers, then 2 logits."""
  layers = [params[f"Dense_{i}"] for i in range(len(params))]
  h = np.asarray(z, np.float64)
  for layer in layers:
    h = h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"])
    if layer is not layers[-1]:
      h = np.where(h > 0, h, 0.2 * h)
  return h


def test_shuffle_permutes_each_dimension_on_its_own():
  batch, dims = 64, 4
  # z[i, d] = dims * i + d: each value names its row.
  z = jnp.arange(batch * dims, dtype=jnp.float32).reshape(batch, dims)
  shuffled = np.asarray(factor_vae.shuffle_dimensions(jax.random.PRNGKey(0), z))
  rows = []
  for d in range(dims):
    np.testing.assert_array_equal(np.sort(shuffled[:, d]), z[:, d])
    rows.append(tuple((shuffled[:, d] - d).astype(int) // dims))
  # Moved, and each dimension by a permutation of its own.
  assert all(row != tuple(range(batch)) for row in rows)
  assert len(set(rows)) == dims


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_terms_match_numpy(scale):
  """At scale 1e3 the logits are large: the probabilities' clip acts."""
  config, parts, state = tiny_parts(kl_weight=0.5, tc_weight=7.0)
  params = jax.tree.map(np.array, state.params)  # Writable copies.
  params[DISCRIMINATOR]["Dense_2"]["kernel"] *= scale
  network = network_of(parts, params, state.batch_stats)
  images, rng, step = tiny_images(), jax.random.PRNGKey(4), jnp.asarray(2)
  terms, _ = factor_vae.terms(
    network, images, rng, step, loss_config=config.loss
  )

  # The same draw and shuffle, then everything else in NumPy.
  draw_rng, shuffle_rng = jax.random.split(rng)
  _, _, draw = parts.model.apply(
    network.variables,
    images,
    draw_rng,
    True,
    method=negative_elbo.sample_decode_and_draw,
  )
  shuffled = factor_vae.shuffle_dimensions(shuffle_rng, draw.z)
  real = numpy_discriminator(params[DISCRIMINATOR], draw.z)
  fake = numpy_discriminator(params[DISCRIMINATOR], shuffled)

  def clipped_log_softmax(logits):
    probabilities = special.softmax(logits, axis=-1)
    return np.log(np.clip(probabilities, 1e-6, 1 - 1e-6))

  tc = real[:, 0] - real[:, 1]
  d_loss = -0.5 * (
    clipped_log_softmax(real)[:, 0] + clipped_log_softmax(fake)[:, 1]
  )
  if scale > 1:  # The clip bounds some image's loss.
    assert np.any(d_loss > 0.5 * -np.log(1e-6) - 1e-3)
  elbo, _ = negative_elbo.terms(
    network, images, draw_rng, step, loss_config=config.loss
  )
  np.testing.assert_allclose(terms["total_correlation"], tc, rtol=1e-4)
  # atol: float32's 1 - 1e-6 and its logarithm are that far off.
  np.testing.assert_allclose(
    terms["discriminator_loss"], d_loss, rtol=1e-4, atol=1e-6
  )
  real_right = (real[:, 0] > real[:, 1]).astype(float)
  fake_right = (fake[:, 1] > fake[:, 0]).astype(float)
  np.testing.assert_allclose(
    terms["discriminator_accuracy"], 0.5 * (real_right + fake_right)
  )
  np.testing.assert_allclose(
    terms["loss"], elbo["loss"] + 7.0 * tc + d_loss, rtol=1e-4, atol=1e-4
  )
  for name in ("nelbo", "recon", "kl", "mse"):
    np.testing.assert_allclose(terms[name], elbo[name], rtol=1e-6)


def test_each_part_gets_the_gradient_of_its_own_loss():
  config, parts, state = tiny_parts(kl_weight=0.5, tc_weight=7.0)
  images, rng, step = tiny_images(), jax.random.PRNGKey(5), jnp.asarray(0)

  def mean_of(combine, params):
    terms, _ = factor_vae.terms(
      network_of(parts, params, state.batch_stats),
      images,
      rng,
      step,
      loss_config=config.loss,
    )
    return jnp.mean(combine(terms))

  def grad_of(combine):
    return jax.grad(functools.partial(mean_of, combine))(state.params)

  total = grad_of(lambda t: t["loss"])
  discriminator = grad_of(lambda t: t["discriminator_loss"])
  vae = grad_of(
    lambda t: t["recon"] + 0.5 * t["kl"] + 7.0 * t["total_correlation"]
  )
  assert_trees_close(total[DISCRIMINATOR], discriminator[DISCRIMINATOR])
  assert set(total) == {"encoder", "decoder", DISCRIMINATOR}
  for key in ("encoder", "decoder"):
    assert_trees_close(total[key], vae[key])
  # Neither is trivially zero.
  for grads in (total[DISCRIMINATOR], total["encoder"]):
    assert all(np.any(leaf != 0) for leaf in jax.tree.leaves(grads))


def test_a_step_updates_the_discriminator_with_its_own_adam():
  config, parts, state = tiny_parts()
  config.optimizer.learning_rate = 2e-3
  config.loss.discriminator_optimizer.learning_rate = 3e-4
  state = single_network.with_optimizers(state, config, total_steps=10)
  batch = {
    "image": tiny_images(),
    "label": jnp.zeros((BATCH_SIZE,), jnp.int32),
  }
  rng = jax.random.PRNGKey(6)
  train_step = jax.jit(single_network.make_steps(config, parts)[0])

  @jax.jit
  def grads_at(params, step):
    def mean_loss(params):
      network = network_of(parts, params, state.batch_stats)
      network = network._replace(
        variables=vae_lib.conditioned(network.variables, batch["label"])
      )
      terms, _ = factor_vae.terms(
        network,
        batch["image"],
        jax.random.fold_in(rng, step),
        step,
        loss_config=config.loss,
      )
      return terms["loss"].mean()

    return jax.grad(mean_loss)(params)

  # By hand: config.optimizer's Adam on the VAE, the study's on D.
  vae_adam = optax.adam(2e-3, b1=0.9, b2=0.999, eps=1e-8)
  d_adam = optax.adam(3e-4, b1=0.5, b2=0.9, eps=1e-8)
  vae_params = {k: v for k, v in state.params.items() if k != DISCRIMINATOR}
  d_params = state.params[DISCRIMINATOR]
  vae_state, d_state = vae_adam.init(vae_params), d_adam.init(d_params)
  # Two steps: the second's update depends on b1 and b2.
  for step in range(2):
    grads = grads_at({**vae_params, DISCRIMINATOR: d_params}, step)
    updates, vae_state = vae_adam.update(
      {k: grads[k] for k in vae_params}, vae_state
    )
    vae_params = optax.apply_updates(vae_params, updates)
    updates, d_state = d_adam.update(grads[DISCRIMINATOR], d_state)
    d_params = optax.apply_updates(d_params, updates)
    state, metrics = train_step(state, batch, rng)
    assert bool(metrics["finite"])
  assert_trees_close(state.params[DISCRIMINATOR], d_params)
  assert_trees_close(
    {k: v for k, v in state.params.items() if k != DISCRIMINATOR}, vae_params
  )


@pytest.mark.parametrize("objective", ["negative_elbo", "dip_vae"])
def test_other_objectives_keep_the_plain_optimizer_state(objective):
  """The state that existing checkpoints hold: no multi_transform."""
  config, _, state = tiny_parts(objective)
  assert DISCRIMINATOR not in state.params
  plain = optimizers.make_optimizer(config.optimizer, 10).init(state.params)
  assert jax.tree.structure(state.opt_state) == jax.tree.structure(plain)


def test_the_discriminator_optimizer_is_checked():
  config = run_config.default_config("mlp_vae", "factor_vae")
  config.loss.discriminator_optimizer.learning_rate = 0.0
  with pytest.raises(
    errors.ConfigError, match="loss.discriminator_optimizer.learning_rate"
  ):
    run_config.check_config(config)


def tiny_run_config(overrides=None):
  return testbed.make_tiny_config(
    {"loss.discriminator_sizes": (16, 16), **(overrides or {})},
    base=run_config.default_config("mlp_vae", "factor_vae"),
  )


def run(config, workdir):
  with tfds.testing.mock_data(num_examples=40):
    return loop.train_and_evaluate(config, str(workdir))


@pytest.mark.slow
def test_sigterm_then_rerun_equals_the_uninterrupted_run(tmp_path):
  """Both optimizers' states, and D, continue exactly."""
  results = check_sigterm_then_rerun_is_exact(
    run, tiny_run_config, tmp_path, DISCRIMINATOR
  )
  for term in ("loss", "nelbo", "total_correlation", "discriminator_loss"):
    assert np.isfinite(results[f"test_{term}"]), term


def test_a_vectorized_pair_equals_each_members_own_steps(tmp_path):
  configs = [
    tiny_run_config(),
    tiny_run_config(
      {
        "seed": 7,
        "loss.tc_weight": 10.0,
        "loss.discriminator_optimizer.learning_rate": 1e-3,
        "optimizer.learning_rate": 3e-3,
      }
    ),
  ]
  parts, group, states, step = vectorized_step_and_states(configs, tmp_path)
  batches = random_batches(len(configs))
  rngs = jnp.stack([jax.random.PRNGKey(i) for i in range(len(configs))])
  state = group.stack(states)
  for _ in range(2):
    state, _ = step(state, batches, rngs)
  for i, config in enumerate(configs):
    alone = jax.jit(single_network.make_steps(config, parts)[0])
    expected = states[i]
    for _ in range(2):
      expected, _ = alone(expected, group.take(batches, i), rngs[i])
    assert_trees_close(group.take(state.params, i), expected.params)
    assert_trees_close(group.take(state.opt_state, i), expected.opt_state)
