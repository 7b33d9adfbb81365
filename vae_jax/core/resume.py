"""Continuing a run in its workdir after the config changed.

A rerun resumes from the workdir's checkpoints, so the config it runs with
must still describe them. Changes that keep the train state's shapes (more
epochs, another learning rate or β) continue the run with a warning; changes
of shapes (a latent size, an optimizer) cannot load the checkpoints and are
refused unless `config.allow_config_change`, which starts over and keeps the
old checkpoints in `checkpoints.before_<time>/`. Either way the old config
is kept as `config.before_<time>.json`. A run of an earlier release continues
too: the fields added since take today's defaults, which change nothing.
"""

from collections.abc import Callable
import json
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import tensorflow as tf

from vae_jax import errors


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """A config's dict as {dotted field: value}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...], Any]]:
  # Paths, not tree structures: those also hold the model and optimizer
  # objects, which never compare equal across builds.
  return [
    (jax.tree_util.keystr(path), x.shape, x.dtype)
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
  ]


def check_config_change(
  config: ml_collections.ConfigDict,
  saved: ml_collections.ConfigDict | None,
  workdir: str,
  abstract_state: Callable[[ml_collections.ConfigDict], Any],
) -> None:
  """Compares `config` with `saved`, the config an earlier run saved in
  `workdir` (None: it saved none).

  `saved` comes from `trainers.run_config.load_saved`: the fields its release
  lacked hold today's defaults, so they count as changed only where `config`
  sets them otherwise. `abstract_state(config)` gives the train state's
  shapes for a config.
  """
  if saved is None:
    return
  flat_saved = flatten(json.loads(saved.to_json_best_effort()))
  flat_new = flatten(json.loads(config.to_json_best_effort()))
  changed = sorted(
    k
    for k in flat_saved.keys() | flat_new.keys()
    if k != "allow_config_change" and flat_saved.get(k) != flat_new.get(k)
  )
  if not changed:
    return
  described = ", ".join(
    f"{k} ({flat_saved.get(k)!r} -> {flat_new.get(k)!r})" for k in changed
  )
  allowed = config.get("allow_config_change", False)
  new_shapes = _shapes(abstract_state(config))
  try:
    same_shapes = _shapes(abstract_state(saved)) == new_shapes
  except errors.UserInputError as e:
    # A value today's code refuses (a family's option since removed): its
    # shapes are unknown, so its checkpoints cannot be checked either.
    if not allowed:
      raise errors.UserInputError(
        f"workdir {workdir} holds a run whose config no longer builds a "
        f"model ({e}), so its checkpoints cannot be checked against this "
        "config; use a new --workdir, or --config.allow_config_change=True "
        "to start over there (the old checkpoints are kept aside)."
      ) from None
    same_shapes = False
  if not same_shapes and not allowed:
    raise errors.UserInputError(
      f"workdir {workdir} holds a run whose config differs in {described}, "
      "which changes the train state's shapes, so its checkpoints cannot "
      "continue; use a new --workdir, or --config.allow_config_change=True "
      "to start over there (the old checkpoints are kept aside)."
    )
  logging.warning(
    "Config differs from the one saved in %s: %s.", workdir, described
  )
  if jax.process_index() == 0:
    suffix = f"before_{time.strftime('%Y%m%d-%H%M%S')}"
    tf.io.gfile.copy(
      os.path.join(workdir, "config.json"),
      os.path.join(workdir, f"config.{suffix}.json"),
      overwrite=True,
    )
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    if not same_shapes and tf.io.gfile.exists(checkpoint_dir):
      tf.io.gfile.rename(checkpoint_dir, f"{checkpoint_dir}.{suffix}")
