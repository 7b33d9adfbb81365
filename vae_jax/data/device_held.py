"""Training splits held on the devices, trained on by compiled loops.

A split that fits in device memory (MNIST: 47 MB as uint8) is put on every
device once. Each call of the loop then runs all the steps up to the next
point where the host has work (a log step, a checkpoint, the end of an
epoch) as one XLA while loop: batches are gathered on the devices, so
neither Python dispatch nor host-to-device copies count per step. Batch k of
epoch e holds the same examples as on the host path
(`batching.epoch_batch_indices`), and step s draws its noise from
fold_in(rng, s) either way, so both paths train on the same batches and a
run resumes mid-epoch exactly where it stopped. The eval split's padded
batches are held there too, and evaluated in one loop. Other datasets, and
augmented ones (augmentation runs in tf.data), come from the host one batch
per step, prefetched to the devices.
"""

from collections.abc import Callable, Iterator, Sequence
import functools
import math
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import errors
from vae_jax.core import sharding
from vae_jax.data import augment
from vae_jax.data import batching

MODES = ("auto", "always", "never")
# 'auto' keeps a split on the host above this size: the split is replicated
# on every device, beside the model, its activations and the eval data.
AUTO_MAX_BYTES = 2**30

# (metrics, number of steps): each leaf of `metrics` holds that many steps
# along its first axis, or is a scalar when the number is None (one step).
MetricsBlock = tuple[Any, int | None]
# (state, first_step, end_step) -> (state, metrics of steps first+1..end);
# the state is donated.
StepRunner = Callable[[Any, int, int], tuple[Any, MetricsBlock]]


def check_config(input_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for settings the device path cannot honour."""
  mode = input_config.device_resident
  errors.require_choice(mode, MODES, "input.device_resident")
  errors.require(
    mode != "always" or not augment.is_enabled(input_config),
    "input.device_resident='always' cannot augment: augmentations run in "
    "tf.data on the host; use 'auto' or 'never', or turn them off.",
  )


def is_device_resident(
  input_config: ml_collections.ConfigDict,
  image_shape: Sequence[int],
  num_train_examples: int,
) -> bool:
  """Whether training batches come from a copy of the split on the devices;
  `num_train_examples` is this process's share."""
  mode = input_config.device_resident
  if mode != "auto":
    return mode == "always"
  # Held as float32 pixels.
  split_bytes = (
    num_train_examples * jax.process_count() * math.prod(image_shape) * 4
  )
  return (
    input_config.in_memory
    and not augment.is_enabled(input_config)
    and split_bytes <= AUTO_MAX_BYTES
  )


def put_split(
  local_arrays: dict[str, np.ndarray], mesh: jax.sharding.Mesh
) -> tuple[dict[str, jax.Array], int]:
  """Every process's share of the split on every device, and where this
  process's share starts in it.

  Replicated rather than sharded: a batch's gather then reads only its own
  device's copy, with no communication between devices.
  """
  full = multihost_utils.process_allgather(local_arrays, tiled=True)
  replicated = sharding.replicated(mesh)
  arrays = jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(replicated, x), full
  )
  num_local = len(next(iter(local_arrays.values())))
  return arrays, jax.process_index() * num_local


