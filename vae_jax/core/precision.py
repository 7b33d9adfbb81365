"""Mixed precision: models compute in bfloat16, everything else in float32.

`config.compute_dtype='bfloat16'` casts the parameters and the floating
inputs of every model call to bfloat16 and its floating outputs back to
float32. The parameters themselves, their gradients (the cast's gradient
casts back), the optimizer state, BatchNorm statistics and the loss stay
float32, so updates smaller than bfloat16's resolution are not lost.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vae_jax import errors

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def check_config(compute_dtype: str) -> None:
  errors.require_choice(compute_dtype, COMPUTE_DTYPES, "compute_dtype")


def cast_floats(tree: Any, dtype) -> Any:
  """`tree` with its floating leaves cast to `dtype`; others untouched."""
  return jax.tree.map(
    lambda x: (
      x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x
    ),
    tree,
  )


def apply_in(
  apply_fn: Callable[..., Any], compute_dtype: str
) -> Callable[..., Any]:
  """A Flax `apply` that computes in `compute_dtype`, returning float32.

  Only the 'params' collection is cast: BatchNorm's running statistics stay
  float32 and are updated in float32.
  """
  dtype = COMPUTE_DTYPES[compute_dtype]
  if dtype == jnp.float32:
    return apply_fn

  def apply(variables, *args, **kwargs):
    variables = {**variables, "params": cast_floats(variables["params"], dtype)}
    outputs = apply_fn(variables, *cast_floats(args, dtype), **kwargs)
    return cast_floats(outputs, jnp.float32)

  return apply
