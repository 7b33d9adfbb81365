r"""The reproduction table: each published test NLL that vae_jax reproduces,
beside the figure a run here obtained, read from the runs' own JSON.

    python benchmarks/reproductions.py --root=/tmp/zoo \
        --output=benchmarks/results/reproductions_cpu_2cores.json
    python benchmarks/tables.py benchmarks/results/reproductions_cpu_2cores.json

Every row of `ROWS` is a workdir under --root, named by the row, and the
command that trains it there (`command`); `vae_jax.analyze` on that workdir
writes the figure (analysis/analysis.json's `iwae_nll_k5000`; for a prior
over a VQ-VAE's codes, whose VQ-VAE trains first into <row>_vq_vae, the
pair's bound `nll_bound`). A row found
under --root replaces its stored figures in --output; a row not found keeps
the ones stored before, or is listed with its command as not trained. No
row is ever left out, and no figure is typed by hand.
"""

import dataclasses
import json
import os
import platform

from absl import app
from absl import flags

flags.DEFINE_string("root", "/tmp/zoo", "The directory of the rows' workdirs.")
flags.DEFINE_string(
  "output",
  "benchmarks/results/reproductions_cpu_2cores.json",
  "The results file: updated with the rows found under --root.",
)
flags.DEFINE_string(
  "pretrained",
  os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained"),
  "The folder of pretrained models: a row whose name is a folder there "
  "links to it.",
)
FLAGS = flags.FLAGS

BURDA = "Burda et al. 2016, Table 1"
TOMCZAK = "Tomczak & Welling 2018"


@dataclasses.dataclass(frozen=True)
class Row:
  name: str  # Its workdir under --root.
  model: str
  objective: str
  config: str  # --config=, as `vae_jax.main` takes it.
  published: float | None  # Test NLL in nats; None: no published figure.
  source: str  # Where `published` comes from, or why there is none.
  paper_epochs: str
  # A VQ-VAE config trained first, into <name>_vq_vae under --root: the row's
  # config is a prior over its code grids (`input.codes_of`).
  vq_vae_config: str | None = None


def _iwae_row(objective: str, k: int, layers: int, published: float) -> Row:
  trained_as = "IWAE" if objective == "iwae" else "VAE"
  return Row(
    name=f"iwae_paper_{objective}_k{k}_{layers}layer",
    model=f"Burda et al.'s MLP, {layers} stochastic "
    + ("layer" if layers == 1 else "layers"),
    objective=f"{trained_as} bound, k = {k}",
    config=f"configs/iwae_paper.py:{objective},k={k},layers={layers},"
    "schedule=cpu",
    published=published,
    source=BURDA,
    paper_epochs="3,280",
  )


ROWS = (
  Row(
    name="vampprior_standard",
    model="gated MLP VAE, N(0, I) prior",
    objective="ELBO, KL warm-up",
    config="configs/vampprior_paper.py:standard",
    published=88.56,
    source=TOMCZAK + " as the issue quotes it; not found in a source here",
    paper_epochs="≤ 2,000 (early stopping)",
  ),
  Row(
    name="vampprior_vamp",
    model="gated MLP VAE, VampPrior (K = 500)",
    objective="ELBO, KL warm-up",
    config="configs/vampprior_paper.py:vamp",
    published=85.57,
    source=TOMCZAK + ", as pythae's reproduction table quotes it (85.79 there)",
    paper_epochs="≤ 2,000 (early stopping)",
  ),
  Row(
    name="vampprior_standard_2layer",
    model="Burda et al.'s two-layer MLP, N(0, I) prior",
    objective="ELBO (k = 1)",
    config="configs/vampprior_paper.py:standard,layers=2",
    published=None,
    source="none: the paper's HVAE is another model",
    paper_epochs="—",
  ),
  Row(
    name="vampprior_vamp_2layer",
    model="Burda et al.'s two-layer MLP, VampPrior on h2",
    objective="ELBO (k = 1)",
    config="configs/vampprior_paper.py:vamp,layers=2",
    published=None,
    source="none: the paper's HVAE (about 83.2) is another model",
    paper_epochs="—",
  ),
  _iwae_row("vae", 1, 1, 86.76),
  _iwae_row("vae", 5, 1, 86.47),
  _iwae_row("iwae", 5, 1, 85.54),
  _iwae_row("iwae", 50, 1, 84.78),
  _iwae_row("vae", 1, 2, 85.33),
  _iwae_row("iwae", 5, 2, 83.89),
  _iwae_row("iwae", 50, 2, 82.90),
  Row(
    name="vqvae_prior",
    model="VQ-VAE (7x7 codes, K = 64), causal Transformer prior",
    objective="VQ-VAE loss; then the prior's log-loss",
    config="configs/mnist_vqvae_prior.py",
    published=None,
    source="none on MNIST (the paper's: 4.67 bits/dim on CIFAR-10)",
    paper_epochs="—",
    vq_vae_config="configs/mnist_vqvae.py",
  ),
)
IMPORTANCE_SAMPLES = 5000  # analyze's default for binarized runs.


