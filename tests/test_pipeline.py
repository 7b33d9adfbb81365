"""Batches: preprocessed per dataset, a pure function of (seed, step).

Every dataset runs under tfds.testing.mock_data; stanford_dogs and celeb_a
need input.download='always' there, as mock_data makes TFDS's download a
no-op but leaves the builders looking unprepared.
"""

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vae_jax.core import sharding
from vae_jax.data import batching
from vae_jax.data import pipeline
from vae_jax.errors import DataError


def take(iterator, n):
  return [batch["image"] for batch in itertools.islice(iterator, n)]


@pytest.mark.parametrize("in_memory", [True, False])
def test_batches_are_deterministic_and_resume_mid_epoch(tiny_config, in_memory):
  tiny_config.input.in_memory = in_memory
  with tfds.testing.mock_data(num_examples=20):
    data = pipeline.prepare(tiny_config.input)
    steps = data.steps_per_epoch(4)
    assert steps == 5
    full = take(data.train_batches(4, seed=3), 12)
    again = take(
      pipeline.prepare(tiny_config.input).train_batches(4, seed=3), 12
    )
    resumed = take(data.train_batches(4, seed=3, start_step=7), 5)
    other_seed = take(data.train_batches(4, seed=4), 5)
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
    batches = list(
      pipeline.prepare(tiny_config.input).eval_dataset(4).as_numpy_iterator()
    )
  masks = np.concatenate([b["mask"] for b in batches])
  assert len(batches) == 3
  assert masks.sum() == 10 and not masks[10:].any()
  assert all(b["image"].shape == (4, 28, 28, 1) for b in batches)


def test_processes_agree_on_batches_when_their_shares_differ(
  tiny_config, monkeypatch
):
  # This process holds 10 examples, another 13: both take 4 batches of 4,
  # and as many steps per epoch as the smaller share allows.
  monkeypatch.setattr(
    sharding, "each_process", lambda count: np.asarray([count, count + 3])
  )
  with tfds.testing.mock_data(num_examples=10):
    data = pipeline.prepare(tiny_config.input)
    batches = list(data.eval_dataset(4).as_numpy_iterator())
    assert data.steps_per_epoch(4) == 2
  assert len(batches) == 4
  assert np.concatenate([b["mask"] for b in batches]).sum() == 10
  monkeypatch.setattr(
    sharding, "each_process", lambda count: np.asarray([count, count - 3])
  )
  with tfds.testing.mock_data(num_examples=10):
    assert pipeline.prepare(tiny_config.input).steps_per_epoch(4) == 1


def test_split_smaller_than_a_batch_is_an_error(tiny_config):
  with tfds.testing.mock_data(num_examples=3):
    with pytest.raises(DataError, match="fewer than one batch"):
      pipeline.prepare(tiny_config.input).steps_per_epoch(4)


def first_train_batch(config, batch_size=4):
  return next(pipeline.prepare(config).train_batches(batch_size, seed=0))


def first_eval_batch(config, batch_size=4):
  return next(
    pipeline.prepare(config).eval_dataset(batch_size).as_numpy_iterator()
  )


# MNIST is held in memory; the larger datasets stream (one dogs case is held
# in memory too).
@pytest.mark.parametrize(
  "dataset,options,shape",
  [
    ("mnist", {}, (28, 28, 1)),
    ("mnist", {"image_size": 32}, (32, 32, 1)),
    ("stanford_dogs", {"image_size": 32, "in_memory": False}, (32, 32, 3)),
    (
      "stanford_dogs",
      {"image_size": 64, "crop_to_bbox": True, "in_memory": False},
      (64, 64, 3),
    ),
    (
      "stanford_dogs",
      {"image_size": 32, "crop_to_bbox": True, "grayscale": True},
      (32, 32, 1),
    ),
    ("celeb_a", {"image_size": 64, "in_memory": False}, (64, 64, 3)),
  ],
)
def test_datasets_give_preprocessed_shapes_and_unit_range(
  tiny_config, dataset, options, shape
):
  config = tiny_config.input
  config.update(dataset=dataset, download="always", **options)
  with tfds.testing.mock_data(num_examples=8):
    assert pipeline.prepare(config).image_shape == shape
    train, test = first_train_batch(config), first_eval_batch(config)
  for batch in (train, test):
    assert batch["image"].shape == (4, *shape)
    assert batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (4,)
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_celeb_a_keeps_listed_attributes_and_crops_the_center(tiny_config):
  config = tiny_config.input
  config.update(
    dataset="celeb_a", download="always", attributes=("Male", "Smiling")
  )
  with tfds.testing.mock_data(num_examples=8):
    raw = next(iter(tfds.load("celeb_a", split="test")))
    # No image_size: the 140x140 crop itself.
    assert pipeline.prepare(config).image_shape == (140, 140, 3)
    batch = first_eval_batch(config)
    train = first_train_batch(config)
  for b in (batch, train):
    assert b["attributes"].shape == (4, 2)
    assert b["attributes"].dtype == np.int32
    np.testing.assert_array_equal(b["label"], b["attributes"][:, 0])
  assert batch["attributes"][0].tolist() == [
    int(raw["attributes"]["Male"]),
    int(raw["attributes"]["Smiling"]),
  ]
  # 218x178 -> the 140x140 square around the center.
  np.testing.assert_array_equal(
    np.round(batch["image"][0] * 255), raw["image"].numpy()[39:179, 19:159]
  )


