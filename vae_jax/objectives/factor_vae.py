"""FactorVAE (Kim & Mnih, ICML 2018): the negative ELBO plus γ times the
total correlation of q(z), which a discriminator D on latents estimates,

    loss = negative_elbo's loss + γ · TC,
    TC ≈ mean_i (D(z_i)[0] - D(z_i)[1]),   z_i ~ q(z|x_i),

D's logits of class 0 ('a draw of q(z)') against class 1 ('a draw of
prod_d q(z_d)': the batch's draws with each dimension permuted across the
batch on its own). D trains beside the VAE on the same batch and draws,
minimizing its cross-entropy

    D loss = -(0.5 · mean_i log p_D(0 | z_i) + 0.5 · mean_i log p_D(1 | z~_i)),

z~ the shuffled draws and the probabilities clipped to [1e-6, 1 - 1e-6].
Everything follows disentanglement_lib's FactorVAE (shuffle_codes,
fc_discriminator, unsupervised_study_v1's discriminator optimizer): D is
the VAE's `objective_network`, updated by its own Adam
(`loss.discriminator_optimizer`), the encoder and decoder by
`config.optimizer`. The likelihood, β and its warm-up are `negative_elbo`'s,
read from the same fields; the warm-up ramps only the KL, not γ.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.core import optimizers
from vae_jax.models import family
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective

# disentanglement_lib's clip of D's probabilities before their logarithms.
PROBABILITY_CLIP = 1e-6
# tf.nn.leaky_relu's default slope, which fc_discriminator uses.
LEAKY_RELU_SLOPE = 0.2


def default_config() -> ml_collections.ConfigDict:
  config = negative_elbo.default_config()
  config.objective = "factor_vae"  # vae_jax/objectives/factor_vae.py.
  # γ, the weight of the total correlation: 30, within disentanglement_lib's
  # FactorVAE sweep (10, 20, 30, 40, 50, 100).
  config.tc_weight = 30.0
  # D's hidden layers: the paper's (Appendix A) and disentanglement_lib's
  # fc_discriminator, 6 of 1000 units with leaky ReLU.
  config.discriminator_sizes = (1000,) * 6
  # D's optimizer, apart from config.optimizer's (encoder and decoder):
  # unsupervised_study_v1's discriminator/AdamOptimizer.
  config.discriminator_optimizer = optimizers.default_config()
  config.discriminator_optimizer.learning_rate = 1e-4  # Its learning_rate.
  config.discriminator_optimizer.b1 = 0.5  # Its beta1.
  config.discriminator_optimizer.b2 = 0.9  # Its beta2.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  negative_elbo.check_config(loss_config)
  errors.require(
    loss_config.tc_weight >= 0,
    f"loss.tc_weight must be >= 0, got {loss_config.tc_weight}.",
  )
  errors.require(
    len(loss_config.discriminator_sizes) > 0
    and all(size > 0 for size in loss_config.discriminator_sizes),
    "loss.discriminator_sizes must be positive layer widths, got "
    f"{tuple(loss_config.discriminator_sizes)}.",
  )


class LatentDiscriminator(nn.Module):
  """Logits [B, 2] of latents [B, D]: class 0 a draw of q(z), class 1 one
  of prod_d q(z_d). disentanglement_lib's fc_discriminator."""

  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    # tf.layers.dense's initialization, as fc_discriminator's layers had.
    dense = dict(
      kernel_init=nn.initializers.xavier_uniform(),
      bias_init=nn.initializers.zeros,
    )
    h = z.reshape(z.shape[0], -1)
    for size in self.hidden_sizes:
      h = nn.leaky_relu(nn.Dense(size, **dense)(h), LEAKY_RELU_SLOPE)
    return nn.Dense(2, **dense)(h)


