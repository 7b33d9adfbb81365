"""PyTorch's Conv2d and ConvTranspose2d for the conv families, per backend.

Each layer computes exactly what PyTorch's layer computes, with the same
parameters (kernel [k, k, in, out], bias [out]), in one of two forms:
- 'xla': XLA's own convolution (`lax.conv_general_dilated`; for the
  transposed conv its input-dilated form, what `lax.conv_transpose` lowers
  to and what XLA:GPU maps to cuDNN's backward-data kernel);
- 'matmul': for the strided conv, one matmul over the k*k shifted views of
  the input (im2col; for stride 2 and an even k, over the (k/2)^2 views of
  the space-to-depth input, whose gradient is cheaper); for the transposed
  conv, one matmul of each input pixel with the k*k taps, whose products
  each output phase sums (col2im, PyTorch's own CPU algorithm): only the
  taps that reach a phase, no work wasted.
`conv_impl='auto'` keeps the native convolutions on GPU and TPU (the
matmul forms are a CPU workaround, unmeasured there) and on CPU takes the
matmul forms (`resolve_conv_impl` says why): XLA:CPU runs matmuls near its
peak but some convolutions very slowly.
The forms share parameters, so a checkpoint saved under one loads under any.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors

# The choices of model.conv_impl, the conv families' layer form (the module
# docstring describes them); every family's default is 'auto'.
CONV_IMPLS = ("auto", "xla", "matmul")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def require_halvable(
  model_name: str, image_shape: Sequence[int], num_halvings: int
) -> None:
  """Stride-2 stacks must rebuild the exact input size on the way back up."""
  scale = 2**num_halvings
  height, width = image_shape[:2]
  if height % scale or width % scale:
    raise errors.ConfigError(
      f"{model_name} halves the image {num_halvings} times, so its height "
      f"and width must be divisible by {scale}; got {height}x{width}."
    )


def batch_norm(train: bool) -> nn.BatchNorm:
  """PyTorch's BatchNorm2d defaults: momentum 0.9 here keeps 90% of the old
  running average, as PyTorch's momentum 0.1 does."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


def check_conv_impl(conv_impl: str) -> str:
  """`conv_impl` itself, or a ConfigError naming the choices."""
  errors.require_choice(conv_impl, CONV_IMPLS, "model.conv_impl")
  return conv_impl


def resolve_conv_impl(conv_impl: str) -> str:
  """'xla' or 'matmul': `conv_impl`, with 'auto' decided by the backend.

  On CPU, 'auto' is the matmul forms for every layer: XLA:CPU's
  input-dilated convolution (a transposed conv) and its gradients are far
  slower than the tap matmul, and inside the while loop that training runs
  its steps in (data.device_held) the strided convs' kernel gradients stay
  generic convolutions, which XLA:CPU does not hand to its fast kernels.
  benchmarks/conv_forms.py measures the forms.
  """
  if check_conv_impl(conv_impl) != "auto":
    return conv_impl
  return "matmul" if jax.default_backend() == "cpu" else "xla"


def _shifted_views(
  x: jax.Array, size: int, stride: int, out_height: int, out_width: int
) -> jax.Array:
  """[B, out_height, out_width, size * size * C]: im2col of padded `x`."""
  return jnp.concatenate(
    [
      x[
        :,
        t : t + stride * (out_height - 1) + 1 : stride,
        u : u + stride * (out_width - 1) + 1 : stride,
      ]
      for t in range(size)
      for u in range(size)
    ],
    axis=-1,
  )


@jax.custom_vjp
def _rows_matmul(rows: jax.Array, weights: jax.Array) -> jax.Array:
  """rows [..., K] @ weights [K, N], with the weights' gradient computed as
  one contraction over the rows, rows^T @ grad.

  The same values as `rows @ weights`; only the backward pass's form
  differs. JAX's transpose of the matmul asks for (grad^T @ rows)^T, and
  XLA:CPU then writes the output gradient transposed, [N, rows], inside the
  fusion that computes it (a BatchNorm and ReLU backward, the next layer's
  input gradient), a strided write that is slow on CPU. Here it transposes
  the rows instead, an input it has already materialized. A custom VJP has
  no forward-mode derivative: for jax.jvp through a model, use
  conv_impl='xla'.
  """
  return rows @ weights


