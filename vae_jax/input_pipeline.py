"""tf.data pipelines over TFDS datasets, one process's share at a time.

Training batches are a pure function of (seed, step): each epoch is shuffled
with a seed derived from (seed, epoch), so a run resumed at step s sees exactly
the batches an uninterrupted run would have seen from s on.
"""

import math
from typing import Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax import mnist_mirror
from vae_jax.validation import DataError

DATASETS = ("mnist",)


def prepare(input_config: ml_collections.ConfigDict) -> str:
  """Makes the dataset readable from the TFDS data dir; returns its source."""
  return mnist_mirror.ensure_mnist(input_config.data_dir,
                                   input_config.mnist_source)


def image_shape(input_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  builder = tfds.builder(input_config.dataset, data_dir=input_config.data_dir)
  return tuple(builder.info.features["image"].shape)


def _load(input_config: ml_collections.ConfigDict, split: str) -> tf.data.Dataset:
  """Decoded examples of `split`: 'image' float32 in [0, 1], 'label' int32."""
  ds = tfds.load(input_config.dataset, split=split, shuffle_files=False,
                 data_dir=input_config.data_dir)

  def preprocess(example):
    return {"image": tf.cast(example["image"], tf.float32) / 255.0,
            "label": tf.cast(example["label"], tf.int32)}

  return ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)


def _epoch_seed(seed: int, epoch: int) -> int:
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _num_examples(ds: tf.data.Dataset) -> int:
  return int(ds.cardinality())


def _train_split() -> str:
  return tfds.split_for_jax_process("train", drop_remainder=True)


def steps_per_epoch(input_config: ml_collections.ConfigDict,
                    local_batch_size: int) -> int:
  num_examples = _num_examples(_load(input_config, _train_split()))
  if num_examples < local_batch_size:
    raise DataError(f"the training split has {num_examples} examples per "
                    f"process, fewer than one batch of {local_batch_size}.")
  return num_examples // local_batch_size


def _in_memory_batches(input_config, local_batch_size, seed, start_step):
  """Batches gathered from the decoded split held in host memory as uint8.

  For datasets that fit in memory this keeps tf.data's per-example work off
  the cores that run the train step.
  """
  chunks = list(tfds.load(
      input_config.dataset, split=_train_split(), shuffle_files=False,
      data_dir=input_config.data_dir).batch(4096).as_numpy_iterator())
  images = np.concatenate([chunk["image"] for chunk in chunks])
  labels = np.concatenate([chunk["label"] for chunk in chunks]).astype(np.int32)
  num_steps = len(images) // local_batch_size
  epoch, skip = divmod(start_step, num_steps)
  while True:
    order = np.random.default_rng(_epoch_seed(seed, epoch)).permutation(
        len(images))
    for i in range(skip, num_steps):
      index = np.sort(order[i * local_batch_size:(i + 1) * local_batch_size])
      yield {"image": images[index].astype(np.float32) / 255.0,
             "label": labels[index]}
    epoch, skip = epoch + 1, 0


def _streamed_batches(input_config, local_batch_size, seed, start_step):
  """Batches from a tf.data pipeline, for datasets too large for memory."""
  examples = _load(input_config, _train_split())
  num_steps = _num_examples(examples) // local_batch_size
  buffer_size = min(input_config.shuffle_buffer_size, _num_examples(examples))
  epoch, skip = divmod(start_step, num_steps)
  while True:
    epoch_ds = (examples
                .shuffle(buffer_size, seed=_epoch_seed(seed, epoch),
                         reshuffle_each_iteration=False)
                .batch(local_batch_size, drop_remainder=True)
                .skip(skip)
                .prefetch(tf.data.AUTOTUNE))
    yield from epoch_ds.as_numpy_iterator()
    epoch, skip = epoch + 1, 0


def train_batches(input_config: ml_collections.ConfigDict,
                  local_batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled training batches of this process, from `start_step`.

  Batch k of epoch e depends only on (seed, e, k), so a resumed run continues
  with exactly the batches an uninterrupted run would have used.
  """
  make_batches = (_in_memory_batches if input_config.in_memory
                  else _streamed_batches)
  return make_batches(input_config, local_batch_size, seed, start_step)


def eval_dataset(input_config: ml_collections.ConfigDict,
                 local_batch_size: int, split: str = "test") -> tf.data.Dataset:
  """Every example of `split` once, in padded batches with a 'mask' field.

  Processes may hold unequal shares of the split, but each must contribute
  the same number of batches to a global array, so all pad to the largest.
  """
  total = _num_examples(_load(input_config, split))
  examples = _load(input_config,
                   tfds.split_for_jax_process(split, drop_remainder=False))
  largest_share = math.ceil(total / jax.process_count())
  num_batches = math.ceil(largest_share / local_batch_size)
  examples = examples.map(lambda ex: {**ex, "mask": tf.constant(True)})
  filler = examples.take(1).map(
      lambda ex: tf.nest.map_structure(tf.zeros_like, ex)).repeat(
          num_batches * local_batch_size - _num_examples(examples))
  return (examples.concatenate(filler)
          .batch(local_batch_size, drop_remainder=True)
          .cache()
          .prefetch(tf.data.AUTOTUNE))