def with_discriminator(
  model: Any, loss_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Any:
  """The VAE with D as its objective network (and the learned pixel
  variance of 'gaussian_learned')."""
  model = negative_elbo.with_pixel_variance(model, loss_config, image_shape)
  discriminator = LatentDiscriminator(tuple(loss_config.discriminator_sizes))
  return model.clone(objective_network=discriminator)


def shuffle_dimensions(rng: jax.Array, z: jax.Array) -> jax.Array:
  """z [B, D] with each column permuted across the batch, independently of
  the others: draws of prod_d q(z_d) (disentanglement_lib's
  shuffle_codes)."""
  # A stable sort of i.i.d. keys: a uniform permutation per column.
  order = jnp.argsort(jax.random.uniform(rng, z.shape), axis=0)
  return jnp.take_along_axis(z, order, axis=0)


def discriminate(vae: Any, z: jax.Array, train: bool) -> jax.Array:
  """A Flax method of `models.vae.VAE`: its objective network's logits
  [B, 2] of latents z [B, D]."""
  del train  # D has no BatchNorm.
  return vae.objective_network(z)


def _with_discriminator_fixed(vae: objective.Network) -> objective.Network:
  """`vae` with D's parameters outside the gradient."""
  params = vae.variables["params"]
  fixed = jax.lax.stop_gradient(params["objective_network"])
  variables = {
    **vae.variables,
    "params": {**params, "objective_network": fixed},
  }
  return vae._replace(variables=variables)


def _clipped_log_probabilities(logits: jax.Array) -> jax.Array:
  probabilities = jnp.clip(
    jax.nn.softmax(logits), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP
  )
  return jnp.log(probabilities)


def terms(
  vae: objective.Network,
  images: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-image terms at one sample of z, and the BatchNorm statistics.

  'loss' adds the VAE's loss and D's, each with the other's parameters
  outside its gradient, so that one backward pass gives the encoder and
  decoder the gradient of the VAE's loss and D that of its own.
  """
  draw_rng, shuffle_rng = jax.random.split(rng)
  (logits, kl, draw), batch_stats = objective.apply(
    vae, images, draw_rng, method=negative_elbo.sample_decode_and_draw
  )
  kl_weight = negative_elbo.kl_weight_at(
    step, loss_config.kl_weight, loss_config.kl_warmup_steps
  )
  elbo = negative_elbo.configured(
    vae, logits, kl, images, kl_weight, loss_config
  )
  # The VAE's term: D judges the VAE's own draws, D held fixed.
  tc_logits, _ = objective.apply(
    _with_discriminator_fixed(vae), draw.z, method=discriminate
  )
  total_correlation = tc_logits[:, 0] - tc_logits[:, 1]
  # D's term: the draws and their shuffles held fixed, D trained.
  shuffled = shuffle_dimensions(shuffle_rng, draw.z)
  both = jax.lax.stop_gradient(jnp.concatenate([draw.z, shuffled]))
  d_logits, _ = objective.apply(vae, both, method=discriminate)
  real, fake = jnp.split(d_logits, 2)
  log_real = _clipped_log_probabilities(real)[:, 0]
  log_fake = _clipped_log_probabilities(fake)[:, 1]
  discriminator_loss = -0.5 * (log_real + log_fake)
  correct = 0.5 * (
    (real[:, 0] > real[:, 1]).astype(jnp.float32)
    + (fake[:, 1] > fake[:, 0]).astype(jnp.float32)
  )
  return {
    **elbo,
    "loss": (
      elbo["loss"]
      + loss_config.tc_weight * total_correlation
      + discriminator_loss
    ),
    "total_correlation": total_correlation,
    "discriminator_loss": discriminator_loss,
    # Image i's share: its draw's verdict and its shuffled row's.
    "discriminator_accuracy": correct,
  }, batch_stats


OBJECTIVES = (
  objective.Objective(
    name="factor_vae",
    kinds=(family.Kind.LATENT_VARIABLE,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
    to_images=jax.nn.sigmoid,
    adapt_model=with_discriminator,
    traced_fields=(
      "kl_weight",
      "kl_warmup_steps",
      "gaussian_variance",
      "tc_weight",
      "discriminator_optimizer.learning_rate",
    ),
    optimized_apart=(("objective_network", "discriminator_optimizer"),),
  ),
)
