"""The Fréchet distance between Gaussians fitted to two sets of features.

    d² = |m1 - m2|² + tr(C1) + tr(C2) - 2 tr((C1^½ C2 C1^½)^½)

FID is this d² on Inception-v3 pool features of natural images; here
the features are those of `classifier`'s MNIST convnet, so the numbers are
comparable between models of this project, never with published FIDs.
tr((C1 C2)^½) is computed as the trace of the square root of the symmetric
C1^½ C2 C1^½, through eigendecompositions: no complex parts to drop, and no
failure on the singular covariances of features that never fire (ReLU).
"""

import numpy as np


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] of features [N, D], in float64."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric positive semi-definite matrix."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  # Rounding leaves eigenvalues of ~-1e-12 where 0 is meant.
  return (
    eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
  ) @ eigenvectors.T


def frechet_distance(
  mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray
) -> float:
  """The squared Fréchet (2-Wasserstein) distance of N(m1, C1), N(m2, C2)."""
  root1 = _sqrt_psd(cov1)
  middle = root1 @ cov2 @ root1
  middle = (middle + middle.T) / 2  # Symmetric up to rounding; make it exact.
  trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)))
  distance = (
    np.sum(np.square(mean1 - mean2))
    + np.trace(cov1)
    + np.trace(cov2)
    - 2.0 * trace_root
  )
  return float(max(distance, 0.0))


def feature_frechet_distance(
  features1: np.ndarray, features2: np.ndarray
) -> float:
  """`frechet_distance` of the Gaussians fitted to two feature sets [N, D]."""
  return frechet_distance(
    *gaussian_statistics(features1), *gaussian_statistics(features2)
  )