def test_symmetric_range_maps_unit_pixels_to_minus_one_one(tiny_config):
  symmetric = tiny_config.input.copy_and_resolve_references()
  symmetric.pixel_range = "symmetric"
  with tfds.testing.mock_data(num_examples=8):
    unit_train = first_train_batch(tiny_config.input)["image"]
    unit_test = first_eval_batch(tiny_config.input)["image"]
    train = first_train_batch(symmetric)["image"]
    test = first_eval_batch(symmetric)["image"]
  np.testing.assert_allclose(train, unit_train * 2 - 1, atol=1e-6)
  np.testing.assert_allclose(test, unit_test * 2 - 1, atol=1e-6)
  assert -1.0 <= train.min() < 0.0 and train.max() <= 1.0


@pytest.mark.parametrize("pixel_range", ["unit", "symmetric"])
def test_in_memory_pixels_are_tf_datas_to_the_bit(tiny_config, pixel_range):
  # The in-memory splits convert through a table, tf.data's batches
  # (evaluation, augmented training) pixel by pixel: the same floats.
  config = tiny_config.input.copy_and_resolve_references()
  config.pixel_range = pixel_range
  levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  in_memory = batching.to_model_pixels(levels, config)
  by_tf = batching._to_pixel_range(
    batching._to_unit_range(levels), config
  ).numpy()
  assert in_memory.dtype == by_tf.dtype == np.float32
  np.testing.assert_array_equal(in_memory, by_tf)
  assert in_memory[0, 0, 0, 0] == (-1.0 if pixel_range == "symmetric" else 0)
  assert in_memory[0, -1, -1, 0] == 1.0


def augmented(config, rotation=45.0, autocontrast=0.5, brightness=0.5):
  config = config.copy_and_resolve_references()
  config.update(
    rotation_degrees=rotation,
    autocontrast_prob=autocontrast,
    brightness_jitter=brightness,
  )
  return config


@pytest.mark.parametrize("in_memory", [True, False])
def test_augmentations_are_deterministic_per_seed_and_step(
  tiny_config, in_memory
):
  tiny_config.input.in_memory = in_memory
  config = augmented(tiny_config.input)
  with tfds.testing.mock_data(num_examples=16):
    data = pipeline.prepare(config)
    full = take(data.train_batches(4, seed=3), 7)
    again = take(pipeline.prepare(config).train_batches(4, seed=3), 7)
    resumed = take(data.train_batches(4, seed=3, start_step=3), 4)
    other_seed = take(data.train_batches(4, seed=4), 7)
    plain = take(
      pipeline.prepare(tiny_config.input).train_batches(4, seed=3), 7
    )
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(full[3:], resumed):  # Crosses the epoch boundary at 4.
    np.testing.assert_array_equal(a, b)
  assert not any(np.array_equal(a, b) for a, b in zip(full, other_seed))
  # The same examples as without augmentation, other pixels.
  assert not any(np.array_equal(a, b) for a, b in zip(full, plain))
  assert all(0.0 <= a.min() and a.max() <= 1.0 for a in full)


def test_each_augmentation_changes_training_images_only(tiny_config):
  # Autocontrast leaves mock MNIST's full-range noise almost unchanged; its
  # effect is tested in test_augment.py.
  rotation_only = augmented(tiny_config.input, autocontrast=0.0, brightness=0.0)
  brightness_only = augmented(tiny_config.input, rotation=0.0, autocontrast=0.0)
  with tfds.testing.mock_data(num_examples=8):
    plain_train = first_train_batch(tiny_config.input)["image"]
    plain_test = first_eval_batch(tiny_config.input)["image"]
    for config in (rotation_only, brightness_only):
      assert not np.array_equal(first_train_batch(config)["image"], plain_train)
    np.testing.assert_array_equal(
      first_eval_batch(augmented(tiny_config.input))["image"], plain_test
    )
