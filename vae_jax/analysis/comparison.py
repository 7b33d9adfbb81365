r"""Samples of several trained models side by side, each labelled with its
model, run and step.

The library of the command

    python -m vae_jax.compare --workdirs=/tmp/vae_mnist,/tmp/acgan_mnist \
        --output=/tmp/vae_vs_gan.png

VAEs show decoded means of z ~ N(0, I); GANs their generator's images, an
ACGAN's cycling through the classes. Every model gets the same --seed.
Models may differ in image size: each has its own panel.

For colabs/vae_vs_gan.ipynb, `sample_metrics` has the project's MNIST
classifier judge a run's samples (the Fréchet distance of its features; an
ACGAN's conditioning accuracy) and `metrics_table` lines the runs up.
"""

import os
from typing import Any

from matplotlib import figure as mpl_figure
import numpy as np

from vae_jax import errors
from vae_jax.analysis import classifier
from vae_jax.analysis import gan_report
from vae_jax.analysis import runs
from vae_jax.analysis import sampling
from vae_jax.core import image_grid
from vae_jax.core import outputs

_INCHES_PER_IMAGE = 0.6
# An ACGAN's samples cycle through its classes: MNIST's show rows of 0-9.
_NUM_COLS = 10


def describe(run: runs.TrainedRun) -> str:
  """The run in words: "mlp_vae on mnist, run 'vae_mnist', step 14040"."""
  name = os.path.basename(os.path.normpath(run.workdir))
  return (
    f"{run.config.model.name} on {run.config.input.dataset}, "
    f"run {name!r}, step {run.step}"
  )


def labelled_samples(
  run: runs.TrainedRun, num_samples: int, seed: int
) -> tuple[np.ndarray, str]:
  """uint8 samples [N, H, W, C] of a loaded run, and its label."""
  images = sampling.sample_images(run, num_samples, seed=seed)
  conditional = run.adversarial and run.model.num_classes
  return images, (describe(run) + (", classes in turn" if conditional else ""))


def model_samples(
  workdir: str, num_samples: int, seed: int, step: int | None = None
) -> tuple[np.ndarray, str]:
  """uint8 samples [N, H, W, C] of the run in `workdir`, and its label."""
  return labelled_samples(runs.load(workdir, step), num_samples, seed)


def sample_metrics(
  run: runs.TrainedRun, num_samples: int, seed: int
) -> dict[str, Any]:
  """The MNIST classifier's verdict on `num_samples` samples of a run.

  `classifier.sample_metrics`: the Fréchet distance of its features to the
  test set's, and for an ACGAN how often it recognizes the digit asked for.
  """
  if run.config.input.dataset != "mnist":
    raise errors.UserInputError(
      f"the classifier judges MNIST samples; {run.workdir!r} was trained "
      f"on {run.config.input.dataset}."
    )
  labels = None
  if run.adversarial:
    z, classes = gan_report.random_inputs(run, num_samples, seed)
    images = gan_report.sample(run, z, classes)
    if run.model.num_classes:
      labels = classes
  else:
    images = sampling.sample_images(run, num_samples, seed=seed)
  return classifier.sample_metrics(
    images,
    labels,
    data_dir=run.config.input.data_dir,
    mnist_source=run.config.input.mnist_source,
  )


def metrics_table(entries: list[tuple[str, dict[str, Any]]]) -> str:
  """(name, `sample_metrics`) pairs as an aligned plain-text table."""
  rows = [
    (
      "model",
      "Fréchet distance",
      "real-image floor",
      "precision",
      "recall",
      "sharpness/test",
      "conditioning accuracy",
    )
  ]
  for name, metrics in entries:
    accuracy = metrics.get("conditioning_accuracy")
    rows.append(
      (
        name,
        f"{metrics['frechet_distance_classifier_features']:.3f}",
        f"{metrics['frechet_distance_real_train_images']:.3f}",
        f"{metrics['precision_classifier_features']:.3f}",
        f"{metrics['recall_classifier_features']:.3f}",
        f"{metrics['relative_sharpness']:.3f}",
        "-" if accuracy is None else f"{accuracy:.3f}",
      )
    )
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  return "\n".join(
    "  ".join(
      [row[0].ljust(widths[0])]
      + [text.rjust(width) for text, width in zip(row[1:], widths[1:])]
    )
    for row in rows
  )


def comparison_figure(
  entries: list[tuple[np.ndarray, str]],
  title: str = "",
  num_cols: int = _NUM_COLS,
) -> mpl_figure.Figure:
  """One panel per (samples, label), stacked, in true pixels."""
  mosaics = [
    image_grid.make_grid(images, num_cols=min(num_cols, len(images)))
    for images, _ in entries
  ]
  rows = [-(-len(images) // num_cols) for images, _ in entries]
  fig = mpl_figure.Figure(
    figsize=(
      min(num_cols, max(len(e[0]) for e in entries)) * _INCHES_PER_IMAGE,
      sum(r * _INCHES_PER_IMAGE + 0.45 for r in rows),
    ),
    dpi=100,
    layout="constrained",
  )
  axes = fig.subplots(
    len(entries),
    1,
    squeeze=False,
    height_ratios=[r * _INCHES_PER_IMAGE + 0.45 for r in rows],
  )[:, 0]
  for ax, mosaic, (_, label) in zip(axes, mosaics, entries):
    if mosaic.shape[-1] == 1:
      ax.imshow(
        mosaic[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
      )
    else:
      ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(label, fontsize=9, loc="left")
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def compare(
  workdirs: list[str],
  output: str,
  *,
  num_samples: int = 20,
  seed: int = 0,
  steps: list[int | None] | None = None,
) -> None:
  """Writes `output`: `num_samples` samples of each run in `workdirs`."""
  if not workdirs:
    raise errors.UserInputError("--workdirs names no runs.")
  if num_samples < 1:
    raise errors.UserInputError(
      f"--num_samples must be positive, got {num_samples}."
    )
  steps = steps or [None] * len(workdirs)
  if len(steps) != len(workdirs):
    raise errors.UserInputError(
      f"--steps has {len(steps)} entries for {len(workdirs)} workdirs."
    )
  outputs.check_output_path(output, ".png")  # Before the slow part.
  entries = [
    model_samples(workdir, num_samples, seed, step)
    for workdir, step in zip(workdirs, steps)
  ]
  outputs.save_figure(
    output,
    comparison_figure(
      entries,
      (
        f"Samples of z ~ N(0, I), seed {seed}: a VAE's decoded means, a GAN's "
        "generator outputs"
      ),
    ),
  )
