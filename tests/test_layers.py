"""UpConv computes exactly PyTorch's stride-2 ConvTranspose2d."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import layers


def torch_conv_transpose(x, kernel, padding, output_size):
  """PyTorch's definition, loop by loop: out[2i + k - p] += x[i] * w[k]."""
  batch, height, width, _ = x.shape
  size = kernel.shape[0]
  out = np.zeros((batch, output_size, output_size, kernel.shape[-1]))
  for i in range(height):
    for j in range(width):
      for k in range(size):
        for l in range(size):
          oi, oj = 2 * i + k - padding, 2 * j + l - padding
          if 0 <= oi < output_size and 0 <= oj < output_size:
            out[:, oi, oj] += x[:, i, j] @ kernel[k, l]
  return out


@pytest.mark.parametrize("kernel_size", [4, 3])
def test_upconv_matches_pytorch_definition(kernel_size):
  x = np.random.default_rng(0).normal(size=(2, 3, 3, 5)).astype(np.float32)
  layer = layers.UpConv(7, kernel_size=kernel_size, padding=1)
  variables = layer.init(jax.random.PRNGKey(0), x)
  variables = jax.tree.map(
      lambda v: jax.random.normal(jax.random.PRNGKey(1), v.shape), variables)
  expected = torch_conv_transpose(
      x, np.asarray(variables["params"]["kernel"]), 1, 6)
  expected += np.asarray(variables["params"]["bias"])
  np.testing.assert_allclose(layer.apply(variables, x), expected,
                             rtol=1e-4, atol=1e-4)


def test_upconv_doubles_any_size_and_counts_like_pytorch():
  layer = layers.UpConv(8, kernel_size=4, use_bias=False)
  x = jnp.zeros((1, 5, 7, 3))
  variables = layer.init(jax.random.PRNGKey(0), x)
  assert layer.apply(variables, x).shape == (1, 10, 14, 8)
  assert variables["params"]["kernel"].size == 4 * 4 * 3 * 8


@pytest.mark.parametrize("kernel_size,padding", [(4, 1), (3, 1)])
def test_strided_conv_matches_xla_convolution(kernel_size, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 6, 3))
  layer = layers.StridedConv(5, kernel_size=kernel_size, padding=padding)
  variables = layer.init(jax.random.PRNGKey(1), x)
  variables = jax.tree.map(
      lambda v: jax.random.normal(jax.random.PRNGKey(2), v.shape), variables)
  params = variables["params"]
  expected = jax.lax.conv_general_dilated(
      x, params["kernel"], (2, 2), ((padding, padding), (padding, padding)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  expected = expected + params["bias"].reshape(1, 1, 1, -1)
  np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-4,
                             atol=1e-4)
  assert layer.apply(variables, x).shape == (2, 4, 3, 5)
