"""The VQ-VAE's objective (van den Oord et al., 2017, eq. 3), per image:

    loss = -log p(x | z_q) + ||sg[z] - e||² + β · ||z - sg[e]||²,

z the encoder's grid, e the codebook entries it is quantized to, z_q the
grid passed straight through (`models.vq_vae`), sg the stop-gradient. The
codebook term (`codebook`) moves the entries toward the vectors assigned to
them, and is 0 when the moving averages do that instead
(model.codebook_update='ema'); the commitment term (`commitment`, β
included) keeps the encoder near its entries. Both are summed over the
grid's positions and dimensions, as -log p(x | z_q) is over the pixels: the
nats of one image, against the latent terms of the same image.

Also reported: `mse`, and the batch's codebook use, `perplexity`
(exp of the entropy of the entries' frequencies over the batch's h·w·B
vectors: K when all are used equally, 1 when one is) and `codes_used`
(entries chosen at least once).
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.objectives import likelihoods
from vae_jax.objectives import objective

# Those of `likelihoods` that need no parameter of their own.
VQ_LIKELIHOODS = ("bernoulli", "gaussian")


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.objective = "vq_vae"  # vae_jax/objectives/vq_vae.py.
  # p(x | z_q): 'bernoulli' (binarized images, or grey levels read as
  # probabilities) or 'gaussian' (fixed variance).
  config.likelihood = "bernoulli"
  config.gaussian_variance = 1.0  # Fixed pixel variance of 'gaussian'.
  config.commitment_weight = 0.25  # β; the paper's, for all its results.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  errors.require_choice(
    loss_config.likelihood, VQ_LIKELIHOODS, "loss.likelihood"
  )
  errors.require(
    loss_config.gaussian_variance > 0,
    "loss.gaussian_variance "
    f"must be positive, got {loss_config.gaussian_variance}.",
  )
  errors.require(
    loss_config.commitment_weight >= 0,
    "loss.commitment_weight "
    f"must be >= 0, got {loss_config.commitment_weight}.",
  )


def encode_quantize_decode(
  vq_vae: Any, images: jax.Array, rng: jax.Array, train: bool
) -> tuple[jax.Array, jax.Array, Any]:
  """A Flax method of `models.vq_vae.VQVAE`: logits of p(x | z_q), the
  grid z and its `Quantization`; `rng` is the step's, for the restart."""
  z = vq_vae.encode(images, train)
  quantization = vq_vae.quantize(z, train, rng)
  return vq_vae.decode(quantization.quantized, train), z, quantization


def codebook_use(
  indices: jax.Array, codebook_size: int
) -> tuple[jax.Array, jax.Array]:
  """Perplexity exp(-Σ p log p) of the entries' frequencies p over all of
  `indices`, and the number of entries chosen at least once."""
  counts = jnp.bincount(indices.reshape(-1), length=codebook_size)
  frequencies = counts / indices.size
  entropy = -jnp.sum(
    jnp.where(counts > 0, frequencies * jnp.log(frequencies), 0.0)
  )
  return jnp.exp(entropy), jnp.sum(counts > 0).astype(jnp.float32)


def _sum_per_image(values: jax.Array) -> jax.Array:
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def latent_terms(
  z: jax.Array, codes: jax.Array, *, learned_by_loss: bool
) -> tuple[jax.Array, jax.Array]:
  """Per image: the codebook loss ||sg[z] - e||² (0 unless the codebook is
  `learned_by_loss`) and the commitment ||z - sg[e]||², before β."""
  commitment = _sum_per_image(jnp.square(z - jax.lax.stop_gradient(codes)))
  if not learned_by_loss:
    return jnp.zeros_like(commitment), commitment
  codebook = _sum_per_image(jnp.square(jax.lax.stop_gradient(z) - codes))
  return codebook, commitment


def terms(
  vq_vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms, and the 'batch_stats' (an 'ema' codebook's moving
  averages, updated when training)."""
  del step  # No schedule.
  (logits, z, quantization), batch_stats = objective.apply(
    vq_vae, images, rng, method=encode_quantize_decode
  )
  flat_logits, flat_images = likelihoods.flat_pixels(logits, images)
  recon = likelihoods.reconstruction(
    flat_logits,
    flat_images,
    likelihood=loss_config.likelihood,
    gaussian_variance=loss_config.gaussian_variance,
  )
  quantizer = vq_vae.module.quantizer
  codebook, commitment = latent_terms(
    z.astype(jnp.float32),
    quantization.codes.astype(jnp.float32),
    learned_by_loss=quantizer.codebook_update == "loss",
  )
  commitment = loss_config.commitment_weight * commitment
  perplexity, codes_used = codebook_use(
    quantization.indices, quantizer.codebook_size
  )
  # The codebook's use is the batch's, not a sum over images: each image
  # gets the batch's value, so the trainer's mean over images is that
  # value, and the evaluation's sums over an epoch (divided by the images)
  # the mean over its batches, each weighted by its images (the padding of
  # a last, partial batch is quantized with it).
  per_image = jnp.ones_like(recon)
  return {
    "loss": recon + codebook + commitment,
    "recon": recon,
    "codebook": codebook,
    "commitment": commitment,
    "mse": likelihoods.squared_error(jax.nn.sigmoid(flat_logits), flat_images),
    "perplexity": perplexity * per_image,
    "codes_used": codes_used * per_image,
  }, batch_stats


OBJECTIVES = (
  objective.Objective(
    name="vq_vae",
    kinds=(family.Kind.VECTOR_QUANTIZED,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=jax.nn.sigmoid,
    traced_fields=("gaussian_variance", "commitment_weight"),
  ),
)
