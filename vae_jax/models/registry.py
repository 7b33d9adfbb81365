"""The model families, found in this package's modules (`FAMILIES`).

A new family is one module here that declares a `family.Family`, and a
config that names it (`config.model.name`).
"""

from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from vae_jax import errors
from vae_jax.core import declarations
from vae_jax.models import family as family_lib

FAMILIES: dict[str, family_lib.Family] = declarations.collect(
  __name__, __file__, "FAMILIES"
)


def get(name: str) -> family_lib.Family:
  errors.require(
    name in FAMILIES,
    f"model.name {name!r} is unknown; choose one of {sorted(FAMILIES)}.",
  )
  return FAMILIES[name]


def check_config(model_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a model section no family could build."""
  errors.require_fields(
    model_config,
    get(model_config.name).default_config().to_dict(),
    "model",
    f"model {model_config.name!r}",
  )
  if "latent_size" in model_config:
    errors.require(
      model_config.latent_size > 0,
      f"model.latent_size must be positive, got {model_config.latent_size}.",
    )


def build(
  model_config: ml_collections.ConfigDict,
  image_shape: Sequence[int],
  num_classes: int,
) -> Any:
  """The family's model for images of `image_shape`; a conditional family
  (ACGAN) is told the data's `num_classes`."""
  family = get(model_config.name)
  if family.conditional:
    model_config = ml_collections.ConfigDict(model_config.to_dict())
    model_config.num_classes = num_classes
  return family.build(model_config, tuple(image_shape))


def count_params(params: Any) -> int:
  """Number of trainable scalars (BatchNorm statistics are not params)."""
  return sum(leaf.size for leaf in jax.tree.leaves(params))
