"""Precision, recall and sharpness of samples, against known answers."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import distance

from vae_jax.analysis import sample_quality


def brute_force_precision_recall(real, fake, k):
  """The definition read literally: Euclidean cdist, sorted rows."""

  def radii(points):
    # Column 0 of a sorted row is the point itself.
    return np.sort(distance.cdist(points, points), axis=1)[:, k]

  def covered(points, manifold):
    return np.mean(
      np.any(distance.cdist(points, manifold) <= radii(manifold), axis=1)
    )

  return covered(fake, real), covered(real, fake)


def clusters(centers, per_cluster, rng, scale=0.1):
  return np.concatenate(
    [c + scale * rng.standard_normal((per_cluster, len(c))) for c in centers]
  )


def test_precision_recall_known_answers():
  rng = np.random.default_rng(0)
  real = rng.standard_normal((50, 8))
  assert sample_quality.precision_recall(real, real) == (1.0, 1.0)
  far = real + 100.0
  assert sample_quality.precision_recall(real, far) == (0.0, 0.0)
  # Fakes that jitter (by ~1e-3, far below the ~0.4 gaps between neighbours)
  # the real points of 2 of 4 equally filled modes 50 apart: every fake is
  # in a real ball, and the fake balls cover those 2 modes, no other.
  real = clusters(50.0 * np.eye(4, 8), 30, rng)
  fake = real[:60] + 1e-3 * rng.standard_normal((60, 8))
  assert sample_quality.precision_recall(real, fake) == (1.0, 0.5)
  # Discrete data: with k + 1 copies of each point the radii are 0, and a
  # point on the sphere counts as inside (the reference's <=).
  grid = rng.integers(0, 9, (10, 8)).astype(float)
  precision, _ = sample_quality.precision_recall(np.repeat(grid, 4, 0), grid)
  assert precision == 1.0


def test_precision_recall_match_brute_force():
  rng = np.random.default_rng(1)
  # Overlapping, differently spread sets: answers strictly between 0 and 1,
  # on more rows than one chunk.
  real = rng.standard_normal((1100, 5))
  fake = 1.5 * rng.standard_normal((300, 5)) + 1.0
  for k in (1, 3, 5):
    ours = sample_quality.precision_recall(real, fake, k)
    expected = brute_force_precision_recall(real, fake, k)
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    assert 0 < ours[0] < 1 and 0 < ours[1] < 1
  with pytest.raises(ValueError, match="more than k=3"):
    sample_quality.precision_recall(real, fake[:3])


def test_laplacian_and_sharpness():
  rng = np.random.default_rng(2)
  images = rng.random((3, 12, 10))
  expected = np.stack([ndimage.laplace(image) for image in images])
  np.testing.assert_allclose(
    sample_quality.laplacian(images), expected[:, 1:-1, 1:-1], atol=1e-12
  )
  # A channel axis of 1 reads the same.
  assert sample_quality.sharpness(images[..., None]) == pytest.approx(
    np.mean(np.square(expected[:, 1:-1, 1:-1]))
  )
  blurred = np.stack([ndimage.gaussian_filter(image, 1.0) for image in images])
  assert sample_quality.sharpness(blurred) < 0.2 * sample_quality.sharpness(
    images
  )
  assert sample_quality.sharpness(np.full((2, 5, 5), 0.3)) == 0.0
