"""The optimizer section: every optimizer and schedule it names does what
its comment says."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import errors
from vae_jax.core import optimizers

PAPER_STAGES = (1, 3, 9, 27, 81, 243, 729, 2187)


def config(**changes):
  opt_config = optimizers.default_config()
  opt_config.update(changes)
  optimizers.check_config(opt_config, "optimizer")
  return opt_config


def test_stages_follow_burda_et_al_at_one_step_per_epoch():
  schedule = optimizers.make_schedule(config(schedule="stages"), 3280)
  # Stage i: 3**i epochs at 1e-3 * 10**(-i / 7); it starts at epoch
  # 1 + 3 + ... + 3**(i-1) = (3**i - 1) / 2.
  for i in range(8):
    first, last = (3**i - 1) // 2, (3 ** (i + 1) - 1) // 2 - 1
    for step in (first, last):
      np.testing.assert_allclose(
        float(schedule(step)), 1e-3 * 10 ** (-i / 7), rtol=1e-6
      )


def test_shortened_stages_keep_their_proportions_and_end_at_the_last_rate():
  assert optimizers.stage_boundaries(PAPER_STAGES, 328) == [
    0,
    0,
    1,
    4,
    12,
    36,
    109,
  ]
  schedule = optimizers.make_schedule(config(schedule="stages"), 328)
  # Stages shorter than a step begin together, each still decaying once.
  np.testing.assert_allclose(
    float(schedule(0)), 1e-3 * 10 ** (-2 / 7), rtol=1e-6
  )
  np.testing.assert_allclose(float(schedule(327)), 1e-4, rtol=1e-6)


def test_cosine_warms_up_then_decays_to_zero():
  schedule = optimizers.make_schedule(
    config(schedule="cosine", warmup_steps=10), 110
  )
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(5)), 5e-4, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(10)), 1e-3, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(60)), 5e-4, rtol=1e-5)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-9)


def test_constant_warmup_ramps_linearly():
  schedule = optimizers.make_schedule(config(warmup_steps=4), 100)
  assert [float(schedule(s)) for s in (0, 2, 4, 50)] == pytest.approx(
    [0.0, 5e-4, 1e-3, 1e-3]
  )


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_every_optimizer_descends_a_quadratic(name):
  tx = optimizers.make_optimizer(
    config(name=name, learning_rate=0.05, momentum=0.9), 100
  )
  params = jnp.array([3.0, -2.0])
  state = tx.init(params)

  def loss(p):
    return jnp.sum(p**2)

  for _ in range(50):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < 0.5 * 13.0


def test_gradient_clipping_caps_the_global_norm():
  tx = optimizers.make_optimizer(
    config(name="sgd", learning_rate=1.0, grad_clip_norm=0.5), 10
  )
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}  # Norm 13.
  updates, _ = tx.update(grads, tx.init(grads))
  norm = optax.global_norm(updates)
  np.testing.assert_allclose(float(norm), 0.5, rtol=1e-6)


def test_adam_eps_reaches_the_update():
  # At step 1 Adam's update is -lr * g / (|g| + eps): eps visible for tiny g.
  grads = jnp.array([1e-4])
  updates = {}
  for eps in (1e-8, 1e-4):
    tx = optimizers.make_optimizer(config(eps=eps), 10)
    updates[eps], _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(float(updates[1e-8][0]), -1e-3, rtol=1e-3)
  np.testing.assert_allclose(float(updates[1e-4][0]), -5e-4, rtol=1e-3)


@pytest.mark.parametrize(
  "changes,message",
  [
    ({"name": "lamb"}, "optimizer.name 'lamb' is unknown"),
    ({"schedule": "linear"}, "optimizer.schedule 'linear' is unknown"),
    ({"learning_rate": 0.0}, "learning_rate must be positive"),
    (
      {"schedule": "stages", "stage_lengths": (1, 0)},
      "stage_lengths must be positive",
    ),
  ],
)
def test_unusable_sections_are_refused(changes, message):
  with pytest.raises(errors.ConfigError, match=message):
    config(**changes)
