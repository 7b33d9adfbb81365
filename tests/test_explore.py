"""analysis.explore: what the notebooks' sliders call, called directly."""

import json

import ipywidgets
from matplotlib import figure as mpl_figure
import numpy as np
import pytest
import tensorflow_datasets as tfds

from testbed import make_tiny_config
from testbed import save_untrained_run
from vae_jax import errors
from vae_jax.analysis import comparison
from vae_jax.analysis import explore
from vae_jax.analysis import runs

NUM_EXAMPLES = 40  # Mock MNIST images per split.


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
  """An untrained tiny VAE's run, and its encoded mock test split."""
  workdir = tmp_path_factory.mktemp("run")
  save_untrained_run(make_tiny_config(), workdir)
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    run = runs.load(str(workdir))
    test_set, label_name = explore.encode_test_set(run, num_keep=10)
  return run, test_set, label_name


def panels(figure):
  """The images a figure of `plots.image_panels` shows, left to right."""
  return [np.asarray(ax.images[0].get_array()) for ax in figure.axes]


def test_encode_test_set_keeps_codes_of_all_and_images_of_the_first(loaded):
  run, test_set, label_name = loaded
  assert label_name == "digit"
  assert test_set.codes.shape == (NUM_EXAMPLES, run.model.latent_size)
  assert test_set.images.shape == (10, 28, 28, 1)


def test_informative_dims_rank_by_kl_then_by_spread():
  codes = np.zeros((4, 3), np.float32)
  codes[:, 2] = [2, -2, 2, -2]  # Far from the prior: the most KL.
  codes[:, 0] = [0.5, -0.5, 0.5, -0.5]
  split = runs.EncodedSplit(
    codes=codes,
    logvar=np.zeros_like(codes),
    labels=np.zeros(4),
    images=None,
    model_images=None,
    model_labels=None,
  )
  assert explore.informative_dims(split, 2) == [2, 0]
  autoencoder_split = runs.EncodedSplit(
    codes=codes * [1, 0, 0.1],
    logvar=None,
    labels=np.zeros(4),
    images=None,
    model_images=None,
    model_labels=None,
  )
  assert explore.informative_dims(autoencoder_split, 3) == [0, 2, 1]


def test_latent_shift_figure_decodes_the_shifted_code(loaded):
  run, test_set, label_name = loaded
  unshifted = explore.latent_shift_figure(
    run, test_set, label_name, 3, {0: 0.0, 1: 0.0}
  )
  original, decoded, shifted = panels(unshifted)
  np.testing.assert_array_equal(original, test_set.images[3][..., 0])
  np.testing.assert_array_equal(decoded, shifted)
  figure = explore.latent_shift_figure(
    run, test_set, label_name, 3, {0: 0.0, 1: 3.0}
  )
  code = test_set.codes[3].copy()
  code[1] += 3.0
  np.testing.assert_array_equal(
    panels(figure)[2], runs.decode(run, code[None])[0][..., 0]
  )
  assert not np.array_equal(panels(figure)[2], decoded)
  assert "z[1]" in figure.axes[2].get_xlabel()
  with pytest.raises(errors.UserInputError, match="image_index"):
    explore.latent_shift_figure(run, test_set, label_name, 10, {})


def tiny_figure(text):
  figure = mpl_figure.Figure(figsize=(1, 1), dpi=20)
  figure.text(0.5, 0.5, text)
  return figure


def test_live_figure_draws_at_once_and_on_every_change():
  slider = ipywidgets.IntSlider(value=1, min=0, max=5)
  drawn = []

  def draw():
    drawn.append(slider.value)
    if slider.value == 5:
      raise ValueError("no figure for 5")
    return tiny_figure(str(slider.value))

  box = explore.live_figure(draw, [slider])
  control, image, error = box.children
  assert control is slider and drawn == [1]
  first_png = bytes(image.value)
  assert first_png.startswith(b"\x89PNG")
  slider.value = 4
  assert drawn == [1, 4] and bytes(image.value) != first_png
  slider.value = 5  # A live error is shown, not raised into the kernel.
  assert "ValueError: no figure for 5" in error.value
  slider.value = 3
  assert error.value == ""


def write_sweep(workdir, names):
  summary = {
    "fields": ["model.hidden_sizes"],
    "runs": [
      {"name": name, "overrides": {"model.hidden_sizes": [8, i]}}
      for i, name in enumerate(names)
    ],
    "table": {},
  }
  (workdir / "sweep_summary.json").write_text(json.dumps(summary))


def test_a_sweep_workdir_lists_its_runs_and_picks_one(tmp_path):
  write_sweep(tmp_path, ["a", "b"])
  runs = explore.sweep_runs(str(tmp_path))
  assert [run.name for run in runs] == ["a", "b"]
  assert runs[1].overrides == {"model.hidden_sizes": (8, 1)}  # A tuple again.
  assert explore.run_dir(str(tmp_path)) == str(tmp_path / "a")
  assert explore.run_dir(str(tmp_path), "b") == str(tmp_path / "b")
  with pytest.raises(errors.UserInputError, match="no run 'c'; it has a, b"):
    explore.run_dir(str(tmp_path), "c")


def test_a_run_workdir_is_no_sweep(tmp_path):
  assert explore.sweep_runs(str(tmp_path)) is None
  assert explore.sweep_comparison(str(tmp_path)) is None
  assert explore.run_dir(str(tmp_path)) == str(tmp_path)
  with pytest.raises(errors.UserInputError, match="holds no sweep"):
    explore.run_dir(str(tmp_path), "a")


def test_metrics_table_lines_up_models():
  metrics = {
    "frechet_distance_classifier_features": 12.3456,
    "frechet_distance_real_train_images": 0.5,
    "precision_classifier_features": 0.75,
    "recall_classifier_features": 0.25,
    "relative_sharpness": 1.5,
  }
  acgan = {
    **metrics,
    "conditioning_accuracy": 0.9,
    "conditioning_accuracy_per_class": [1.0, 0.8125, None],
  }
  table = comparison.metrics_table([("vae", metrics), ("acgan", acgan)])
  header, rule, vae_row, acgan_row = table.splitlines()
  assert header.split("|")[1].strip() == "model"
  assert set(rule) == {"|", "-", ":"}
  numbers = ["12.35", "0.50", "0.750", "0.250", "1.500"]
  assert [c.strip() for c in vae_row.split("|")[1:-1]] == [
    "vae",
    *numbers,
    "-",
    "-",
  ]
  assert [c.strip() for c in acgan_row.split("|")[1:-1]] == [
    "acgan",
    *numbers,
    "90.0%",
    "81.2%",
  ]
  assert len(header) == len(rule) == len(vae_row) == len(acgan_row)
