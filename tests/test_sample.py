"""vae_jax.sample: images from the prior, and one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import REPO_ROOT
from testbed import TINY_AUTOENCODER
from testbed import make_tiny_config
from testbed import save_untrained_run
from vae_jax import errors
from vae_jax.analysis import sampling
from vae_jax.core import outputs
from vae_jax.trainers import run_config

NUM_EXAMPLES = 8  # Mock MNIST; only the image shape is read.


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Workdirs of an (untrained) VAE and plain autoencoder."""
  workdirs = {
    "vae": tmp_path_factory.mktemp("vae"),
    "autoencoder": tmp_path_factory.mktemp("autoencoder"),
  }
  save_untrained_run(make_tiny_config(), workdirs["vae"])
  config = make_tiny_config(
    base=run_config.default_config("fc_autoencoder"), model=TINY_AUTOENCODER
  )
  assert config.input.pixel_range == "symmetric"
  save_untrained_run(config, workdirs["autoencoder"])
  return workdirs


def run_sample(workdir, num_samples, **kwargs):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    return sampling.sample(str(workdir), num_samples, **kwargs)


def test_samples_are_uint8_images_and_follow_the_seed(runs, tmp_path):
  # More than one decode batch, and not a multiple of it.
  images = run_sample(runs["vae"], 300, seed=1)
  assert images.shape == (300, 28, 28, 1) and images.dtype == np.uint8
  assert len(np.unique(images.reshape(300, -1), axis=0)) == 300
  np.testing.assert_array_equal(run_sample(runs["vae"], 3, seed=1), images[:3])
  assert not np.array_equal(run_sample(runs["vae"], 3, seed=2), images[:3])
  path = tmp_path / "new" / "samples.npz"
  outputs.check_output_path(str(path), ".npz")
  sampling.write_samples(str(path), images)
  np.testing.assert_array_equal(np.load(path)["images"], images)


def test_label_and_autoencoders_are_user_errors(runs):
  with pytest.raises(errors.UserInputError, match="needs a conditional"):
    run_sample(runs["vae"], 2, label=3)
  with pytest.raises(errors.UserInputError, match="no prior"):
    run_sample(runs["autoencoder"], 2)


def test_bad_output_paths_are_user_errors(tmp_path):

  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(errors.UserInputError, match="cannot create the"):
    outputs.check_output_path(str(blocker / "samples.npz"), ".npz")
  with pytest.raises(errors.UserInputError, match="must end in .npz"):
    outputs.check_output_path(str(tmp_path / "samples.png"), ".npz")


def test_command_line_error_is_one_line(runs):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "vae_jax.sample",
      f"--workdir={runs['vae']}",
      "--num_samples=2",
      "--output=/dev/null/samples.npz",
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
  )
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("vae_jax: error: cannot create the folder")
