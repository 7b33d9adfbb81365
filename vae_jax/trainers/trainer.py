"""What a trainer supplies to the shared loop (`loop.train_and_evaluate`).

A trainer turns a model and its objective into steps, which the loop
compiles: the single-network trainer (VAEs, plain autoencoders) and the
adversarial one (GANs). Each module declares one `Trainer`; a model family
names its own.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


class Trainer(NamedTuple):
  """The functions `loop.train_and_evaluate` calls; `parts` is a
  `parts.Parts` (the model, its family, objective and this trainer)."""

  name: str  # `Family.trainer`.
  # () -> the config fields this trainer reads beside the loop's (its
  # optimizer section, an update schedule), merged into the top level.
  default_config: Callable[[], ml_collections.ConfigDict]
  # config -> None, or raises errors.ConfigError.
  check_config: Callable[[ml_collections.ConfigDict], None]
  # (config, parts, image_shape, rng, total_steps) -> the state, with
  # `.step` and `.params`; jit it to initialize on devices.
  create_train_state: Callable[..., Any]
  # (config, parts) -> (train_step, eval_step), uncompiled: the train step
  # `(state, batch, rng) -> (state, metrics)` on a batch {'image', 'label'
  # (and CelebA's 'attributes'): `class_labels`}, its metrics per-step means
  # with a 'loss' and a bool 'finite'; the eval step `(state, batch, rng) ->
  # sums` of terms over the unpadded images and their 'count'
  # (`masked_sums`).
  make_steps: Callable[..., tuple[Any, Any]]
  # (config, parts, test_batch, rng) -> (state -> {name: uint8 grid});
  # test_batch: the first test examples, 'image' as the model reads them.
  make_image_grids: Callable[..., Callable[[Any], dict[str, np.ndarray]]]
  # (state, config, total_steps) -> the state, its arrays unchanged, whose
  # updates follow `config`'s optimizer sections (with those `loss` holds
  # for parameters its objective optimizes apart,
  # `Objective.optimized_apart`): a member of a vectorized sweep updates
  # with its own learning rates (`trainers.members`).
  with_optimizers: Callable[..., Any]
  # The optimizer fields (dotted) its steps read only as numbers, so that
  # members of a vectorized sweep may differ in them.
  traced_fields: tuple[str, ...]


def class_labels(batch: dict[str, jax.Array]) -> jax.Array:
  """int32 [B]: the digit, or CelebA's attributes as bits (first lowest)."""
  if "attributes" in batch:
    bits = batch["attributes"].astype(jnp.int32)
    return jnp.sum(bits * (2 ** jnp.arange(bits.shape[-1]))[None, :], axis=-1)
  return batch["label"].astype(jnp.int32)


def sample_labels(parts, num: int) -> np.ndarray:
  """Classes for `num` samples of `parts.model`: every class in turn for a
  conditional model, class 0 (which others ignore) otherwise."""
  num_classes = parts.model.num_classes if parts.family.conditional else 1
  return np.arange(num, dtype=np.int32) % num_classes


def label_grid_inputs(
  z: jax.Array, num_classes: int
) -> tuple[jax.Array, np.ndarray]:
  """z and labels for one row per class, each row over the same `z`."""
  num_cols = z.shape[0]
  # NumPy labels: a process-local jax.Array beside the global state would
  # not be one value on multi-process runs.
  return (
    jnp.tile(z, (num_classes, 1)),
    np.repeat(np.arange(num_classes, dtype=np.int32), num_cols),
  )


def masked_sums(
  terms: dict[str, jax.Array], mask: jax.Array
) -> dict[str, jax.Array]:
  """Sums of per-image `terms` over the images `mask` keeps, and 'count'."""
  mask = mask.astype(jnp.float32)
  sums = {name: jnp.sum(value * mask) for name, value in terms.items()}
  return {**sums, "count": jnp.sum(mask)}