def _rows_matmul_forward(rows, weights):
  return rows @ weights, (rows, weights)


def _rows_matmul_backward(residuals, grad):
  rows, weights = residuals
  d_weights = jax.lax.dot_general(
    rows.reshape(-1, rows.shape[-1]),
    grad.reshape(-1, grad.shape[-1]),
    (((0,), (0,)), ((), ())),
  )
  return grad @ weights.T, d_weights


_rows_matmul.defvjp(_rows_matmul_forward, _rows_matmul_backward)


def _conv_as_matmul(
  x: jax.Array, kernel: jax.Array, stride: int, padding: int
) -> jax.Array:
  """NHWC input, HWIO kernel: a cross-correlation like nn.Conv's."""
  size, _, in_features, out_features = kernel.shape
  padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  out_height = (padded.shape[1] - size) // stride + 1
  out_width = (padded.shape[2] - size) // stride + 1
  if (
    stride == 2
    and size % 2 == 0
    and not (padded.shape[1] % 2 or padded.shape[2] % 2)
  ):
    return _stride_2_conv_as_matmul(padded, kernel, out_height, out_width)
  patches = _shifted_views(padded, size, stride, out_height, out_width)
  return _rows_matmul(
    patches, kernel.reshape(size * size * in_features, out_features)
  )


