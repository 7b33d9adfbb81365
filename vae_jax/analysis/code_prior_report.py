"""What `analyze` reports of a prior over a VQ-VAE run's code grids: the
pair's likelihood bound, its samples and the codes they use.

The bound. The VQ-VAE's posterior is deterministic: image x has one grid
c(x) of nearest entries z_q(x). Its ELBO is then log p(x | z_q(x)) +
log p(c(x)), so -log p(x) ≤ -log p(x | z_q(x)) - log p(c(x)): the VQ-VAE's
reconstruction term plus the prior's log-loss of the grid, in nats, each
averaged over the same test images (the code grids' test split is the
VQ-VAE's fixed test draw, `trainers.code_grids`). It is an upper bound on
the test NLL, not an importance-sampled estimate like the VAE rows' k =
5,000 figures, which are themselves upper bounds, only tighter.
"""

import os
import time
from typing import Any

import jax
import numpy as np

from vae_jax.analysis import classifier
from vae_jax.analysis import event_logs
from vae_jax.analysis import plots
from vae_jax.analysis import runs
from vae_jax.core import image_grid
from vae_jax.core import outputs
from vae_jax.trainers import code_grids

NUM_SAMPLES = 64  # Images in samples.png.
NUM_METRIC_SAMPLES = 10_000  # Samples judged by the MNIST classifier.


def title(run: runs.TrainedRun, what: str) -> str:
  height, width = run.model.grid_shape
  return (
    f"{what}\n{run.config.model.name}: {height}x{width} grids of "
    f"{run.model.codebook_size} codes of VQ-VAE run "
    f"{os.path.basename(os.path.normpath(run.data.quantizer_run.workdir))!r}; "
    f"run {os.path.basename(os.path.normpath(run.workdir))!r} at step "
    f"{run.step}"
  )


def sample_images(run: runs.TrainedRun, rng: jax.Array, num: int):
  """uint8 [num, H, W, C] images of grids the prior draws, and the grids."""
  grids = runs.sample_code_grids(run, rng, num)
  images = code_grids.decode_grids(run.data.quantizer_run, grids)
  return image_grid.to_uint8(images), grids


def codebook_use(grids: np.ndarray, codebook_size: int) -> dict[str, float]:
  """The perplexity of the codes' frequencies over `grids`, and how many
  of the codebook's entries occur."""
  counts = np.bincount(grids.reshape(-1), minlength=codebook_size)
  frequencies = counts[counts > 0] / grids.size
  return {
    "perplexity": float(np.exp(-np.sum(frequencies * np.log(frequencies)))),
    "codes_used": int(np.sum(counts > 0)),
  }


def analyze(
  run: runs.TrainedRun,
  *,
  seed: int = 0,
  num_metric_samples: int = NUM_METRIC_SAMPLES,
) -> dict[str, Any]:
  """Writes the prior run's WORKDIR/analysis/; returns analysis.json's
  payload."""
  start = time.perf_counter()
  quantizer = runs.quantizer_run(run)
  eval_rng, sample_rng, metric_rng = jax.random.split(
    jax.random.PRNGKey(seed), 3
  )
  report = {
    "workdir": os.path.abspath(run.workdir),
    "model": run.config.model.name,
    "dataset": run.images_input.dataset,
    "binarize": run.images_input.binarize,
    "step": run.step,
    "codes_of": os.path.abspath(quantizer.workdir),
    "codes_of_step": quantizer.step,
    "likelihood_of": "nll_bound, an upper bound on -log p(x), of "
    + runs.pixels_likelihood(quantizer.config),
    "seconds": {},
  }
  clock = time.perf_counter()
  report.update(runs.evaluate(run, runs.test_batches(run), eval_rng))
  vq_terms = runs.evaluate(quantizer, runs.test_batches(quantizer), eval_rng)
  report["nll_bound_terms"] = {
    "reconstruction": vq_terms["test_recon"],
    "code_log_loss": report["test_loss"],
  }
  report["nll_bound"] = sum(report["nll_bound_terms"].values())
  report["test_mse"] = vq_terms["test_mse"]  # The VQ-VAE's reconstructions.
  report["seconds"]["evaluate"] = time.perf_counter() - clock

  clock = time.perf_counter()
  images, _ = sample_images(run, sample_rng, NUM_SAMPLES)
  figures = {
    "samples.png": plots.image_rows(
      list(images.reshape(4, -1, *images.shape[1:])),
      None,
      title(run, f"{NUM_SAMPLES} code grids drawn from the prior, decoded"),
    )
  }
  metric_images, metric_grids = sample_images(
    run, metric_rng, num_metric_samples
  )
  report["codebook_use"] = {
    "test": codebook_use(run.data.grids("test"), run.model.codebook_size),
    "samples": codebook_use(metric_grids, run.model.codebook_size),
  }
  report["seconds"]["sampling"] = time.perf_counter() - clock
  if run.images_input.dataset == "mnist":
    clock = time.perf_counter()
    report.update(
      classifier.sample_metrics(
        metric_images,
        None,
        data_dir=run.images_input.data_dir,
        mnist_source=run.images_input.mnist_source,
      )
    )
    report["seconds"]["mnist_metrics"] = time.perf_counter() - clock
  curves = plots.learning_curves(
    event_logs.read_scalars(run.workdir),
    False,
    title(run, "Learning curves: -log p(codes) per grid"),
    run.step,
  )
  if curves is not None:
    figures["learning_curves.png"] = curves
  report["seconds"]["total"] = time.perf_counter() - start
  outputs.write_analysis(os.path.join(run.workdir, "analysis"), figures, report)
  return report
