"""What an objective declares: the models it trains, its config and its terms;
and `apply`, how terms and trainers call a network.

Every objective module exports `OBJECTIVES`, a tuple of `Objective`
declarations (`registry` finds them). `config.loss.objective` names one;
the model family's declared objective is the default.
"""

from collections.abc import Callable, Sequence
import dataclasses
from typing import Any, NamedTuple

import jax
import ml_collections

from vae_jax.core import precision
from vae_jax.models import family


class Network(NamedTuple):
  """A Flax module as a step runs it."""

  module: Any  # A flax.linen.Module.
  # 'params' (those being differentiated) and 'batch_stats' ({} for a
  # module without BatchNorm).
  variables: dict[str, Any]
  train: bool  # BatchNorm on batch statistics, updating them.
  compute_dtype: str  # Its arithmetic (`core.precision`).


def apply(network: Network, *args: Any, method: Any = None) -> tuple[Any, Any]:
  """`network.module`'s `method` (a Flax method: its name, or a function
  of the module; by default `__call__`) on `args`, and its BatchNorm
  statistics, updated when training."""
  apply_fn = precision.apply_in(network.module.apply, network.compute_dtype)
  batch_stats = network.variables["batch_stats"]
  if not network.train:
    outputs = apply_fn(network.variables, *args, train=False, method=method)
    return outputs, batch_stats
  outputs, updates = apply_fn(
    network.variables, *args, train=True, method=method, mutable=["batch_stats"]
  )
  return outputs, updates.get("batch_stats", batch_stats)


class AdversarialTerms(NamedTuple):
  """Per-image terms of an objective of the adversarial trainer."""

  # (real, fake, labels, loss_config) -> {'d_loss', ...}; `real` and `fake`
  # are the discriminator's (logits, class logits or None).
  discriminator: Callable[..., dict[str, jax.Array]]
  # (fake, labels, loss_config) -> {'g_loss', ...}.
  generator: Callable[..., dict[str, jax.Array]]


def unchanged_model(
  model: Any, loss_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Any:
  """`Objective.adapt_model` of objectives with no parameters of their own."""
  del loss_config, image_shape
  return model


@dataclasses.dataclass(frozen=True)
class Objective:
  """One training objective."""

  name: str  # config.loss.objective.
  kinds: tuple[family.Kind, ...]  # The kinds of model it can train.
  trainer: str  # The trainer that optimizes it.
  # () -> the config.loss section: `objective` and every field it reads.
  default_config: Callable[[], ml_collections.ConfigDict]
  # loss_config -> None, or raises errors.ConfigError.
  check_config: Callable[[ml_collections.ConfigDict], None]
  # The per-image terms, in the form its trainer calls. Single network:
  # (network, images, rng, step, *, loss_config) -> ({'loss': [B], other
  # terms: [B]}, batch_stats), calling the `Network` through `apply`;
  # 'loss' is minimized. Adversarial: an `AdversarialTerms`.
  terms: Any
  # The decoder's outputs as mean images in [0, 1], for reconstructions and
  # samples; None for objectives of generators, which output images.
  to_images: Callable[[jax.Array], jax.Array] | None = None
  # (model, loss_config, image_shape) -> the model with any parameters the
  # objective learns beside it (a learned pixel variance).
  adapt_model: Callable[..., Any] = unchanged_model
  # Whether it trains latent-variable models of several stochastic layers
  # (the model's `stochastic_layers` > 1), not only one with a closed-form
  # KL.
  stacked_latents: bool = False
  # The `loss` fields its terms read only as numbers, in arithmetic: never
  # in a shape or a Python branch. Members of a vectorized sweep may differ
  # in them (`trainers.members`), each member's value a traced array.
  traced_fields: tuple[str, ...] = ()
  # Parameters that an optimizer of their own updates: pairs (a top-level
  # key of the params, the dotted field of `loss` that holds its optimizer
  # section, `core.optimizers`), as FactorVAE's
  # (("objective_network", "discriminator_optimizer"),). `config.optimizer`
  # updates every other parameter. The trainer differentiates the summed
  # 'loss' once, so the terms must stop gradients such that each part
  # receives the gradient of its own loss alone.
  optimized_apart: tuple[tuple[str, str], ...] = ()