def _stride_2_conv_as_matmul(
  padded: jax.Array, kernel: jax.Array, out_height: int, out_width: int
) -> jax.Array:
  """A stride-2 conv of an even kernel as a stride-1 conv of half its size
  on the space-to-depth input: each 2x2 block of pixels one pixel of 4x the
  channels, then the (k/2)^2 shifted views of that as one matmul.

  The same products as im2col, but the backward pass is cheaper: im2col's
  input gradient adds k^2 zero-padded, full-size copies of the output
  gradient (for k = 4, 16 of them), and this form's only (k/2)^2 = 4, of a
  tensor of the input's size. On XLA:CPU those sums, fused into the
  transposes the kernel gradients need, are a large share of a conv VAE's
  step (benchmarks/vs_pytorch.py times it).
  """
  size, _, in_features, out_features = kernel.shape
  batch, height, width, channels = padded.shape
  half = size // 2
  # [B, H/2, W/2, (row phase r, column phase s, C)].
  blocks = padded.reshape(batch, height // 2, 2, width // 2, 2, channels)
  blocks = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(
    batch, height // 2, width // 2, 4 * channels
  )
  patches = _shifted_views(blocks, half, 1, out_height, out_width)
  # Tap (2i + r, 2j + s) of the kernel reads view (i, j) at phase (r, s).
  kernel = kernel.reshape(half, 2, half, 2, in_features, out_features)
  return _rows_matmul(
    patches,
    kernel.transpose(0, 2, 1, 3, 4, 5).reshape(
      half * half * 4 * in_features, out_features
    ),
  )


def _conv_xla(
  x: jax.Array, kernel: jax.Array, stride: int, padding: int
) -> jax.Array:
  return jax.lax.conv_general_dilated(
    x,
    kernel,
    (stride, stride),
    ((padding, padding), (padding, padding)),
    dimension_numbers=_DIMENSIONS,
  )


def _upconv_as_tap_matmul(
  x: jax.Array, kernel: jax.Array, padding: int
) -> jax.Array:
  """ConvTranspose2d(stride 2) as PyTorch's own CPU kernel computes it: one
  matmul of every input pixel with all k*k taps, then each output phase
  sums its taps' products, shifted (col2im).

  No work is wasted, and no copy of the input is made; the cost is the
  products, k*k*out channels per input pixel, which is small for the
  decoders' last layers (a few output channels) and the 3x3 kernels.
  """
  size, _, in_features, out_features = kernel.shape
  batch, height, width, _ = x.shape
  products = _rows_matmul(
    x.reshape(-1, in_features),
    kernel.transpose(2, 0, 1, 3).reshape(
      in_features, size * size * out_features
    ),
  )
  # Split, not indexed: the transpose of a split is one concatenation,
  # where each indexed tap's was a full-size pad, all of them then added.
  products = jax.lax.split(
    products.reshape(batch, height, width, size * size, out_features),
    [1] * (size * size),
    axis=3,
  )
  phases = []
  for a in (0, 1):
    row = []
    for b in (0, 1):
      total = None
      # Output 2i + a reads input i + d through tap k = a + padding - 2d:
      # the product of input i with tap k lands on phase row i - d. Columns
      # likewise, with tap m and shift e.
      for k in range((a + padding) % 2, size, 2):
        d = (a + padding - k) // 2
        for m in range((b + padding) % 2, size, 2):
          e = (b + padding - m) // 2
          tap = products[k * size + m][:, :, :, 0]
          shifted = jax.lax.pad(
            tap,
            jnp.zeros((), tap.dtype),
            ((0, 0, 0), (-d, d, 0), (-e, e, 0), (0, 0, 0)),
          )
          total = shifted if total is None else total + shifted
      row.append(total)
    phases.append(jnp.stack(row, axis=3))
  # [B, H, 2 (a), W, 2 (b), C] -> output row 2i + a, column 2j + b.
  return jnp.stack(phases, axis=2).reshape(
    batch, 2 * height, 2 * width, out_features
  )


def _upconv_xla(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  """ConvTranspose2d(stride 2) as XLA's input-dilated convolution: the
  gradient of a stride-2 conv, which XLA:GPU runs as cuDNN's backward-data
  kernel. The padding adds the output_padding that doubles odd kernels."""
  size = kernel.shape[0]
  low = size - 1 - padding
  high = size - low  # Output size 2H - 1 + low + high - size + 1 = 2H.
  return jax.lax.conv_transpose(
    x,
    kernel.swapaxes(2, 3),
    (2, 2),
    ((low, high), (low, high)),
    dimension_numbers=_DIMENSIONS,
    transpose_kernel=True,
  )


def _bias(module: nn.Module, y: jax.Array) -> jax.Array:
  bias = module.param("bias", nn.initializers.zeros, (y.shape[-1],))
  return y + bias.reshape(1, 1, 1, -1).astype(y.dtype)


class StridedConv(nn.Module):
  """PyTorch's Conv2d(k, stride, padding), kernel [k, k, in, out]."""

  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = True
  conv_impl: str = "auto"  # See the module docstring.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel",
      nn.initializers.lecun_normal(),
      (self.kernel_size, self.kernel_size, x.shape[-1], self.features),
    )
    conv = (
      _conv_as_matmul
      if resolve_conv_impl(self.conv_impl) == "matmul"
      else _conv_xla
    )
    y = conv(x, kernel.astype(x.dtype), self.stride, self.padding)
    return _bias(self, y) if self.use_bias else y


class UpConv(nn.Module):
  """PyTorch's ConvTranspose2d(k, stride=2, padding) that doubles H and W.

  Covers the seed's k=4, padding=1 and k=3, padding=1, output_padding=1.
  """

  features: int
  kernel_size: int = 4
  padding: int = 1
  use_bias: bool = True
  conv_impl: str = "auto"  # See the module docstring.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel",
      nn.initializers.lecun_normal(),
      (self.kernel_size, self.kernel_size, x.shape[-1], self.features),
    )
    upconv = (
      _upconv_as_tap_matmul
      if resolve_conv_impl(self.conv_impl) == "matmul"
      else _upconv_xla
    )
    y = upconv(x, kernel.astype(x.dtype), self.padding)
    return _bias(self, y) if self.use_bias else y
