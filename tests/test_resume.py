"""Continuing a run in its workdir: one an earlier release wrote, and one
whose saved config today's code cannot build."""

import functools
import glob
import json
import pathlib
import shutil

import pytest
import tensorflow_datasets as tfds

from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.core import resume
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

# Trained by an earlier release: its README says which, and how.
OLD_RUN = pathlib.Path(__file__).parent / "data" / "old_release_run"
OLD_RUN_STEPS = 4  # One epoch of 64 mock examples, 16 a batch.
# The old run's config, as a rerun of its command would set it today.
OLD_RUN_CONFIG = {
  "model.hidden_sizes": (4,),
  "model.latent_size": 2,
  "num_epochs": 1,
  "batch_size": 16,
  "log_every_steps": 2,
  "checkpoint_every_steps": 4,
  "max_checkpoints_to_keep": 1,
  "num_image_samples": 4,
  "input.mnist_source": "tfds",
}


def _flat_names(tree, prefix=""):
  names = set()
  for key, value in tree.items():
    if isinstance(value, dict):
      names |= _flat_names(value, f"{prefix}{key}.")
    else:
      names.add(f"{prefix}{key}")
  return names


@pytest.fixture
def old_run(tmp_path):
  """A copy of the old run, its config.json also holding a field that no
  release of today's code reads."""
  workdir = tmp_path / "old_run"
  shutil.copytree(OLD_RUN, workdir, ignore=shutil.ignore_patterns("*.md"))
  config_json = workdir / "config.json"
  written = json.loads(config_json.read_text())
  written["model"]["dropout_rate"] = 0.5
  config_json.write_text(json.dumps(written))
  return workdir


def old_run_config(**overrides):
  return make_tiny_config(overrides, model={}, run=OLD_RUN_CONFIG)


def run(config, workdir):
  with tfds.testing.mock_data(num_examples=64):
    return loop.train_and_evaluate(config, str(workdir))


def test_a_run_of_an_earlier_release_resumes(old_run, caplog):
  results = run(old_run_config(num_epochs=2), old_run)
  assert results["start_step"] == OLD_RUN_STEPS
  assert results["steps"] == 2 * OLD_RUN_STEPS
  written = json.loads((old_run / "results.json").read_text())
  assert written["start_step"] == OLD_RUN_STEPS
  # Only the field that changed is reported: not those filled from today's
  # defaults, nor the one no longer read, which is ignored.
  assert (
    f"Config differs from the one saved in {old_run}: num_epochs (1 -> 2)."
    in caplog.messages
  ), caplog.messages
  assert any(
    "no longer reads; ignoring model.dropout_rate." in message
    for message in caplog.messages
  ), caplog.messages


def test_a_run_of_an_earlier_release_refuses_another_latent_size(old_run):
  with pytest.raises(errors.UserInputError) as e:
    run(old_run_config(**{"model.latent_size": 3}), old_run)
  message = str(e.value)
  assert (
    f"workdir {old_run} holds a run whose config differs in "
    "model.latent_size (2 -> 3), which changes the train state's shapes"
  ) in message, message
  filled = _flat_names(old_run_config().to_dict()) - _flat_names(
    json.loads((old_run / "config.json").read_text())
  )
  assert "input.binarize" in filled  # Added since the old run.
  assert not [name for name in filled if name in message], message


def test_a_saved_config_that_no_longer_builds_says_so(tmp_path):
  config = make_tiny_config()
  written = config.to_dict()
  written["model"]["activation"] = "maxout"  # As if since removed.
  (tmp_path / "config.json").write_text(json.dumps(written))
  (tmp_path / "checkpoints").mkdir()
  check = functools.partial(
    resume.check_config_change,
    saved=run_config.load_saved(str(tmp_path)),
    workdir=str(tmp_path),
    abstract_state=functools.partial(
      loop.abstract_train_state, image_shape=(28, 28, 1)
    ),
  )
  with pytest.raises(
    errors.UserInputError,
    match=r"no longer builds a model \(model.activation 'maxout' is unknown",
  ):
    check(config)
  config.allow_config_change = True
  check(config)  # Starts over, the old run set aside.
  assert glob.glob(str(tmp_path / "checkpoints.before_*"))
  assert glob.glob(str(tmp_path / "config.before_*.json"))
