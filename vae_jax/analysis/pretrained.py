"""A trained run as a pretrained model: its weights, config and model card.

`export(workdir, folder, ...)` writes what `runs.load` reads as a run
without training it (config.json and `core.weights_file`'s weights, no
optimizer states), so `vae_jax.analyze`, `vae_jax.sample` and the notebooks
take the folder as their --workdir. Beside them:

- check_examples.npz: the first test images, as the model reads them, and
  their classes, so that the card's check figures can be recomputed
  without the dataset;
- card.json: how the run was trained (command, commit, hardware, wall
  time), its figures from `vae_jax.analyze` on the whole test split, and
  the check figures on check_examples.npz;
- README.md: the card, printed from card.json.

`check_figures` recomputes the check figures of a loaded folder; they
match the card's to the printed digits.
"""

import os
from typing import Any

import jax
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.analysis import runs
from vae_jax.analysis import sweep_report
from vae_jax.core import outputs
from vae_jax.core import weights_file

CARD_FILE = "card.json"
CHECK_FILE = "check_examples.npz"
CHECK_EXAMPLES = 96  # A multiple of runs.IWAE_BATCH: no padding estimated.
CHECK_IMPORTANCE_SAMPLES = 1000
CHECK_SEED = 0
PRINTED_DECIMALS = 2
# Figures of analysis.json a card quotes, where the run's analysis has them.
ANALYSIS_FIGURES = (
  "iwae_nll_k5000",
  "iwae_examples_nelbo",
  "test_nelbo",
  "active_units_by_variance",
  "conditioning_accuracy",
  "frechet_distance_classifier_features",
  "precision_classifier_features",
  "recall_classifier_features",
)


def read_card(folder: str) -> dict[str, Any]:
  card = sweep_report.read_json(os.path.join(folder, CARD_FILE))
  if card is None:
    raise errors.UserInputError(f"{folder!r} holds no {CARD_FILE}.")
  return card


def read_check_examples(folder: str) -> dict[str, np.ndarray]:
  with tf.io.gfile.GFile(os.path.join(folder, CHECK_FILE), "rb") as f:
    stored = np.load(f)
    return {"image": stored["image"], "label": stored["label"]}


def check_figures(
  run: runs.TrainedRun, examples: dict[str, np.ndarray]
) -> dict[str, float]:
  """The test NLL (k = CHECK_IMPORTANCE_SAMPLES) and -ELBO of `examples`
  under `run`, from draws seeded by CHECK_SEED."""
  nll, nelbo = runs.examples_nll(
    run, examples, CHECK_IMPORTANCE_SAMPLES, jax.random.PRNGKey(CHECK_SEED)
  )
  return {"nll": nll, "nelbo": nelbo}


def printed(value: float) -> str:
  return f"{value:.{PRINTED_DECIMALS}f}"


def _provenance(
  results: dict[str, Any], field: str, given: str | None, flag: str
) -> dict[str, str]:
  """`field` of results.json as {'value', 'source'}; runs trained before it
  was recorded need it given."""
  if results.get(field) is not None:
    return {"value": results[field], "source": "recorded by the run"}
  if given is None:
    raise errors.UserInputError(
      f"the run's results.json does not record its {field}; give it with "
      f"--{flag}."
    )
  return {"value": given, "source": "given at export"}


