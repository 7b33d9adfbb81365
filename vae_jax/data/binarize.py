"""Binarized images: each pixel drawn from Bernoulli(its grey level).

Binarized MNIST is the benchmark the likelihood literature reports on (Burda
et al., 2016, binarize it afresh each time an image is used). `input.binarize`:

- 'none': grey levels, read as Bernoulli means by the 'bernoulli' likelihood
  (a cross-entropy, not the likelihood of any data);
- 'dynamic': a fresh draw of every training image each time it is used, on
  the devices, from a key that is a pure function of (seed, step), so a run
  resumes exactly on either the device-held or the host-fed path;
- 'static': one fixed draw of the training split.

Whenever training images are binarized, the test split is too, by one fixed
draw that is the same for every run (`TEST_DRAW`): every binarized run is
evaluated on the same binary test images. A fixed draw keys each image's
pixels by its own content (a hash of its grey levels), so it does not
depend on the order, batching or process sharding that reads the image.
"""

import jax
import jax.numpy as jnp
import ml_collections
import tensorflow as tf

from vae_jax import errors
from vae_jax.data import augment

MODES = ("none", "dynamic", "static")
# The fixed draws' seeds: of the test split (every binarized run's) and of
# the training split under 'static'.
TEST_DRAW = 20_160_001
STATIC_TRAIN_DRAW = 20_160_002
# The dynamic draws' own key stream, apart from the model's noise.
_DYNAMIC_STREAM = 0xB1


def check_config(input_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a binarization no run could use."""
  mode = input_config.binarize
  errors.require_choice(mode, MODES, "input.binarize")
  if mode == "none":
    return
  errors.require(
    input_config.pixel_range == "unit",
    f"input.binarize={mode!r} draws pixels in {{0, 1}} and needs "
    "input.pixel_range='unit', got "
    f"{input_config.pixel_range!r}.",
  )
  errors.require(
    mode != "static" or not augment.is_enabled(input_config),
    "input.binarize='static' cannot be augmented: rotating a "
    "binary image makes grey pixels again; use 'dynamic', which "
    "binarizes the augmented images.",
  )


def fixed_draw(examples: tf.data.Dataset, seed: int) -> tf.data.Dataset:
  """`examples` with uint8 images binarized to {0, 255} once: pixel p is 255
  with probability p / 255, by a stateless draw keyed by (seed, a hash of
  the image's pixels)."""

  def draw(example):
    image = example["image"]
    content = tf.strings.to_hash_bucket_fast(
      tf.io.serialize_tensor(image), 2**62
    )
    uniform = tf.random.stateless_uniform(
      tf.shape(image), tf.stack([tf.constant(seed, tf.int64), content])
    )
    binary = tf.cast(uniform * 255.0 < tf.cast(image, tf.float32), tf.uint8)
    return {**example, "image": binary * 255}

  return examples.map(draw, num_parallel_calls=tf.data.AUTOTUNE)


def dynamic_draw(images: jax.Array, seed: int, step: jax.Array) -> jax.Array:
  """[0, 1] images binarized afresh for `step`: 1 with probability p."""
  key = jax.random.fold_in(
    jax.random.fold_in(jax.random.PRNGKey(seed), _DYNAMIC_STREAM), step
  )
  uniform = jax.random.uniform(key, images.shape, jnp.float32)
  return (uniform < images).astype(images.dtype)
