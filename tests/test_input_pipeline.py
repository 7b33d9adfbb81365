"""Batches are a pure function of (seed, step), so resumes do not replay."""

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vae_jax import input_pipeline
from vae_jax.validation import DataError


def take(iterator, n):
  return [batch["image"] for batch in itertools.islice(iterator, n)]


@pytest.mark.parametrize("in_memory", [True, False])
def test_batches_are_deterministic_and_resume_mid_epoch(tiny_config,
                                                        in_memory):
  tiny_config.input.in_memory = in_memory
  with tfds.testing.mock_data(num_examples=20):
    steps = input_pipeline.steps_per_epoch(tiny_config.input, 4)
    assert steps == 5
    full = take(input_pipeline.train_batches(tiny_config.input, 4, seed=3), 12)
    again = take(input_pipeline.train_batches(tiny_config.input, 4, seed=3), 12)
    resumed = take(input_pipeline.train_batches(tiny_config.input, 4, seed=3,
                                                start_step=7), 5)
    other_seed = take(input_pipeline.train_batches(tiny_config.input, 4,
                                                   seed=4), 5)
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(full[7:], resumed):  # Crosses the epoch boundary at 10.
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(full, other_seed))
  # Each epoch is a permutation: no example twice within one epoch.
  epoch = np.concatenate(full[:5]).reshape(20, -1)
  assert len(np.unique(epoch, axis=0)) == 20
  assert full[0].dtype == np.float32
  assert 0.0 <= full[0].min() and full[0].max() <= 1.0


def test_eval_dataset_pads_with_masked_examples(tiny_config):
  with tfds.testing.mock_data(num_examples=10):
    batches = list(input_pipeline.eval_dataset(tiny_config.input, 4)
                   .as_numpy_iterator())
  masks = np.concatenate([b["mask"] for b in batches])
  assert len(batches) == 3
  assert masks.sum() == 10 and not masks[10:].any()
  assert all(b["image"].shape == (4, 28, 28, 1) for b in batches)


def test_split_smaller_than_a_batch_is_an_error(tiny_config):
  with tfds.testing.mock_data(num_examples=3):
    with pytest.raises(DataError, match="fewer than one batch"):
      input_pipeline.steps_per_epoch(tiny_config.input, 4)
