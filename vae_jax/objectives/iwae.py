"""k-sample bounds of a VAE: the IWAE bound and the k-sample VAE objective.

With z_1..z_k ~ q(z|x) and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)
(z: every stochastic layer of the model, drawn ancestrally),

    iwae:   loss = -(logsumexp_i log w_i - log k)   (Burda et al., 2016)
    vae_k:  loss = -(1/k) sum_i log w_i             (k ELBO estimates, averaged)

Both are the negative ELBO for k = 1 (as a one-sample estimate: the KL is
sampled, not in closed form), and the IWAE bound tightens toward -log p(x)
as k grows. All k samples are drawn and decoded in one pass of the model, on
k x batch latents, up to MAX_DRAWS_PER_PASS; beyond, in chunks of draws,
each recomputed for the gradient. `loss.num_samples` is k; the likelihood is
`loss.likelihood`, as for `negative_elbo`. The `nelbo`, `recon`, `kl` and
`mse` terms, averaged over the k samples (the KL sampled, not in closed
form), are reported beside the bound.
"""

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import priors
from vae_jax.objectives import likelihoods
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective

# Draws (k x batch) a training step decodes together. Above it the k draws
# per image are decoded in chunks of this many rows, so memory stays bounded
# when k x batch is large (the IWAE paper's k = 50 at batch 20 is 1,000).
MAX_DRAWS_PER_PASS = 8192


def _default_config(name: str) -> ml_collections.ConfigDict:
  config = negative_elbo.default_config()
  config.objective = name  # vae_jax/objectives/iwae.py.
  config.num_samples = 5  # k: samples of z per image.
  del config.kl_weight, config.kl_warmup_steps  # A bound has no β.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  errors.require(
    loss_config.num_samples >= 1,
    f"loss.num_samples must be >= 1, got {loss_config.num_samples}.",
  )
  negative_elbo.check_likelihood(loss_config)


def _tiled(images: jax.Array, num_samples: int) -> jax.Array:
  """`images` [B, ...] repeated `num_samples` times, [k * B, ...]."""
  tiled = jnp.broadcast_to(images[None], (num_samples, *images.shape))
  return tiled.reshape(num_samples * images.shape[0], *images.shape[1:])


def draw_latents(
  vae: Any, images: jax.Array, rng: jax.Array, train: bool, *, num_samples: int
) -> tuple[jax.Array, jax.Array]:
  """A Flax method of any latent-variable model (`models.vae`): k ancestral
  draws h_1..h_L ~ q(h | x) per image, all k in one pass, as the logits of
  p(x | h_1) [k * B, ...] (sample-major) and log p(h) - log q(h | x) [k, B].

  Layer l's noise comes from fold_in(rng, l) (layer 1's from rng itself),
  and every term is reparameterized, so gradients flow through the draws.
  """
  mu, logvar = vae.posterior(0, images, train)
  h, eps = negative_elbo.reparameterize(rng, mu, logvar, num_samples)
  draws = [h.reshape(-1, mu.shape[-1])]
  log_q = priors.log_posterior_at_draw(eps, logvar[None]).reshape(-1)
  for layer in range(1, vae.stochastic_layers):
    mu, logvar = vae.posterior(layer, draws[-1], train)
    h, eps = negative_elbo.reparameterize(
      jax.random.fold_in(rng, layer), mu, logvar
    )
    draws.append(h)
    log_q += priors.log_posterior_at_draw(eps, logvar)
  log_p = vae.log_prior(draws[-1])
  for layer in range(1, vae.stochastic_layers):
    log_p += priors.log_normal(
      draws[layer - 1], *vae.conditional_prior(layer, draws[layer], train)
    )
  logits = vae.likelihood_logits(draws[0], train)
  return logits, (log_p - log_q).reshape(num_samples, -1)


