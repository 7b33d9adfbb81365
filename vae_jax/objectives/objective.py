"""What an objective declares: the models it trains, its config and its terms.

Every objective module exports `OBJECTIVES`, a tuple of `Objective`
declarations (`registry` finds them). `config.loss.objective` names one;
the model family's declared objective is the default.
"""

from collections.abc import Callable, Sequence
import dataclasses
from typing import Any, NamedTuple

import jax
import ml_collections

from vae_jax.models import family

# The single-network trainer's model call: run_model(*args, method=m) ->
# (outputs, batch_stats) applies the model being trained (with the
# parameters being differentiated, in training or evaluation mode, in the
# run's compute dtype) and returns its updated BatchNorm statistics.
RunModel = Callable[..., tuple[Any, Any]]


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
  # (run_model, params, images, rng, step, *, loss_config) ->
  # ({'loss': [B], other terms: [B]}, batch_stats); 'loss' is minimized.
  # Adversarial: an `AdversarialTerms`.
  terms: Any
  # The decoder's outputs as mean images in [0, 1], for reconstructions and
  # samples; None for objectives of generators, which output images.
  to_images: Callable[[jax.Array], jax.Array] | None = None
  # (model, loss_config, image_shape) -> the model with any parameters the
  # objective learns beside it (a learned pixel variance).
  adapt_model: Callable[..., Any] = unchanged_model
  # Whether it trains latent-variable models of several stochastic layers
  # (`Family.stochastic_layers` > 1), not only one with a closed-form KL.
  stacked_latents: bool = False