def next_stop(step: int, total_steps: int, periods: Sequence[int]) -> int:
  """The first step after `step` that is a multiple of one of `periods`
  (logging, checkpoints, epochs), or the last step."""
  return min([total_steps] + [(step // p + 1) * p for p in periods])


def _gather_batch(
  arrays: dict[str, jax.Array], indices: jax.Array
) -> dict[str, Any]:
  return {
    name: jnp.take(value, indices, axis=0, mode="clip")
    for name, value in arrays.items()
  }


def _run_steps(
  state,
  rng: jax.Array,
  arrays: dict[str, jax.Array],
  epoch_indices: jax.Array,
  first_row: jax.Array,
  num_steps: jax.Array,
  *,
  train_step,
  max_steps: int,
  leading_axes: int,
):
  """`num_steps` steps on rows first_row... of `epoch_indices` (along axis
  `leading_axes`: a vectorized group's members each have their own rows),
  in one loop.

  Returns the state and each step's metrics in a buffer of `max_steps`.
  """

  def row_indices(row):
    return jax.lax.dynamic_index_in_dim(
      epoch_indices, row, axis=leading_axes, keepdims=False
    )

  example = jax.eval_shape(_gather_batch, arrays, row_indices(0))
  metrics_shape = jax.eval_shape(train_step, state, example, rng)[1]
  buffer = jax.tree.map(
    lambda m: jnp.zeros((max_steps, *m.shape), m.dtype), metrics_shape
  )

  def body(i, carry):
    state, buffer = carry
    batch = _gather_batch(arrays, row_indices(first_row + i))
    # Names the step's ops apart from the loop's in profiles.
    with jax.named_scope("train_step"):
      state, metrics = train_step(state, batch, rng)
    buffer = jax.tree.map(lambda b, m: b.at[i].set(m), buffer, metrics)
    return state, buffer

  # A while loop with a traced trip count: one compilation serves every
  # chunk length, where lax.scan would compile once per length.
  return jax.lax.fori_loop(0, num_steps, body, (state, buffer))


class DeviceSteps:
  """A `StepRunner` on the split held on the devices, `max_steps` at most
  per call.

  `local_arrays` is this process's share of the split, its images already
  as the model reads them (`pipeline.PreparedData.device_split`).
  `train_step` is a trainer's, uncompiled (`trainers.trainer.Trainer`):
  traced into the loop, placed as `sharding.on_mesh` places it, so the batch
  stays split over the data axis, and compiled with it. With one of `seeds`
  its batches are [B, ...]; with several (`leading_axes` 1: the members of
  a vectorized group) [N, B, ...], member i's in seed i's order, each
  gathered from the one copy of the split.
  """

  def __init__(
    self,
    local_arrays: dict[str, np.ndarray],
    train_step,
    mesh: jax.sharding.Mesh,
    local_batch_size: int,
    seeds: Sequence[int],
    rng: jax.Array,
    max_steps: int,
    leading_axes: int = 0,
  ):
    self._num_local = len(local_arrays["label"])
    self._arrays, self._offset = put_split(local_arrays, mesh)
    logging.info(
      "Holding the training split on each device: %d examples, %.0f MB.",
      self._num_local * jax.process_count(),
      sum(x.nbytes for x in self._arrays.values()) / 1e6,
    )
    self._local_batch_size = local_batch_size
    self._seeds = seeds
    self._leading_axes = leading_axes
    self._rng = rng
    replicated = sharding.replicated(mesh)
    # [(members,) steps, global batch]: each process's columns index its own
    # share.
    self._index_sharding = jax.sharding.NamedSharding(
      mesh,
      jax.sharding.PartitionSpec(
        *[None] * (leading_axes + 1), sharding.DATA_AXIS
      ),
    )
    self._run_steps = jax.jit(
      functools.partial(
        _run_steps,
        train_step=sharding.on_mesh(train_step, mesh, leading_axes),
        max_steps=max_steps,
        leading_axes=leading_axes,
      ),
      in_shardings=(
        replicated,
        replicated,
        replicated,
        self._index_sharding,
        replicated,
        replicated,
      ),
      out_shardings=replicated,
      donate_argnums=0,
    )
    self._epoch_indices = {}  # The current epoch's only.

  def _arguments(self, state, first_step: int, end_step: int) -> tuple:
    epoch, first_row = divmod(
      first_step, self._num_local // self._local_batch_size
    )
    if epoch not in self._epoch_indices:
      self._epoch_indices.clear()
      local = [
        batching.epoch_batch_indices(
          seed, epoch, self._num_local, self._local_batch_size
        )
        for seed in self._seeds
      ]
      local = np.stack(local) if self._leading_axes else local[0]
      self._epoch_indices[epoch] = jax.make_array_from_process_local_data(
        self._index_sharding, local + self._offset
      )
    return (
      state,
      self._rng,
      self._arrays,
      self._epoch_indices[epoch],
      np.int32(first_row),
      np.int32(end_step - first_step),
    )

  def __call__(
    self, state, first_step: int, end_step: int
  ) -> tuple[Any, MetricsBlock]:
    state, buffer = self._run_steps(
      *self._arguments(state, first_step, end_step)
    )
    return state, (buffer, end_step - first_step)

  def lower(self, state, first_step: int, end_step: int):
    """The loop's `jax.stages.Lowered`: its HLO, compiled text and costs."""
    return self._run_steps.lower(*self._arguments(state, first_step, end_step))


def _eval_sums(
  state, rng: jax.Array, batches: dict[str, jax.Array], *, eval_step, fold_in
) -> dict[str, jax.Array]:
  """`eval_step`'s sums over `batches` ([num_batches, batch, ...]), added
  in the order `loop.evaluate` adds them, with its keys."""

  def sums(i):
    batch = jax.tree.map(lambda x: x[i], batches)
    return eval_step(state, batch, fold_in(rng, i))

  num_batches = len(next(iter(batches.values())))
  return jax.lax.fori_loop(
    1,
    num_batches,
    lambda i, totals: jax.tree.map(jnp.add, totals, sums(i)),
    sums(0),
  )


def device_evaluator(
  eval_ds,
  eval_step,
  mesh: jax.sharding.Mesh,
  rng: jax.Array,
  fold_in: Callable[[jax.Array, Any], jax.Array] = jax.random.fold_in,
) -> Callable[[Any], dict[str, jax.Array]]:
  """state -> sums of the eval split's terms, from a copy on the devices.

  `eval_ds` gives this process's padded batches (`batching.
  eval_dataset`); held on the devices, evaluation is one compiled loop of
  the uncompiled `eval_step` with the same keys and sums as `loop.evaluate`.
  `fold_in` derives batch i's key from `rng` (for a vectorized group, each
  member's: `Members.fold_in`).
  """
  local = list(eval_ds.as_numpy_iterator())
  batch_sharding = jax.sharding.NamedSharding(
    mesh, jax.sharding.PartitionSpec(None, sharding.DATA_AXIS)
  )
  batches = {
    name: jax.make_array_from_process_local_data(
      batch_sharding, np.stack([batch[name] for batch in local])
    )
    for name in local[0]
  }
  replicated = sharding.replicated(mesh)
  eval_sums = jax.jit(
    functools.partial(
      _eval_sums,
      eval_step=sharding.on_mesh(eval_step, mesh),
      fold_in=fold_in,
    ),
    in_shardings=(replicated, replicated, batch_sharding),
    out_shardings=replicated,
  )
  return lambda state: eval_sums(state, rng, batches)


class HostSteps:
  """A `StepRunner` of one step per call, on the next of `batches` (global
  arrays)."""

  def __init__(self, batches: Iterator[Any], jitted_train_step, rng: jax.Array):
    self._batches = batches
    self._jitted_train_step = jitted_train_step
    self._rng = rng
    self._next_batch = None  # Drawn early by `lower`, used by the next call.

  def _batch(self) -> Any:
    if self._next_batch is None:
      self._next_batch = next(self._batches)
    return self._next_batch

  def __call__(
    self, state, first_step: int, end_step: int
  ) -> tuple[Any, MetricsBlock]:
    del first_step, end_step  # Always one step: batches come in order.
    batch, self._next_batch = self._batch(), None
    state, metrics = self._jitted_train_step(state, batch, self._rng)
    return state, (metrics, None)

  def lower(self, state, first_step: int, end_step: int):
    """The step's `jax.stages.Lowered`, on the batch the next call takes."""
    del first_step, end_step
    return self._jitted_train_step.lower(state, self._batch(), self._rng)


def per_step_metrics(blocks: list[MetricsBlock]) -> list[dict[str, Any]]:
  """Host copies of `blocks` as one metrics dict per step, in order."""
  steps = []
  for metrics, num_steps in jax.device_get(blocks):
    if num_steps is None:
      steps.append(metrics)
    else:
      steps.extend(
        jax.tree.map(lambda v, i=i: v[i], metrics) for i in range(num_steps)
      )
  return steps
