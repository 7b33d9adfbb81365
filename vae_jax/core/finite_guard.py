"""Guards that keep one non-finite update from ruining a run.

A NaN or infinite gradient would poison the parameters and Adam's moments
for good. Train steps check the loss and every gradient with `all_finite`
and, with `keep_if_finite` or a `lax.cond` on it, a failing step only
advances the step counter; the host counts such steps and stops a run that
keeps producing them.
"""

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp


def all_finite(loss: jax.Array, grads: Any) -> jax.Array:
  """bool scalar: `loss` and every element of `grads` are finite.

  Each gradient, as a matrix [-1, its last axis], times a vector of zeros:
  an entry of the product is 0 when its row is finite and NaN when the row
  holds a NaN or an infinity (0 * inf is NaN), and no entry can overflow,
  so the sum is NaN exactly when some element is not finite. As a
  matrix-vector product the check is one pass over the gradients on every
  core. `all(isfinite(g))` wrote a boolean copy of each gradient and reduced
  it on one core: 5% of a mnist_linear step on XLA:CPU.
  """

  def poison(g):
    g = jnp.atleast_1d(g)
    # The row count spelled out, not -1: a leaf may hold no elements.
    rows = g.reshape(math.prod(g.shape[:-1]), g.shape[-1])
    return jnp.sum(rows @ jnp.zeros(rows.shape[-1], rows.dtype))

  total = sum((poison(g) for g in jax.tree.leaves(grads)), jnp.zeros(()))
  return jnp.isfinite(loss + total)


def keep_if_finite(finite: jax.Array, updated: Any, skipped: Any) -> Any:
  """`updated` where `finite`, else `skipped` (same structure), leaf by leaf."""
  return jax.tree.map(functools.partial(jnp.where, finite), updated, skipped)
