"""The comparison a sweep ends with: one table and one figure of its runs.

`summarize` gathers each run's overrides, results.json and analysis.json;
`summary_figure` draws the loss curves of every run, then rows of test
reconstructions and samples (the same z for every run), one per value.
"""

import dataclasses
import json
import os
import re
from typing import Any

import jax
from matplotlib import figure as mpl_figure
from matplotlib import lines as mpl_lines
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax.analysis import event_logs
from vae_jax.analysis import runs
from vae_jax.core import image_grid
from vae_jax.trainers import trainer

_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._+-]")


@dataclasses.dataclass(frozen=True)
class Run:
  """One point of the grid."""

  name: str  # Its directory under the sweep's workdir.
  overrides: dict[str, Any]  # Dotted config field -> value.


def value_text(value: Any) -> str:
  """A value as it appears in run directories and labels."""
  text = "-".join(map(str, value)) if isinstance(value, tuple) else str(value)
  return _UNSAFE_IN_NAMES.sub("_", text)


def read_json(path: str) -> dict[str, Any] | None:
  """The JSON object in `path`, or None if there is no such file."""
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


# The summary table's figures, (file, key): dotted keys index nested dicts.
# Columns no run has are left out (autoencoders have no KL, IWAE is optional).
_TABLE_COLUMNS = (
  ("results", "test_nelbo"),
  ("results", "test_loss"),
  ("results", "test_recon"),
  ("results", "test_kl"),
  ("results", "test_mse"),
  ("analysis", "active_units"),
  ("analysis", "class_separation.knn_accuracy"),
  ("analysis", "sample_diversity"),
  ("analysis", "frechet_distance_classifier_features"),  # MNIST runs.
  ("analysis", "recall_classifier_features"),
  ("analysis", "conditioning_accuracy"),  # Conditional models.
  # Data with ground-truth factors (dSprites).
  ("analysis", "disentanglement.mig"),
  ("analysis", "disentanglement.factor_vae_score"),
  ("analysis", "disentanglement.dci_disentanglement"),
  ("results", "train_seconds"),
)
# The sweep field whose runs `across_seeds` averages over.
SEED_FIELD = "seed"
NUM_IMAGES = 8  # Test images and samples per run in the summary figure.


def _lookup(payload: dict[str, Any] | None, dotted_key: str) -> Any:
  for key in dotted_key.split("."):
    if not isinstance(payload, dict):
      return None
    payload = payload.get(key)
  return payload


def summarize(
  workdir: str, sweep_runs: list[Run], failures: dict[str, str]
) -> dict[str, Any]:
  """Each run's overrides, results.json and analysis.json, and a table."""
  entries = []
  for run in sweep_runs:
    run_dir = os.path.join(workdir, run.name)
    entries.append(
      {
        "name": run.name,
        "dir": run_dir,
        "overrides": run.overrides,
        "results": read_json(os.path.join(run_dir, "results.json")),
        "analysis": read_json(
          os.path.join(run_dir, "analysis", "analysis.json")
        ),
        "error": failures.get(run.name),
      }
    )
  present = [
    (file, key)
    for file, key in _TABLE_COLUMNS
    if any(_lookup(entry[file], key) is not None for entry in entries)
  ]
  fields = list(sweep_runs[0].overrides)
  table = {
    "columns": fields + [key.rsplit(".", 1)[-1] for _, key in present],
    "rows": [
      list(run.overrides.values())
      + [_lookup(entry[file], key) for file, key in present]
      for run, entry in zip(sweep_runs, entries)
    ],
  }
  summary = {"fields": fields, "runs": entries, "table": table}
  if SEED_FIELD in fields:
    summary["across_seeds"] = across_seeds(fields, table)
  return summary


def across_seeds(
  fields: list[str], table: dict[str, list[Any]]
) -> dict[str, list[Any]]:
  """`table`'s figures averaged over the seeds of each setting of the other
  fields: per figure its mean and its standard deviation across seeds
  (ddof 1; None for one seed), over the runs that have it, and their
  number ('seeds')."""
  others = [i for i, field in enumerate(fields) if field != SEED_FIELD]
  figures = range(len(fields), len(table["columns"]))
  settings = {}  # The other fields' values -> their rows, in grid order.
  for row in table["rows"]:
    settings.setdefault(tuple(row[i] for i in others), []).append(row)
  rows = []
  for setting, setting_rows in settings.items():
    cells = []
    for column in figures:
      values = np.array(
        [row[column] for row in setting_rows if row[column] is not None],
        np.float64,
      )
      cells.append(
        {
          "mean": float(values.mean()) if len(values) else None,
          "std": float(values.std(ddof=1)) if len(values) > 1 else None,
        }
      )
    rows.append([*setting, len(setting_rows), *cells])
  return {
    "columns": [fields[i] for i in others]
    + ["seeds"]
    + [table["columns"][i] for i in figures],
    "rows": rows,
  }


