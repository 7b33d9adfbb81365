"""The VAE wiring shared by every encoder/decoder family.

A family module supplies an encoder (images -> mu, logvar) and a decoder
(z -> logits shaped like the images); `VAE` joins them with the
reparameterized sample in between.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.objectives import likelihoods


class VAE(nn.Module):
  """q(z|x) from `encoder`, p(x|z) from `decoder`, prior N(0, I)."""
  encoder: nn.Module
  decoder: nn.Module
  latent_size: int
  # Shape of a learned log-variance of p(x|z) for the 'gaussian_learned'
  # likelihood: () shares one variance, the image shape gives one per pixel.
  # None: the likelihood has no learned parameters.
  pixel_logvar_shape: Sequence[int] | None = None

  def setup(self):
    if self.pixel_logvar_shape is not None:
      self.pixel_logvar = self.param("pixel_logvar", nn.initializers.zeros,
                                     tuple(self.pixel_logvar_shape))

  def encode(self, images: jax.Array,
             train: bool = False) -> tuple[jax.Array, jax.Array]:
    mu, logvar = self.encoder(images, train=train)
    # exp(logvar) overflows float32 above 88; trained posteriors stay far
    # inside these bounds, so they only stop a diverging run from making inf.
    return mu, jnp.clip(logvar, *likelihoods.POSTERIOR_LOGVAR_RANGE)

  def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
    return self.decoder(z, train=train)

  def __call__(self, images: jax.Array, rng: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    mu, logvar = self.encode(images, train)
    z = likelihoods.reparameterize(rng, mu, logvar)
    return self.decode(z, train), mu, logvar
