"""Convolutions for the conv families, written as matmuls.

XLA:CPU runs matmuls near its peak but some convolutions very slowly: the
dilated ones in a transposed conv's gradient (~25x slower), and convs on
small images with many channels (a 3x3 conv from 2x2x128 to 1024 channels
took 1.4 s for a 128-image batch). Both layers here compute exactly what
PyTorch's Conv2d and ConvTranspose2d compute, with the same parameters, as
one matmul over the k*k shifted views of the input (im2col), forward and
backward.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import errors


def require_halvable(model_name: str, image_shape: Sequence[int],
                     num_halvings: int) -> None:
  """Stride-2 stacks must rebuild the exact input size on the way back up."""
  scale = 2**num_halvings
  height, width = image_shape[:2]
  if height % scale or width % scale:
    raise errors.ConfigError(
        f"{model_name} halves the image {num_halvings} times, so its height "
        f"and width must be divisible by {scale}; got {height}x{width}.")


def batch_norm(train: bool) -> nn.BatchNorm:
  """PyTorch's BatchNorm2d defaults: momentum 0.9 here keeps 90% of the old
  running average, as PyTorch's momentum 0.1 does."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5)


def _conv_as_matmul(x: jax.Array, kernel: jax.Array, stride: int,
                    padding: int) -> jax.Array:
  """NHWC input, HWIO kernel: a cross-correlation like nn.Conv's."""
  size, _, in_features, out_features = kernel.shape
  padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  out_height = (padded.shape[1] - size) // stride + 1
  out_width = (padded.shape[2] - size) // stride + 1
  patches = jnp.concatenate(
      [padded[:, t:t + stride * (out_height - 1) + 1:stride,
              u:u + stride * (out_width - 1) + 1:stride]
       for t in range(size) for u in range(size)], axis=-1)
  return patches @ kernel.reshape(size * size * in_features, out_features)


def _bias(module: nn.Module, y: jax.Array) -> jax.Array:
  bias = module.param("bias", nn.initializers.zeros, (y.shape[-1],))
  return y + bias.reshape(1, 1, 1, -1)


class StridedConv(nn.Module):
  """PyTorch's Conv2d(k, stride, padding), kernel [k, k, in, out]."""
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
        "kernel", nn.initializers.lecun_normal(),
        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    y = _conv_as_matmul(x, kernel.astype(x.dtype), self.stride, self.padding)
    return _bias(self, y) if self.use_bias else y


class UpConv(nn.Module):
  """PyTorch's ConvTranspose2d(k, stride=2, padding) that doubles H and W.

  Covers the seed's k=4, padding=1 and k=3, padding=1, output_padding=1.
  Computed as one stride-1 3x3 conv producing the four output phases, then
  depth-to-space.
  """
  features: int
  kernel_size: int = 4
  padding: int = 1
  use_bias: bool = True

  def _phase_kernel(self, kernel: jax.Array) -> jax.Array:
    """[3, 3, in, 4 * out]: for output phase (a, b), the taps on inputs
    (i - 1, i, i + 1) x (j - 1, j, j + 1). Output 2i + a reads input i + d
    through tap k = a + padding - 2d, when 0 <= k < kernel_size.
    """
    size = self.kernel_size
    taps = [[a + self.padding - 2 * d for d in (-1, 0, 1)] for a in (0, 1)]
    taps = jnp.asarray([[k if 0 <= k < size else size for k in row]
                        for row in taps])  # Index `size` is a zero tap.
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    phases = [padded[taps[a][:, None], taps[b][None, :]]
              for a in (0, 1) for b in (0, 1)]
    return jnp.concatenate(phases, axis=-1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch, height, width, in_features = x.shape
    kernel = self.param(
        "kernel", nn.initializers.lecun_normal(),
        (self.kernel_size, self.kernel_size, in_features, self.features))
    y = _conv_as_matmul(x, self._phase_kernel(kernel).astype(x.dtype),
                        stride=1, padding=1)
    y = y.reshape(batch, height, width, 2, 2, self.features)
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(
        batch, 2 * height, 2 * width, self.features)
    return _bias(self, y) if self.use_bias else y
