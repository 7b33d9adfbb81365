"""The seed's augmentations: what each op does, and that keys fix the draws."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from vae_jax.data import augment
from vae_jax.errors import ConfigError

KEY = tf.constant([7, 11], tf.int64)


def images(batch_size=8, size=9, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant(
    rng.uniform(0.2, 0.6, (batch_size, size, size, channels)), tf.float32
  )


def fixed_angle(monkeypatch, degrees):
  monkeypatch.setattr(
    augment.tf.random,
    "stateless_uniform",
    lambda shape, key, low, high: tf.fill(shape, degrees),
  )


def test_rotation_turns_about_the_center(monkeypatch):
  square = tf.reshape(tf.range(25, dtype=tf.float32), (1, 5, 5, 1))
  fixed_angle(monkeypatch, 90.0)
  turned = augment.random_rotation(square, KEY, 90.0)
  # Counterclockwise, like torchvision's rotate.
  np.testing.assert_array_equal(turned[0, ..., 0], np.rot90(square[0, ..., 0]))


def test_rotation_fills_corners_with_zeros(monkeypatch):
  fixed_angle(monkeypatch, 45.0)
  turned = augment.random_rotation(tf.ones((1, 9, 9, 1)), KEY, 45.0)
  assert turned[0, 0, 0, 0] == 0.0 and turned[0, 4, 4, 0] == 1.0


def test_autocontrast_stretches_each_channel_to_full_range():
  batch = images(channels=3)
  stretched = augment.random_autocontrast(batch, KEY, prob=1.0).numpy()
  np.testing.assert_allclose(stretched.min(axis=(1, 2)), 0.0, atol=1e-6)
  np.testing.assert_allclose(stretched.max(axis=(1, 2)), 1.0, atol=1e-6)
  flat = tf.fill((1, 4, 4, 1), 0.3)
  np.testing.assert_array_equal(
    augment.random_autocontrast(flat, KEY, 1.0), flat
  )


def test_autocontrast_applies_to_about_prob_of_images():
  batch = images(batch_size=400)
  changed = np.any(
    augment.random_autocontrast(batch, KEY, 0.5).numpy() != batch.numpy(),
    axis=(1, 2, 3),
  )
  assert 150 < changed.sum() < 250


def test_brightness_scales_within_the_jitter():
  batch = images(batch_size=200)
  factors = (augment.random_brightness(batch, KEY, 0.5) / batch).numpy()
  per_image = factors.reshape(200, -1)
  np.testing.assert_allclose(
    per_image.min(axis=1), per_image.max(axis=1), rtol=1e-5
  )
  assert 0.5 <= per_image.min() < 0.6 and 1.4 < per_image.max() <= 1.5


def config(rotation=45.0, autocontrast=0.5, brightness=0.5):
  return ml_collections.ConfigDict(
    {
      "rotation_degrees": rotation,
      "autocontrast_prob": autocontrast,
      "brightness_jitter": brightness,
    }
  )


def test_same_key_same_images_other_key_other_images():
  batch = images()
  first = augment.augment_batch(batch, KEY, config())
  np.testing.assert_array_equal(
    first, augment.augment_batch(batch, KEY, config())
  )
  other = augment.augment_batch(batch, tf.constant([7, 12], tf.int64), config())
  assert not np.array_equal(first, other)


def test_all_off_is_the_identity():
  batch = images()
  assert not augment.is_enabled(config(0.0, 0.0, 0.0))
  np.testing.assert_array_equal(
    augment.augment_batch(batch, KEY, config(0.0, 0.0, 0.0)), batch
  )


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("rotation", -1.0, "rotation_degrees must be >= 0"),
    ("brightness", -0.1, "brightness_jitter must be >= 0"),
    ("autocontrast", 1.5, r"autocontrast_prob must be in \[0, 1\]"),
  ],
)
def test_bad_settings_name_the_field(field, value, message):
  with pytest.raises(ConfigError, match=message):
    augment.check_config(config(**{field: value}))
