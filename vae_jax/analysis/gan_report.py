"""What analysis shows of GAN and ACGAN runs, and sampling them.

`sample` generates from a run that `runs.load` read (at its newest
checkpoint, or at a chosen step: every periodic checkpoint is kept, so the
steps before a collapse stay available). The figures are samples, an
ACGAN's pairs (a row per class over the same z) and learning curves with
the discriminator's accuracies; on MNIST the project's classifier judges
samples (`classifier.sample_metrics`: Fréchet distance, precision, recall
and sharpness, as for VAEs). `vae_jax.analyze` calls `analyze`
for runs of trainer 'gan'.
"""

from collections.abc import Callable
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax.analysis import classifier
from vae_jax.analysis import event_logs
from vae_jax.analysis import frechet_curve
from vae_jax.analysis import gan_curves
from vae_jax.analysis import plots
from vae_jax.analysis import runs
from vae_jax.core import image_grid
from vae_jax.core import outputs
from vae_jax.trainers import adversarial
from vae_jax.trainers import trainer

SAMPLE_BATCH = 256  # Latents generated per call, padded: one compilation.
NUM_SAMPLES = 32  # Images in samples.png.
NUM_PAIRS = 10  # Columns of pairs.png: one z each, a row per class.
NUM_METRIC_SAMPLES = 10_000  # Samples judged by the MNIST classifier.


def class_names(input_config: ml_collections.ConfigDict) -> list[str]:
  """What each ACGAN class is: a digit, or CelebA attribute values."""
  if input_config.dataset == "mnist":
    return [f"digit {d}" for d in range(10)]
  attributes = input_config.attributes
  return [
    ", ".join(
      ("" if (k >> i) & 1 else "not ") + name
      for i, name in enumerate(attributes)
    )
    for k in range(2 ** len(attributes))
  ]


def random_inputs(
  run: runs.TrainedRun, num: int, seed: int, label: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """z ~ N(0, I) and labels: `label`, or for an ACGAN every class in turn."""
  z = np.asarray(
    jax.random.normal(jax.random.PRNGKey(seed), (num, run.model.latent_size))
  )
  return z, runs.sample_classes(run, num, label)


_generate = jax.jit(adversarial.generate_images, static_argnames="settings")


def sample(
  run: runs.TrainedRun, z: np.ndarray, labels: np.ndarray
) -> np.ndarray:
  """uint8 images [N, H, W, C] of latents [N, D] and labels [N]."""
  batches = []
  for start in range(0, len(z), SAMPLE_BATCH):
    count = len(z[start : start + SAMPLE_BATCH])
    padded_z = np.zeros((SAMPLE_BATCH, z.shape[1]), np.float32)
    padded_labels = np.zeros(SAMPLE_BATCH, np.int32)
    padded_z[:count] = z[start : start + count]
    padded_labels[:count] = labels[start : start + count]
    images = _generate(
      run.state,
      jnp.asarray(padded_z),
      jnp.asarray(padded_labels),
      settings=adversarial.settings_of(run.config, run.parts),
    )
    batches.append(np.asarray(images)[:count])
  return image_grid.to_uint8(np.concatenate(batches))


def title(run: runs.TrainedRun, what: str) -> str:
  shape = "x".join(map(str, run.image_shape))
  name = os.path.basename(os.path.normpath(run.workdir))
  return (
    f"{what}\n{run.config.model.name} on {run.config.input.dataset} "
    f"({shape}), latent {run.model.latent_size}; run {name!r} at step "
    f"{run.step}"
  )


def samples_figure(run: runs.TrainedRun, seed: int):
  """NUM_SAMPLES samples; an ACGAN's for classes drawn at random too."""
  z, labels = random_inputs(run, NUM_SAMPLES, seed)
  what = f"{NUM_SAMPLES} samples of z ~ N(0, I)"
  if run.model.num_classes:
    labels = (
      np.random.default_rng(seed)
      .integers(0, run.model.num_classes, NUM_SAMPLES)
      .astype(np.int32)
    )
    what += ", each for a class drawn uniformly"
  images = sample(run, z, labels)
  return plots.image_rows(
    list(images.reshape(4, -1, *images.shape[1:])), None, title(run, what)
  )


def pairs_figure(
  run: runs.TrainedRun,
  seed: int,
  num_cols: int = NUM_PAIRS,
  generate: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
):
  """A conditional model's classes as rows over the same z per column (two
  rows for one CelebA attribute: pairs). `generate(z, labels)` gives uint8
  images: by default an ACGAN's `sample`; a conditional VAE's decodings."""
  generate = generate or functools.partial(sample, run)
  z, _ = random_inputs(run, num_cols, seed)
  tiled_z, labels = trainer.label_grid_inputs(
    jnp.asarray(z), run.model.num_classes
  )
  images = generate(np.asarray(tiled_z), np.asarray(labels))
  rows = list(
    images.reshape(run.model.num_classes, num_cols, *images.shape[1:])
  )
  return plots.image_rows(
    rows,
    class_names(run.config.input),
    title(run, "Each column one z, each row the class it is generated for"),
  )


def learning_curves_figure(run: runs.TrainedRun):
  """The run's losses and accuracies from its TensorBoard events; None if
  it logged none."""
  return gan_curves.learning_curves(
    event_logs.read_scalars(run.workdir),
    title(run, "Learning curves"),
    run.step,
  )


def analyze(
  run: runs.TrainedRun,
  *,
  seed: int = 0,
  num_metric_samples: int = NUM_METRIC_SAMPLES,
  curve_samples: int = frechet_curve.NUM_SAMPLES,
) -> dict[str, Any]:
  """Writes the GAN run's WORKDIR/analysis/; returns analysis.json's payload.

  `curve_samples` per kept checkpoint draw the Fréchet distance over
  training (`frechet_curve`); 0 skips it."""
  start = time.perf_counter()
  workdir = run.workdir
  report = {
    "workdir": os.path.abspath(workdir),
    "model": run.config.model.name,
    "dataset": run.config.input.dataset,
    "step": run.step,
    "conditional": bool(run.model.num_classes),
    "seconds": {},
  }
  report.update(
    runs.evaluate(run, runs.test_batches(run), jax.random.PRNGKey(seed))
  )
  figures = {"samples.png": samples_figure(run, seed)}
  if run.model.num_classes:
    figures["pairs.png"] = pairs_figure(run, seed)
  curves = learning_curves_figure(run)
  if curves is not None:
    figures["learning_curves.png"] = curves
  if run.config.input.dataset == "mnist":
    clock = time.perf_counter()
    z, labels = random_inputs(run, num_metric_samples, seed + 1)
    report.update(
      classifier.sample_metrics(
        sample(run, z, labels),
        labels if run.model.num_classes else None,
        data_dir=run.config.input.data_dir,
        mnist_source=run.config.input.mnist_source,
      )
    )
    report["seconds"]["mnist_metrics"] = time.perf_counter() - clock
    if curve_samples:
      clock = time.perf_counter()
      z, labels = random_inputs(run, curve_samples, seed + 2)
      (
        report["frechet_over_training"],
        figures["frechet_over_training.png"],
      ) = frechet_curve.analysis_items(
        run,
        lambda at_step: sample(at_step, z, labels),
        title(run, "Fréchet distance over training"),
      )
      report["seconds"]["frechet_over_training"] = time.perf_counter() - clock
  report["seconds"]["total"] = time.perf_counter() - start
  outputs.write_analysis(os.path.join(workdir, "analysis"), figures, report)
  return report
