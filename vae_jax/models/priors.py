"""The prior p(z) over a latent-variable model's top layer, as part of the
model: N(0, I), or the VampPrior (Tomczak & Welling, AISTATS 2018).

The VampPrior is the mixture of the model's own posteriors at K learned
pseudo-inputs u_1..u_K, images of the data's shape:

    p(z) = (1/K) sum_k q(z | u_k).

Its components come from the model's `encode`, so the prior is given that
function (`encode(images) -> (mu, logvar)`) at every call, and learns the
pseudo-inputs with the model. Every prior answers the same three calls, so
the objectives, the k-sample estimator and the analysis use any of them
alike:

- `log_density(z, encode)`: log p(z), per row of z [..., D];
- `sample(rng, num, encode)`: num draws [num, D];
- `kl(mu, logvar, eps, encode)`: the KL term of the ELBO for one
  reparameterized draw z = mu + exp(logvar / 2) * eps per image: in closed
  form for N(0, I), and log q(z|x) - log p(z) at that draw for the mixture,
  which has none.

A config's `model.prior` section chooses one (`default_config`); every
latent-variable family builds its model with `build(model.prior, ...)`.
"""

from collections.abc import Callable, Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors

PRIORS = ("standard_normal", "vamp")
_LOG_2PI = math.log(2 * math.pi)

# images [K, ...] -> (mu, logvar), each [K, D]: the model's posterior.
Encode = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # 'standard_normal': N(0, I). 'vamp': the mixture of the posteriors at
  # learned pseudo-inputs (VampPrior).
  config.name = "standard_normal"
  config.num_pseudo_inputs = 500  # 'vamp': K, the mixture's components.
  # 'vamp': pseudo-input pixels start as N(mean, std), clipped to [0, 1]
  # (the paper's 0.05 and 0.01: nearly black images).
  config.pseudo_input_mean = 0.05
  config.pseudo_input_std = 0.01
  return config


def log_normal(z: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mu, diag(exp(logvar))), summed over the last axis."""
  return -0.5 * jnp.sum(
    jnp.square(z - mu) * jnp.exp(-logvar) + logvar + _LOG_2PI, axis=-1
  )


def log_posterior_at_draw(eps: jax.Array, logvar: jax.Array) -> jax.Array:
  """log q(z|x) of the draw z = mu + exp(logvar / 2) * eps, from its noise:
  `log_normal(z, mu, logvar)` without the cancellation of z - mu."""
  return -0.5 * jnp.sum(jnp.square(eps) + logvar + _LOG_2PI, axis=-1)


def kl_to_standard_normal(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mu, exp(logvar)) || N(0, I)) per row, in closed form."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar, axis=-1)


class StandardNormal(nn.Module):
  """p(z) = N(0, I): no parameters."""

  latent_size: int

  def log_density(self, z: jax.Array, encode: Encode) -> jax.Array:
    del encode
    return -0.5 * jnp.sum(jnp.square(z) + _LOG_2PI, axis=-1)

  def sample(self, rng: jax.Array, num: int, encode: Encode) -> jax.Array:
    del encode
    return jax.random.normal(rng, (num, self.latent_size))

  def kl(
    self, mu: jax.Array, logvar: jax.Array, eps: jax.Array, encode: Encode
  ) -> jax.Array:
    del eps, encode
    return kl_to_standard_normal(mu, logvar)


class VampPrior(nn.Module):
  """p(z) = (1/K) sum_k q(z | u_k), the u_k learned pseudo-inputs."""

  num_pseudo_inputs: int
  image_shape: Sequence[int]
  pseudo_input_mean: float
  pseudo_input_std: float

  def setup(self):
    def init(rng, shape):
      return self.pseudo_input_mean + self.pseudo_input_std * (
        jax.random.normal(rng, shape)
      )

    self.raw_pseudo_inputs = self.param(
      "pseudo_inputs",
      init,
      (self.num_pseudo_inputs, *self.image_shape),
    )

  def pseudo_inputs(self) -> jax.Array:
    """The K pseudo-inputs as images, in the pixel range [0, 1] the model
    reads (a hard tanh, as in the paper)."""
    return jnp.clip(self.raw_pseudo_inputs, 0.0, 1.0)

  def components(self, encode: Encode) -> tuple[jax.Array, jax.Array]:
    """The mixture's means and log-variances, each [K, D]."""
    return encode(self.pseudo_inputs())

  def log_density(self, z: jax.Array, encode: Encode) -> jax.Array:
    mu, logvar = self.components(encode)
    leading = (None,) * (z.ndim - 1)  # Components broadcast over z's rows.
    per_component = log_normal(z[..., None, :], mu[leading], logvar[leading])
    return jax.nn.logsumexp(per_component, axis=-1) - math.log(
      self.num_pseudo_inputs
    )

  def sample(self, rng: jax.Array, num: int, encode: Encode) -> jax.Array:
    """A component uniformly, then z from it: num draws [num, D]."""
    mu, logvar = self.components(encode)
    pick_rng, noise_rng = jax.random.split(rng)
    picked = jax.random.randint(pick_rng, (num,), 0, self.num_pseudo_inputs)
    eps = jax.random.normal(noise_rng, (num, mu.shape[-1]))
    return mu[picked] + jnp.exp(0.5 * logvar[picked]) * eps

  def kl(
    self, mu: jax.Array, logvar: jax.Array, eps: jax.Array, encode: Encode
  ) -> jax.Array:
    """log q(z|x) - log p(z) at z = mu + exp(logvar / 2) * eps: an unbiased
    one-sample estimate of the KL, which has no closed form here."""
    z = mu + jnp.exp(0.5 * logvar) * eps
    return log_posterior_at_draw(eps, logvar) - self.log_density(z, encode)


def check_config(prior_config: ml_collections.ConfigDict) -> None:
  errors.require_choice(prior_config.name, PRIORS, "model.prior.name")
  errors.require(
    prior_config.num_pseudo_inputs > 0,
    "model.prior.num_pseudo_inputs must be positive, got "
    f"{prior_config.num_pseudo_inputs}.",
  )
  errors.require(
    prior_config.pseudo_input_std >= 0,
    "model.prior.pseudo_input_std must be >= 0, got "
    f"{prior_config.pseudo_input_std}.",
  )


def build(
  prior_config: ml_collections.ConfigDict,
  latent_size: int,
  image_shape: Sequence[int],
) -> nn.Module:
  """The prior `prior_config` names, over `latent_size` dimensions, for a
  model of images of `image_shape`."""
  check_config(prior_config)
  if prior_config.name == "vamp":
    return VampPrior(
      num_pseudo_inputs=prior_config.num_pseudo_inputs,
      image_shape=tuple(image_shape),
      pseudo_input_mean=prior_config.pseudo_input_mean,
      pseudo_input_std=prior_config.pseudo_input_std,
    )
  return StandardNormal(latent_size=latent_size)
