"""Guards that keep one non-finite update from ruining a run.

A NaN or infinite gradient would poison the parameters and Adam's moments
for good. Train steps check the loss and every gradient with `all_finite`
and, with `keep_if_finite` or a `lax.cond` on it, a failing step only
advances the step counter; the host counts such steps and stops a run that
keeps producing them.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp


def all_finite(loss: jax.Array, grads: Any) -> jax.Array:
  """bool scalar: `loss` and every element of `grads` are finite."""
  return jnp.isfinite(loss) & jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))


def keep_if_finite(finite: jax.Array, updated: Any, skipped: Any) -> Any:
  """`updated` where `finite`, else `skipped` (same structure), leaf by leaf."""
  return jax.tree.map(functools.partial(jnp.where, finite), updated, skipped)
