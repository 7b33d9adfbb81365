"""k-sample bounds of a VAE: the IWAE bound and the k-sample VAE objective.

With z_1..z_k ~ q(z|x) and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),

    iwae:   loss = -(logsumexp_i log w_i - log k)   (Burda et al., 2016)
    vae_k:  loss = -(1/k) sum_i log w_i             (k ELBO estimates, averaged)

Both are the negative ELBO for k = 1 (as a one-sample estimate: the KL is
sampled, not in closed form), and the IWAE bound tightens toward -log p(x)
as k grows. All k samples are drawn and decoded in one pass of the model, on
k x batch latents. `loss.num_samples` is k; the likelihood is
`loss.likelihood`, as for `negative_elbo`, whose `nelbo`, `recon` (averaged
over the k samples), `kl` and `mse` terms are reported beside the bound.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.objectives import likelihoods
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective

_LOG_2PI = math.log(2 * math.pi)


def _default_config(name: str) -> ml_collections.ConfigDict:
  config = negative_elbo.default_config()
  config.objective = name  # vae_jax/objectives/iwae.py.
  config.num_samples = 5  # k: samples of z per image.
  del config.kl_weight, config.kl_warmup_steps  # A bound has no β.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  errors.require(loss_config.num_samples >= 1, "loss.num_samples must be >= "
                 f"1, got {loss_config.num_samples}.")
  errors.require_choice(loss_config.likelihood, likelihoods.LIKELIHOODS,
                        "loss.likelihood")
  errors.require_choice(loss_config.learned_variance,
                        negative_elbo.LEARNED_VARIANCES,
                        "loss.learned_variance")
  errors.require(loss_config.gaussian_variance > 0, "loss.gaussian_variance "
                 f"must be positive, got {loss_config.gaussian_variance}.")


def _samples_and_logits(vae: Any, images: jax.Array, rng: jax.Array,
                        train: bool, *, num_samples: int):
  """A Flax method of `models.vae.VAE`: q's mu and log-variance [B, D], k
  standard-normal draws eps [k, B, D], and the logits of p(x|z) of the k
  samples z = mu + sigma * eps, decoded together as k * B latents."""
  mu, logvar = vae.encode(images, train)
  eps = jax.random.normal(rng, (num_samples, *mu.shape), jnp.float32)
  z = mu[None] + jnp.exp(0.5 * logvar)[None] * eps.astype(mu.dtype)
  logits = vae.decode(z.reshape(-1, mu.shape[-1]), train)
  return mu, logvar, eps, logits


def log_weights(logits: jax.Array, mu: jax.Array, logvar: jax.Array,
                eps: jax.Array, images: jax.Array, *, likelihood: str,
                gaussian_variance: float = 1.0,
                pixel_logvar: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
  """log w [k, B] and -log p(x|z) [k, B] of the k samples z = mu + σ eps.

  `logits` are [k * B, ...], sample-major, as `_samples_and_logits` decodes.
  """
  num_samples = eps.shape[0]
  tiled = jnp.broadcast_to(images[None], (num_samples, *images.shape))
  logits, tiled = likelihoods.flat_pixels(logits, tiled.reshape(
      num_samples * images.shape[0], *images.shape[1:]))
  if pixel_logvar is not None and pixel_logvar.ndim:  # One per pixel.
    pixel_logvar = pixel_logvar.reshape(-1)
  recon = likelihoods.LIKELIHOODS[likelihood](
      logits, tiled, gaussian_variance=gaussian_variance,
      pixel_logvar=pixel_logvar).reshape(num_samples, -1)
  z = mu[None] + jnp.exp(0.5 * logvar)[None] * eps
  log_prior = -0.5 * jnp.sum(jnp.square(z) + _LOG_2PI, axis=-1)
  log_posterior = -0.5 * jnp.sum(jnp.square(eps) + logvar[None] + _LOG_2PI,
                                 axis=-1)
  return -recon + log_prior - log_posterior, recon


def _terms(run_model: objective.RunModel, params: Any, images: jax.Array,
           rng: jax.Array, step: jax.Array, *,
           loss_config: ml_collections.ConfigDict, importance_weighted: bool
           ) -> tuple[dict[str, jax.Array], Any]:
  del step  # No schedule.
  num_samples = loss_config.num_samples
  (mu, logvar, eps, logits), batch_stats = run_model(
      images, rng, method=lambda vae, *args, train: _samples_and_logits(
          vae, *args, train, num_samples=num_samples))
  weights, recon = log_weights(
      logits, mu, logvar, eps, images, likelihood=loss_config.likelihood,
      gaussian_variance=loss_config.gaussian_variance,
      pixel_logvar=params.get("pixel_logvar"))
  if importance_weighted:
    bound = jax.nn.logsumexp(weights, axis=0) - math.log(num_samples)
  else:
    bound = jnp.mean(weights, axis=0)
  recon = jnp.mean(recon, axis=0)
  kl = negative_elbo.kl_to_standard_normal(mu, logvar)
  mean_images = jax.nn.sigmoid(logits.reshape(num_samples, *images.shape))
  return {
      "loss": -bound,
      "nelbo": recon + kl,  # With the KL in closed form, as negative_elbo's.
      "recon": recon,
      "kl": kl,
      "mse": jnp.mean(jnp.square(mean_images - images[None]).reshape(
          num_samples, images.shape[0], -1), axis=(0, 2)),
  }, batch_stats


def iwae_terms(run_model, params, images, rng, step, *, loss_config):
  """Per-image terms of the IWAE bound, and the BatchNorm statistics."""
  return _terms(run_model, params, images, rng, step, loss_config=loss_config,
                importance_weighted=True)


def vae_k_terms(run_model, params, images, rng, step, *, loss_config):
  """Per-image terms of the k-sample VAE objective, and the statistics."""
  return _terms(run_model, params, images, rng, step, loss_config=loss_config,
                importance_weighted=False)


OBJECTIVES = tuple(
    objective.Objective(
        name=name, kinds=(family.Kind.LATENT_VARIABLE,),
        trainer="single_network",
        default_config=lambda name=name: _default_config(name),
        check_config=check_config, terms=terms, to_images=jax.nn.sigmoid,
        adapt_model=negative_elbo.with_pixel_variance)
    for name, terms in (("iwae", iwae_terms), ("vae_k", vae_k_terms)))
