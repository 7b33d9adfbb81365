"""A trained state's weights in one file, without its optimizer states.

A checkpoint holds what resuming needs: Adam's two moments make it three
times the size of the weights. A pretrained model needs only what
evaluating and sampling read (parameters, BatchNorm statistics, the step),
so `save` writes the state less every `opt_state` field (flax's
`TrainState`, which every trainer's state uses for its optimizers) as one
msgpack file, and `restore` puts those arrays into a freshly initialized
state of the same config.
"""

import os
from typing import Any

from flax import serialization
import jax
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.core import outputs

FILE_NAME = "weights.msgpack"
OPTIMIZER_FIELD = "opt_state"


def path_in(directory: str) -> str:
  return os.path.join(directory, FILE_NAME)


def holds_weights(directory: str) -> bool:
  return tf.io.gfile.exists(path_in(directory))


def _name(path) -> str:
  """'params.encoder.Dense_0.kernel': a leaf's path in a Flax state dict,
  which holds only dicts."""
  return ".".join(str(key.key) for key in path)


def _named_leaves(state: Any) -> dict[str, np.ndarray]:
  """`state`'s arrays on the host by `_name`, less its optimizer states."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(
    serialization.to_state_dict(jax.device_get(state))
  )
  return {
    _name(path): np.asarray(leaf)
    for path, leaf in leaves
    if OPTIMIZER_FIELD not in _name(path).split(".")
  }


def save(directory: str, state: Any) -> None:
  """`state`'s weights to `directory`/weights.msgpack, written atomically."""
  with outputs.atomic_open(path_in(directory), "wb") as f:
    f.write(serialization.msgpack_serialize(_named_leaves(state)))


def read(directory: str) -> dict[str, np.ndarray]:
  """The arrays `save` wrote, by name."""
  with tf.io.gfile.GFile(path_in(directory), "rb") as f:
    return serialization.msgpack_restore(f.read())


def saved_step(directory: str) -> int:
  """The training step of the state whose weights `directory` holds."""
  return int(read(directory)["step"])


def restore(directory: str, state: Any) -> Any:
  """`state` (initialized) with the weights saved in `directory`, on the
  host; its optimizer states stay as initialized."""
  saved = read(directory)
  wanted = _named_leaves(state)
  problem = checkpoints.shape_difference(
    {name: array.shape for name, array in saved.items()},
    {name: array.shape for name, array in wanted.items()},
  )
  if problem:
    raise errors.UserInputError(
      f"{path_in(directory)} does not fit the config beside it: {problem}."
    )

  def saved_or_initial(path, leaf):
    name = _name(path)
    return saved[name].astype(leaf.dtype) if name in saved else leaf

  return serialization.from_state_dict(
    state,
    jax.tree_util.tree_map_with_path(
      saved_or_initial, serialization.to_state_dict(jax.device_get(state))
    ),
  )
