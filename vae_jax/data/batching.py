"""Deterministic training batches and padded eval batches, one process's share.

Training batches are a pure function of (seed, step): each epoch is shuffled
with a seed derived from (seed, epoch), and batch k of epoch e is augmented
with a key derived from (seed, e, k), so a run resumed at step s sees exactly
the batches an uninterrupted run would have seen from s on. Which datasets
exist and how their images are preprocessed lives in `sources`; a run
reaches these functions through `pipeline.PreparedData`, which loads each
split once.
"""

from collections.abc import Iterator
import functools
import math

import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import sharding
from vae_jax.data import augment

# How a model reads its data's "image": 'unit' pixels in [0, 1], 'symmetric'
# in [-1, 1], or 'codes', integers kept as int32 (a VQ-VAE run's code grids,
# read by a prior over them).
PIXEL_RANGES = ("unit", "symmetric", "codes")


def _epoch_seed(seed: int, epoch: int, *stream: int) -> int:
  state = np.random.SeedSequence([seed, epoch, *stream]).generate_state(1)
  return int(state[0])


def num_examples(examples: tf.data.Dataset) -> int:
  return int(examples.cardinality())


def steps_per_epoch(num_train_examples: int, local_batch_size: int) -> int:
  """Steps of the shortest share: every process must take as many."""
  shortest = int(sharding.each_process(num_train_examples).min())
  if shortest < local_batch_size:
    raise errors.DataError(
      f"the training split has {shortest} examples per process, fewer "
      f"than one batch of {local_batch_size}."
    )
  return shortest // local_batch_size


def _to_unit_range(images: tf.Tensor) -> tf.Tensor:
  return tf.cast(images, tf.float32) / 255.0


def _tf_model_pixels(images: tf.Tensor, input_config) -> tf.Tensor:
  """`to_model_pixels` in TF."""
  if input_config.pixel_range == "codes":
    return tf.cast(images, tf.int32)
  return _to_pixel_range(_to_unit_range(images), input_config)


def _to_pixel_range(unit_images, input_config: ml_collections.ConfigDict):
  """[0, 1] images as the model sees them: [0, 1] or, 'symmetric', [-1, 1].

  Works on NumPy arrays and TF tensors alike.
  """
  if input_config.pixel_range == "symmetric":
    return unit_images * 2.0 - 1.0
  return unit_images


def _augment_seed(seed: int, epoch: int) -> int:
  # Its own stream, so the shuffle seeds (MNIST's batch order) stay as before.
  return _epoch_seed(seed, epoch, 1)


def _finish_train_batch(
  index: tf.Tensor,
  batch: dict[str, tf.Tensor],
  augment_seed: tf.Tensor,
  input_config: ml_collections.ConfigDict,
):
  """Batch `index` of an epoch, augmented with key (augment_seed, index)."""
  if not augment.is_enabled(input_config):
    return {**batch, "image": _tf_model_pixels(batch["image"], input_config)}
  images = augment.augment_batch(
    _to_unit_range(batch["image"]),
    tf.stack([augment_seed, index]),
    input_config,
  )
  return {**batch, "image": _to_pixel_range(images, input_config)}


def load_in_memory(train_examples: tf.data.Dataset) -> dict[str, np.ndarray]:
  """This process's preprocessed training split, decoded once, as uint8."""
  chunks = list(train_examples.batch(4096).as_numpy_iterator())
  return {
    name: np.concatenate([chunk[name] for chunk in chunks])
    for name in chunks[0]
  }


def epoch_batch_indices(
  seed: int, epoch: int, num_examples: int, local_batch_size: int
) -> np.ndarray:
  """int32 [steps, local_batch_size]: the examples of each batch of `epoch`.

  One permutation per (seed, epoch); each batch's indices are sorted, which
  makes its gather read memory in order. Held-in-memory datasets on the host
  and on the devices (`device_data`) both batch by these indices.
  """
  order = np.random.default_rng(_epoch_seed(seed, epoch)).permutation(
    num_examples
  )
  num_steps = num_examples // local_batch_size
  batches = order[: num_steps * local_batch_size].reshape(num_steps, -1)
  return np.sort(batches, axis=1).astype(np.int32)


def to_model_pixels(
  images: np.ndarray, input_config: ml_collections.ConfigDict
) -> np.ndarray:
  """uint8 images as the model sees them: float32 in [0, 1] or [-1, 1];
  codes as int32.

  Looked up in a table of the 256 levels, each converted as a pixel is
  elsewhere (the same floats): for a whole split (MNIST's: 188 MB) one pass
  and one new array, where converting and then dividing wrote two, and
  faulting in their fresh pages took most of a second.
  """
  if input_config.pixel_range == "codes":
    return images.astype(np.int32)
  levels = np.arange(256, dtype=np.float32)
  return _to_pixel_range(levels / 255.0, input_config)[images]


