"""DIP-VAE-I (Kumar et al., ICLR 2018): the negative ELBO plus a penalty
that pushes the covariance of the posterior means over the data toward the
identity,

    loss = negative_elbo's loss
         + λ_od · sum_{i != j} Cov[mu]_ij² + λ_d · sum_i (Cov[mu]_ii - 1)²,

Cov[mu] estimated on the batch (E[mu muᵀ] - E[mu] E[mu]ᵀ, divided by the
batch size), as disentanglement_lib's DIPVAE with dip_type 'i'. Everything
else (the likelihood, β and its warm-up) is `negative_elbo`'s, read from
the same fields; the warm-up ramps only the KL, not the penalty.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective


def default_config() -> ml_collections.ConfigDict:
  config = negative_elbo.default_config()
  config.objective = "dip_vae"  # vae_jax/objectives/dip_vae.py.
  # λ_od, the weight of the squared off-diagonal covariances: 5, one of
  # disentanglement_lib's DIP-VAE-I strengths (1, 2, 5, 10, 20, 50).
  config.lambda_off_diagonal = 5.0
  # λ_d, the weight of the diagonal's squared distance to 1:
  # disentanglement_lib's λ_d = 10 · λ_od (lambda_d_factor) for DIP-VAE-I.
  config.lambda_diagonal = 50.0
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  negative_elbo.check_config(loss_config)
  for name in ("lambda_off_diagonal", "lambda_diagonal"):
    errors.require(
      loss_config[name] >= 0,
      f"loss.{name} must be >= 0, got {loss_config[name]}.",
    )


def covariance_penalties(mu: jax.Array) -> tuple[jax.Array, jax.Array]:
  """sum_{i != j} C_ij² and sum_i (C_ii - 1)² of C, the covariance of the
  batch's posterior means mu [M, D] (divided by M)."""
  centered = mu - jnp.mean(mu, axis=0, keepdims=True)
  covariance = centered.T @ centered / mu.shape[0]
  diagonal = jnp.diagonal(covariance)
  off_diagonal = jnp.sum(jnp.square(covariance)) - jnp.sum(jnp.square(diagonal))
  return off_diagonal, jnp.sum(jnp.square(diagonal - 1.0))


def terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms at one sample of z, and the BatchNorm statistics."""
  (logits, kl, draw), batch_stats = objective.apply(
    vae, images, rng, method=negative_elbo.sample_decode_and_draw
  )
  kl_weight = negative_elbo.kl_weight_at(
    step, loss_config.kl_weight, loss_config.kl_warmup_steps
  )
  elbo = negative_elbo.configured(
    vae, logits, kl, images, kl_weight, loss_config
  )
  off_diagonal, diagonal = covariance_penalties(draw.mu)
  penalty = (
    loss_config.lambda_off_diagonal * off_diagonal
    + loss_config.lambda_diagonal * diagonal
  )
  # The covariance is the batch's, not a sum over images: each image gets
  # the whole penalty, so that the trainer's mean over images (and its
  # gradient) is the penalty's.
  per_image = jnp.ones_like(kl)
  return {
    **elbo,
    "loss": elbo["loss"] + penalty * per_image,
    "off_diagonal_covariance": off_diagonal * per_image,
    "diagonal_covariance": diagonal * per_image,
  }, batch_stats


OBJECTIVES = (
  objective.Objective(
    name="dip_vae",
    kinds=(family.Kind.LATENT_VARIABLE,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=jax.nn.sigmoid,
    adapt_model=negative_elbo.with_pixel_variance,
    traced_fields=(
      "kl_weight",
      "kl_warmup_steps",
      "gaussian_variance",
      "lambda_off_diagonal",
      "lambda_diagonal",
    ),
  ),
)
