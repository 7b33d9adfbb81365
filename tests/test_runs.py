"""Runs read back from their workdirs: config, model and checkpointed state."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.analysis import runs
from vae_jax.trainers import loop

NUM_EXAMPLES = 40  # Mock MNIST: 5 steps per epoch of 8, 10 in all.
# models/priors.py's settings of the VampPrior, unused by N(0, I).
VAMP_FIELDS = {
  "num_pseudo_inputs": 500,
  "pseudo_input_mean": 0.05,
  "pseudo_input_std": 0.01,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    loop.train_and_evaluate(make_tiny_config(), str(workdir))
  return workdir


def load(workdir, step=None):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    return runs.load(str(workdir), step)


def saved_params(workdir, step):
  """The checkpoint's arrays as orbax reads them back, with no target."""
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  return ocp.StandardCheckpointer().restore(path)["state"]["params"]


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_load_restores_the_newest_checkpoint(run_dir):
  run = load(run_dir)
  assert run.step == 10 and int(run.state.step) == 10
  assert run.image_shape == (28, 28, 1)
  assert run.variational and run.model.latent_size == 4
  assert run.config.model.hidden_sizes == (32, 16)  # Tuples, as written.
  assert_trees_equal(run.state.params, saved_params(run_dir, 10))


def test_load_picks_an_older_step(run_dir):
  run = load(run_dir, step=6)
  assert run.step == 6
  assert_trees_equal(run.state.params, saved_params(run_dir, 6))
  newest = load(run_dir)
  assert not np.allclose(
    jax.tree.leaves(run.state.params)[0],
    jax.tree.leaves(newest.state.params)[0],
  )
  with pytest.raises(errors.UserInputError, match="no checkpoint at step"):
    load(run_dir, step=4)


def test_fields_an_old_config_json_lacks_come_from_the_base_config(tmp_path):
  config = make_tiny_config().to_dict()
  del config["input"]["pixel_range"], config["loss"]["learned_variance"]
  del config["model"]["prior"]  # A run from before priors were chosen.
  (tmp_path / "config.json").write_text(json.dumps(config))
  loaded = runs.load_config(str(tmp_path))
  assert loaded.input.pixel_range == "unit"
  assert loaded.loss.learned_variance == "per_pixel"
  # Its own sizes, and the family's activation and prior it predates.
  assert loaded.model.to_dict() == {
    "name": "mlp_vae",
    "hidden_sizes": (32, 16),
    "latent_size": 4,
    "activation": "relu",
    "prior": {"name": "standard_normal", **VAMP_FIELDS},
  }


def test_missing_workdir_config_or_checkpoints_is_a_user_error(tmp_path):
  with pytest.raises(errors.UserInputError, match="holds no config.json"):
    runs.load(str(tmp_path / "nowhere"))
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(errors.UserInputError, match="not valid JSON"):
    runs.load(str(tmp_path))
  for written in ('{"model": {"name": "resnet"}}', "[]"):
    (tmp_path / "config.json").write_text(written)
    with pytest.raises(errors.UserInputError, match="names no model family"):
      runs.load(str(tmp_path))
  (tmp_path / "config.json").write_text(make_tiny_config().to_json())
  with pytest.raises(errors.UserInputError, match="holds no checkpoints"):
    runs.load(str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()  # Nothing was created.
