"""Likelihoods p(x|z) of images under a decoder's outputs, per image, in nats.

A decoder returns `logits` with the image's shape. Every likelihood reads
them the same way: `sigmoid(logits)` is the mean image in [0, 1], which is
what reconstructions and samples show. Each returns -log p(x|z) summed over
an image's pixels; the objectives (`negative_elbo`, the IWAE bound) add the
latent terms.
"""

from collections.abc import Callable
import math

import jax
import jax.numpy as jnp


def _sum_per_image(values: jax.Array) -> jax.Array:
  return values.reshape(values.shape[0], -1).sum(axis=-1)


def bernoulli_nll(logits: jax.Array, images: jax.Array, **unused) -> jax.Array:
  """-log p(x|z) for pixels in [0, 1] read as Bernoulli probabilities (BCE).

  softplus(x) - x*y in its stable form, with one exp per pixel: optax's
  two log-sigmoids cost two exp-log1p passes forward, the step's costliest
  elementwise work on MNIST's MLP. max(x, 0) is written (x + |x|) / 2 so
  that the gradient at x = 0 is sigmoid(0) - y whatever |x|'s slope there.
  """
  magnitude = jnp.abs(logits)
  return _sum_per_image(
    0.5 * (logits + magnitude)
    - logits * images
    + jnp.log1p(jnp.exp(-magnitude))
  )


def _gaussian_nll(
  images: jax.Array, mean: jax.Array, logvar: jax.Array
) -> jax.Array:
  logvar = jnp.broadcast_to(logvar, images.shape)  # Shared or per pixel.
  return _sum_per_image(
    0.5
    * (
      jnp.square(images - mean) * jnp.exp(-logvar)
      + logvar
      + math.log(2 * math.pi)
    )
  )


def gaussian_nll(
  logits: jax.Array, images: jax.Array, *, gaussian_variance: float, **unused
) -> jax.Array:
  """-log N(x; sigmoid(logits), variance I): MSE scaled, plus its constant."""
  # jnp, not math: the variance may be a traced array (`trainers.members`).
  logvar = jnp.log(jnp.asarray(gaussian_variance, jnp.float32)).astype(
    logits.dtype
  )
  return _gaussian_nll(images, jax.nn.sigmoid(logits), logvar)


# Floor of a learned pixel variance: pixels that are always 0 (MNIST's border)
# would otherwise drive it to 0 and the density, and loss, to -infinity.
MIN_PIXEL_LOGVAR = math.log(1e-3)


def gaussian_learned_nll(
  logits: jax.Array, images: jax.Array, *, pixel_logvar: jax.Array, **unused
) -> jax.Array:
  """As `gaussian_nll`, with a learned log-variance (shared or per pixel).

  The parameter maps smoothly onto (MIN_PIXEL_LOGVAR, inf); 0 maps to ~0.
  """
  logvar = MIN_PIXEL_LOGVAR + jax.nn.softplus(pixel_logvar - MIN_PIXEL_LOGVAR)
  return _gaussian_nll(images, jax.nn.sigmoid(logits), logvar)


LIKELIHOODS: dict[str, Callable[..., jax.Array]] = {
  "bernoulli": bernoulli_nll,
  "gaussian": gaussian_nll,
  "gaussian_learned": gaussian_learned_nll,
}


def squared_error(predictions: jax.Array, images: jax.Array) -> jax.Array:
  """Mean squared error per image (over pixels and channels)."""
  return jnp.mean(
    jnp.square(images - predictions).reshape(images.shape[0], -1), axis=-1
  )


def flat_pixels(*arrays: jax.Array) -> tuple[jax.Array, ...]:
  """[B, H, W, C] arrays as [B, H*W*C], for per-pixel terms summed per image.

  A plain reshape, which XLA may fuse into the decoder's last layer: XLA:CPU
  fuses per-pixel terms over flat rows better than over 4-D images.
  """
  return tuple(x.reshape(x.shape[0], -1) for x in arrays)


def reconstruction(
  logits: jax.Array,
  images: jax.Array,
  *,
  likelihood: str,
  gaussian_variance: float = 1.0,
  pixel_logvar: jax.Array | None = None,
) -> jax.Array:
  """-log p(x|z) per image under `likelihood` (a `LIKELIHOODS` name), from
  flat logits and images [B, pixels] (`flat_pixels`); `pixel_logvar` is
  'gaussian_learned''s parameter, shared or one per pixel."""
  if pixel_logvar is not None and pixel_logvar.ndim:  # One per pixel.
    pixel_logvar = pixel_logvar.reshape(-1)
  return LIKELIHOODS[likelihood](
    logits,
    images,
    gaussian_variance=gaussian_variance,
    pixel_logvar=pixel_logvar,
  )
