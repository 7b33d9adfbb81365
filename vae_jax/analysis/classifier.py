"""A small MNIST convnet that judges generated digits, trained once and cached.

Two uses, both in `sample_metrics`: how often it recognizes the digit a
conditional model was asked for (conditioning accuracy, overall and per
digit), and its penultimate features, whose Fréchet distance (`frechet`)
compares any model's samples with real test images. Conv 4x4 stride 2
(32, 64 channels, ReLU) -> Dense 128 (ReLU: the features) -> 10 logits; 3
epochs of Adam reach ~99% test accuracy in 2-3 minutes on a shared 2-core
CPU. The parameters are cached beside the MNIST they came from, in <TFDS
data dir>/vae_jax/mnist_classifier_v<VERSION>/<digest of the training
split>/, so every analysis judges with the same network.
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from absl import logging
from flax import serialization
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow as tf

from vae_jax.analysis import frechet
from vae_jax.analysis import sample_quality
from vae_jax.core import outputs
from vae_jax.data import sources
from vae_jax.models import layers

VERSION = 1  # Bump when the network or its training changes: a new cache.
IMAGE_SHAPE = (28, 28, 1)
NUM_EPOCHS = 3
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
PREDICT_BATCH = 500  # Images per jitted call; padded to it, one compilation.


class Classifier(nn.Module):
  """[N, 28, 28, 1] images in [0, 1] -> (logits [N, 10], features [N, 128])."""

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = nn.relu(layers.StridedConv(32)(images))  # 14x14.
    h = nn.relu(layers.StridedConv(64)(h))  # 7x7.
    features = nn.relu(nn.Dense(128)(h.reshape(h.shape[0], -1)))
    return nn.Dense(10, name="logits")(features), features


@dataclasses.dataclass(frozen=True)
class TrainedClassifier:
  params: dict
  info: dict  # How it was trained, and its test accuracy then.


def mnist_input_config(
  data_dir: str | None = None, mnist_source: str = "auto"
) -> ml_collections.ConfigDict:
  """MNIST at its own 28x28, as `sources.load` reads it."""
  return ml_collections.ConfigDict(
    {
      "dataset": "mnist",
      "data_dir": data_dir,
      "mnist_source": mnist_source,
      "image_size": None,
      "grayscale": False,
      "crop_to_bbox": False,
      "attributes": (),
      "train_split": "train",
      "test_split": "test",
    }
  )


def default_cache_dir(data_dir: str | None, fingerprint: str) -> str:
  """<data_dir>/vae_jax/mnist_classifier_v<VERSION>/<fingerprint>; with no
  data_dir, TFDS's default data dir."""
  # TFDS's default, spelled out: under tfds.testing.mock_data a builder's
  # data_dir_root is TFDS's own test metadata, no place for a cache.
  root = data_dir or os.environ.get(
    "TFDS_DATA_DIR",
    os.path.join(os.path.expanduser("~"), "tensorflow_datasets"),
  )
  return os.path.join(
    root, "vae_jax", f"mnist_classifier_v{VERSION}", fingerprint
  )


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
  """A digest of the training data: a classifier trained on other data (the
  random images of tfds.testing.mock_data) is never taken from the cache."""
  digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
  digest.update(np.ascontiguousarray(images).tobytes())
  return digest.hexdigest()[:16]


def load_split(
  input_config: ml_collections.ConfigDict, split: str
) -> tuple[np.ndarray, np.ndarray]:
  """Images float32 [N, 28, 28, 1] in [0, 1] and labels int32 [N]."""
  chunks = list(
    sources.load(input_config, split, per_process=False)
    .batch(10_000)
    .as_numpy_iterator()
  )
  images = np.concatenate([c["image"] for c in chunks]).astype(np.float32)
  return images / 255.0, np.concatenate([c["label"] for c in chunks])


def _loss(params, images, labels):
  logits, _ = Classifier().apply({"params": params}, images)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


_OPTIMIZER = optax.adam(LEARNING_RATE)


@jax.jit
def _train_step(params, opt_state, images, labels):
  grads = jax.grad(_loss)(params, images, labels)
  updates, opt_state = _OPTIMIZER.update(grads, opt_state)
  return optax.apply_updates(params, updates), opt_state


def train(
  images: np.ndarray, labels: np.ndarray, *, num_epochs: int, seed: int = 0
) -> dict:
  """Parameters trained on images [N, 28, 28, 1] in [0, 1]."""
  params = Classifier().init(
    jax.random.PRNGKey(seed), jnp.zeros((1, *IMAGE_SHAPE))
  )["params"]
  opt_state = _OPTIMIZER.init(params)
  order_rng = np.random.default_rng(seed)
  batch_size = min(BATCH_SIZE, len(images))
  for _ in range(num_epochs):
    order = order_rng.permutation(len(images))
    for start in range(0, len(images) - batch_size + 1, batch_size):
      index = order[start : start + batch_size]
      params, opt_state = _train_step(
        params, opt_state, images[index], labels[index]
      )
  return params


@jax.jit
def _apply(params, images):
  return Classifier().apply({"params": params}, images)


