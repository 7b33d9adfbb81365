"""Sweeps: the grid of runs, a whole sweep, and resuming a killed one."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from test_configs import write_png_folder
from vae_jax import errors
from vae_jax.analysis import sweep_report
from vae_jax.core import outputs
from vae_jax.sweeps import runner


def test_values_take_the_field_type(tiny_config):
  runs = runner.make_runs(
    tiny_config,
    [
      "loss.kl_weight=5e-1,1",
      "input.image_size=32",
      "input.in_memory=False",
      "optimizer.name=sgd",
      "model.hidden_sizes=(64,32),(16,)",
    ],
  )
  assert len(runs) == 2 * 2
  assert runs[0].overrides == {
    "loss.kl_weight": 0.5,
    "input.image_size": 32,
    "input.in_memory": False,
    "optimizer.name": "sgd",
    "model.hidden_sizes": (64, 32),
  }
  assert [type(v) for v in runs[2].overrides.values()] == [
    float,
    int,
    bool,
    str,
    tuple,
  ]
  assert runs[0].name == (
    "loss.kl_weight=0.5,input.image_size=32,"
    "input.in_memory=False,optimizer.name=sgd,"
    "model.hidden_sizes=64-32"
  )


def test_the_first_field_varies_slowest(tiny_config):
  runs = runner.make_runs(
    tiny_config, ["loss.kl_weight=1,0.1", "model.latent_size=2,8"]
  )
  assert [run.name for run in runs] == [
    "loss.kl_weight=1.0,model.latent_size=2",
    "loss.kl_weight=1.0,model.latent_size=8",
    "loss.kl_weight=0.1,model.latent_size=2",
    "loss.kl_weight=0.1,model.latent_size=8",
  ]


def test_run_config_leaves_the_base_config_alone(tiny_config):
  (run,) = runner.make_runs(tiny_config, ["model.latent_size=8"])
  config = runner.run_config(tiny_config, run.overrides)
  assert config.model.latent_size == 8 and tiny_config.model.latent_size == 4


def test_names_are_filesystem_safe(tiny_config):
  (run,) = runner.make_runs(tiny_config, ["input.folder_path=/data/my pngs"])
  assert run.name == "input.folder_path=_data_my_pngs"


@pytest.mark.parametrize(
  "flag,message",
  [
    ("loss.kl_wieght=1,2", "unknown config field 'loss.kl_wieght'"),
    ("loss.kl_weight.x=1", "unknown config field 'loss.kl_weight.x'"),
    ("model.latent_size=4,8.5", "'8.5' of model.latent_size cannot be read"),
    ("input.in_memory=yes", "'yes' of input.in_memory cannot be read as bool"),
    ("model.hidden_sizes=(4,", "cannot be read as tuple"),
    ("loss.kl_weight", "is not FIELD=VALUE,VALUE"),
    ("loss=1", "loss holds a ConfigDict"),
    ("loss.kl_weight=0.5,5e-1", "share the directory 'loss.kl_weight=0.5'"),
  ],
)
def test_mistakes_are_config_errors(tiny_config, flag, message):
  with pytest.raises(errors.ConfigError, match=message):
    runner.make_runs(tiny_config, [flag])


def test_a_field_swept_twice_is_an_error(tiny_config):
  with pytest.raises(errors.ConfigError, match="more than one --sweep"):
    runner.make_runs(tiny_config, ["seed=1,2", "seed=3"])


def test_a_bad_value_stops_the_sweep_before_any_run(tiny_config, tmp_path):
  with pytest.raises(errors.ConfigError, match="kl_weight must be >= 0"):
    runner.run_sweep(
      tiny_config, str(tmp_path / "sweep"), ["loss.kl_weight=1,-1"]
    )
  assert not (tmp_path / "sweep").exists()


def mtimes(paths):
  return {str(path): os.stat(path).st_mtime_ns for path in paths}


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
  # Real files rather than tfds.testing.mock_data: its mocked filesystem is
  # global while a dataset loads, which races with Orbax's threads.
  return write_png_folder(tmp_path_factory.mktemp("data") / "pngs")


# The tiny MLP VAE on 8 PNGs in batches of 4: 2 steps per epoch.
FOLDER_RUN = {"batch_size": 4, "checkpoint_every_steps": 2}
FOLDER_INPUT = {
  "dataset": "image_folder",
  "train_split": "training",
  "test_split": "testing",
  "grayscale": True,
}


def folder_config(config, folder):
  config.update(FOLDER_RUN)
  config.input.update(folder_path=folder, **FOLDER_INPUT)
  return config


def test_sweep_writes_runs_and_summary_and_skips_them_when_rerun(
  tiny_config, png_folder, tmp_path, monkeypatch, capsys
):
  analyzed = []

  def fake_analyze(run_dir):  # The real one is run by the next test.
    analyzed.append(os.path.basename(run_dir))
    os.makedirs(os.path.join(run_dir, "analysis"))
    # Differs per run, so a cell read from the wrong run would show.
    report = {"active_units": len(analyzed), "kl_per_dim": [0.5, 0.5]}
    outputs.write_json(
      os.path.join(run_dir, "analysis", "analysis.json"), report
    )
    return report

  monkeypatch.setattr(runner.report, "analyze", fake_analyze)
  config = folder_config(tiny_config, png_folder)
  config.num_epochs = 1
  workdir = tmp_path / "sweep"
  flags = ["loss.kl_weight=1,0.1,0.01"]
  names = ["loss.kl_weight=1.0", "loss.kl_weight=0.1", "loss.kl_weight=0.01"]
  runner.run_sweep(config, str(workdir), flags, dry_run=True)
  assert capsys.readouterr().out.count("new ") == 3
  assert not workdir.exists()
  summary = runner.run_sweep(config, str(workdir), flags)
  assert analyzed == names
  assert not list(workdir.rglob("run.lock*"))  # Each run released its own.
  assert "active_units" in capsys.readouterr().out  # The printed table.
  results = [workdir / name / "results.json" for name in names]
  before = mtimes(results)
  assert runner.run_sweep(config, str(workdir), flags) == summary
  assert mtimes(results) == before and analyzed == names  # Nothing redone.
  capsys.readouterr()
  runner.run_sweep(config, str(workdir), flags, dry_run=True)
  assert capsys.readouterr().out.count("done ") == 3

  on_disk = json.loads((workdir / "sweep_summary.json").read_text())
  assert [run["name"] for run in on_disk["runs"]] == names
  assert on_disk["runs"][1]["overrides"] == {"loss.kl_weight": 0.1}
  assert on_disk["runs"][1]["results"]["steps"] == 2
  assert on_disk["runs"][1]["analysis"]["active_units"] == 2
  table = on_disk["table"]
  assert table["columns"][:3] == ["loss.kl_weight", "test_nelbo", "test_loss"]
  assert "active_units" in table["columns"]
  assert [row[0] for row in table["rows"]] == [1.0, 0.1, 0.01]
  # Every cell is its own run's figure, as that run's files hold it.
  for name, row in zip(names, table["rows"]):
    cells = dict(zip(table["columns"], row))
    results_json = json.loads((workdir / name / "results.json").read_text())
    analysis_json = json.loads(
      (workdir / name / "analysis" / "analysis.json").read_text()
    )
    for column in (
      "test_nelbo",
      "test_loss",
      "test_recon",
      "test_kl",
      "test_mse",
      "train_seconds",
    ):
      assert cells[column] == results_json[column], (name, column)
    assert cells["active_units"] == analysis_json["active_units"]
  assert (workdir / "sweep_summary.png").stat().st_size > 0


# The killed sweep's config file: 2 epochs of `folder_config`, 4 steps. It
# must not import this module, whose imports (the tests' other modules) the
# command does not need. Importing testbed also gives the subprocess its
# cheap compilation.
CONFIG_FILE = f"""
from testbed import make_tiny_config

