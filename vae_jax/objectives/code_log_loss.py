"""The log-loss of a prior over VQ-VAE code grids: -log p(c) per grid.

p(c) = Π_i p(c_i | c_<i) (`models.code_prior`), so the loss is the sum of
each position's cross-entropy, in nats per grid: the second term of the
VQ-VAE's likelihood bound -log p(x) ≤ -log p(x | z_q(x)) - log p(c(x)).
'bits_per_code' is the same loss per position, in bits: against log2 K, it
says how much of the codebook's capacity the prior finds predictable.
"""

import math
from typing import Any

import jax
import ml_collections

from vae_jax.models import code_prior
from vae_jax.models import family
from vae_jax.objectives import objective


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.objective = "code_log_loss"  # vae_jax/objectives/code_log_loss.py.
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  del loss_config  # The log-loss has no settings.


def terms(
  prior: objective.Network,
  codes: jax.Array,
  rng: jax.Array,
  step: jax.Array,
  *,
  loss_config: ml_collections.ConfigDict,
) -> tuple[dict[str, jax.Array], Any]:
  """Per-grid terms of int32 `codes` [B, h, w]."""
  del rng, step, loss_config  # Deterministic, with no settings.
  logits, batch_stats = objective.apply(prior, codes)
  nll = -code_prior.log_likelihood(logits, codes)
  positions = math.prod(codes.shape[1:])
  return {
    "loss": nll,
    "bits_per_code": nll / (positions * math.log(2)),
  }, batch_stats


OBJECTIVES = (
  objective.Objective(
    name="code_log_loss",
    kinds=(family.Kind.CODE_PRIOR,),
    trainer="single_network",
    default_config=default_config,
    check_config=check_config,
    terms=terms,
  ),
)