def logits_and_features(
  params: dict, images: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Logits [N, 10] and features [N, 128] of images [N, 28, 28, 1] in [0, 1]."""
  logits, features = [], []
  for start in range(0, len(images), PREDICT_BATCH):
    chunk = images[start : start + PREDICT_BATCH]
    padded = np.zeros((PREDICT_BATCH, *IMAGE_SHAPE), np.float32)
    padded[: len(chunk)] = chunk
    out = jax.device_get(_apply(params, jnp.asarray(padded)))
    logits.append(out[0][: len(chunk)])
    features.append(out[1][: len(chunk)])
  return np.concatenate(logits), np.concatenate(features)


def accuracy(params: dict, images: np.ndarray, labels: np.ndarray) -> float:
  logits, _ = logits_and_features(params, images)
  return float(np.mean(np.argmax(logits, -1) == labels))


def as_input(images: np.ndarray) -> np.ndarray:
  """uint8 images [N, H, W, 1 or 3] as the classifier reads them: gray,
  28x28 (resized like `datasets`, antialiased), float in [0, 1]."""
  pixels = tf.cast(images, tf.float32)
  if pixels.shape[-1] == 3:
    pixels = tf.image.rgb_to_grayscale(pixels)
  if tuple(pixels.shape[1:3]) != IMAGE_SHAPE[:2]:
    pixels = tf.image.resize(pixels, IMAGE_SHAPE[:2], antialias=True)
  return np.clip(pixels.numpy(), 0.0, 255.0) / 255.0


def load_or_train(
  data_dir: str | None = None,
  *,
  cache_dir: str | None = None,
  mnist_source: str = "auto",
  num_epochs: int = NUM_EPOCHS,
) -> TrainedClassifier:
  """The classifier of this MNIST's training split: cached, or trained now.

  `cache_dir` defaults to `default_cache_dir`.
  """
  input_config = mnist_input_config(data_dir, mnist_source)
  sources.prepare(input_config)
  images, labels = load_split(input_config, "train")
  data_fingerprint = fingerprint(images, labels)
  cache_dir = cache_dir or default_cache_dir(data_dir, data_fingerprint)
  params_path = os.path.join(cache_dir, "params.msgpack")
  info_path = os.path.join(cache_dir, "info.json")
  if tf.io.gfile.exists(params_path) and tf.io.gfile.exists(info_path):
    template = Classifier().init(
      jax.random.PRNGKey(0), jnp.zeros((1, *IMAGE_SHAPE))
    )["params"]
    with tf.io.gfile.GFile(params_path, "rb") as f:
      params = serialization.from_bytes(template, f.read())
    with tf.io.gfile.GFile(info_path) as f:
      return TrainedClassifier(params, json.load(f))
  logging.warning(
    "Training the MNIST classifier once; caching it in %s.", cache_dir
  )
  start = time.perf_counter()
  params = train(images, labels, num_epochs=num_epochs)
  test_images, test_labels = load_split(input_config, "test")
  info = {
    "version": VERSION,
    "num_epochs": num_epochs,
    "train_examples": len(labels),
    "train_fingerprint": data_fingerprint,
    "test_accuracy": accuracy(params, test_images, test_labels),
    "seconds": time.perf_counter() - start,
  }
  tf.io.gfile.makedirs(cache_dir)
  # Parameters first: a cache without info.json is trained again.
  with outputs.atomic_open(params_path, "wb") as f:
    f.write(serialization.to_bytes(params))
  outputs.write_json(info_path, info)
  return TrainedClassifier(params, info)


def judge_and_test_split(
  data_dir: str | None, mnist_source: str
) -> tuple[TrainedClassifier, np.ndarray, np.ndarray]:
  """The classifier of this MNIST, and its test images and labels."""
  judge = load_or_train(data_dir, mnist_source=mnist_source)
  images, labels = load_split(
    mnist_input_config(data_dir, mnist_source), "test"
  )
  return judge, images, labels


def sample_metrics(
  samples: np.ndarray,
  labels: np.ndarray | None,
  *,
  data_dir: str | None = None,
  mnist_source: str = "auto",
) -> dict[str, Any]:
  """The project classifier's verdict on uint8 MNIST-like `samples`.

  Its accuracy on the real test set; with `labels` (a conditional model's),
  how often it recognizes them in the samples; and the Fréchet distance of
  its penultimate features between samples and real test images, beside the
  distance of as many real training images, the floor set by sampling;
  from the same features and pixels, `sample_quality.quality_metrics`.
  """
  judge, test_images, test_labels = judge_and_test_split(data_dir, mnist_source)
  test_logits, test_features = logits_and_features(judge.params, test_images)
  sample_pixels = as_input(samples)
  sample_logits, sample_features = logits_and_features(
    judge.params, sample_pixels
  )
  train_images, _ = load_split(
    mnist_input_config(data_dir, mnist_source), "train"
  )
  chosen = np.random.default_rng(0).permutation(len(train_images))[
    : len(samples)
  ]
  _, train_features = logits_and_features(judge.params, train_images[chosen])
  report = {
    "classifier_test_accuracy": float(
      np.mean(np.argmax(test_logits, -1) == test_labels)
    ),
    "frechet_distance_classifier_features": frechet.feature_frechet_distance(
      sample_features, test_features
    ),
    "frechet_distance_real_train_images": frechet.feature_frechet_distance(
      train_features, test_features
    ),
    "frechet_num_samples": len(samples),
    "frechet_num_test_images": len(test_images),
    "classifier": judge.info,
    **sample_quality.quality_metrics(
      sample_features, test_features, train_features, sample_pixels, test_images
    ),
  }
  if labels is not None:
    predictions = np.argmax(sample_logits, -1)
    report["conditioning_accuracy"] = float(np.mean(predictions == labels))
    report["conditioning_accuracy_per_class"] = per_class_accuracy(
      predictions, labels, sample_logits.shape[-1]
    )
  return report


def per_class_accuracy(
  predictions: np.ndarray, labels: np.ndarray, num_classes: int
) -> list[float | None]:
  """For each class, the fraction of images asked for it that were
  predicted as it; None for a class no image was asked for."""
  return [
    float(np.mean(predictions[labels == k] == k))
    if np.any(labels == k)
    else None
    for k in range(num_classes)
  ]
