"""What the notebooks in colabs/ show, as functions of their controls.

A notebook loads a run (`runs.load`), encodes its test split once
(`encode_test_set`), and wires ipywidgets sliders to figure functions through
`live_figure`, which redraws on every change. The figures are the library's
(`report`, `sweep_report`, `plots`), so a notebook holds no plotting or
training logic of its own, and the tests call the same functions.
"""

from collections.abc import Callable, Sequence
import html
import os
import traceback
from typing import Any

from matplotlib import figure as mpl_figure
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.analysis import latent_metrics
from vae_jax.analysis import plots
from vae_jax.analysis import report
from vae_jax.analysis import runs
from vae_jax.analysis import sweep_report
from vae_jax.core import outputs

# Test images kept as pixels: what the sliders pick from and the figures show.
# Codes and labels are kept for the whole split (the 2-D map uses them).
NUM_KEPT_IMAGES = 200
SWEEP_SUMMARY = "sweep_summary.json"  # Written by vae_jax.sweep.


def prepare_notebook() -> None:
  """Keeps TensorFlow, which only feeds data, off the accelerators JAX uses.

  Call it before reading any data (on Colab's GPU runtime TensorFlow would
  otherwise reserve the GPU's memory); calling it again is harmless.
  """
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except RuntimeError:  # TensorFlow has started: fine if they are hidden.
      if tf.config.get_visible_devices(kind):
        raise


def encode_test_set(
  run: runs.TrainedRun, num_keep: int = NUM_KEPT_IMAGES
) -> tuple[runs.EncodedSplit, str]:
  """The run's whole test split encoded, its first `num_keep` images kept;
  and what its labels are ('digit' for MNIST)."""
  _, label_name = report.input_config_for(run, None)
  return (
    runs.encode_split(run, runs.test_batches(run), None, num_keep),
    label_name,
  )


def informative_dims(test_set: runs.EncodedSplit, num: int) -> list[int]:
  """The `num` latent dims that carry the most, most first.

  A VAE's by their KL to the prior (unused dims have ~0 and decode to no
  change); an autoencoder's by the variance of its codes.
  """
  if test_set.logvar is None:
    spread = np.var(test_set.codes, axis=0)
  else:
    spread = latent_metrics.kl_per_dimension(test_set.codes, test_set.logvar)
  return [int(d) for d in np.argsort(-spread, kind="stable")[:num]]


def latent_shift_figure(
  run: runs.TrainedRun,
  test_set: runs.EncodedSplit,
  label_name: str,
  image_index: int,
  shifts: dict[int, float],
) -> mpl_figure.Figure:
  """A test image, its decoded code, and that code with `shifts` added.

  `shifts` maps latent dims to offsets: the update of the traversal sliders.
  """
  if not 0 <= image_index < len(test_set.images):
    raise errors.UserInputError(
      f"image_index must be in [0, {len(test_set.images)}), got {image_index}."
    )
  code = test_set.codes[image_index]
  shifted = code.copy()
  for dim, offset in shifts.items():
    shifted[dim] += offset
  decoded = runs.decode(
    run,
    np.stack([code, shifted]),
    np.repeat(test_set.model_labels[image_index], 2),
  )
  moved = [
    f"z[{dim}] {code[dim]:+.2f} → {shifted[dim]:+.2f}"
    for dim, offset in shifts.items()
    if offset
  ]
  code_name = "posterior mean" if run.variational else "code"
  captions = [
    f"test image {image_index} ({label_name} {test_set.labels[image_index]})",
    f"its {code_name}, decoded",
    "\n".join(moved) if moved else "no shift: move a slider",
  ]
  return plots.image_panels(
    np.concatenate([test_set.images[image_index : image_index + 1], decoded]),
    captions,
    report.run_title(
      run, f"The {code_name} of a test image, shifted along chosen dims"
    ),
  )


def live_figure(
  draw: Callable[[], mpl_figure.Figure], controls: Sequence[Any]
) -> Any:
  """ipywidgets `controls` above the figure `draw()` returns, drawn again
  whenever one of their values changes.

  The figure is shown as a PNG in an Image widget, not in an Output widget:
  nbclient, which runs notebooks headless (papermill, the tests), mimics
  Output widgets by writing to the kernel, and can then miss the cell's
  reply until its timeout (jupyter/nbclient#312). The first figure is drawn
  here, outside any callback, so an error in `draw` raises and fails a
  headless run; a later error is shown below the figure.
  """
  # Imported here: only notebooks need ipywidgets (the 'notebooks' extra).
  import ipywidgets  # pylint: disable=g-import-not-at-top

  image = ipywidgets.Image(format="png")
  error = ipywidgets.HTML()

  def redraw() -> None:
    image.value = outputs.figure_png(draw())

  def on_change(_) -> None:
    try:
      redraw()
      error.value = ""
    except Exception:  # pylint: disable=broad-exception-caught
      # A callback's exception would only reach the kernel's log.
      error.value = f"<pre>{html.escape(traceback.format_exc())}</pre>"

  redraw()
  for control in controls:
    control.observe(on_change, names="value")
  return ipywidgets.VBox([*controls, image, error])


def _read_sweep(workdir: str) -> dict[str, Any] | None:
  return sweep_report.read_json(os.path.join(workdir, SWEEP_SUMMARY))


def _as_tuple(value: Any) -> Any:
  return tuple(value) if isinstance(value, list) else value  # JSON's lists.


def sweep_runs(workdir: str) -> list[sweep_report.Run] | None:
  """The runs of the sweep in `workdir`; None when it holds no sweep."""
  summary = _read_sweep(workdir)
  if summary is None:
    return None
  return [
    sweep_report.Run(
      entry["name"],
      {field: _as_tuple(value) for field, value in entry["overrides"].items()},
    )
    for entry in summary["runs"]
  ]


def run_dir(workdir: str, run_name: str | None = None) -> str:
  """`workdir` if it holds a run; in a sweep, its run `run_name` (the first
  if None)."""
  entries = sweep_runs(workdir)
  if entries is None:
    if run_name is not None:
      raise errors.UserInputError(
        f"{workdir!r} holds no sweep ({SWEEP_SUMMARY}), so it has no run "
        f"{run_name!r}."
      )
    return workdir
  names = [run.name for run in entries]
  if run_name is None:
    run_name = names[0]
  if run_name not in names:
    raise errors.UserInputError(
      f"the sweep in {workdir!r} has no run {run_name!r}; it has "
      f"{', '.join(names)}."
    )
  return os.path.join(workdir, run_name)


def sweep_comparison(workdir: str) -> tuple[mpl_figure.Figure, str] | None:
  """The sweep's summary figure (curves, reconstructions and samples per
  value, from each run's newest checkpoint) and table; None if `workdir`
  holds no sweep."""
  summary = _read_sweep(workdir)
  if summary is None:
    return None
  entries = sweep_runs(workdir)
  failures = {
    entry["name"]: entry["error"]
    for entry in summary["runs"]
    if entry.get("error")
  }
  config = runs.load_config(os.path.join(workdir, entries[0].name))
  figure = sweep_report.summary_figure(
    workdir,
    entries,
    failures,
    sweep_report.figure_title(config, summary["fields"]),
  )
  return figure, sweep_report.format_table(summary["table"])
