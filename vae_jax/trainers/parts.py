"""The parts a config names, assembled: model family, objective, trainer.

`config.model.name` names the family; the family names its trainer and its
default objective, which `config.loss.objective` may replace. `assemble`
checks that they fit together and builds the model.
"""

from collections.abc import Sequence
import dataclasses
from typing import Any

import ml_collections

from vae_jax import errors
from vae_jax.data import sources
from vae_jax.models import family as family_lib
from vae_jax.models import registry as models
from vae_jax.objectives import objective as objective_lib
from vae_jax.objectives import registry as objectives
from vae_jax.trainers import adversarial
from vae_jax.trainers import single_network
from vae_jax.trainers import trainer as trainer_lib

TRAINERS = {
  trainer.name: trainer
  for trainer in (single_network.TRAINER, adversarial.TRAINER)
}


@dataclasses.dataclass(frozen=True)
class Parts:
  family: family_lib.Family
  objective: objective_lib.Objective
  trainer: trainer_lib.Trainer
  model: Any  # The family's model, adapted by the objective.


def declared(
  config: ml_collections.ConfigDict,
) -> tuple[family_lib.Family, objective_lib.Objective, trainer_lib.Trainer]:
  """The family, objective and trainer `config` names; raises ConfigError
  when they do not fit together."""
  model_family = models.get(config.model.name)
  objective = objectives.for_model(config.loss, model_family)
  errors.require(
    objective.trainer == model_family.trainer,
    f"loss.objective {objective.name!r} is trained by the "
    f"{objective.trainer!r} trainer, model {model_family.name!r} by the "
    f"{model_family.trainer!r} one.",
  )
  return model_family, objective, TRAINERS[model_family.trainer]


def assemble(
  config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> Parts:
  """The model for images of `image_shape`, and what declares it."""
  model_family, objective, trainer = declared(config)
  expected = model_family.pixel_range(config.model)
  errors.require(
    config.input.pixel_range == expected,
    f"model {config.model.name!r} reads input.pixel_range={expected!r}, "
    f"got {config.input.pixel_range!r}.",
  )
  num_classes = (
    sources.num_classes(config.input) if model_family.conditional else 0
  )
  model = models.build(config.model, image_shape, num_classes)
  if model_family.kind == family_lib.Kind.LATENT_VARIABLE:
    errors.require(
      model.stochastic_layers == 1 or objective.stacked_latents,
      f"loss.objective {objective.name!r} trains models of one stochastic "
      f"layer; model {model_family.name!r} has {model.stochastic_layers} "
      f"(its objective is {model_family.objective!r}).",
    )
  model = objective.adapt_model(model, config.loss, image_shape)
  return Parts(
    family=model_family, objective=objective, trainer=trainer, model=model
  )