def format_table(table: dict[str, list[Any]]) -> str:
  """The summary table as aligned plain text."""

  def cell(value):
    if isinstance(value, float):
      return f"{value:.4g}"
    return "-" if value is None else str(value)

  cells = [table["columns"]] + [[cell(v) for v in row] for row in table["rows"]]
  widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
  return "\n".join(
    "  ".join(text.rjust(width) for text, width in zip(row, widths))
    for row in cells
  )


def format_across_seeds(table: dict[str, list[Any]]) -> str:
  """`across_seeds`' table as aligned plain text, each figure 'mean ± std'."""
  num_settings = table["columns"].index("seeds") + 1

  def spread(cell: dict[str, float | None]) -> str | None:
    if cell["mean"] is None:
      return None
    if cell["std"] is None:
      return f"{cell['mean']:.4g}"
    return f"{cell['mean']:.4g} ± {cell['std']:.2g}"

  return format_table(
    {
      "columns": table["columns"],
      "rows": [
        row[:num_settings] + [spread(cell) for cell in row[num_settings:]]
        for row in table["rows"]
      ],
    }
  )


# The figures `seed_spread_figure` plots, where the sweep has them.
SPREAD_FIGURES = (
  "mig",
  "factor_vae_score",
  "dci_disentanglement",
  "test_recon",
  "test_kl",
)


def seed_spread_figure(summary: dict[str, Any], title: str):
  """Each figure of SPREAD_FIGURES that the runs have, one panel each: a
  point per seed of every setting of the other fields, and their mean."""
  table, fields = summary["table"], summary["fields"]
  figures = table["columns"][len(fields) :]
  columns = [c for c in SPREAD_FIGURES if c in figures] or figures[:4]
  others = [i for i, field in enumerate(fields) if field != SEED_FIELD]
  settings = list(
    dict.fromkeys(tuple(row[i] for i in others) for row in table["rows"])
  )
  labels = [", ".join(value_text(v) for v in setting) for setting in settings]
  fig = mpl_figure.Figure(
    figsize=(3.2 * len(columns), 3.6), dpi=100, layout="constrained"
  )
  fig.suptitle(title)
  for panel, column in enumerate(columns):
    ax = fig.add_subplot(1, len(columns), panel + 1)
    index = table["columns"].index(column)
    for x, setting in enumerate(settings):
      values = [
        row[index]
        for row in table["rows"]
        if tuple(row[i] for i in others) == setting and row[index] is not None
      ]
      ax.plot([x] * len(values), values, "o", color=f"C{x}", alpha=0.6)
      if values:
        ax.plot([x - 0.25, x + 0.25], [np.mean(values)] * 2, "-", color="k")
    ax.set_xticks(range(len(settings)), labels, rotation=45, ha="right")
    ax.set_title(column)
    ax.grid(alpha=0.3)
  return fig


def _label(run: Run) -> str:
  """'kl_weight=0.5': the fields' last parts, unless two of them clash."""
  short = [field.rsplit(".", 1)[-1] for field in run.overrides]
  names = short if len(set(short)) == len(short) else list(run.overrides)
  return ", ".join(
    f"{name}={value_text(value)}"
    for name, value in zip(names, run.overrides.values())
  )


def _final_images(run_dir: str) -> tuple[np.ndarray, ...]:
  """uint8 test images, their reconstructions and (VAEs; else None) samples.

  From the run's newest checkpoint. Every run decodes the same z (the same
  key), so samples differ only by the runs' decoders.
  """
  run = runs.load(run_dir)
  batch = next(run.data.eval_dataset(NUM_IMAGES).as_numpy_iterator())
  images = batch["image"][batch["mask"]]
  classes = np.asarray(trainer.class_labels(batch))[batch["mask"]]
  recons = runs.reconstruct(run, images, classes)
  if run.config.input.pixel_range == "symmetric":
    images = (images + 1) / 2
  samples = None
  if run.variational:
    samples = runs.decode(
      run, runs.prior_samples(run, jax.random.PRNGKey(0), NUM_IMAGES)
    )
  return image_grid.to_uint8(images), recons, samples


