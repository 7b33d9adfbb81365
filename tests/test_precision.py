"""Mixed precision: bfloat16 arithmetic, float32 parameters and losses.

bfloat16 is slow on CPUs, so these check only that it runs, keeps float32
where it must, and lands close to float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_runs
from testbed import assemble
from testbed import batchnorm_config
from testbed import initial_state
from vae_jax.core import precision
from vae_jax.errors import ConfigError
from vae_jax.trainers import adversarial
from vae_jax.trainers import single_network

IMAGE_SHAPE = (28, 28, 1)


def batch(size=8):
  rng = np.random.default_rng(0)
  return {
    "image": rng.uniform(size=(size, *IMAGE_SHAPE)).astype(np.float32),
    "label": rng.integers(0, 10, size).astype(np.int32),
  }


def float_dtypes(tree):
  return {
    x.dtype
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(x.dtype, jnp.floating)
  }


def autoencoder_steps(config, compute_dtype, num_steps=3):
  config.compute_dtype = compute_dtype
  parts = assemble(config, IMAGE_SHAPE)
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  step = jax.jit(single_network.make_steps(config, parts)[0])
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, batch(), jax.random.PRNGKey(1))
    losses.append(metrics["loss"])
  return state, np.asarray(losses)


@pytest.mark.parametrize("model", ["mlp_vae", "dcgan_vae"])
def test_bfloat16_compute_keeps_float32_state_and_stays_close(
  tiny_config, model
):
  if model == "dcgan_vae":  # BatchNorm statistics must stay float32 too.
    batchnorm_config(tiny_config)
    # bfloat16 is for accelerators, where 'auto' picks XLA's convolutions.
    tiny_config.model.conv_impl = "xla"
  full, full_losses = autoencoder_steps(tiny_config, "float32")
  mixed, mixed_losses = autoencoder_steps(tiny_config, "bfloat16")
  assert float_dtypes((mixed.params, mixed.opt_state, mixed.batch_stats)) == {
    jnp.dtype(jnp.float32)
  }
  assert mixed_losses.dtype == np.float32
  # bfloat16 keeps 8 bits of mantissa: losses agree to about 1%.
  np.testing.assert_allclose(mixed_losses, full_losses, rtol=2e-2)
  assert not np.array_equal(mixed_losses, full_losses)  # It did run in bf16.


def test_apply_in_computes_in_bfloat16_and_returns_float32():
  seen = {}

  def apply_fn(variables, x, rng):
    seen["param"], seen["x"], seen["rng"] = (
      variables["params"]["w"].dtype,
      x.dtype,
      rng.dtype,
    )
    return x * variables["params"]["w"], {"stats": variables["stats"]}

  apply = precision.apply_in(apply_fn, "bfloat16")
  variables = {"params": {"w": jnp.ones(2)}, "stats": jnp.zeros(2)}
  out, aux = apply(variables, jnp.ones(2), jax.random.PRNGKey(0))
  assert seen == {"param": jnp.bfloat16, "x": jnp.bfloat16, "rng": jnp.uint32}
  assert out.dtype == aux["stats"].dtype == jnp.float32
  assert precision.apply_in(apply_fn, "float32") is apply_fn


def test_gan_step_in_bfloat16_keeps_float32_state():
  config = gan_runs.tiny_gan_config()
  config.compute_dtype = "bfloat16"
  parts = assemble(config, IMAGE_SHAPE)
  assert adversarial.settings_of(config, parts).compute_dtype == "bfloat16"
  state = initial_state(config, parts, IMAGE_SHAPE, total_steps=10)
  step = jax.jit(adversarial.make_steps(config, parts)[0])
  new_state, metrics = step(state, batch(), jax.random.PRNGKey(1))
  assert bool(metrics["finite"]) and metrics["loss"].dtype == jnp.float32
  assert float_dtypes(new_state) == {jnp.dtype(jnp.float32)}


def test_unknown_compute_dtype_is_a_config_error():
  with pytest.raises(ConfigError, match="compute_dtype 'float16' is unknown"):
    precision.check_config("float16")
