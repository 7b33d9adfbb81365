"""The negative ELBO of a VAE, per image, in nats: the whole objective.

    loss = -log p(x|z) + β · KL(q(z|x) || p(z)),   z = mu + σ · eps,

with z drawn once per image by the reparameterization, so that gradients
flow through the sample to mu and σ. The KL is the model's prior's
(`models.priors`): in closed form for N(0, I), estimated at the same draw
of z for the VampPrior. β
(`loss.kl_weight`) is 1 for the true bound; `nelbo` reports the true bound
whatever β. The likelihoods are in `likelihoods`.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.objectives import likelihoods
from vae_jax.objectives import objective

LEARNED_VARIANCES = ("shared", "per_pixel")


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.objective = "negative_elbo"  # vae_jax/objectives/negative_elbo.py.
  # 'bernoulli' (BCE), 'gaussian' (fixed variance: MSE) or
  # 'gaussian_learned' (variance learned with the model).
  config.likelihood = "bernoulli"
  config.gaussian_variance = 1.0  # Fixed pixel variance of 'gaussian'.
  # 'gaussian_learned': one 'shared' variance or one per pixel ('per_pixel').
  config.learned_variance = "per_pixel"
  config.kl_weight = 1.0  # β; 1.0 is the true ELBO.
  config.kl_warmup_steps = 0  # Steps over which β ramps up from 0.
  return config


def check_likelihood(loss_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for likelihood settings (`likelihood`,
  `gaussian_variance`, `learned_variance`) no run could use."""
  errors.require_choice(
    loss_config.likelihood, likelihoods.LIKELIHOODS, "loss.likelihood"
  )
  errors.require_choice(
    loss_config.learned_variance, LEARNED_VARIANCES, "loss.learned_variance"
  )
  errors.require(
    loss_config.gaussian_variance > 0,
    "loss.gaussian_variance "
    f"must be positive, got {loss_config.gaussian_variance}.",
  )


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  check_likelihood(loss_config)
  errors.require(
    loss_config.kl_weight >= 0,
    f"loss.kl_weight must be >= 0, got {loss_config.kl_weight}.",
  )
  errors.require(
    loss_config.kl_warmup_steps >= 0,
    f"loss.kl_warmup_steps must be >= 0, got {loss_config.kl_warmup_steps}.",
  )


def reparameterize(
  rng: jax.Array,
  mu: jax.Array,
  logvar: jax.Array,
  num_samples: int | None = None,
) -> tuple[jax.Array, jax.Array]:
  """z = mu + sigma * eps, so gradients flow through the sample to mu and
  sigma, and eps ~ N(0, I); `num_samples` draws along a new first axis, or
  one."""
  shape = mu.shape if num_samples is None else (num_samples, *mu.shape)
  # Drawn in float32 whatever the compute dtype: the same noise either way.
  eps = jax.random.normal(rng, shape, jnp.float32).astype(mu.dtype)
  sigma = jnp.exp(0.5 * logvar)
  if num_samples is not None:
    mu, sigma = mu[None], sigma[None]
  return mu + sigma * eps, eps


def kl_weight_at(
  step: jax.Array, kl_weight: float, kl_warmup_steps: int
) -> jax.Array:
  """β at `step`: ramps linearly from 0 over the warm-up, then stays.

  Arithmetic only, so that either number may be a traced array.
  """
  ramp = jnp.minimum(
    1.0, step.astype(jnp.float32) / jnp.maximum(kl_warmup_steps, 1)
  )
  return kl_weight * jnp.where(jnp.asarray(kl_warmup_steps) > 0, ramp, 1.0)


def negative_elbo(
  logits: jax.Array,
  kl: jax.Array,
  images: jax.Array,
  *,
  likelihood: str,
  kl_weight: jax.Array,
  gaussian_variance: float = 1.0,
  pixel_logvar: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """Per-image terms of the objective; `loss` is what training minimizes."""
  logits, images = likelihoods.flat_pixels(logits, images)
  recon = likelihoods.reconstruction(
    logits,
    images,
    likelihood=likelihood,
    gaussian_variance=gaussian_variance,
    pixel_logvar=pixel_logvar,
  )
  return {
    "loss": recon + kl_weight * kl,
    # The true negative ELBO, whatever β: comparable across runs and epochs.
    "nelbo": recon + kl,
    "recon": recon,
    "kl": kl,
    "mse": likelihoods.squared_error(jax.nn.sigmoid(logits), images),
  }


class Draw(NamedTuple):
  """One z ~ q(z|x) per image, [B, D] each, and the posterior it came from:
  z = mu + exp(logvar / 2) * eps."""

  z: jax.Array
  eps: jax.Array
  mu: jax.Array
  logvar: jax.Array


def sample_decode_and_draw(
  vae: Any, images: jax.Array, rng: jax.Array, train: bool
) -> tuple[jax.Array, jax.Array, Draw]:
  """A Flax method of `models.vae.VAE`: logits of p(x|z) for one
  z ~ q(z|x) per image, KL(q(z|x) || p(z)) (at that z where it has no
  closed form), and the draw, for objectives that read more of it."""
  mu, logvar = vae.encode(images, train)
  z, eps = reparameterize(rng, mu, logvar)
  kl = vae.prior_kl(mu, logvar, eps)
  return vae.decode(z, train), kl, Draw(z=z, eps=eps, mu=mu, logvar=logvar)


def sample_and_decode(
  vae: Any, images: jax.Array, rng: jax.Array, train: bool
) -> tuple[jax.Array, jax.Array]:
  """`sample_decode_and_draw`'s logits and KL."""
  logits, kl, _ = sample_decode_and_draw(vae, images, rng, train)
  return logits, kl


def terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms at one sample of z, and the BatchNorm statistics."""
  (logits, kl), batch_stats = objective.apply(
    vae, images, rng, method=sample_and_decode
  )
  kl_weight = kl_weight_at(
    step, loss_config.kl_weight, loss_config.kl_warmup_steps
  )
  elbo = configured(vae, logits, kl, images, kl_weight, loss_config)
  return elbo, batch_stats


def configured(
  vae: objective.Network,
  logits: jax.Array,
  kl: jax.Array,
  images: jax.Array,
  kl_weight: jax.Array,
  loss_config: ml_collections.ConfigDict,
) -> dict[str, jax.Array]:
  """`negative_elbo` with `loss_config`'s likelihood and the network's
  learned pixel variance, if it has one: what objectives built on the ELBO
  share."""
  return negative_elbo(
    logits,
    kl,
    images,
    likelihood=loss_config.likelihood,
    kl_weight=kl_weight,
    gaussian_variance=loss_config.gaussian_variance,
    pixel_logvar=vae.variables["params"].get("pixel_logvar"),
  )


def with_pixel_variance(
  model: Any, loss_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Any:
  """The VAE, with the learned log-variance of 'gaussian_learned'."""
  if loss_config.likelihood != "gaussian_learned":
    return model
  shared = loss_config.learned_variance == "shared"
  return model.clone(pixel_logvar_shape=() if shared else tuple(image_shape))


OBJECTIVES = (
  objective.Objective(
    name="negative_elbo",
    kinds=(family.Kind.LATENT_VARIABLE,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=jax.nn.sigmoid,
    adapt_model=with_pixel_variance,
    traced_fields=("kl_weight", "kl_warmup_steps", "gaussian_variance"),
  ),
)