def _show_row(fig, cell, images: np.ndarray, label: str, title: str = ""):
  strip = image_grid.make_grid(images, num_cols=len(images))
  ax = fig.add_subplot(cell)
  ax.imshow(
    strip[..., 0] if strip.shape[-1] == 1 else strip,
    cmap="gray",
    vmin=0,
    vmax=255,
    interpolation="nearest",
  )
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_ylabel(label, rotation=0, ha="right", va="center")
  if title:
    ax.set_title(title, loc="left")


def figure_title(config: ml_collections.ConfigDict, fields: list[str]) -> str:
  """'Sweep of loss.kl_weight: mlp_vae on mnist, 3 epochs', less swept parts."""
  model = " ".join(
    text
    for field, text in (
      ("model.name", config.model.name),
      ("input.dataset", f"on {config.input.dataset}"),
    )
    if field not in fields
  )
  length = (
    f"{config.num_steps:,} steps"
    if config.num_steps
    else f"{config.num_epochs} epochs"
  )
  if {"num_epochs", "num_steps"} & set(fields):
    length = ""
  return f"Sweep of {', '.join(fields)}: " + ", ".join(
    part for part in (model, length) if part
  )


def summary_figure(
  workdir: str, sweep_runs: list[Run], failures: dict[str, str], title: str
):
  """Loss curves of every run, then rows of reconstructions and samples."""
  done = [run for run in sweep_runs if run.name not in failures]
  images = {
    run.name: _final_images(os.path.join(workdir, run.name)) for run in done
  }
  sampled = [run for run in done if images[run.name][2] is not None]
  num_rows = 1 + (1 + len(done)) + len(sampled)
  fig = mpl_figure.Figure(
    figsize=(9, 4.5 + 1.1 * (num_rows - 1)), dpi=100, layout="constrained"
  )
  fig.suptitle(title)
  grid = fig.add_gridspec(num_rows, 1, height_ratios=[4] + [1] * (num_rows - 1))
  ax = fig.add_subplot(grid[0])
  scalars = [
    event_logs.read_scalars(os.path.join(workdir, run.name))
    for run in sweep_runs
  ]
  # The negative ELBO compares VAEs trained with different β; the trained
  # loss (recon + β·KL) does not. Autoencoders log only their MSE loss.
  name = "nelbo" if all("test_nelbo" in s for s in scalars if s) else "loss"
  for i, (run, run_scalars) in enumerate(zip(sweep_runs, scalars)):
    for split, style in (("test", "o-"), ("train", "--")):
      if f"{split}_{name}" in run_scalars:
        steps, values = run_scalars[f"{split}_{name}"]
        label = f"{_label(run)}: {values[-1]:.4g}" if split == "test" else None
        ax.plot(steps, values, style, color=f"C{i}", markersize=4, label=label)
  handles = ax.get_legend_handles_labels()[0] + [
    mpl_lines.Line2D([], [], color="gray", linestyle=style, label=split)
    for style, split in (("-", "test"), ("--", "train"))
  ]
  ax.legend(handles=handles, fontsize="small")
  quantity = (
    "negative ELBO (nats per image)" if name == "nelbo" else "loss per image"
  )
  ax.set(
    xlabel="training step",
    ylabel=quantity,
    title="Test after each epoch (final value in the legend), train "
    "averaged over log windows",
  )
  ax.grid(alpha=0.3)
  row = 1
  for i, run in enumerate(done):
    originals, recons, samples = images[run.name]
    if i == 0:
      _show_row(
        fig,
        grid[row],
        originals,
        "test images",
        "Reconstructions of test images (final checkpoint)",
      )
      row += 1
    _show_row(fig, grid[row], recons, _label(run))
    row += 1
  for i, run in enumerate(sampled):
    _show_row(
      fig,
      grid[row],
      images[run.name][2],
      _label(run),
      "Samples (the same z for every run)" if i == 0 else "",
    )
    row += 1
  return fig
