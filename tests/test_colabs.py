"""The notebooks in colabs/, run top to bottom in a Jupyter kernel, headless.

Papermill runs each notebook as a new user would, in a fresh kernel started
in colabs/, with its `parameters` cell overridden to tiny settings; an error
in any cell fails the test. A kernel is another process, where
`tfds.testing.mock_data` does not reach, so the notebooks read real TFDS
files: a tiny random-pixel MNIST (`tiny_mnist`: 64 train and 32 test images)
in a temporary data dir that every config here names in `input.data_dir`.
The runs that explore_latent and vae_vs_gan read, a two-run β sweep and an
ACGAN, are trained in this process on the same files (a second each); the
quickstart trains its own. Nothing in the notebooks knows about tests.

The sweep's runs are trained and summarized by the functions
`vae_jax.sweep` uses (`vae_jax.sweeps.runner`), less its per-run
`analysis.report.analyze` (which judges 10,000 samples with a classifier):
the notebook reads only the runs and sweep_summary.json.
"""

import json
import os

import papermill
import pytest

from conftest import REPO_ROOT
from gan_runs import tiny_gan_config
import mock_runs
from testbed import make_tiny_config
import tiny_mnist
from vae_jax.analysis import sweep_report
from vae_jax.core import outputs
from vae_jax.sweeps import runner
from vae_jax.trainers import loop

COLABS = os.path.join(REPO_ROOT, "colabs")
NOTEBOOKS = ("quickstart.ipynb", "explore_latent.ipynb", "vae_vs_gan.ipynb")
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tiny_mnist.write(str(tmp_path_factory.mktemp("tfds")))


def tiny(config, data_dir):
  config.num_epochs = 1
  config.checkpoint_every_steps = 1000  # Saved once, at the end.
  config.input.data_dir = data_dir
  return config


@pytest.fixture(scope="module")
def kl_sweep(tmp_path_factory, data_dir):
  """A sweep workdir over loss.kl_weight=1.0,0.1, as vae_jax.sweep lays it."""
  workdir = str(tmp_path_factory.mktemp("sweep"))
  config = tiny(make_tiny_config(), data_dir)
  runs = runner.make_runs(config, ["loss.kl_weight=1.0,0.1"])
  for run in runs:
    loop.train_and_evaluate(
      runner.run_config(config, run.overrides), os.path.join(workdir, run.name)
    )
  outputs.write_json(
    os.path.join(workdir, "sweep_summary.json"),
    sweep_report.summarize(workdir, runs, {}),
  )
  return workdir


@pytest.fixture(scope="module")
def acgan_run(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("acgan"))
  loop.train_and_evaluate(tiny(tiny_gan_config(), data_dir), workdir)
  return workdir


def execute(name, tmp_path, monkeypatch, **parameters):
  """Runs colabs/`name` with `parameters`; the executed notebook's JSON."""
  # The kernel imports this checkout's vae_jax, whatever is installed, and
  # compiles cheaply, like the runs the tests start.
  for variable, value in mock_runs.subprocess_env().items():
    monkeypatch.setenv(variable, value)
  executed = tmp_path / name
  papermill.execute_notebook(
    os.path.join(COLABS, name),
    str(executed),
    parameters=parameters,
    kernel_name="python3",
    cwd=COLABS,
    progress_bar=False,
    execution_timeout=CELL_TIMEOUT_S,
  )
  return json.loads(executed.read_text())


def outputs_of(notebook, kind):
  """The outputs of every code cell that carry MIME type `kind`."""
  return [
    output["data"][kind]
    for cell in notebook["cells"]
    for output in cell.get("outputs", [])
    if kind in output.get("data", {})
  ]


