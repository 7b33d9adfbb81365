"""The conv layers compute exactly PyTorch's Conv2d and ConvTranspose2d, in
every form (`conv_impl`), with the same gradients and the same parameters."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import errors
from vae_jax.models import dcgan_vae
from vae_jax.models import layers
from vae_jax.models import registry

FORMS = ("xla", "matmul", "auto")


def torch_conv_transpose(x, kernel, padding, output_size):
  """PyTorch's definition, loop by loop: out[2i + k - p] += x[i] * w[k]."""
  batch, height, width, _ = x.shape
  size = kernel.shape[0]
  out = np.zeros((batch, output_size, output_size, kernel.shape[-1]))
  for i in range(height):
    for j in range(width):
      for ki in range(size):
        for kj in range(size):
          oi, oj = 2 * i + ki - padding, 2 * j + kj - padding
          if 0 <= oi < output_size and 0 <= oj < output_size:
            out[:, oi, oj] += x[:, i, j] @ kernel[ki, kj]
  return out


def random_variables(layer, x):
  """`layer`'s variables with every entry random (biases included)."""
  variables = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  return jax.tree.unflatten(
    tree, [jax.random.normal(k, v.shape) for k, v in zip(keys, leaves)]
  )


@pytest.mark.parametrize("conv_impl", FORMS)
@pytest.mark.parametrize("kernel_size", [4, 3])
def test_upconv_matches_pytorch_definition(kernel_size, conv_impl):
  x = np.random.default_rng(0).normal(size=(2, 3, 3, 5)).astype(np.float32)
  layer = layers.UpConv(
    7, kernel_size=kernel_size, padding=1, conv_impl=conv_impl
  )
  variables = random_variables(layer, x)
  expected = torch_conv_transpose(
    x, np.asarray(variables["params"]["kernel"]), 1, 6
  )
  expected += np.asarray(variables["params"]["bias"])
  np.testing.assert_allclose(
    layer.apply(variables, x), expected, rtol=1e-4, atol=1e-4
  )


@pytest.mark.parametrize("conv_impl", FORMS)
def test_upconv_doubles_any_size_and_counts_like_pytorch(conv_impl):
  layer = layers.UpConv(8, kernel_size=4, use_bias=False, conv_impl=conv_impl)
  x = jnp.zeros((1, 5, 7, 3))
  variables = layer.init(jax.random.PRNGKey(0), x)
  assert layer.apply(variables, x).shape == (1, 10, 14, 8)
  assert variables["params"]["kernel"].size == 4 * 4 * 3 * 8


@pytest.mark.parametrize("conv_impl", FORMS)
@pytest.mark.parametrize(
  "kernel_size,padding,height",
  [
    (4, 1, 8),  # The matmul form on the space-to-depth input.
    (4, 1, 7),  # An odd padded height: im2col.
    (3, 1, 8),  # An odd kernel: im2col.
  ],
)
def test_strided_conv_matches_xla_convolution(
  kernel_size, padding, height, conv_impl
):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, height, 6, 3))
  layer = layers.StridedConv(
    5, kernel_size=kernel_size, padding=padding, conv_impl=conv_impl
  )
  variables = random_variables(layer, x)
  params = variables["params"]
  expected = jax.lax.conv_general_dilated(
    x,
    params["kernel"],
    (2, 2),
    ((padding, padding), (padding, padding)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )
  expected = expected + params["bias"].reshape(1, 1, 1, -1)
  np.testing.assert_allclose(
    layer.apply(variables, x), expected, rtol=1e-4, atol=1e-4
  )
  assert layer.apply(variables, x).shape == expected.shape


def gradients(layer, variables, x, cotangent):
  """d<layer(x), cotangent> by the parameters and by the input."""
  return jax.jit(
    jax.grad(  # Compiled whole: op by op takes longer.
      lambda v, x: jnp.sum(layer.apply(v, x) * cotangent), argnums=(0, 1)
    )
  )(variables, x)


@pytest.mark.parametrize(
  "layer_class,kernel_size,output_size",
  [
    (layers.UpConv, 4, 8),
    (layers.UpConv, 3, 8),
    (layers.StridedConv, 4, 2),
    (layers.StridedConv, 3, 2),
  ],
)
def test_forms_have_the_same_gradients(layer_class, kernel_size, output_size):
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 4, 4, 6))
  cotangent = jax.random.normal(
    jax.random.PRNGKey(4), (2, output_size, output_size, 5)
  )
  results = {}
  for conv_impl in ("xla", "matmul"):
    layer = layer_class(5, kernel_size=kernel_size, conv_impl=conv_impl)
    results[conv_impl] = gradients(
      layer, random_variables(layer, x), x, cotangent
    )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
    results["xla"],
    results["matmul"],
  )


