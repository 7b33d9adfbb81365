"""benchmarks/reproductions.py: the reproduction table is read from the
runs' own JSON, keeps rows measured before, and never drops a row."""

import json
import pathlib
import subprocess
import sys

from test_docs import tables_module

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "reproductions.py"


def write_run(
  workdir: pathlib.Path,
  nll: float,
  start_step: int = 0,
  analysis: dict | None = None,
  num_epochs: int = 200,
):
  """A trained and analyzed workdir, as main and analyze leave it: by
  default an IWAE estimate's analysis."""
  (workdir / "analysis").mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps({"num_epochs": num_epochs}))
  (workdir / "results.json").write_text(
    json.dumps(
      {
        "steps": 120_000,
        "train_seconds": 5400.0,
        "start_step": start_step,
        "devices": 1,
      }
    )
  )
  if analysis is None:
    analysis = {
      "iwae_nll_k5000": nll,
      "iwae_examples_nelbo": nll + 4,
      "iwae_examples": 10_000,
      "active_units_by_variance": 30,
    }
  (workdir / "analysis" / "analysis.json").write_text(json.dumps(analysis))


def gather(
  root: pathlib.Path, output: pathlib.Path, pretrained: pathlib.Path
) -> dict:
  subprocess.run(
    [
      sys.executable,
      str(SCRIPT),
      f"--root={root}",
      f"--output={output}",
      f"--pretrained={pretrained}",
    ],
    check=True,
    capture_output=True,
    cwd=REPO_ROOT,
  )
  return json.loads(output.read_text())


def rows_by_name(figures):
  return {row["name"]: row for row in figures["rows"]}


def test_rows_come_from_workdirs_and_stored_rows_are_kept(tmp_path):
  output = tmp_path / "reproductions_test.json"
  pretrained = tmp_path / "pretrained"
  (pretrained / "vampprior_standard").mkdir(parents=True)
  first_root = tmp_path / "first"
  write_run(first_root / "vampprior_vamp", 86.25)
  first = rows_by_name(gather(first_root, output, pretrained))
  assert first["vampprior_vamp"]["measured"]["test_nll"] == 86.25
  assert first["vampprior_standard"]["measured"] is None
  # A later gathering elsewhere keeps the row it does not find.
  second_root = tmp_path / "second"
  write_run(second_root / "vampprior_standard", 89.5, start_step=60_000)
  second = rows_by_name(gather(second_root, output, pretrained))
  assert second["vampprior_vamp"]["measured"]["test_nll"] == 86.25
  assert second["vampprior_standard"]["measured"]["test_nll"] == 89.5
  assert set(second) == set(first)  # No row is ever left out.

  table = tables_module().table(str(output))
  assert "**86.25** (k = 5,000; −ELBO 90.25)" in table
  vamp = second["vampprior_vamp"]
  assert f"85.57 ({vamp['source']})" in table
  assert "1 h 30 min (its last part, from step 60,000)" in table
  untrained = second["iwae_paper_iwae_k50_2layer"]
  assert untrained["measured"] is None
  assert f"not measured yet | 82.90 ({untrained['source']})" in table
  assert untrained["command"] in table
  # A row with an exported model links to its card; the others do not.
  assert second["vampprior_standard"]["pretrained"] == "vampprior_standard"
  assert second["vampprior_vamp"]["pretrained"] is None
  assert table.count("[card](../pretrained/vampprior_standard/README.md)") == 1
  assert table.count("](../pretrained/") == 1


def test_a_vq_vae_rows_bound_needs_both_of_its_runs(tmp_path):
  """The VQ-VAE row reads the prior's bound and both runs' lengths, and is
  not measured while its VQ-VAE's workdir is missing."""
  output = tmp_path / "reproductions_test.json"
  terms = {"reconstruction": 30.0, "code_log_loss": 128.125}
  bound = {"nll_bound": 158.125, "nll_bound_terms": terms}
  write_run(tmp_path / "alone" / "vqvae_prior", 0, analysis=bound)
  alone = rows_by_name(gather(tmp_path / "alone", output, tmp_path))
  assert alone["vqvae_prior"]["measured"] is None
  output.unlink()
  write_run(tmp_path / "both" / "vqvae_prior", 0, analysis=bound, num_epochs=20)
  write_run(tmp_path / "both" / "vqvae_prior_vq_vae", 0, num_epochs=6)
  row = rows_by_name(gather(tmp_path / "both", output, tmp_path))["vqvae_prior"]
  assert row["measured"]["test_nll_bound"] == 158.125
  codes_of = tmp_path / "both" / "vqvae_prior_vq_vae"
  assert f"--workdir={codes_of} && " in row["command"]
  assert f"--config.input.codes_of={codes_of} && " in row["command"]
  table = tables_module().table(str(output))
  assert "≤ **158.12** (a bound: reconstruction 30.00 + codes 128.12)" in table
  assert "| 6 + 20 / — | 3 h 00 min |" in table


def write_files(workdir: pathlib.Path, config: dict, results: dict, analysis):
  (workdir / "analysis").mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps(config))
  (workdir / "results.json").write_text(
    json.dumps({"train_seconds": 1800.0, "start_step": 0, **results})
  )
  if analysis is not None:
    (workdir / "analysis" / "analysis.json").write_text(json.dumps(analysis))


def test_vq_vae_comparison_reads_the_pair_through_its_prior(tmp_path):
  """The prior's row takes the bound and samples from its analysis, the
  MSE its analysis took from the VQ-VAE, and both runs' epochs and time; a
  run never analyzed gives its reconstruction alone."""
  samples = {
    "frechet_distance_classifier_features": 12.5,
    "precision_classifier_features": 0.5,
    "recall_classifier_features": 0.25,
    "relative_sharpness": 0.75,
  }
  vq_vae, prior, plain = (tmp_path / name for name in ("vq", "prior", "ae"))
  write_files(
    vq_vae,
    {
      "num_epochs": 6,
      "model": {"name": "vq_vae"},
      "input": {"binarize": "dynamic"},
    },
    {"test_mse": 0.5},
    None,
  )
  write_files(
    prior,
    {
      "num_epochs": 10,
      "model": {"name": "code_prior"},
      "input": {"binarize": "none"},
    },
    {},
    {
      "nll_bound": 150.25,
      "codes_of": str(vq_vae),
      "test_mse": 0.0125,
      "binarize": "dynamic",
      **samples,
    },
  )
  write_files(
    plain,
    {
      "num_epochs": 3,
      "model": {"name": "vq_vae"},
      "input": {"binarize": "none"},
    },
    {"test_mse": 0.00625},
    None,
  )
  output = tmp_path / "vq_vae_comparison_test.json"
  subprocess.run(
    [
      sys.executable,
      str(REPO_ROOT / "benchmarks" / "vq_vae_comparison.py"),
      f"--workdirs={prior},{plain}",
      f"--output={output}",
    ],
    check=True,
    capture_output=True,
    cwd=REPO_ROOT,
  )
  table = tables_module().table(str(output)).splitlines()
  assert table[-2] == (
    "| vq_vae + code_prior | binarized | 0.01250 | 150.25 (bound) | 12.5 | "
    "0.500 | 0.250 | 0.75 | 6 + 10 | 1 h 00 min |"
  )
  assert table[-1] == (
    "| vq_vae | grey levels | 0.00625 | — | — | — | — | — | 3 | 0 h 30 min |"
  )
