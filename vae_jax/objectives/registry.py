"""The objectives, found in this package's modules (`OBJECTIVES`).

A new objective is one module here that declares an `objective.Objective`,
and its config fields (its `default_config`), which a config puts in
`config.loss`.
"""

import ml_collections

from vae_jax import errors
from vae_jax.core import declarations
from vae_jax.models import family
from vae_jax.objectives import objective as objective_lib

OBJECTIVES: dict[str, objective_lib.Objective] = declarations.collect(
  __name__, __file__, "OBJECTIVES"
)


def get(name: str) -> objective_lib.Objective:
  errors.require_choice(name, OBJECTIVES, "loss.objective")
  return OBJECTIVES[name]


def for_model(
  loss_config: ml_collections.ConfigDict, model_family: family.Family
) -> objective_lib.Objective:
  """The objective `loss_config` names, or the family's; it must be one
  that trains models of the family's kind."""
  objective = get(loss_config.get("objective") or model_family.objective)
  errors.require(
    model_family.kind in objective.kinds,
    f"loss.objective {objective.name!r} trains "
    f"{' or '.join(kind.value for kind in objective.kinds)} models; "
    f"model {model_family.name!r} is a {model_family.kind.value} model "
    f"(its objective is {model_family.objective!r}).",
  )
  return objective
