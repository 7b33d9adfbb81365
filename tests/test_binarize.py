"""Binarized images: fixed draws that depend on each image alone, dynamic
draws that are a pure function of (seed, step), and the config's checks."""

import jax
import numpy as np
import pytest
import tensorflow as tf

from vae_jax import errors
from vae_jax.data import binarize
from vae_jax.data import pipeline


def grey_examples(count=64, seed=0):
  images = np.random.default_rng(seed).integers(
    0, 256, (count, 8, 8, 1), dtype=np.uint8
  )
  return images, tf.data.Dataset.from_tensor_slices(
    {"image": images, "label": np.arange(count, dtype=np.int32)}
  )


def drawn(examples, seed):
  return np.stack(
    [
      ex["image"]
      for ex in binarize.fixed_draw(examples, seed).as_numpy_iterator()
    ]
  )


def test_fixed_draw_is_binary_and_follows_the_grey_levels():
  images, examples = grey_examples(count=512)
  binary = drawn(examples, binarize.TEST_DRAW)
  assert set(np.unique(binary)) == {0, 255}
  # 32,768 Bernoulli(p) pixels: their mean is p's to ~0.003 (one std).
  assert abs(binary.mean() / 255 - images.mean() / 255) < 0.015
  assert np.all(binary[images == 0] == 0) and np.all(binary[images == 255])


def test_fixed_draw_depends_on_the_image_not_on_its_place():
  images, examples = grey_examples()
  binary = drawn(examples, binarize.TEST_DRAW)
  np.testing.assert_array_equal(drawn(examples, binarize.TEST_DRAW), binary)
  order = np.random.default_rng(1).permutation(len(images))
  reordered = tf.data.Dataset.from_tensor_slices(
    {"image": images[order], "label": order.astype(np.int32)}
  )
  np.testing.assert_array_equal(
    drawn(reordered, binarize.TEST_DRAW), binary[order]
  )
  assert not np.array_equal(drawn(examples, binarize.STATIC_TRAIN_DRAW), binary)


def test_dynamic_draw_is_a_function_of_seed_and_step():
  grey = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype(np.float32)
  draw = jax.jit(binarize.dynamic_draw, static_argnums=1)
  first = np.asarray(draw(grey, 0, np.int32(7)))
  assert set(np.unique(first)) == {0.0, 1.0}
  np.testing.assert_array_equal(np.asarray(draw(grey, 0, np.int32(7))), first)
  assert not np.array_equal(np.asarray(draw(grey, 0, np.int32(8))), first)
  assert not np.array_equal(np.asarray(draw(grey, 1, np.int32(7))), first)
  means = np.mean(
    [np.asarray(draw(grey, 0, np.int32(s))) for s in range(200)], axis=0
  )
  np.testing.assert_allclose(means, grey, atol=0.15)  # 200 draws per pixel.


@pytest.mark.parametrize(
  "changes,message",
  [
    ({"binarize": "always"}, "input.binarize 'always' is unknown"),
    (
      {"binarize": "dynamic", "pixel_range": "symmetric"},
      "needs input.pixel_range='unit'",
    ),
    (
      {"binarize": "static", "rotation_degrees": 45.0},
      "'static' cannot be augmented",
    ),
  ],
)
def test_unusable_binarizations_are_refused(changes, message):
  input_config = pipeline.default_config()
  input_config.update(changes)
  with pytest.raises(errors.ConfigError, match=message):
    pipeline.check_config(input_config)
