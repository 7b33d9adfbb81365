"""Samples of a VAE and a GAN side by side, labelled by model and step."""

import json

import matplotlib.image
import pytest
import tensorflow_datasets as tfds

from gan_runs import MOCK_EXAMPLES
from gan_runs import run
from gan_runs import tiny_gan_config
from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.analysis import comparison
from vae_jax.analysis import runs as run_lib


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  for name, config in (("vae", make_tiny_config()), ("gan", tiny_gan_config())):
    config.num_epochs = 1
    # The classifier is cached in the data dir: never a real one from mocks.
    config.input.data_dir = str(root / "tfds")
    if name == "gan":
      config.model.name = "gan"  # Unconditional.
    run(config, root / name)
  return root


def test_compare_writes_one_labelled_panel_per_model(runs, tmp_path):
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    entries = [
      comparison.model_samples(str(runs / name), 6, seed=0)
      for name in ("vae", "gan")
    ]
    output = tmp_path / "figures" / "vae_vs_gan.png"
    table = comparison.compare(
      [str(runs / "vae"), str(runs / "gan")],
      str(output),
      num_samples=6,
      steps=[None, 3],
      num_metric_samples=0,
    )
  labels = [label for _, label in entries]
  assert labels == [
    "mlp_vae on mnist, run 'vae', step 5",
    "gan on mnist, run 'gan', step 5",
  ]
  for images, _ in entries:
    assert images.shape == (6, 28, 28, 1)
  figure = comparison.comparison_figure(entries)
  assert [ax.get_title(loc="left") for ax in figure.axes] == labels
  assert matplotlib.image.imread(output).shape[0] > 0
  assert table == "" and not output.with_suffix(".json").exists()


def test_compare_judges_mnist_runs_and_keeps_the_numbers(runs, tmp_path):
  output = tmp_path / "vae_vs_gan.png"
  workdirs = [str(runs / "vae"), str(runs / "gan")]
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    table = comparison.compare(
      workdirs, str(output), num_samples=4, num_metric_samples=20
    )
    expected = [
      comparison.sample_metrics(run_lib.load(workdir), 20, seed=0)
      for workdir in workdirs
    ]
  saved = json.loads(output.with_suffix(".json").read_text())
  assert [entry["step"] for entry in saved] == [5, 5]
  for entry, metrics in zip(saved, expected):
    assert entry["metrics"] == json.loads(json.dumps(metrics))
  assert table == comparison.metrics_table(
    [(entry["name"], entry["metrics"]) for entry in saved]
  )
  assert len(table.splitlines()) == 4  # Header, rule and a row per run.


@pytest.mark.parametrize(
  "kwargs,message",
  [
    ({"output": "samples.jpg"}, "must end in .png"),
    ({"steps": [None]}, "--steps has 1 entries for 2 workdirs"),
    ({"num_samples": 0}, "--num_samples must be >= 1"),
    ({"num_metric_samples": -1}, "--num_metric_samples must be >= 0"),
  ],
)
def test_bad_arguments_fail_in_one_line(kwargs, message, tmp_path):
  arguments = {
    "workdirs": ["a", "b"],
    "output": str(tmp_path / "c.png"),
    **kwargs,
  }
  with pytest.raises(errors.UserInputError, match=message):
    comparison.compare(**arguments)
