r"""The VQ-VAE with its prior against VAEs: reconstruction, samples and
likelihood, read from the runs' own JSON.

    VAES=/tmp/vae_mnist,/tmp/zoo/vampprior_standard
    VQ_VAES=/tmp/vqvae_grey,/tmp/zoo/vqvae_prior
    RESULTS=benchmarks/results/vq_vae_comparison_cpu_2cores.json
    python benchmarks/vq_vae_comparison.py --workdirs=$VAES,$VQ_VAES \
        --output=$RESULTS
    python benchmarks/tables.py $RESULTS

Each workdir is a trained run that `vae_jax.analyze` has analyzed (a run
without an analysis gives its reconstruction only). A prior over a VQ-VAE's
codes stands for the pair: its analysis holds the bound and the samples'
figures, and the VQ-VAE's run (`codes_of`) its reconstructions, epochs and
training time. The test MSE is measured against the images each run reads:
grey levels, or the fixed binarization of the test split.
"""

import json
import os
import platform

from absl import app
from absl import flags

flags.DEFINE_list("workdirs", None, "Trained and analyzed runs, in order.")
flags.DEFINE_string(
  "output",
  "benchmarks/results/vq_vae_comparison_cpu_2cores.json",
  "The results file to write.",
)
FLAGS = flags.FLAGS

SAMPLE_FIGURES = (
  "frechet_distance_classifier_features",
  "precision_classifier_features",
  "recall_classifier_features",
  "relative_sharpness",
)


def _read_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _run_files(workdir: str) -> tuple[dict, dict, dict]:
  """(config.json, results.json, analysis/analysis.json or {})."""
  config = _read_json(os.path.join(workdir, "config.json"))
  results = _read_json(os.path.join(workdir, "results.json"))
  if config is None or results is None:
    raise SystemExit(f"{workdir} holds no finished run.")
  analysis = _read_json(os.path.join(workdir, "analysis", "analysis.json"))
  return config, results, analysis or {}


def row(workdir: str) -> dict:
  """One run's figures: a prior's stand for it and its VQ-VAE."""
  config, results, analysis = _run_files(workdir)
  runs = [(config, results)]
  figures = {
    "workdir": workdir,
    "model": config["model"]["name"],
    "test_mse": results.get("test_mse"),
    "binarized": config["input"]["binarize"] != "none",
  }
  if "nll_bound" in analysis:
    vq_config, vq_results, _ = _run_files(analysis["codes_of"])
    runs.insert(0, (vq_config, vq_results))
    figures.update(
      model=f"{vq_config['model']['name']} + {config['model']['name']}",
      test_mse=analysis["test_mse"],
      binarized=analysis["binarize"] != "none",
      nll=analysis["nll_bound"],
      nll_kind="bound",
    )
  elif "iwae_nll_k5000" in analysis:
    figures.update(nll=analysis["iwae_nll_k5000"], nll_kind="k = 5,000")
  figures.update({name: analysis.get(name) for name in SAMPLE_FIGURES})
  figures["epochs"] = [run_config["num_epochs"] for run_config, _ in runs]
  figures["train_seconds"] = sum(r["train_seconds"] for _, r in runs)
  figures["resumed"] = any(r["start_step"] for _, r in runs)
  return figures


def main(argv):
  del argv
  figures = {
    "machine": {
      "platform": "cpu",
      "cpu_count": os.cpu_count(),
      "processor": platform.machine(),
    },
    "rows": [row(workdir) for workdir in FLAGS.workdirs],
  }
  with open(FLAGS.output, "w") as f:
    json.dump(figures, f, indent=2)
    f.write("\n")
  print(json.dumps(figures, indent=2))


if __name__ == "__main__":
  flags.mark_flag_as_required("workdirs")
  app.run(main)