def _vq_vae_workdir(root: str, row: Row) -> str:
  return os.path.join(root, f"{row.name}_vq_vae")


def command(row: Row, root: str) -> str:
  workdir = os.path.join(root, row.name)
  train = f"python -m vae_jax.main --config={row.config} --workdir={workdir}"
  if row.vq_vae_config is not None:
    codes_of = _vq_vae_workdir(root, row)
    train = (
      f"python -m vae_jax.main --config={row.vq_vae_config} "
      f"--workdir={codes_of} && {train} --config.input.codes_of={codes_of}"
    )
  return f"{train} && python -m vae_jax.analyze --workdir={workdir}"


def _read_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _training(workdir: str) -> tuple[dict, dict] | None:
  """(results.json, config.json) of a trained workdir, or None."""
  results = _read_json(os.path.join(workdir, "results.json"))
  config = _read_json(os.path.join(workdir, "config.json"))
  return None if results is None or config is None else (results, config)


def measured(workdir: str, vq_vae_workdir: str | None = None) -> dict | None:
  """The figures of a trained and analyzed workdir (and of the VQ-VAE whose
  codes it models), or None if it lacks either."""
  trained = _training(workdir)
  analysis = _read_json(os.path.join(workdir, "analysis", "analysis.json"))
  if trained is None or analysis is None:
    return None
  results, config = trained
  figures = {
    "epochs": config["num_epochs"],
    "steps": results["steps"],
    # The last segment's wall time: a resumed run's earlier ones are not
    # in its results.json, and `resumed_at_step` says so.
    "train_seconds": results["train_seconds"],
    "resumed_at_step": results["start_step"],
    "devices": results["devices"],
  }
  if vq_vae_workdir is not None:
    first_stage = _training(vq_vae_workdir)
    if first_stage is None or "nll_bound" not in analysis:
      return None
    vq_results, vq_config = first_stage
    return {
      **figures,
      "test_nll_bound": analysis["nll_bound"],
      "bound_terms": analysis["nll_bound_terms"],
      "vq_vae_epochs": vq_config["num_epochs"],
      "vq_vae_train_seconds": vq_results["train_seconds"],
      "vq_vae_resumed_at_step": vq_results["start_step"],
    }
  key = f"iwae_nll_k{IMPORTANCE_SAMPLES}"
  if key not in analysis:
    return None
  return {
    **figures,
    "test_nll": analysis[key],
    "test_nelbo": analysis["iwae_examples_nelbo"],
    "importance_samples": IMPORTANCE_SAMPLES,
    "test_images": analysis["iwae_examples"],
    "active_units": analysis.get("active_units_by_variance"),
  }


def gather(root: str, stored: dict, pretrained: str) -> dict:
  """Every row: measured under `root`, else as `stored`, else untrained;
  with its folder's name if `pretrained` holds its exported model."""
  stored_rows = {row["name"]: row for row in stored.get("rows", [])}
  rows = []
  for row in ROWS:
    entry = {**dataclasses.asdict(row), "command": command(row, root)}
    figures = measured(
      os.path.join(root, row.name),
      None if row.vq_vae_config is None else _vq_vae_workdir(root, row),
    )
    if figures is None:
      figures = stored_rows.get(row.name, {}).get("measured")
    exported = os.path.isdir(os.path.join(pretrained, row.name))
    rows.append(
      {
        **entry,
        "measured": figures,
        "pretrained": row.name if exported else None,
      }
    )
  return {
    "machine": stored.get("machine")
    or {
      "platform": "cpu",
      "cpu_count": os.cpu_count(),
      "processor": platform.machine(),
    },
    "rows": rows,
  }


def main(argv):
  del argv
  stored = _read_json(FLAGS.output) or {}
  figures = gather(FLAGS.root, stored, FLAGS.pretrained)
  with open(FLAGS.output, "w") as f:
    json.dump(figures, f, indent=2)
    f.write("\n")
  print(json.dumps(figures, indent=2))


if __name__ == "__main__":
  app.run(main)
