"""The Fréchet distance over training, one point per kept checkpoint.

A GAN's losses do not fall as it improves, and a collapse can come late
and fast. This curve shows both: each kept checkpoint draws samples of the
same z (and labels), and the project's MNIST classifier compares their
features with the test set's (`classifier`, `frechet`). Any generative
model on MNIST gets it (VAEs too); it is as dense as the run's
`checkpoint_every_steps` and as long as its `max_checkpoints_to_keep`
allows. `final_over_best` is the last
point's distance over the lowest one: 1 when training ends at its best.
"""

from collections.abc import Callable
from typing import Any

from matplotlib import figure as mpl_figure
import numpy as np

from vae_jax.analysis import classifier
from vae_jax.analysis import frechet
from vae_jax.analysis import runs

NUM_SAMPLES = 2000  # Per checkpoint: enough to rank them, fast to draw.

# A loaded run -> uint8 samples [N, H, W, C], from the same z each call.
Draw = Callable[[runs.TrainedRun], np.ndarray]


def frechet_over_training(run: runs.TrainedRun, draw: Draw) -> dict[str, Any]:
  """{'steps', 'frechet_distance', 'best_step', 'final_over_best',
  'num_samples'} over the kept checkpoints of `run`'s workdir, each from
  the samples `draw` gives at that step."""
  judge, test_images, _ = classifier.judge_and_test_split(
    run.config.input.data_dir, run.config.input.mnist_source
  )
  _, test_features = classifier.logits_and_features(judge.params, test_images)
  test_statistics = frechet.gaussian_statistics(test_features)
  steps = runs.kept_steps(run.workdir)
  distances = []
  for step in steps:
    at_step = run if step == run.step else runs.at_step(run, step)
    samples = draw(at_step)
    _, features = classifier.logits_and_features(
      judge.params, classifier.as_input(samples)
    )
    distances.append(
      frechet.frechet_distance(
        *frechet.gaussian_statistics(features), *test_statistics
      )
    )
  best = int(np.argmin(distances))
  return {
    "steps": steps,
    "frechet_distance": distances,
    "best_step": steps[best],
    "final_over_best": distances[-1] / distances[best],
    "num_samples": len(samples),
  }


def summary(curve: dict[str, Any]) -> str:
  """The curve in one line: its best and its last point."""
  best = curve["steps"].index(curve["best_step"])
  return (
    f"Fréchet distance over {len(curve['steps'])} checkpoints "
    f"({curve['num_samples']} samples each): best "
    f"{curve['frechet_distance'][best]:.2f} at step {curve['best_step']}, "
    f"last {curve['frechet_distance'][-1]:.2f} at step {curve['steps'][-1]} "
    f"({curve['final_over_best']:.2f}x the best)."
  )


def curve_figure(curve: dict[str, Any], title: str) -> mpl_figure.Figure:
  """The distance against the step, the best point marked."""
  fig = mpl_figure.Figure(figsize=(6, 3.5), dpi=100, layout="constrained")
  ax = fig.subplots()
  ax.plot(curve["steps"], curve["frechet_distance"], marker="o", ms=3)
  best = curve["steps"].index(curve["best_step"])
  ax.plot(
    curve["best_step"],
    curve["frechet_distance"][best],
    "r*",
    ms=10,
    label=f"best, step {curve['best_step']}",
  )
  ax.set_xlabel("step")
  ax.set_ylabel(f"Fréchet distance ({curve['num_samples']} samples)")
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title(title, fontsize=9)
  return fig


def analysis_items(
  run: runs.TrainedRun, draw: Draw, title: str
) -> tuple[dict[str, Any], mpl_figure.Figure]:
  """analysis.json's 'frechet_over_training' and its figure."""
  curve = frechet_over_training(run, draw)
  return curve, curve_figure(curve, title)
