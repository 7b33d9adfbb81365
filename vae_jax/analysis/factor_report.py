"""Disentanglement of a VAE whose dataset has known factors (dSprites).

For a dataset that declares its factors (`data.sources.factor_grid`),
`analyze` scores the run's posterior means of images rendered at uniformly
drawn factor values with MIG, the FactorVAE score and DCI, by
disentanglement_lib's protocol (`disentanglement`), and names the factor
each latent unit follows: the one it shares the most mutual information
with, as a share of that factor's entropy, from the very numbers MIG scores.
traversal_per_unit.png shows each unit's traversal under that name.
"""

from typing import Any

import numpy as np

from vae_jax.analysis import disentanglement
from vae_jax.analysis import latent_metrics
from vae_jax.analysis import plots
from vae_jax.analysis import runs
from vae_jax.data import batching
from vae_jax.data import sources

# Images per encoder call: one shape, so one compilation, whatever the
# metrics ask for.
ENCODE_BATCH = 512
# Each metric's sample counts: the protocol's, as analysis.json records
# them. Tests shrink them; the full counts take minutes, most of it DCI's
# boosted trees and the FactorVAE score's 960,000 images.
SAMPLE_COUNTS = {
  "mig": {"num_points": disentanglement.MIG_NUM_POINTS},
  "factor_vae_score": {
    "num_variance_points": disentanglement.FACTOR_VAE_VARIANCE_POINTS,
    "num_train_votes": disentanglement.FACTOR_VAE_TRAIN_VOTES,
    "num_eval_votes": disentanglement.FACTOR_VAE_EVAL_VOTES,
  },
  "dci": {
    "num_train": disentanglement.DCI_TRAIN_POINTS,
    "num_test": disentanglement.DCI_TEST_POINTS,
  },
}


def codes_of(
  run: runs.TrainedRun, grid: sources.FactorGrid
) -> disentanglement.CodesOf:
  """The run's posterior means [N, D] of the grid's images at factor
  classes [N, F], as the run reads images (its pixel range)."""

  def codes(classes: np.ndarray) -> np.ndarray:
    pixels = batching.to_model_pixels(grid.images(classes), run.config.input)
    # No factor dataset is labelled by class, so every image is class 0.
    no_labels = np.zeros(ENCODE_BATCH, np.int32)
    means = []
    for start in range(0, len(pixels), ENCODE_BATCH):
      chunk = pixels[start : start + ENCODE_BATCH]
      padded = np.zeros((ENCODE_BATCH, *pixels.shape[1:]), pixels.dtype)
      padded[: len(chunk)] = chunk
      mu, _ = runs.encode(run, padded, no_labels)
      means.append(mu[: len(chunk)])
    return np.concatenate(means)

  return codes


def scores(
  run: runs.TrainedRun, grid: sources.FactorGrid, kl_per_dim: np.ndarray
) -> dict[str, Any]:
  """analysis.json's "disentanglement": the three metrics, and the factor
  each unit follows (None for a unit collapsed by its KL [D])."""
  codes = codes_of(run, grid)
  mig = disentanglement.mig(codes, grid.sizes, **SAMPLE_COUNTS["mig"])
  factor_vae = disentanglement.factor_vae_score(
    codes, grid.sizes, **SAMPLE_COUNTS["factor_vae_score"]
  )
  dci = disentanglement.dci(codes, grid.sizes, **SAMPLE_COUNTS["dci"])
  # MIG's own numbers: the same draws, so the same codes and bins.
  information, entropy = disentanglement.mutual_information(
    codes, grid.sizes, **SAMPLE_COUNTS["mig"]
  )
  informative = np.flatnonzero(np.asarray(grid.sizes) > 1)
  # A share of each factor's entropy, as MIG divides its gaps: position
  # (32 values) holds three times shape's (3) information.
  share = information[:, informative] / entropy[informative]
  followed = informative[np.argmax(share, axis=1)]
  active = kl_per_dim > latent_metrics.ACTIVE_UNIT_NATS
  return {
    "mig": mig["mig"],
    "mig_per_factor": {
      grid.names[index]: mig[f"mig_factor_{index}"] for index in informative
    },
    "factor_vae_score": factor_vae["eval_accuracy"],
    "factor_vae_train_accuracy": factor_vae["train_accuracy"],
    "factor_vae_active_dims": factor_vae["num_active_dims"],
    "dci_disentanglement": dci["disentanglement"],
    "dci_completeness": dci["completeness"],
    "dci_informativeness_train": dci["informativeness_train"],
    "dci_informativeness_test": dci["informativeness_test"],
    "factors": [grid.names[index] for index in informative],
    "unit_information": share.tolist(),
    "unit_factor": [
      grid.names[index] if is_active else None
      for index, is_active in zip(followed, active)
    ],
    "sample_counts": SAMPLE_COUNTS,
  }


def unit_label(unit: int, factor_scores: dict[str, Any], kl: float) -> str:
  """A traversal row's name: the unit, and the factor it follows with its
  share of that factor's entropy, or that it collapsed."""
  factor = factor_scores["unit_factor"][unit]
  if factor is None:
    return f"z[{unit}]: collapsed (KL {kl:.3f})"
  share = max(factor_scores["unit_information"][unit])
  return f"z[{unit}]: {factor} (MI/H {share:.2f})"


def traversal_per_unit_figure(
  run: runs.TrainedRun,
  factor_scores: dict[str, Any],
  kl_per_dim: np.ndarray,
  center: np.ndarray,
  values: np.ndarray,
  title: str,
):
  """One row per latent unit, most KL first: decodings of `center` [D] with
  that unit set to each of `values`, named by `unit_label`."""
  order = np.argsort(-kl_per_dim, kind="stable")
  codes = np.tile(center, (len(order), len(values), 1))
  for row, unit in enumerate(order):
    codes[row, :, unit] = values
  images = runs.decode(
    run,
    codes.reshape(-1, len(center)),
    np.zeros(len(order) * len(values), np.int32),
  )
  return plots.image_rows(
    list(images.reshape(len(order), len(values), *images.shape[1:])),
    [unit_label(unit, factor_scores, kl_per_dim[unit]) for unit in order],
    title,
    column_labels=[f"{value:+.1f}" for value in values],
  )