def printed(notebook) -> str:
  return "".join(
    "".join(output["text"])
    for cell in notebook["cells"]
    for output in cell.get("outputs", [])
    if output.get("name") == "stdout"
  )


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_quickstart_trains_and_shows_its_figures(
  data_dir, tmp_path, monkeypatch
):
  workdir = tmp_path / "quickstart_run"
  notebook = execute(
    "quickstart.ipynb",
    tmp_path,
    monkeypatch,
    WORKDIR=str(workdir),
    DATA_DIR=data_dir,
    NUM_EPOCHS=1,
    LATENT_SIZE=2,
    OVERRIDES={
      "batch_size": 8,
      "model.hidden_sizes": [32, 16],
      "log_every_steps": 2,
      "num_image_samples": 8,
    },
  )
  results = json.loads((workdir / "results.json").read_text())
  assert results["steps"] == tiny_mnist.NUM_TRAIN // 8
  assert f"test_nelbo: {results['test_nelbo']:.4f}" in printed(notebook)
  # The pretrained model's samples, then the run's learning curves,
  # reconstructions, samples, latent map and traversal grid.
  assert len(outputs_of(notebook, "image/png")) == 6


# Both read the sweep, built once: a module's tests share a worker
# (pytest.ini).
def test_explore_latent_shows_a_run_and_its_sweep(
  kl_sweep, tmp_path, monkeypatch
):
  notebook = execute(
    "explore_latent.ipynb",
    tmp_path,
    monkeypatch,
    WORKDIR=kl_sweep,
    RUN="loss.kl_weight=0.1",
    NUM_SLIDERS=3,
    NUM_POINTS=tiny_mnist.NUM_TEST,
  )
  text = printed(notebook)
  assert "loss.kl_weight=0.1: mlp_vae, latent size 4" in text
  assert "'num_points': 32" in text  # The latent map's class separation.
  # The sweep's table: a row per β.
  table = [line.split() for line in text.splitlines()]
  header = table.index(
    next(row for row in table if row[:1] == ["loss.kl_weight"])
  )
  assert [row[0] for row in table[header + 1 : header + 3]] == ["1", "0.1"]
  # Traversal grid, latent map, sweep summary; the sliders' figures live in
  # their widgets' outputs.
  assert len(outputs_of(notebook, "image/png")) == 3
  assert len(outputs_of(notebook, WIDGET)) == 2


def test_vae_vs_gan_compares_samples_distances_and_pairs(
  kl_sweep, acgan_run, tmp_path, monkeypatch
):
  notebook = execute(
    "vae_vs_gan.ipynb",
    tmp_path,
    monkeypatch,
    VAE_WORKDIR=os.path.join(kl_sweep, "loss.kl_weight=1.0"),
    GAN_WORKDIR=acgan_run,
    NUM_SAMPLES=10,
    NUM_METRIC_SAMPLES=64,
  )
  lines = printed(notebook).splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith("| model"))
  assert "Fréchet distance" in lines[header]
  vae_row, acgan_row = (
    [cell.strip() for cell in row.split("|")[1:-1]]
    for row in lines[header + 2 : header + 4]  # After the rule.
  )
  assert vae_row[0].startswith("mlp_vae") and acgan_row[0].startswith("acgan")
  assert vae_row[-2:] == ["-", "-"]  # No classes to recognize.
  # Conditioning accuracy, overall and of the worst digit.
  overall, worst = (float(cell.rstrip("%")) for cell in acgan_row[-2:])
  assert 0 <= worst <= overall <= 100
  # Samples, the ACGAN's pairs, two sets of learning curves.
  assert len(outputs_of(notebook, "image/png")) == 4


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_with_its_install_and_parameters(name):
  with open(os.path.join(COLABS, name), encoding="utf-8") as f:
    notebook = json.load(f)
  cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
  strip = "run python colabs/strip_outputs.py"
  for cell in cells:
    source = "".join(cell["source"])[:60]
    assert cell["outputs"] == [], f"{name}: outputs in {source!r}; {strip}"
    assert cell["execution_count"] is None, f"{name}: ran {source!r}; {strip}"
  assert "widgets" not in notebook["metadata"], f"{name}: widget state; {strip}"
  # Colab's install cell comes first and steps aside where vae_jax imports.
  assert "except ImportError:" in "".join(cells[0]["source"])
  tagged = [
    cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])
  ]
  assert len(tagged) == 1, f"{name}: one cell tagged 'parameters'"
