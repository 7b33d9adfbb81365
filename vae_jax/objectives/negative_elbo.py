"""What each model family is trained on, and how its outputs become images.

VAEs (`models.vae.VAE`) minimize the negative ELBO (`likelihoods.negative_elbo`);
plain autoencoders minimize MSE on [-1, 1] pixels. The train step takes the
per-image terms from `terms_fn_for(model, loss_config)`, so it never needs to
know which kind of model it trains.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.objectives import likelihoods
from vae_jax.core import precision
from vae_jax.models import vae


def _apply(params, state, images: jax.Array, rng: jax.Array, train: bool,
           compute_dtype: str) -> tuple[Any, Any]:
  """The model's outputs and BatchNorm statistics (updated when training)."""
  apply_fn = precision.apply_in(state.apply_fn, compute_dtype)
  variables = {"params": params, "batch_stats": state.batch_stats}
  if not train:
    return apply_fn(variables, images, rng, train=False), state.batch_stats
  outputs, updates = apply_fn(variables, images, rng, train=True,
                              mutable=["batch_stats"])
  return outputs, updates.get("batch_stats", state.batch_stats)


def elbo_terms(params, state, images: jax.Array, rng: jax.Array, *,
               loss_config: ml_collections.ConfigDict, train: bool,
               compute_dtype: str = "float32"
               ) -> tuple[dict[str, jax.Array], Any]:
  """VAEs: per-image negative-ELBO terms, and the BatchNorm statistics.

  The model runs in `compute_dtype`; the terms are float32 either way.
  """
  (logits, mu, logvar), batch_stats = _apply(params, state, images, rng, train,
                                             compute_dtype)
  kl_weight = likelihoods.kl_weight_at(state.step, loss_config.kl_weight,
                                  loss_config.kl_warmup_steps)
  terms = likelihoods.negative_elbo(
      logits, mu, logvar, images, likelihood=loss_config.likelihood,
      kl_weight=kl_weight, gaussian_variance=loss_config.gaussian_variance,
      pixel_logvar=params.get("pixel_logvar"))
  return terms, batch_stats


def autoencoder_terms(params, state, images: jax.Array,
                      rng: jax.Array, *, loss_config: ml_collections.ConfigDict,
                      train: bool, compute_dtype: str = "float32"
                      ) -> tuple[dict[str, jax.Array], Any]:
  """Plain autoencoders: per-image MSE on [-1, 1] pixels."""
  del loss_config  # MSE has no settings.
  outputs, batch_stats = _apply(params, state, images, rng, train,
                                compute_dtype)
  return likelihoods.autoencoder_loss(outputs, images), batch_stats


def terms_fn_for(model, loss_config: ml_collections.ConfigDict,
                 compute_dtype: str = "float32"):
  """The objective follows the model: ELBO for VAEs, MSE for autoencoders.

  `compute_dtype` is the models' (`precision`); the loss is float32.
  """
  terms_fn = elbo_terms if isinstance(model, vae.VAE) else autoencoder_terms
  return functools.partial(terms_fn, loss_config=loss_config,
                           compute_dtype=compute_dtype)


def _variables(state) -> dict[str, Any]:
  return {"params": state.params, "batch_stats": state.batch_stats}


def decode_images(state, z: jax.Array) -> jax.Array:
  """VAE mean images p(x|z), in [0, 1]."""
  return jax.nn.sigmoid(state.apply_fn(_variables(state), z, method="decode"))


def reconstruct_images(state, images: jax.Array, *,
                       variational: bool) -> jax.Array:
  """Reconstructions in [0, 1]; a VAE decodes its posterior mean (no noise)."""
  code = state.apply_fn(_variables(state), images, method="encode")
  if variational:
    return decode_images(state, code[0])
  outputs = state.apply_fn(_variables(state), code, method="decode")
  return (jnp.tanh(outputs) + 1) / 2
