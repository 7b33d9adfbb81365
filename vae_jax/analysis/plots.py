"""The figures of `vae_jax.analyze`, as matplotlib Figures built from arrays.

Figures are made with `matplotlib.figure.Figure`, not pyplot, so nothing
here touches global state or needs a display; `outputs.save_figure` writes
them. Images arrive as uint8 [N, H, W, C].
"""

from collections.abc import Sequence

import matplotlib
from matplotlib import figure as mpl_figure
from matplotlib import ticker
import numpy as np

from vae_jax.core import image_grid

# Inches per image in mosaics: MNIST digits stay legible in a 10-wide row.
_INCHES_PER_IMAGE = 0.75
_PADDING = 2  # Pixels between the images of a mosaic.


def _mosaic(images: np.ndarray, num_cols: int) -> np.ndarray:
  return image_grid.make_grid(images, num_cols=num_cols, padding=_PADDING)


def _show(ax, mosaic: np.ndarray) -> None:
  """An image mosaic in true pixels: grayscale as gray, no smoothing."""
  if mosaic.shape[-1] == 1:
    ax.imshow(
      mosaic[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
    )
  else:
    ax.imshow(mosaic, interpolation="nearest")


def _centers(count: int, size: int) -> np.ndarray:
  """Pixel centers of `count` cells of `size` pixels in a mosaic."""
  return _PADDING + np.arange(count) * (size + _PADDING) + size / 2


def _mosaic_figure(
  num_rows: int, num_cols: int, extra_width: float = 0.0
) -> mpl_figure.Figure:
  return mpl_figure.Figure(
    figsize=(
      num_cols * _INCHES_PER_IMAGE + extra_width,
      num_rows * _INCHES_PER_IMAGE + 0.8,
    ),
    dpi=100,
  )


def image_rows(
  rows: Sequence[np.ndarray],
  row_labels: Sequence[str] | None,
  title: str,
  column_labels: Sequence[str] | None = None,
) -> mpl_figure.Figure:
  """Rows of images, each row labeled on the left (or unlabeled), and each
  column below (or not)."""
  num_cols = max(len(row) for row in rows)
  height, width = rows[0].shape[1:3]
  mosaic = _mosaic(
    np.concatenate([_pad_row(row, num_cols) for row in rows]), num_cols
  )
  fig = _mosaic_figure(
    len(rows), num_cols, extra_width=2.0 if row_labels else 0.0
  )
  ax = fig.add_subplot()
  _show(ax, mosaic)
  if column_labels:
    ax.set_xticks(_centers(num_cols, width), column_labels)
    ax.tick_params(axis="x", length=0)
  else:
    ax.set_xticks([])
  if row_labels:
    ax.set_yticks(_centers(len(rows), height), row_labels)
    ax.tick_params(axis="y", length=0)
  else:
    ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_title(title, fontsize=9)
  return fig


def image_panels(
  images: np.ndarray,
  captions: Sequence[str],
  title: str,
  inches_per_image: float = 2.0,
) -> mpl_figure.Figure:
  """A few images side by side, large, each captioned below."""
  fig = mpl_figure.Figure(
    figsize=(len(images) * inches_per_image, inches_per_image + 1.0),
    dpi=100,
    layout="constrained",
  )
  for ax, image, caption in zip(
    fig.subplots(1, len(images), squeeze=False)[0], images, captions
  ):
    _show(ax, image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(caption, fontsize=8)
  fig.suptitle(title, fontsize=9)
  return fig


def _pad_row(row: np.ndarray, num_cols: int) -> np.ndarray:
  """A short row filled out with white images so rows stay aligned."""
  filler = np.full((num_cols - len(row), *row.shape[1:]), 255, row.dtype)
  return np.concatenate([row, filler])


def traversal(
  images: np.ndarray, values: np.ndarray, dims: tuple[int, int], title: str
) -> mpl_figure.Figure:
  """A [n, n] grid of decodings: rows vary z[dims[0]], columns z[dims[1]]."""
  n = len(values)
  height, width = images.shape[2:4]
  mosaic = _mosaic(images.reshape(n * n, *images.shape[2:]), n)
  fig = _mosaic_figure(n, n, extra_width=1.0)
  ax = fig.add_subplot()
  _show(ax, mosaic)
  labels = [f"{v:+.1f}" for v in values]
  ax.set_xticks(_centers(n, width), labels)
  ax.set_yticks(_centers(n, height), labels)
  ax.set_xlabel(f"z[{dims[1]}]")
  ax.set_ylabel(f"z[{dims[0]}]")
  ax.set_title(title, fontsize=9)
  return fig


NATS = "nats per image"


def _curve_panels(
  scalars: dict[str, tuple[np.ndarray, np.ndarray]], variational: bool
) -> list[tuple[str, str, dict[str, tuple]]]:
  """(quantity, its unit, {'train'/'test': (steps, values)}) for each
  logged quantity."""
  if variational:
    # Runs written before test_nelbo existed logged only the β-weighted loss.
    total = "nelbo" if "train_nelbo" in scalars else "loss"
    quantities = [
      ("reconstruction: −log p(x|z)", "recon", NATS),
      ("KL(q(z|x) ‖ p(z))", "kl", NATS),
      (
        "negative ELBO"
        if total == "nelbo"
        else "loss: β-weighted negative ELBO",
        total,
        NATS,
      ),
    ]
  else:
    # An autoencoder's loss is the MSE on [-1, 1] pixels; a VQ-VAE's its
    # reconstruction and latent terms, and its codebook's use over training
    # shows dead entries (a batch's, or the test pass's mean over batches).
    quantities = [
      ("loss: the objective trained", "loss", NATS),
      ("MSE on [0, 1] pixels", "mse", "MSE"),
      ("codebook entries in use", "codes_used", "entries chosen in a batch"),
      ("codebook perplexity", "perplexity", "exp(entropy of the codes)"),
    ]
  panels = []
  for quantity, key, unit in quantities:
    series = {
      split: scalars[f"{split}_{key}"]
      for split in ("train", "test")
      if f"{split}_{key}" in scalars
    }
    if series:
      panels.append((quantity, unit, series))
  return panels


def _zoom_past_start(ax, series: dict[str, tuple]) -> None:
  """y limits that fit the curves after their first 10% of steps.

  The first updates' losses are several times the rest (MNIST: 220 nats,
  then 100) and would flatten everything after them; they run off the top.
  """
  last = max(steps.max() for steps, _ in series.values())
  later = np.concatenate(
    [ys[steps >= 0.1 * last] for steps, ys in series.values()]
  )
  every = np.concatenate([ys for _, ys in series.values()])
  if not later.size or every.max() <= later.max():
    return
  low, high = every.min(), later.max()
  margin = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
  ax.set_ylim(low - margin, high + margin)


def learning_curves(
  scalars: dict[str, tuple[np.ndarray, np.ndarray]],
  variational: bool,
  title: str,
  step: int,
) -> mpl_figure.Figure | None:
  """Train and test curves of a run's scalars (`event_logs.read_scalars`).

  A VAE gets reconstruction, KL and total panels; an autoencoder or a
  VQ-VAE its loss and MSE, and a VQ-VAE its codebook's use (entries in use,
  perplexity). Panels have their own y scales: reconstruction
  and KL differ by ~3x on MNIST and more elsewhere. A dashed line marks
  `step` when the curves go past it. None when no panel has data.
  """
  panels = _curve_panels(scalars, variational)
  if not panels:
    return None
  fig = mpl_figure.Figure(
    figsize=(4.4 * len(panels), 3.6), dpi=100, layout="constrained"
  )
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (quantity, unit, series) in zip(axes, panels):
    for name, (steps, ys) in series.items():
      style = {"marker": "o", "markersize": 3} if name == "test" else {}
      ax.plot(steps, ys, label=name, linewidth=1.2, **style)
    if max(steps.max() for steps, _ in series.values()) > step:
      ax.axvline(
        step,
        color="gray",
        linestyle="--",
        linewidth=1,
        label=f"analyzed step {step}",
      )
    _zoom_past_start(ax, series)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.set_title(quantity, fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=10)
  return fig


def latent_scatter(
  coords: np.ndarray,
  labels: np.ndarray,
  color_name: str,
  title: str,
  method: str,
) -> mpl_figure.Figure:
  """Codes in 2-D, colored by class (legend) or by a many-valued label."""
  fig = mpl_figure.Figure(figsize=(7.5, 6), dpi=100, layout="constrained")
  ax = fig.add_subplot()
  classes = np.unique(labels)
  if len(classes) <= 20:
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, value in enumerate(classes):
      chosen = labels == value
      ax.scatter(
        coords[chosen, 0],
        coords[chosen, 1],
        s=4,
        alpha=0.7,
        color=cmap(i),
        label=str(value),
        rasterized=True,
      )
    ax.legend(
      title=color_name,
      markerscale=3,
      fontsize=8,
      loc="center left",
      bbox_to_anchor=(1.0, 0.5),
    )
  else:
    points = ax.scatter(
      coords[:, 0], coords[:, 1], c=labels, s=4, cmap="viridis", rasterized=True
    )
    fig.colorbar(points, ax=ax, label=color_name)
  axis_names = ("z[0]", "z[1]") if method == "raw" else ("t-SNE 1", "t-SNE 2")
  ax.set_xlabel(axis_names[0])
  ax.set_ylabel(axis_names[1])
  ax.set_title(title, fontsize=9)
  return fig