def get_config(folder):
  config = make_tiny_config()
  config.update({FOLDER_RUN!r})
  config.input.update(folder_path=folder, **{FOLDER_INPUT!r})
  return config
"""

# Runs the sweep's command line, killing itself (SIGKILL, as the OOM killer
# or a lost machine would) once the run named in argv[1] saved a checkpoint.
# Its analyses are stand-ins, to save time: the rerun analyzes for real.
KILLING_SWEEP = """
import json, os, signal, sys
from absl import app
from vae_jax import cli, sweep
from vae_jax.analysis import report
from vae_jax.core import checkpoints

save, kill_in = checkpoints.save, sys.argv.pop(1)

def save_then_die(manager, *args, **kwargs):
  save(manager, *args, **kwargs)
  if kill_in in str(manager.directory):
    manager.wait_until_finished()
    os.kill(os.getpid(), signal.SIGKILL)

def stand_in_analysis(run_dir):
  os.makedirs(os.path.join(run_dir, "analysis"))
  with open(os.path.join(run_dir, "analysis", "analysis.json"), "w") as f:
    json.dump({"stand_in": True}, f)

checkpoints.save = save_then_die
report.analyze = stand_in_analysis
app.run(sweep.main, flags_parser=cli.parse_flags)
"""


def run_sweep_command(tmp_path, folder, *args):
  """The sweep over two β in `tmp_path`/sweep; `args` start the command."""
  python_path = [
    REPO_ROOT,
    os.path.join(REPO_ROOT, "tests"),
    os.environ.get("PYTHONPATH", ""),
  ]
  env = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
  }
  config = f"{tmp_path}/tiny_folder.py:{folder}"
  return subprocess.run(
    [
      sys.executable,
      *args,
      f"--config={config}",
      f"--workdir={tmp_path}/sweep",
      "--sweep=loss.kl_weight=1,0.1",
    ],
    cwd=REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


def test_a_killed_sweep_resumes_where_it_stopped(png_folder, tmp_path):
  (tmp_path / "tiny_folder.py").write_text(CONFIG_FILE)
  (tmp_path / "killing_sweep.py").write_text(KILLING_SWEEP)
  killed = run_sweep_command(
    tmp_path,
    png_folder,
    str(tmp_path / "killing_sweep.py"),
    "loss.kl_weight=0.1",
  )
  assert killed.returncode == -9, killed.stderr[-2000:]
  first, second = (
    tmp_path / "sweep" / "loss.kl_weight=1.0",
    tmp_path / "sweep" / "loss.kl_weight=0.1",
  )
  finished = mtimes([first / "results.json", first / "analysis/analysis.json"])
  assert not (second / "results.json").exists()
  assert not (tmp_path / "sweep" / "sweep_summary.json").exists()

  resumed = run_sweep_command(tmp_path, png_folder, "-m", "vae_jax.sweep")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Taking over" in resumed.stderr  # The killed run's lock.
  assert mtimes(finished) == finished  # Neither retrained nor reanalyzed.
  results = json.loads((second / "results.json").read_text())
  assert results["start_step"] == 2 and results["steps"] == 4
  summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
  assert [run["results"]["steps"] for run in summary["runs"]] == [4, 4]
  assert summary["runs"][0]["analysis"] == {"stand_in": True}
  assert summary["runs"][1]["analysis"]["step"] == 4  # report.analyze's.
  assert "loss.kl_weight" in resumed.stdout  # The table's header.


def test_the_config_field_sweeps_the_config_files_argument(tiny_config):
  """`config=A,B` runs start from the file's config for each argument, with
  the other fields' overrides on top."""
  built = []

  def config_for_argument(argument):
    built.append(argument)
    config = tiny_config.copy_and_resolve_references()
    config.model.latent_size = {"small": 2, "large": 8}[argument]
    return config

  runs = runner.make_runs(tiny_config, ["config=small,large", "seed=0,1"])
  assert [run.name for run in runs] == [
    "config=small,seed=0",
    "config=small,seed=1",
    "config=large,seed=0",
    "config=large,seed=1",
  ]
  configs = [
    runner.run_config(tiny_config, run.overrides, config_for_argument)
    for run in runs
  ]
  assert [c.model.latent_size for c in configs] == [2, 2, 8, 8]
  assert [c.seed for c in configs] == [0, 1, 0, 1]
  assert built == ["small", "small", "large", "large"]
  with pytest.raises(errors.ConfigError, match="config file to read again"):
    runner.run_config(tiny_config, runs[0].overrides)


