"""The guard that skips non-finite updates: exact on every kind of element."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import finite_guard


def gradients(dtype=jnp.float32):
  return {
    "dense": {
      "kernel": jnp.ones((7, 5), dtype),
      "bias": jnp.zeros((5,), dtype),
    },
    "scale": jnp.full((), -2.0, dtype),
  }


all_finite = jax.jit(finite_guard.all_finite)  # Compiled, as steps run it.


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("leaf", ["kernel", "bias", "scale"])
def test_one_bad_gradient_element_fails_the_check(leaf, bad):
  grads = gradients()
  if leaf == "scale":
    grads["scale"] = jnp.asarray(bad, jnp.float32)
  else:
    grads["dense"][leaf] = grads["dense"][leaf].at[-1].set(bad)
  assert not bool(all_finite(jnp.float32(1.0), grads))


@pytest.mark.parametrize("loss", [np.nan, np.inf])
def test_a_bad_loss_fails_the_check(loss):
  assert not bool(all_finite(jnp.float32(loss), gradients()))


def test_large_finite_gradients_pass():
  # Their plain sum would overflow to inf; none of them is non-finite.
  grads = jax.tree.map(lambda g: jnp.full_like(g, 3e38), gradients())
  assert bool(all_finite(jnp.float32(1.0), grads))
  assert bool(all_finite(jnp.float32(1.0), gradients(jnp.bfloat16)))
  assert bool(all_finite(jnp.float32(1.0), {}))
  assert bool(all_finite(jnp.float32(1.0), {"empty": jnp.zeros((3, 0))}))


def test_keep_if_finite_picks_whole_trees():
  updated, skipped = gradients(), jax.tree.map(jnp.negative, gradients())
  for finite, expected in ((True, updated), (False, skipped)):
    kept = finite_guard.keep_if_finite(jnp.bool_(finite), updated, skipped)
    jax.tree.map(np.testing.assert_array_equal, kept, expected)
