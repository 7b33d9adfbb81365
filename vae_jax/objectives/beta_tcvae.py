"""β-TCVAE (Chen et al., NeurIPS 2018): the negative ELBO with its KL split
in three, and the total correlation among them weighted by β.

Averaged over the data, the ELBO's KL is

    E_x KL(q(z|x) || p(z)) = I_q(x; z)                    mutual_info
                           + KL(q(z) || prod_d q(z_d))    total_correlation
                           + KL(prod_d q(z_d) || p(z))    dimension_wise_kl

(the last is sum_d KL(q(z_d) || p(z_d)) for a factorized prior), q(z) the
aggregate posterior (1/N) sum_n q(z|x_n). With the paper's α = γ = 1 and
β on the total correlation, the loss is the negative ELBO plus (β - 1) times
the total correlation, as disentanglement_lib's BetaTCVAE writes it:

    loss = -log p(x|z) + w · (KL(q(z|x) || p(z)) + (β - 1) · TC),

the KL the model's prior's (`negative_elbo`: in closed form for N(0, I)),
w the KL warm-up's ramp and β `loss.tc_weight`. q(z) is estimated on the
minibatch by minibatch-weighted sampling (MWS; the authors' `vae_quant.py`
without --mss): for the draw z_i of image i of a batch of M,

    log q(z_i) ≈ logsumexp_j log q(z_i | x_j) - log(N M),

and each marginal q(z_id) likewise, N the training split's size
(`loss.dataset_size`). The constant log(N M) shifts the parts, never
their gradients; disentanglement_lib drops it, leaving its TC off by
(D - 1) log(N M), and the authors keep it, as here, so that each part
estimates its own quantity. The three parts sum, image by image, to
log q(z|x) - log p(z) at the draw: the KL sampled, equal to `kl` in
expectation.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import priors
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective


def default_config() -> ml_collections.ConfigDict:
  config = negative_elbo.default_config()
  config.objective = "beta_tcvae"  # vae_jax/objectives/beta_tcvae.py.
  # The paper's α = γ = 1: the mutual information and the dimension-wise KL
  # keep weight 1, so negative_elbo's β has no place here; the warm-up
  # (kl_warmup_steps) ramps the whole latent term, the TC's share included.
  del config.kl_weight
  # β, the weight of the total correlation; 1.0 is the plain ELBO. 6.0 is
  # the authors' example command (README of rtqichen/beta-tcvae), within
  # disentanglement_lib's sweep of 1 to 10.
  config.tc_weight = 6.0
  # N, the training split's size, in MWS's log(N M): MNIST's 60,000, the
  # default input.dataset's. Set it for other data; it shifts the reported
  # parts by constants, never the gradients.
  config.dataset_size = 60_000
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  negative_elbo.check_likelihood(loss_config)
  errors.require(
    loss_config.kl_warmup_steps >= 0,
    f"loss.kl_warmup_steps must be >= 0, got {loss_config.kl_warmup_steps}.",
  )
  errors.require(
    loss_config.tc_weight >= 0,
    f"loss.tc_weight must be >= 0, got {loss_config.tc_weight}.",
  )
  errors.require(
    loss_config.dataset_size > 0,
    "loss.dataset_size must be positive (the training split's size), got "
    f"{loss_config.dataset_size}.",
  )


def _log_normal_per_dimension(
  z: jax.Array, mu: jax.Array, logvar: jax.Array
) -> jax.Array:
  """log N(z_d; mu_d, exp(logvar_d)) of each dimension, not summed."""
  return -0.5 * (
    jnp.square(z - mu) * jnp.exp(-logvar) + logvar + math.log(2 * math.pi)
  )


def mws_decomposition(
  z: jax.Array,
  eps: jax.Array,
  mu: jax.Array,
  logvar: jax.Array,
  log_prior: jax.Array,
  *,
  dataset_size: int,
) -> dict[str, jax.Array]:
  """Per-image terms of the MWS estimates of the KL's three parts, from a
  batch's draws z = mu + exp(logvar / 2) * eps [M, D], its posteriors
  (mu, logvar) [M, D] and log p(z) [M]; each part's estimate is the mean of
  its terms over the batch.

  Image i's term is the estimator's summand at its own draw z_i, scored
  under every posterior of the batch: the estimator is the mean of those
  summands, so the trainer's per-image means (and an evaluation's sums over
  images divided by their count) are the MWS estimates, with no batch
  number spread over the images. Each term depends on the other images'
  posteriors too, which is what the gradient of the TC needs.
  """
  log_batch_in_data = math.log(z.shape[0] * dataset_size)  # log(N M).
  # [i, j, d]: log q(z_id | x_j), image i's draw under image j's posterior.
  pairwise = _log_normal_per_dimension(z[:, None], mu[None], logvar[None])
  log_aggregate = (
    jax.nn.logsumexp(pairwise.sum(axis=-1), axis=1) - log_batch_in_data
  )
  log_marginals = jnp.sum(
    jax.nn.logsumexp(pairwise, axis=1) - log_batch_in_data, axis=-1
  )
  log_posterior = priors.log_posterior_at_draw(eps, logvar)
  return {
    "mutual_info": log_posterior - log_aggregate,
    "total_correlation": log_aggregate - log_marginals,
    "dimension_wise_kl": log_marginals - log_prior,
  }


def sample_decode_and_score(
  vae: Any, images: jax.Array, rng: jax.Array, train: bool
) -> tuple[jax.Array, jax.Array, negative_elbo.Draw, jax.Array]:
  """A Flax method of `models.vae.VAE`:
  `negative_elbo.sample_decode_and_draw`, and log p(z) at the draw, for
  `mws_decomposition`."""
  logits, kl, draw = negative_elbo.sample_decode_and_draw(
    vae, images, rng, train
  )
  return logits, kl, draw, vae.log_prior(draw.z)


def terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms at one sample of z, and the BatchNorm statistics."""
  (logits, kl, draw, log_prior), batch_stats = objective.apply(
    vae, images, rng, method=sample_decode_and_score
  )
  # Outside the model, so in float32 whatever the compute dtype: the
  # logsumexps over the batch need its precision.
  parts = mws_decomposition(
    *draw, log_prior, dataset_size=loss_config.dataset_size
  )
  weight = negative_elbo.kl_weight_at(step, 1.0, loss_config.kl_warmup_steps)
  elbo = negative_elbo.configured(vae, logits, kl, images, weight, loss_config)
  extra_tc = (loss_config.tc_weight - 1.0) * parts["total_correlation"]
  return {
    **elbo,
    **parts,
    "loss": elbo["loss"] + weight * extra_tc,
  }, batch_stats


OBJECTIVES = (
  objective.Objective(
    name="beta_tcvae",
    kinds=(family.Kind.LATENT_VARIABLE,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=jax.nn.sigmoid,
    adapt_model=negative_elbo.with_pixel_variance,
    traced_fields=("tc_weight", "kl_warmup_steps", "gaussian_variance"),
  ),
)