@pytest.mark.slow
def test_the_sweep_command_reads_the_config_file_for_each_argument(
  tmp_path,
):
  """`vae_jax.sweep --sweep=config=...` with a command-line override: the
  dry run lists each argument's run; an unknown argument is one line."""

  def dry_run(models):
    return subprocess.run(
      [
        sys.executable,
        "-m",
        "vae_jax.sweep",
        "--config=configs/dsprites_disentanglement.py",
        f"--workdir={tmp_path / 'study'}",
        f"--sweep=config={models}",
        "--config.num_steps=7",
        "--dry_run",
      ],
      check=False,
      cwd=REPO_ROOT,
      capture_output=True,
      text=True,
      timeout=120,
    )

  done = dry_run("vae,factor_vae")
  assert done.returncode == 0, done.stderr
  assert done.stdout.count("new ") == 2
  assert "config=vae" in done.stdout and "config=factor_vae" in done.stdout
  done = dry_run("vae,beta_vea")
  assert done.returncode != 0
  assert "beta_vea" in done.stderr.strip().splitlines()[-1]


def test_across_seeds_averages_each_setting_over_its_seeds():
  table = {
    "columns": ["config", "seed", "mig", "test_kl"],
    "rows": [
      ["vae", 0, 0.1, 20.0],
      ["vae", 1, 0.3, 22.0],
      ["vae", 2, None, 27.0],
      ["beta_vae", 0, 0.5, 10.0],
    ],
  }
  spread = sweep_report.across_seeds(["config", "seed"], table)
  assert spread["columns"] == ["config", "seeds", "mig", "test_kl"]
  vae, beta_vae = spread["rows"]
  assert vae[:2] == ["vae", 3]
  assert vae[2] == pytest.approx(
    {"mean": np.mean([0.1, 0.3]), "std": np.std([0.1, 0.3], ddof=1)}
  )
  assert vae[3] == pytest.approx(
    {"mean": np.mean([20, 22, 27]), "std": np.std([20, 22, 27], ddof=1)}
  )
  assert beta_vae[2] == {"mean": 0.5, "std": None}
  text = sweep_report.format_across_seeds(spread)
  assert "0.2 ± 0.14" in text and "23 ± 3.6" in text
  figure = sweep_report.seed_spread_figure(
    {"fields": ["config", "seed"], "table": table}, "study"
  )
  assert [ax.get_title() for ax in figure.axes] == ["mig", "test_kl"]
