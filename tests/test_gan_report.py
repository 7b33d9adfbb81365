"""GAN runs read back: samples, pairs, learning curves, MNIST metrics."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gan_runs import MOCK_EXAMPLES
from gan_runs import run
from gan_runs import tiny_gan_config
from test_analyze import assert_sample_quality_keys
from vae_jax import errors
from vae_jax.analysis import classifier
from vae_jax.analysis import event_logs
from vae_jax.analysis import frechet_curve
from vae_jax.analysis import gan_curves
from vae_jax.analysis import gan_report
from vae_jax.analysis import report as report_lib
from vae_jax.analysis import runs
from vae_jax.analysis import sampling


@pytest.fixture(scope="module")
def acgan_run(tmp_path_factory):
  """A tiny ACGAN trained for 2 epochs; its data dir holds the classifier."""
  root = tmp_path_factory.mktemp("acgan")
  config = tiny_gan_config()
  # The classifier is cached in the data dir: never a real one from mocks.
  config.input.data_dir = str(root / "tfds")
  run(config, root / "run")
  return root / "run"


def mock_data():
  return tfds.testing.mock_data(num_examples=MOCK_EXAMPLES)


def test_any_kept_step_loads_and_samples_each_class(acgan_run):
  with mock_data():
    newest = runs.load(str(acgan_run))
    early = runs.load(str(acgan_run), step=3)
  assert (newest.step, early.step) == (10, 3)
  z, labels = gan_report.random_inputs(newest, 12, seed=0)
  np.testing.assert_array_equal(labels, np.arange(12) % 10)
  images = gan_report.sample(newest, z, labels)
  assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8
  assert not np.array_equal(images, gan_report.sample(early, z, labels))
  _, sevens = gan_report.random_inputs(newest, 3, seed=0, label=7)
  np.testing.assert_array_equal(sevens, [7, 7, 7])
  with pytest.raises(errors.UserInputError, match=r"class in \[0, 10\)"):
    gan_report.random_inputs(newest, 3, seed=0, label=10)


def test_analyze_writes_figures_and_the_classifier_verdict(acgan_run):
  with mock_data():
    report = gan_report.analyze(
      runs.load(str(acgan_run)), num_metric_samples=20
    )
  out = acgan_run / "analysis"
  for name in (
    "samples.png",
    "pairs.png",
    "learning_curves.png",
    "frechet_over_training.png",
  ):
    assert (out / name).stat().st_size > 0
  assert json.loads((out / "analysis.json").read_text()) == json.loads(
    json.dumps(report)
  )
  assert report["step"] == 10 and report["conditional"]
  for key in (
    "conditioning_accuracy",
    "classifier_test_accuracy",
    "test_d_real_accuracy",
    "test_aux_fake_accuracy",
  ):
    assert 0.0 <= report[key] <= 1.0
  assert report["frechet_distance_classifier_features"] > 0
  assert report["frechet_num_samples"] == 20
  assert len(report["conditioning_accuracy_per_class"]) == 10
  assert report["frechet_over_training"]["steps"] == [3, 6, 9, 10]
  assert_sample_quality_keys(report)
  with mock_data():  # The command's analysis dispatches GAN runs to it.
    assert report_lib.analyze(str(acgan_run), step=6)["step"] == 6


def test_frechet_curve_judges_each_kept_checkpoint(acgan_run):
  """Each point is the distance `sample_metrics` gives that step's samples."""
  with mock_data():
    run = runs.load(str(acgan_run))
    z, labels = gan_report.random_inputs(run, 30, seed=0)

    def draw(at_step):
      return gan_report.sample(at_step, z, labels)

    curve = frechet_curve.frechet_over_training(run, draw)
    expected = [
      classifier.sample_metrics(
        draw(runs.load(str(acgan_run), step)),
        None,
        data_dir=run.config.input.data_dir,
        mnist_source=run.config.input.mnist_source,
      )["frechet_distance_classifier_features"]
      for step in curve["steps"]
    ]
  assert curve["steps"] == runs.kept_steps(str(acgan_run)) == [3, 6, 9, 10]
  np.testing.assert_allclose(curve["frechet_distance"], expected, rtol=1e-9)
  best = int(np.argmin(expected))
  assert curve["best_step"] == curve["steps"][best]
  assert curve["final_over_best"] == pytest.approx(
    expected[-1] / expected[best]
  )
  assert curve["num_samples"] == 30
  assert frechet_curve.summary(curve) == (
    f"Fréchet distance over 4 checkpoints (30 samples each): best "
    f"{min(expected):.2f} at step {curve['steps'][best]}, last "
    f"{expected[-1]:.2f} at step 10 "
    f"({expected[-1] / expected[best]:.2f}x the best)."
  )


def test_sample_command_generates_a_chosen_class(acgan_run):
  with mock_data():
    sevens = sampling.sample(str(acgan_run), 3, label=7, seed=1)
    mixed = sampling.sample(str(acgan_run), 3, seed=1)  # Classes 0, 1, 2.
    with pytest.raises(errors.UserInputError, match="class in"):
      sampling.sample(str(acgan_run), 3, label=-1)
  assert sevens.shape == (3, 28, 28, 1) and sevens.dtype == np.uint8
  assert not np.array_equal(sevens, mixed)


def test_learning_curves_show_losses_and_accuracies(acgan_run):
  scalars = event_logs.read_scalars(str(acgan_run))
  figure = gan_curves.learning_curves(scalars, "title", step=6)
  titles = [ax.get_title() for ax in figure.axes]
  assert titles == [
    "losses",
    "discriminator accuracy",
    "auxiliary classifier accuracy",
  ]
  labels = figure.axes[1].get_legend_handles_labels()[1]
  assert labels == [
    "on real, train",
    "on real, test",
    "on fake, train",
    "on fake, test",
    "analyzed step 6",
  ]
  assert gan_curves.learning_curves({}, "title", step=6) is None


def test_class_names_name_digits_and_attribute_values():
  config = tiny_gan_config()
  assert gan_report.class_names(config.input)[3] == "digit 3"
  config.input.dataset = "celeb_a"
  config.input.attributes = ("Smiling", "Male")
  assert gan_report.class_names(config.input) == [
    "not Smiling, not Male",
    "Smiling, not Male",
    "not Smiling, Male",
    "Smiling, Male",
  ]