def log_weights(
  logits: jax.Array,
  log_latent_ratio: jax.Array,
  images: jax.Array,
  *,
  likelihood: str,
  gaussian_variance: float = 1.0,
  pixel_logvar: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """log w [k, B] and -log p(x | h_1) [k, B] of k draws, from their logits
  [k * B, ...] and log p(h) - log q(h | x) [k, B] (`draw_latents`)."""
  num_samples = log_latent_ratio.shape[0]
  logits, tiled = likelihoods.flat_pixels(logits, _tiled(images, num_samples))
  recon = likelihoods.reconstruction(
    logits,
    tiled,
    likelihood=likelihood,
    gaussian_variance=gaussian_variance,
    pixel_logvar=pixel_logvar,
  ).reshape(num_samples, -1)
  return -recon + log_latent_ratio, recon


def bound(weights: jax.Array, importance_weighted: bool) -> jax.Array:
  """The IWAE bound, or the k-sample VAE's mean ELBO, from log w [k, B]."""
  if importance_weighted:
    return jax.nn.logsumexp(weights, axis=0) - math.log(weights.shape[0])
  return jnp.mean(weights, axis=0)


def _draw_terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  num_draws: int,
  loss_config: ml_collections.ConfigDict,
):
  """For `num_draws` draws per image, all decoded in one pass: log w, -log
  p(x|h_1), log p(h) - log q(h|x) and the mean image's squared error per
  pixel, each [num_draws, B]; and the BatchNorm statistics."""
  (logits, log_latent_ratio), batch_stats = objective.apply(
    vae,
    images,
    rng,
    method=functools.partial(draw_latents, num_samples=num_draws),
  )
  weights, recon = log_weights(
    logits,
    log_latent_ratio,
    images,
    likelihood=loss_config.likelihood,
    gaussian_variance=loss_config.gaussian_variance,
    pixel_logvar=vae.variables["params"].get("pixel_logvar"),
  )
  squared_error = likelihoods.squared_error(
    jax.nn.sigmoid(logits), _tiled(images, num_draws)
  ).reshape(num_draws, -1)
  return (weights, recon, log_latent_ratio, squared_error), batch_stats


def terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
  importance_weighted: bool,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms of the IWAE bound (`importance_weighted`) or of the
  k-sample VAE objective, and the BatchNorm statistics."""
  del step  # No schedule.
  num_samples = loss_config.num_samples
  draws_per_pass = max(1, MAX_DRAWS_PER_PASS // images.shape[0])
  if num_samples <= draws_per_pass:
    per_draw, batch_stats = _draw_terms(
      vae, images, rng, num_samples, loss_config
    )
  else:
    # Chunks of draws, each recomputed in the backward pass (jax.checkpoint):
    # the activations kept for the gradient are one chunk's, whatever k.
    num_passes = math.ceil(num_samples / draws_per_pass)
    chunk = jax.checkpoint(
      lambda key: _draw_terms(vae, images, key, draws_per_pass, loss_config)
    )
    per_draw, batch_stats = jax.lax.map(
      chunk, jax.random.split(rng, num_passes)
    )
    per_draw = tuple(
      values.reshape(-1, images.shape[0])[:num_samples] for values in per_draw
    )
    batch_stats = jax.tree.map(lambda stats: stats[-1], batch_stats)
  weights, recon, log_latent_ratio, squared_error = per_draw
  recon = jnp.mean(recon, axis=0)
  kl = -jnp.mean(log_latent_ratio, axis=0)
  return {
    "loss": -bound(weights, importance_weighted),
    "nelbo": recon + kl,  # The k draws' mean -ELBO.
    "recon": recon,
    "kl": kl,  # log q(h|x) - log p(h), sampled, over every layer.
    "mse": jnp.mean(squared_error, axis=0),
  }, batch_stats


OBJECTIVES = tuple(
  objective.Objective(
    name=name,
    kinds=(family.Kind.LATENT_VARIABLE,),
    trainer="single_network",
    default_config=lambda name=name: _default_config(name),
    check_config=check_config,
    terms=functools.partial(terms, importance_weighted=name == "iwae"),
    to_images=jax.nn.sigmoid,
    adapt_model=negative_elbo.with_pixel_variance,
    stacked_latents=True,
    traced_fields=("gaussian_variance",),
  )
  for name in ("iwae", "vae_k")
)
