"""Learning curves of a GAN run: losses, and the accuracies that show collapse.

The losses of a GAN do not fall as it improves: the two networks play
against each other. What shows trouble is the discriminator's accuracy:
on real and on fake images both near 1 for long, the generator has lost
(collapse, or noise); both near 0.5, the discriminator cannot tell. An
ACGAN's auxiliary classifier should recognize real and fake classes alike.
"""

from matplotlib import figure as mpl_figure
from matplotlib import ticker
import numpy as np

# (panel title, y label, [(curve label, scalar name without split)]).
_PANELS = (
  (
    "losses",
    "nats per image",
    [("discriminator", "d_loss"), ("generator", "g_loss")],
  ),
  (
    "discriminator accuracy",
    "fraction correct",
    [("on real", "d_real_accuracy"), ("on fake", "d_fake_accuracy")],
  ),
  (
    "auxiliary classifier accuracy",
    "fraction correct",
    [("on real", "aux_real_accuracy"), ("on fake", "aux_fake_accuracy")],
  ),
)


def learning_curves(
  scalars: dict[str, tuple[np.ndarray, np.ndarray]], title: str, step: int
) -> mpl_figure.Figure | None:
  """Train (lines) and test (dots) curves of `event_logs.read_scalars`'s
  output; a dashed line marks the analyzed `step`. None without data."""
  panels = [
    (
      name,
      unit,
      [
        (label, key, split)
        for label, key in curves
        for split in ("train", "test")
        if f"{split}_{key}" in scalars
      ],
    )
    for name, unit, curves in _PANELS
  ]
  panels = [panel for panel in panels if panel[2]]
  if not panels:
    return None
  fig = mpl_figure.Figure(
    figsize=(4.6 * len(panels), 3.6), dpi=100, layout="constrained"
  )
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (name, unit, curves) in zip(axes, panels):
    colors = {}
    last = 0
    for label, key, split in curves:
      steps, values = scalars[f"{split}_{key}"]
      last = max(last, steps.max())
      color = colors.setdefault(key, f"C{len(colors)}")
      if split == "train":
        ax.plot(
          steps, values, color=color, linewidth=1.0, label=f"{label}, train"
        )
      else:
        ax.plot(
          steps,
          values,
          color=color,
          marker="o",
          markersize=3,
          linestyle="none",
          label=f"{label}, test",
        )
    if last > step:
      ax.axvline(
        step,
        color="gray",
        linestyle="--",
        linewidth=1,
        label=f"analyzed step {step}",
      )
    if "accuracy" in name:
      ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return fig