def test_upconv_gradient_is_the_adjoint_of_pytorch_definition():
  """<upconv(x), g> = <x, upconv^T(g)>: the matmul form's input gradient
  against the loop reference, with no XLA convolution involved."""
  x = np.random.default_rng(5).normal(size=(1, 3, 3, 2)).astype(np.float32)
  g = np.random.default_rng(6).normal(size=(1, 6, 6, 3)).astype(np.float32)
  layer = layers.UpConv(3, use_bias=False, conv_impl="matmul")
  variables = random_variables(layer, x)
  kernel = np.asarray(variables["params"]["kernel"])
  _, dx = gradients(layer, variables, jnp.asarray(x), jnp.asarray(g))
  # Column by column: d<out, g>/dx[i] = <torch_conv_transpose(e_i), g>.
  expected = np.zeros_like(x)
  for index in np.ndindex(*x.shape):
    basis = np.zeros_like(x)
    basis[index] = 1.0
    expected[index] = np.sum(torch_conv_transpose(basis, kernel, 1, 6) * g)
  np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4)


def spy_on_forms(monkeypatch) -> list[str]:
  """Records which form each layer call computes with."""
  calls = []
  for name in (
    "_conv_xla",
    "_conv_as_matmul",
    "_upconv_xla",
    "_upconv_as_tap_matmul",
  ):
    original = getattr(layers, name)

    def spy(*args, name=name, original=original):
      calls.append(name)
      return original(*args)

    monkeypatch.setattr(layers, name, spy)
  return calls


@pytest.mark.parametrize("backend", ["gpu", "tpu"])
def test_auto_uses_xla_convolutions_off_cpu(monkeypatch, backend):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  calls = spy_on_forms(monkeypatch)
  for layer_class, shape, features in [
    (layers.UpConv, (1, 2, 2, 128), 256),
    (layers.UpConv, (1, 8, 8, 64), 1),
    (layers.StridedConv, (1, 4, 4, 256), 128),
  ]:
    x = jnp.zeros(shape)
    layer = layer_class(features)
    jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
  assert calls == ["_upconv_xla", "_upconv_xla", "_conv_xla"]


def test_auto_on_cpu_uses_the_matmul_forms(monkeypatch):
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  calls = spy_on_forms(monkeypatch)
  for layer_class, shape, features in [
    (layers.UpConv, (1, 2, 2, 128), 256),
    (layers.UpConv, (1, 8, 8, 64), 1),
    (layers.StridedConv, (1, 4, 4, 256), 128),
  ]:
    jax.eval_shape(
      layer_class(features).init, jax.random.PRNGKey(0), jnp.zeros(shape)
    )
  assert calls == [
    "_upconv_as_tap_matmul",
    "_upconv_as_tap_matmul",
    "_conv_as_matmul",
  ]


def tiny_dcgan(conv_impl):
  config = dcgan_vae.default_config()
  config.update(
    {
      "latent_size": 3,
      "channels": (4, 8),
      "dense_size": 8,
      "conv_impl": conv_impl,
    }
  )
  return registry.build(config, (8, 8, 1), num_classes=0)


def test_parameters_saved_under_one_form_load_under_another():
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1))
  saved_model = tiny_dcgan("matmul")
  # Compiled whole: op by op, the matmul forms' many small ops each compile.
  saved = flax.serialization.to_bytes(
    jax.jit(saved_model.init)(jax.random.PRNGKey(2), images)
  )
  outputs = {}
  for conv_impl in ("matmul", "xla", "auto"):
    model = tiny_dcgan(conv_impl)
    template = jax.jit(model.init)(jax.random.PRNGKey(3), images)
    variables = flax.serialization.from_bytes(template, saved)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
      jnp.shape, template
    )
    outputs[conv_impl] = jax.jit(model.apply)(variables, images)
  for conv_impl in ("xla", "auto"):
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
      outputs["matmul"],
      outputs[conv_impl],
    )


def test_unknown_conv_impl_is_a_config_error():
  with pytest.raises(errors.ConfigError, match="model.conv_impl"):
    tiny_dcgan("cudnn")
