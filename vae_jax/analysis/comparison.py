r"""Samples of several trained models side by side, each labelled with its
model, run and step.

The library of the command

    python -m vae_jax.compare --workdirs=/tmp/vae_mnist,/tmp/acgan_mnist \
        --output=/tmp/vae_vs_gan.png

VAEs show decoded means of z ~ N(0, I); GANs their generator's images, an
ACGAN's cycling through the classes. Every model gets the same --seed.
Models may differ in image size: each has its own panel.

On MNIST, the project's classifier also judges each run's samples
(`sample_metrics`: the Fréchet distance of its features, precision,
recall, sharpness, an ACGAN's conditioning accuracy, overall and for its
worst digit); the numbers go above each panel and into `metrics_table`,
a Markdown table the command prints.
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
_PANELS_PER_ROW = 3  # Wider figures shrink each panel below its pixels.


def describe(run: runs.TrainedRun) -> str:
  """The run in words: "mlp_vae on mnist, run 'vae_mnist', step 14040"."""
  name = os.path.basename(os.path.normpath(run.workdir))
  return (
    f"{run.config.model.name} on {run.images_input.dataset}, "
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
  if run.images_input.dataset != "mnist":
    raise errors.UserInputError(
      f"the classifier judges MNIST samples; {run.workdir!r} was trained "
      f"on {run.images_input.dataset}."
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
    data_dir=run.images_input.data_dir,
    mnist_source=run.images_input.mnist_source,
  )


# (column title, analysis key, format); `metrics_table`'s columns.
_COLUMNS = (
  ("Fréchet distance", "frechet_distance_classifier_features", "{:.2f}"),
  ("real-image floor", "frechet_distance_real_train_images", "{:.2f}"),
  ("precision", "precision_classifier_features", "{:.3f}"),
  ("recall", "recall_classifier_features", "{:.3f}"),
  ("sharpness/test", "relative_sharpness", "{:.3f}"),
  ("conditioning accuracy", "conditioning_accuracy", "{:.1%}"),
  ("worst digit", "worst_class_accuracy", "{:.1%}"),
)


def _cells(metrics: dict[str, Any]) -> list[str]:
  per_class = [
    a
    for a in metrics.get("conditioning_accuracy_per_class") or []
    if a is not None
  ]
  values = {**metrics, "worst_class_accuracy": min(per_class, default=None)}
  return [
    "-" if values.get(key) is None else form.format(values[key])
    for _, key, form in _COLUMNS
  ]


def metrics_table(entries: list[tuple[str, dict[str, Any]]]) -> str:
  """(name, `sample_metrics`) pairs as a Markdown table, its columns
  aligned so that it also reads as plain text."""
  rows = [["model", *(title for title, _, _ in _COLUMNS)]]
  rows += [[name, *_cells(metrics)] for name, metrics in entries]
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  lines = [
    "| "
    + " | ".join(
      [row[0].ljust(widths[0])]
      + [text.rjust(width) for text, width in zip(row[1:], widths[1:])]
    )
    + " |"
    for row in rows
  ]
  rule = (
    "|"
    + "|".join(
      ["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]
    )
    + "|"
  )
  return "\n".join([lines[0], rule, *lines[1:]])


def _summary(metrics: dict[str, Any]) -> str:
  """One line of a panel's numbers."""
  text = (
    f"Fréchet {metrics['frechet_distance_classifier_features']:.1f}, "
    f"precision {metrics['precision_classifier_features']:.2f}, "
    f"recall {metrics['recall_classifier_features']:.2f}, "
    f"sharpness {metrics['relative_sharpness']:.2f}"
  )
  if metrics.get("conditioning_accuracy") is not None:
    text += f", digit asked for {metrics['conditioning_accuracy']:.1%}"
  return text


def comparison_figure(
  entries: list[tuple[np.ndarray, str]],
  title: str = "",
  num_cols: int = _NUM_COLS,
) -> mpl_figure.Figure:
  """One panel per (samples, label), side by side (`_PANELS_PER_ROW` to a
  row), in true pixels."""
  mosaics = [
    image_grid.make_grid(images, num_cols=min(num_cols, len(images)))
    for images, _ in entries
  ]
  columns = min(num_cols, max(len(images) for images, _ in entries))
  rows = max(-(-len(images) // num_cols) for images, _ in entries)
  title_lines = max(label.count("\n") + 1 for _, label in entries)
  panel_cols = min(_PANELS_PER_ROW, len(entries))
  panel_rows = -(-len(entries) // panel_cols)
  fig = mpl_figure.Figure(
    figsize=(
      panel_cols * max(columns * _INCHES_PER_IMAGE, 3.5),
      panel_rows * (rows * _INCHES_PER_IMAGE + 0.2 * title_lines + 0.3) + 0.3,
    ),
    dpi=100,
    layout="constrained",
  )
  axes = fig.subplots(panel_rows, panel_cols, squeeze=False).ravel()
  for ax in axes[len(entries) :]:
    ax.set_axis_off()
  for ax, mosaic, (_, label) in zip(axes, mosaics, entries):
    if mosaic.shape[-1] == 1:
      ax.imshow(
        mosaic[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
      )
    else:
      ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(label, fontsize=8, loc="left")
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
  num_metric_samples: int = gan_report.NUM_METRIC_SAMPLES,
) -> str:
  """Writes `output`: `num_samples` samples of each run in `workdirs`.

  MNIST runs are also judged by the project's classifier on
  `num_metric_samples` samples (0: not judged): their numbers go above
  their panel, in a table that is returned, and with each run's workdir and
  step in `output`'s .json twin, from which the table can be printed again.
  """
  if not workdirs:
    raise errors.UserInputError("--workdirs names no runs.")
  for name, count, least in (
    ("num_samples", num_samples, 1),
    ("num_metric_samples", num_metric_samples, 0),
  ):
    if count < least:
      raise errors.UserInputError(f"--{name} must be >= {least}, got {count}.")
  steps = steps or [None] * len(workdirs)
  if len(steps) != len(workdirs):
    raise errors.UserInputError(
      f"--steps has {len(steps)} entries for {len(workdirs)} workdirs."
    )
  outputs.check_output_path(output, ".png")  # Before the slow part.
  entries, judged = [], []
  for workdir, step in zip(workdirs, steps):
    run = runs.load(workdir, step)
    images, label = labelled_samples(run, num_samples, seed)
    if num_metric_samples and run.images_input.dataset == "mnist":
      metrics = sample_metrics(run, num_metric_samples, seed)
      label += "\n" + _summary(metrics)
      judged.append(
        {
          "name": describe(run),
          "workdir": os.path.abspath(workdir),
          "step": run.step,
          "metrics": metrics,
        }
      )
    entries.append((images, label))
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
  if not judged:
    return ""
  outputs.write_json(os.path.splitext(output)[0] + ".json", judged)
  return metrics_table([(run["name"], run["metrics"]) for run in judged])
