"""The seed's training augmentations as stateless TensorFlow ops.

Every op draws its randomness from a key (int64 [2]), so the augmentation of a
batch is a pure function of the key; the input pipeline derives the key from
(seed, epoch, batch index), which keeps resumed runs bit-identical. Images are
float32 [B, H, W, C] in [0, 1]. The ops follow the seed's torchvision
transforms: RandomRotation (nearest neighbour, zero fill), RandomAutocontrast
and ColorJitter(brightness), applied in that order.
"""

import math

import ml_collections
import tensorflow as tf

from vae_jax import errors


def check_config(input_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for augmentation settings no run could use."""
  for field in ("rotation_degrees", "brightness_jitter"):
    if input_config[field] < 0:
      raise errors.ConfigError(
        f"input.{field} must be >= 0 (0 is off), got {input_config[field]}."
      )
  if not 0 <= input_config.autocontrast_prob <= 1:
    raise errors.ConfigError(
      "input.autocontrast_prob must be in [0, 1], got "
      f"{input_config.autocontrast_prob}."
    )


def is_enabled(input_config: ml_collections.ConfigDict) -> bool:
  return bool(
    input_config.rotation_degrees
    or input_config.autocontrast_prob
    or input_config.brightness_jitter
  )


def random_rotation(
  images: tf.Tensor, key: tf.Tensor, max_degrees: float
) -> tf.Tensor:
  """Rotates each image about its center by an angle in ±max_degrees."""
  batch_size = tf.shape(images)[0]
  angles = tf.random.stateless_uniform(
    [batch_size], key, -max_degrees, max_degrees
  ) * (math.pi / 180)
  cos, sin = tf.cos(angles), tf.sin(angles)
  height = tf.cast(tf.shape(images)[1] - 1, tf.float32)
  width = tf.cast(tf.shape(images)[2] - 1, tf.float32)
  # The transform maps each output pixel to the input pixel it samples; the
  # offsets keep the center fixed.
  x_offset = (width - (cos * width - sin * height)) / 2
  y_offset = (height - (sin * width + cos * height)) / 2
  zeros = tf.zeros_like(angles)
  transforms = tf.stack(
    [cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1
  )
  return tf.raw_ops.ImageProjectiveTransformV3(
    images=images,
    transforms=transforms,
    output_shape=tf.shape(images)[1:3],
    fill_value=0.0,
    interpolation="NEAREST",
    fill_mode="CONSTANT",
  )


def random_autocontrast(
  images: tf.Tensor, key: tf.Tensor, prob: float
) -> tf.Tensor:
  """With probability `prob`, stretches each channel to span [0, 1]."""
  low = tf.reduce_min(images, axis=(1, 2), keepdims=True)
  high = tf.reduce_max(images, axis=(1, 2), keepdims=True)
  # Flat channels stay as they are, as in torchvision's autocontrast.
  flat = high <= low
  scale = tf.where(flat, 1.0, tf.math.divide_no_nan(1.0, high - low))
  stretched = tf.clip_by_value(
    (images - tf.where(flat, 0.0, low)) * scale, 0.0, 1.0
  )
  draws = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], key)
  return tf.where(draws < prob, stretched, images)


def random_brightness(
  images: tf.Tensor, key: tf.Tensor, jitter: float
) -> tf.Tensor:
  """Scales each image by a factor in [max(0, 1 - jitter), 1 + jitter]."""
  factors = tf.random.stateless_uniform(
    [tf.shape(images)[0], 1, 1, 1], key, max(0.0, 1.0 - jitter), 1.0 + jitter
  )
  return tf.clip_by_value(images * factors, 0.0, 1.0)


def augment_batch(
  images: tf.Tensor, key: tf.Tensor, input_config: ml_collections.ConfigDict
) -> tf.Tensor:
  """Applies the augmentations the config turns on (0 is off)."""
  # One subkey per op, so switching one op leaves the others' draws alone.
  rotation_key, contrast_key, brightness_key = tf.unstack(
    tf.random.experimental.stateless_split(key, 3)
  )
  if input_config.rotation_degrees:
    images = random_rotation(
      images, rotation_key, input_config.rotation_degrees
    )
  if input_config.autocontrast_prob:
    images = random_autocontrast(
      images, contrast_key, input_config.autocontrast_prob
    )
  if input_config.brightness_jitter:
    images = random_brightness(
      images, brightness_key, input_config.brightness_jitter
    )
  return images
