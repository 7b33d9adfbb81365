"""Orbax checkpoints: everything the run needs comes back, exactly."""

import functools
import os
import re

import jax
import numpy as np
import pytest

from testbed import assemble
from testbed import batchnorm_config
from testbed import initial_state
from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.trainers import single_network

IMAGE_SHAPE = (16, 16, 1)


def images(seed, size=8):
  return (
    np.random.default_rng(seed)
    .uniform(size=(size, *IMAGE_SHAPE))
    .astype(np.float32)
  )


def fresh_state(config, image_shape):
  parts = assemble(config, image_shape)
  return parts, initial_state(config, parts, image_shape, total_steps=10)


def test_batchnorm_model_evaluates_the_same_after_restore(
  tiny_config, tmp_path
):
  config = batchnorm_config(tiny_config)
  parts, fresh = fresh_state(config, IMAGE_SHAPE)
  train_step, eval_step = single_network.make_steps(config, parts)
  state = fresh
  step = jax.jit(train_step)
  for i in range(3):
    state, _ = step(
      state,
      {"image": images(i), "label": np.zeros(8, np.int32)},
      jax.random.PRNGKey(1),
    )
  # Training moved the running statistics away from their initial values.
  assert not all(
    np.allclose(a, b)
    for a, b in zip(
      jax.tree.leaves(state.batch_stats), jax.tree.leaves(fresh.batch_stats)
    )
  )

  eval_batch = {
    "image": images(10),
    "label": np.zeros(8, np.int32),
    "mask": np.ones(8, bool),
  }
  evaluate = functools.partial(
    jax.jit(eval_step), batch=eval_batch, rng=jax.random.PRNGKey(2)
  )
  before = jax.device_get(evaluate(state))
  rng = jax.random.PRNGKey(3)
  manager = checkpoints.make_manager(str(tmp_path), config)
  checkpoints.save(manager, state, rng)
  manager.wait_until_finished()

  restored_state, restored_rng = checkpoints.restore(
    checkpoints.make_manager(str(tmp_path), config), fresh, rng
  )
  assert int(restored_state.step) == 3
  np.testing.assert_array_equal(restored_rng, rng)
  for a, b in zip(jax.tree.leaves(restored_state), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)
  after = jax.device_get(evaluate(restored_state))
  assert after == before


def test_no_checkpoint_restores_nothing(tiny_config, tmp_path):
  manager = checkpoints.make_manager(str(tmp_path), tiny_config)
  assert (
    checkpoints.restore(manager, {"w": np.zeros(2)}, jax.random.PRNGKey(0))
    is None
  )


def test_checkpoint_of_another_model_is_a_one_line_error(tiny_config, tmp_path):
  def state_for(latent_size):
    tiny_config.model.latent_size = latent_size
    return fresh_state(tiny_config, (28, 28, 1))[1]

  rng = jax.random.PRNGKey(1)
  manager = checkpoints.make_manager(str(tmp_path), tiny_config)
  checkpoints.save(manager, state_for(4), rng)
  manager.wait_until_finished()
  with pytest.raises(errors.UserInputError, match="fits this config") as e:
    checkpoints.restore(
      checkpoints.make_manager(str(tmp_path), tiny_config), state_for(6), rng
    )
  # Named from the checkpoint's saved metadata: readable, another model's.
  message = str(e.value)
  assert re.search(
    r"step 0: its state\.\S+ has shape \(4, 16\), this config's \(6, 16\)",
    message,
  ), message
  assert "unreadable" not in message


def damage(step_dir, metadata_too=False):
  """Overwrites the start of every data file of checkpoint folder `step_dir`
  (and of every other file, `metadata_too`), as a failing disk would."""
  for root, _, files in os.walk(step_dir):
    for name in files:
      if metadata_too or "manifest" in name or os.path.basename(root) == "d":
        with open(os.path.join(root, name), "r+b") as f:
          f.write(b"\0" * 64)


def save_steps_1_and_2(config, workdir):
  """A fresh state and RNG, saved in `workdir` as steps 1 and 2."""
  _, state = fresh_state(config, (28, 28, 1))
  rng = jax.random.PRNGKey(1)
  manager = checkpoints.make_manager(str(workdir), config)
  for step in (1, 2):
    checkpoints.save(manager, state.replace(step=step), rng)
  manager.wait_until_finished()
  return state, rng


def test_corrupt_newest_checkpoint_is_reported_and_set_aside(
  tiny_config, tmp_path, caplog
):
  state, rng = save_steps_1_and_2(tiny_config, tmp_path)
  damage(tmp_path / "checkpoints" / "2")

  manager = checkpoints.make_manager(str(tmp_path), tiny_config)
  restored, _ = checkpoints.restore(
    manager, state, rng, set_aside_unreadable=True
  )
  assert int(restored.step) == 1
  assert "step 2" in caplog.text and "unreadable" in caplog.text
  assert manager.all_steps() == [1]
  assert len(os.listdir(tmp_path / "checkpoints.unreadable")) == 1
  with pytest.raises(errors.UserInputError, match="no checkpoint at step 2"):
    checkpoints.restore(manager, state, rng, step=2)


def test_every_checkpoint_corrupt_is_one_line_saying_so(tiny_config, tmp_path):
  state, rng = save_steps_1_and_2(tiny_config, tmp_path)
  # Step 2's metadata still reads, and fits; step 1's does not.
  damage(tmp_path / "checkpoints" / "2")
  damage(tmp_path / "checkpoints" / "1", metadata_too=True)

  with pytest.raises(errors.UserInputError) as e:
    checkpoints.restore(
      checkpoints.make_manager(str(tmp_path), tiny_config),
      state,
      rng,
      set_aside_unreadable=True,
    )
  message = str(e.value)
  assert re.match(
    r"every checkpoint in \S+ is unreadable \(steps \[1, 2\]; step 2, the "
    r"newest: .+\); use a new --workdir",
    message,
  ), message
  assert "fits" not in message and "\n" not in message
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]  # Kept.


def test_a_tensorstore_error_keeps_its_cause_and_drops_its_spec():
  # As TensorStore reported a full disk while it wrote an array's metadata:
  # the cause in the middle, kilobytes of the array's spec after it.
  spec = '{"driver":"zarr","metadata":{' + '"x":1,' * 500 + '"shape":[2,32]}}'
  error = RuntimeError(
    'OUT_OF_RANGE: Error opening "zarr" driver: Error writing "state.'
    'opt_state.0.mu.decoder.Dense_0.kernel/.zarray": Failed to write 412 '
    "bytes to file 7: File too large [os_error_code='27'] "
    f"[source locations='tensorstore/kvstore/file/file_key_value_store.cc"
    f":311'] [tensorstore_spec='{spec}']"
  )
  line = checkpoints._first_line(error)  # pylint: disable=protected-access
  assert line.endswith("File too large [os_error_code='27']"), line
  assert len(line) <= 300 and "shape" not in line
