"""The procedural dSprites: its factor grid, its sprites and its TFDS copy."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from testbed import make_tiny_config
from vae_jax.data import dsprites
from vae_jax.data import pipeline
from vae_jax.errors import DataError
from vae_jax.trainers import loop

SQUARE, ELLIPSE, HEART = range(3)
# Orientation classes: a quarter and a half turn.
QUARTER, HALF = 10, 20
# Pixels of the original's heart at scale 1, orientation 0: frame 5 of the
# README's animation (github.com/deepmind/dsprites-dataset, dsprites.gif).
ORIGINAL_HEART_PIXELS = 222


def image(shape, scale=5, orientation=0, x=0, y=0):
  """The binary mask [64, 64] of one grid point."""
  classes = np.array([[0, shape, scale, orientation, x, y]])
  return dsprites.images(classes)[0, :, :, 0] > 0


def window(mask):
  """The 32x32 corner of a mask at position (0, 0), centred on its middle."""
  return mask[:32, :32]


def bounding_box(mask):
  rows, columns = np.nonzero(mask)
  return rows.min(), rows.max(), columns.min(), columns.max()


def test_factor_grid_is_the_originals():
  assert dsprites.FACTOR_SIZES == (1, 3, 6, 40, 32, 32)
  assert dsprites.NUM_IMAGES == 737_280
  last = np.array([dsprites.FACTOR_SIZES]) - 1
  values = dsprites.factor_values(np.concatenate([0 * last, last]))
  np.testing.assert_allclose(values[0], [1, 1, 0.5, 0, 0, 0])
  np.testing.assert_allclose(values[1], [1, 3, 1, 2 * np.pi * 39 / 40, 1, 1])
  every = np.stack([np.arange(32)] * 6, axis=1) % dsprites.FACTOR_SIZES
  np.testing.assert_allclose(
    dsprites.factor_values(every)[:6, 2], np.linspace(0.5, 1, 6)
  )
  np.testing.assert_allclose(
    dsprites.factor_values(every)[:, 4], np.linspace(0, 1, 32)
  )


def test_index_follows_the_originals_latents_bases():
  # As the original's dsprites_reloading_example.ipynb computes them.
  latents_sizes = np.array([1, 3, 6, 40, 32, 32])
  latents_bases = np.concatenate(
    (latents_sizes[::-1].cumprod()[::-1][1:], np.array([1]))
  )
  rng = np.random.default_rng(0)
  classes = rng.integers(0, latents_sizes, size=(1000, 6))
  index = dsprites.index_of(classes)
  np.testing.assert_array_equal(index, classes @ latents_bases)
  np.testing.assert_array_equal(dsprites.classes_of(index), classes)
  np.testing.assert_array_equal(
    dsprites.classes_of(np.array([0, 1, 32, dsprites.NUM_IMAGES - 1])),
    [[0] * 6, [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0], latents_sizes - 1],
  )


def test_classes_out_of_the_grid_are_refused():
  with pytest.raises(ValueError, match="factor classes"):
    dsprites.images(np.array([[0, 3, 0, 0, 0, 0]]))
  with pytest.raises(ValueError, match="integers"):
    dsprites.images(np.zeros((1, 6)))
  with pytest.raises(ValueError, match="indices"):
    dsprites.classes_of(np.array([dsprites.NUM_IMAGES]))


def test_images_are_binary_white_sprites_on_black():
  rng = np.random.default_rng(1)
  classes = rng.integers(0, dsprites.FACTOR_SIZES, size=(200, 6))
  images = dsprites.images(classes)
  assert images.shape == (200, 64, 64, 1) and images.dtype == np.uint8
  assert set(np.unique(images)) == {0, 255}
  assert (images.reshape(200, -1).max(axis=1) == 255).all()


def test_square_matches_the_original():
  square = image(SQUARE)
  # The original's square at scale 1 and position (0, 0) covers rows and
  # columns 6 to 25: 19.2 pixels wide, centred 16 pixels from the corner.
  assert bounding_box(square) == (6, 25, 6, 25) and square.sum() == 400
  assert image(SQUARE, scale=0).sum() == 100
  # Turned by 45 degrees it keeps its area, 19.2 squared, within 2%.
  assert abs(image(SQUARE, orientation=5).sum() / 19.2**2 - 1) < 0.02


def test_ellipse_is_smaller_than_the_square_and_wide():
  ellipse = image(ELLIPSE)
  assert abs(ellipse.sum() / (np.pi * 12.8 * 7.2) - 1) < 0.02
  assert ellipse.sum() < image(SQUARE).sum()
  top, bottom, left, right = bounding_box(ellipse)
  assert right - left + 1 == 26 and bottom - top + 1 == 14


def test_heart_points_down_and_is_mirror_symmetric():
  heart = window(image(HEART))
  np.testing.assert_array_equal(heart, heart[:, ::-1])
  assert not np.array_equal(heart, heart[::-1])
  rows, _ = np.nonzero(heart)
  assert rows.mean() + 0.5 < 16 - 1  # Its lobes, the most of it, on top.
  assert abs(heart.sum() / ORIGINAL_HEART_PIXELS - 1) < 0.05
  shapes = [image(shape) for shape in (SQUARE, ELLIPSE, HEART)]
  assert len({mask.tobytes() for mask in shapes}) == 3


def test_turns_are_about_the_sprites_centre_and_counter_clockwise():
  for scale in range(6):
    square = image(SQUARE, scale)
    np.testing.assert_array_equal(image(SQUARE, scale, QUARTER), square)
    # The ellipse, symmetric about both axes, turns into its transpose.
    ellipse = window(image(ELLIPSE, scale))
    turned = window(image(ELLIPSE, scale, QUARTER))
    np.testing.assert_array_equal(turned, ellipse.T)
    heart = window(image(HEART, scale))
    np.testing.assert_array_equal(
      window(image(HEART, scale, HALF)), heart[::-1, ::-1]
    )
  # A quarter turn counter-clockwise on screen puts the lobes on the left.
  _, columns = np.nonzero(window(image(HEART, orientation=QUARTER)))
  assert columns.mean() + 0.5 < 16 - 1


def test_positions_shift_the_sprite_by_whole_pixels():
  sprite = image(HEART, orientation=7)
  for k in (1, 2, 15, 16, 31):
    shift = round(32 * k / 31)
    np.testing.assert_array_equal(
      image(HEART, orientation=7, x=k), np.roll(sprite, shift, axis=1)
    )
    np.testing.assert_array_equal(
      image(HEART, orientation=7, y=k), np.roll(sprite, shift, axis=0)
    )
  # Position 1 puts the centre at 48: the square covers columns 38 to 57.
  assert bounding_box(image(SQUARE, x=31, y=31)) == (38, 57, 38, 57)


def test_images_are_deterministic_and_independent_of_the_batch():
  rng = np.random.default_rng(2)
  classes = rng.integers(0, dsprites.FACTOR_SIZES, size=(64, 6))
  first = dsprites.images(classes)
  assert first.tobytes() == dsprites.images(classes).tobytes()
  np.testing.assert_array_equal(first[5:6], dsprites.images(classes[5:6]))
  # No pixel centre lies on an outline: last-bit differences in sin and cos
  # from one machine to another cannot flip a pixel, nor change SHA256.
  assert np.abs(dsprites.sprite_outlines()).min() > 1e-6


def test_chunks_run_in_index_order():
  parts = list(dsprites.chunks(np.arange(2500), size=1000))
  assert [len(part) for part, _ in parts] == [1000, 1000, 500]
  indices = np.concatenate([part for part, _ in parts])
  np.testing.assert_array_equal(indices, np.arange(2500))
  np.testing.assert_array_equal(
    parts[2][1], dsprites.images(dsprites.classes_of(np.arange(2000, 2500)))
  )


def test_generate_round_trips_through_tfds(tmp_path):
  rng = np.random.default_rng(3)
  indices = np.sort(rng.choice(dsprites.NUM_IMAGES, size=48, replace=False))
  target = dsprites.generate(str(tmp_path), indices=indices)
  assert target == os.path.join(
    tmp_path, "dsprites_procedural", dsprites.VERSION
  )
  builder = tfds.builder("dsprites_procedural", data_dir=str(tmp_path))
  features = builder.info.features
  assert features["label_orientation"].num_classes == 40
  assert features["image"].shape == (64, 64, 1)
  examples, test_examples = (
    list(
      tfds.as_numpy(
        tfds.load(
          "dsprites_procedural",
          split=split,
          data_dir=str(tmp_path),
          shuffle_files=False,
        )
      )
    )
    for split in ("train", "test")
  )
  # A subset is written as both splits.
  assert [e["label_orientation"] for e in test_examples] == [
    e["label_orientation"] for e in examples
  ]
  classes = dsprites.classes_of(indices)
  values = dsprites.factor_values(classes)
  assert len(examples) == len(indices)
  for i, example in enumerate(examples):
    assert set(example) == {"image"} | {
      f"{kind}_{name}"
      for kind in ("label", "value")
      for name in ("shape", "scale", "orientation", "x_position", "y_position")
    }
    np.testing.assert_array_equal(
      example["image"], dsprites.images(classes[i : i + 1])[0]
    )
    for column, name in enumerate(dsprites.FACTOR_NAMES[1:], start=1):
      assert example[f"label_{name}"] == classes[i, column]
      assert example[f"value_{name}"] == np.float32(values[i, column])
  # A dataset in place is kept, not written again.
  assert dsprites.generate(str(tmp_path)) == target


def test_test_split_is_a_fixed_sample_of_every_factor_value():
  indices = dsprites.test_indices()
  assert len(indices) == dsprites.TEST_SIZE
  assert np.all(np.diff(indices) > 0)  # Sorted, no repeats.
  assert 0 <= indices[0] and indices[-1] < dsprites.NUM_IMAGES
  np.testing.assert_array_equal(indices, dsprites.test_indices())
  classes = dsprites.classes_of(indices)
  for column, size in enumerate(dsprites.FACTOR_SIZES):
    counts = np.bincount(classes[:, column], minlength=size)
    # Uniform draws: every value, each about TEST_SIZE / size times.
    expected = dsprites.TEST_SIZE / size
    assert counts.min() > 0.5 * expected, (column, counts)
    assert counts.max() < 1.5 * expected, (column, counts)


def test_generate_refuses_images_that_do_not_match_the_digest(
  tmp_path, monkeypatch
):
  monkeypatch.setattr(dsprites, "digest", lambda: "0" * 64)
  with pytest.raises(DataError, match="hash to 0000"):
    dsprites.generate(str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_runs_read_it_with_every_factor_and_train_on_it(tmp_path):
  """input.dataset='dsprites_procedural' reads the generated dataset (here
  48 of its images): the shape as the label, every factor's class, the
  images as the model reads them; a tiny VAE trains on it."""
  data_dir = str(tmp_path / "tfds")
  indices = np.arange(0, dsprites.NUM_IMAGES, dsprites.NUM_IMAGES // 48)
  dsprites.generate(data_dir, indices=indices)
  config = make_tiny_config()
  config.input.update(
    dataset=dsprites.NAME,
    data_dir=data_dir,
    test_split="test[:16]",
  )
  data = pipeline.prepare(config.input)
  assert data.image_shape == (64, 64, 1)
  first = data.first_test_batch(16)
  classes = dsprites.classes_of(indices[:16])
  np.testing.assert_array_equal(first["factors"], classes)
  np.testing.assert_array_equal(first["label"], classes[:, 1])
  np.testing.assert_array_equal(
    first["image"], dsprites.images(classes).astype(np.float32) / 255
  )
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["data_source"] == "tfds_data_dir"
  assert np.isfinite(results["test_nelbo"])