def export(
  workdir: str,
  folder: str,
  *,
  command: str,
  commit: str | None = None,
  hardware: str | None = None,
) -> dict[str, Any]:
  """Writes the pretrained model of the finished, analyzed run in
  `workdir` to `folder`; returns its card.

  `command` is the one that trained and analyzed it; `commit` and
  `hardware` are needed only where its results.json lacks them.
  """
  results = sweep_report.read_json(os.path.join(workdir, "results.json"))
  analysis = sweep_report.read_json(
    os.path.join(workdir, "analysis", "analysis.json")
  )
  if results is None or analysis is None:
    raise errors.UserInputError(
      f"{workdir!r} needs results.json and analysis/analysis.json: export "
      "a finished run after `vae_jax.analyze`."
    )
  run = runs.load(workdir)
  if not run.variational:
    raise errors.UserInputError(
      "export checks a model by its test NLL; "
      f"{run.config.model.name!r} has no likelihood."
    )
  if analysis["step"] != run.step or results["steps"] != run.step:
    raise errors.UserInputError(
      f"{workdir!r}'s newest checkpoint (step {run.step}) is not the one "
      "its results.json and analysis describe; rerun `vae_jax.analyze`."
    )
  card = {
    "model": run.config.model.name,
    "dataset": run.config.input.dataset,
    "binarize": run.config.input.binarize,
    "command": command,
    "commit": _provenance(results, "commit", commit, "commit"),
    "hardware": _provenance(results, "hardware", hardware, "hardware"),
    "steps": run.step,
    # None for a run of `num_steps`, which counts no epochs.
    "epochs": None if run.config.num_steps else run.config.num_epochs,
    "resumed_at_step": results["start_step"],  # Wall times: since then.
    "train_seconds": results["train_seconds"],
    "num_params": results["num_params"],
    "figures": {
      name: analysis[name] for name in ANALYSIS_FIGURES if name in analysis
    },
    "figures_over": f"{analysis['num_test_images']} test images",
  }
  examples = runs.first_examples(runs.test_batches(run), CHECK_EXAMPLES)
  card["check"] = {
    "examples": len(examples["image"]),
    "importance_samples": CHECK_IMPORTANCE_SAMPLES,
    "seed": CHECK_SEED,
    **{
      name: printed(value)
      for name, value in check_figures(run, examples).items()
    },
  }
  # Written aside and renamed whole: a failed export leaves no folder that
  # loads as a model.
  partial = os.path.normpath(folder) + ".partial"
  if tf.io.gfile.exists(partial):
    tf.io.gfile.rmtree(partial)
  tf.io.gfile.makedirs(partial)
  with tf.io.gfile.GFile(os.path.join(workdir, "config.json")) as f:
    outputs.write_json(os.path.join(partial, "config.json"), f.read())
  weights_file.save(partial, run.state)
  outputs.write_npz(os.path.join(partial, CHECK_FILE), examples)
  card["weights_bytes"] = tf.io.gfile.stat(weights_file.path_in(partial)).length
  outputs.write_json(os.path.join(partial, CARD_FILE), card)
  with outputs.atomic_open(os.path.join(partial, "README.md")) as f:
    f.write(card_markdown(os.path.basename(os.path.normpath(folder)), card))
  if tf.io.gfile.exists(folder):
    tf.io.gfile.rmtree(folder)
  tf.io.gfile.rename(partial, folder)
  return card


def card_markdown(name: str, card: dict[str, Any]) -> str:
  """The model card of `card` (card.json's), as README.md shows it."""
  check = card["check"]
  minutes = card["train_seconds"] / 60
  lines = [
    f"# {name}",
    "",
    f"A pretrained `{card['model']}` on {card['dataset']}"
    + (
      f" (binarized: {card['binarize']})" if card["binarize"] != "none" else ""
    )
    + ", written by `vae_jax.export`. Any command that takes a run's "
    f"--workdir takes this folder: `python -m vae_jax.sample "
    f"--workdir=pretrained/{name} --num_samples=64 --output=/tmp/{name}.npz`.",
    "",
    "## How it was trained",
    "",
    f"```bash\n{card['command']}\n```",
    "",
    f"- Commit: `{card['commit']['value']}` ({card['commit']['source']}).",
    f"- Hardware: {card['hardware']['value']} ({card['hardware']['source']}).",
    "- "
    + ("" if card["epochs"] is None else f"{card['epochs']} epochs, ")
    + f"{card['steps']:,} steps, "
    f"{card['num_params']:,} parameters; training took {minutes:.0f} min"
    + (
      f" since it resumed at step {card['resumed_at_step']:,}."
      if card["resumed_at_step"]
      else "."
    ),
    "",
    f"## Figures (`vae_jax.analyze`, {card['figures_over']})",
    "",
    "| figure | value |",
    "| --- | ---: |",
    *(
      f"| {name} | {round(card['figures'][name], 4)} |"
      for name in ANALYSIS_FIGURES  # card.json's keys are sorted.
      if name in card["figures"]
    ),
    "",
    "## Check",
    "",
    f"On the {check['examples']} test images of {CHECK_FILE}, with "
    f"{check['importance_samples']:,} importance samples seeded by "
    f"{check['seed']}: test NLL {check['nll']}, −ELBO {check['nelbo']} "
    "(nats), which `vae_jax.analysis.pretrained.check_figures` recomputes "
    "from the weights (tests/test_pretrained.py, for every folder of "
    "pretrained/).",
    "",
  ]
  return "\n".join(lines)