def in_memory_batches(
  arrays: dict[str, np.ndarray],
  input_config: ml_collections.ConfigDict,
  local_batch_size: int,
  seed: int,
  start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
  """Endless batches gathered from `arrays`, the preprocessed split held in
  memory as uint8 (`load_in_memory`).

  For datasets that fit in memory this keeps tf.data's per-example work off
  the cores that run the train step.
  """
  num_examples = len(arrays["label"])
  epoch, skip = divmod(start_step, num_examples // local_batch_size)
  while True:
    indices = epoch_batch_indices(seed, epoch, num_examples, local_batch_size)
    augment_seed = tf.constant(_augment_seed(seed, epoch), tf.int64)
    for i in range(skip, len(indices)):
      batch = {name: value[indices[i]] for name, value in arrays.items()}
      if not augment.is_enabled(input_config):
        # NumPy: a quarter of the host time of eager TF, on the cores the
        # train step needs; the same true division, so the same pixels.
        yield {**batch, "image": to_model_pixels(batch["image"], input_config)}
        continue
      # Eager, not a tf.function: in a graph, TF turns x / 255 into
      # x * (1 / 255), which would change MNIST's pixels in the last bit.
      batch = _finish_train_batch(
        tf.constant(i, tf.int64), batch, augment_seed, input_config
      )
      yield {name: np.asarray(value) for name, value in batch.items()}
    epoch, skip = epoch + 1, 0


def streamed_batches(
  examples: tf.data.Dataset,
  input_config: ml_collections.ConfigDict,
  local_batch_size: int,
  seed: int,
  start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
  """Endless batches from a tf.data pipeline over `examples`, for datasets
  too large for memory."""
  num_steps = num_examples(examples) // local_batch_size
  buffer_size = min(input_config.shuffle_buffer_size, num_examples(examples))
  epoch, skip = divmod(start_step, num_steps)
  while True:
    finish = functools.partial(
      _finish_train_batch,
      input_config=input_config,
      augment_seed=tf.constant(_augment_seed(seed, epoch), tf.int64),
    )
    epoch_ds = (
      examples.shuffle(
        buffer_size,
        seed=_epoch_seed(seed, epoch),
        reshuffle_each_iteration=False,
      )
      .batch(local_batch_size, drop_remainder=True)
      .enumerate()
      .skip(skip)
      .map(finish, num_parallel_calls=tf.data.AUTOTUNE)
      .prefetch(tf.data.AUTOTUNE)
    )
    yield from epoch_ds.as_numpy_iterator()
    epoch, skip = epoch + 1, 0


def first_examples(
  examples: tf.data.Dataset, count: int, input_config: ml_collections.ConfigDict
) -> dict[str, np.ndarray]:
  """The first `count` of `examples` as one batch, unaugmented: images as
  the model reads them, and their labels (and attributes, if any)."""
  batch = next(examples.batch(count).as_numpy_iterator())
  return {**batch, "image": to_model_pixels(batch["image"], input_config)}


def eval_dataset(
  examples: tf.data.Dataset,
  input_config: ml_collections.ConfigDict,
  local_batch_size: int,
) -> tf.data.Dataset:
  """Every one of `examples` (this process's share of a split) once,
  unaugmented, in padded batches with 'mask'.

  Processes may hold unequal shares of the split, but each must contribute
  the same number of batches to a global array, so all pad to the largest.
  """
  examples = examples.map(
    lambda ex: {
      **ex,
      "mask": tf.constant(True),
      "image": _tf_model_pixels(ex["image"], input_config),
    }
  )
  # The shares' sizes, not the split's size over the process count: a
  # share larger than that (TFDS's mock data ignores slicing) would make
  # the padding below negative, and repeat(negative) never ends.
  largest_share = int(sharding.each_process(num_examples(examples)).max())
  num_batches = math.ceil(largest_share / local_batch_size)
  filler = (
    examples.take(1)
    .map(lambda ex: tf.nest.map_structure(tf.zeros_like, ex))
    .repeat(num_batches * local_batch_size - num_examples(examples))
  )
  return (
    examples.concatenate(filler)
    .batch(local_batch_size, drop_remainder=True)
    .cache()
    .prefetch(tf.data.AUTOTUNE)
  )
