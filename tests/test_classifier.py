"""The MNIST classifier that judges samples, and the Fréchet distance."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow_datasets as tfds

from vae_jax.analysis import classifier
from vae_jax.analysis import frechet


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
  mean1, mean2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  # Commuting covariances: |m1 - m2|² + Σ (σ1 - σ2)².
  expected = 5.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
  assert frechet.frechet_distance(
    mean1, np.diag(var1), mean2, np.diag(var2)
  ) == pytest.approx(expected)


def test_frechet_distance_matches_scipy_on_general_covariances():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 6, 6))
  cov1, cov2 = a @ a.T, b @ b.T
  mean1, mean2 = rng.normal(size=(2, 6))
  expected = (
    np.sum((mean1 - mean2) ** 2)
    + np.trace(cov1 + cov2)
    - 2 * np.trace(scipy.linalg.sqrtm(cov1 @ cov2).real)
  )
  assert frechet.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
    expected, rel=1e-6
  )


def test_frechet_distance_of_features_is_zero_for_the_same_set():
  rng = np.random.default_rng(1)
  features = np.maximum(rng.normal(size=(500, 8)), 0)
  features[:, 3] = 0  # A ReLU unit that never fires: a singular covariance.
  assert frechet.feature_frechet_distance(features, features) == pytest.approx(
    0.0, abs=1e-9
  )
  shifted = features + np.eye(8)[0]
  assert frechet.feature_frechet_distance(features, shifted) == pytest.approx(
    1.0, rel=1e-6
  )


def test_per_class_accuracy_counts_each_class_apart():
  labels = np.array([0, 0, 0, 0, 1, 1, 2])
  predictions = np.array([0, 0, 0, 2, 1, 0, 1])
  assert classifier.per_class_accuracy(predictions, labels, 4) == [
    0.75,
    0.5,
    0.0,
    None,  # Never asked for.
  ]


def test_samples_are_read_like_mnist():
  rgb = np.full((2, 32, 32, 3), 255, np.uint8)
  images = classifier.as_input(rgb)
  assert images.shape == (2, 28, 28, 1)
  np.testing.assert_allclose(images, 1.0, atol=1e-3)  # Gray weights: 0.9999.


def test_classifier_trains_once_then_reads_its_cache(tmp_path, monkeypatch):
  with tfds.testing.mock_data(num_examples=16):
    trained = classifier.load_or_train(
      str(tmp_path), mnist_source="tfds", num_epochs=1
    )
    cache = (
      tmp_path
      / "vae_jax"
      / f"mnist_classifier_v{classifier.VERSION}"
      / trained.info["train_fingerprint"]
    )
    assert (cache / "params.msgpack").exists()
    assert 0.0 <= trained.info["test_accuracy"] <= 1.0
    assert trained.info["train_examples"] == 16

    def fail(*unused_args, **unused_kwargs):
      raise AssertionError("trained again")

    monkeypatch.setattr(classifier, "train", fail)
    cached = classifier.load_or_train(str(tmp_path), mnist_source="tfds")
    assert cached.info == trained.info
    for name in ("kernel", "bias"):
      np.testing.assert_array_equal(
        cached.params["logits"][name], trained.params["logits"][name]
      )
    # What analysis reports for samples, judged by the cached classifier.
    samples = np.random.default_rng(0).integers(
      0, 256, (12, 28, 28, 1), np.uint8
    )
    report = classifier.sample_metrics(
      samples, np.arange(12) % 10, data_dir=str(tmp_path), mnist_source="tfds"
    )
  assert report["classifier_test_accuracy"] == trained.info["test_accuracy"]
  assert 0.0 <= report["conditioning_accuracy"] <= 1.0
  assert len(report["conditioning_accuracy_per_class"]) == 10
  assert report["frechet_distance_classifier_features"] > 0
  assert report["frechet_num_samples"] == 12
