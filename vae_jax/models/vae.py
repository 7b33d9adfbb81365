"""The VAE wiring shared by every encoder/decoder family.

A family module supplies an encoder (images -> mu, logvar) and a decoder
(z -> logits shaped like the images); `VAE` holds them with a prior over z
(`priors`: N(0, I) or the VampPrior, chosen by `model.prior`). Sampling z
and the bound it enters are the objectives' (see `objectives.negative_elbo`),
so a new bound needs no change here.

Every latent-variable model also answers the k-sample bounds
(`objectives.iwae`) through the same three methods, whatever its number of
stochastic layers h_1..h_L (`stochastic_layers`; h_0 is the image):

- `posterior(l, h_l) -> (mu, logvar)` of q(h_{l+1} | h_l);
- `conditional_prior(l, h_{l+1}) -> (mu, logvar)` of p(h_l | h_{l+1}) for
  l = 1..L-1;
- `likelihood_logits(h_1)`: the logits of p(x | h_1).

For this one-layer VAE they are `encode` and `decode`. The top layer's
prior answers through `WithPrior`'s methods, whatever prior the config
chose.
"""

from collections.abc import Sequence
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

# Bounds of a posterior log-variance: variances from 1e-13 to 5e8.
POSTERIOR_LOGVAR_RANGE = (-30.0, 20.0)
# The variable collection a conditional model reads the classes of its
# inputs from, {'labels': int32 [B]}, beside 'params' and 'batch_stats'.
# Trainers and the analysis add it (`conditioned`) whatever the model; a
# model that is not conditional never reads it.
CONDITION = "condition"


def conditioned(variables: dict, labels: jax.Array) -> dict:
  """`variables` with the class `labels` of the images or latents a
  conditional model is applied to."""
  return {**variables, CONDITION: {"labels": labels}}


class WithPrior:
  """The top layer's prior, as methods of a latent-variable model that has
  a `prior` (a `priors` module) and an `encode(images, train)` to its top
  layer, which the VampPrior's components come from. Those encode in eval
  mode, so that pseudo-inputs never move BatchNorm's statistics."""

  def _encode_for_prior(self):
    return functools.partial(self.encode, train=False)

  def log_prior(self, z: jax.Array) -> jax.Array:
    """log p(z) per row of z [..., D]."""
    return self.prior.log_density(z, self._encode_for_prior())

  def sample_prior(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` draws z ~ p(z), [num, D]."""
    return self.prior.sample(rng, num, self._encode_for_prior())

  def prior_kl(
    self, mu: jax.Array, logvar: jax.Array, eps: jax.Array
  ) -> jax.Array:
    """The ELBO's KL(q(z|x) || p(z)) per image, at the draw
    z = mu + exp(logvar / 2) * eps where it has no closed form."""
    return self.prior.kl(mu, logvar, eps, self._encode_for_prior())


class VAE(WithPrior, nn.Module):
  """q(z|x) from `encoder`, p(x|z) from `decoder`, p(z) from `prior`."""

  encoder: nn.Module
  decoder: nn.Module
  latent_size: int
  prior: nn.Module  # A `priors` module over z.
  # Shape of a learned log-variance of p(x|z) for the 'gaussian_learned'
  # likelihood: () shares one variance, the image shape gives one per pixel.
  # None: the likelihood has no learned parameters.
  pixel_logvar_shape: Sequence[int] | None = None
  # A network its objective trains beside it, set by the objective's
  # `adapt_model`: FactorVAE's discriminator on latents. Its parameters are
  # params['objective_network'], which the objective may declare updated by
  # an optimizer of their own (`Objective.optimized_apart`).
  objective_network: nn.Module | None = None

  def setup(self):
    if self.pixel_logvar_shape is not None:
      self.pixel_logvar = self.param(
        "pixel_logvar", nn.initializers.zeros, tuple(self.pixel_logvar_shape)
      )

  def encode(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    mu, logvar = self.encoder(images, train=train)
    # exp(logvar) overflows float32 above 88; trained posteriors stay far
    # inside these bounds, so they only stop a diverging run from making inf.
    return mu, jnp.clip(logvar, *POSTERIOR_LOGVAR_RANGE)

  def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
    return self.decoder(z, train=train)

  @property
  def stochastic_layers(self) -> int:
    return 1

  def posterior(
    self, layer: int, inputs: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    del layer  # Always 0: q(z | x).
    return self.encode(inputs, train)

  def likelihood_logits(self, h: jax.Array, train: bool = False) -> jax.Array:
    return self.decode(h, train)

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """The posterior mean's decoding: what `init` traces to make every
    parameter (the prior's and the objective network's too)."""
    mu, _ = self.encode(images, train)
    self.log_prior(mu)
    if self.objective_network is not None:
      self.objective_network(mu)
    return self.decode(mu, train)
