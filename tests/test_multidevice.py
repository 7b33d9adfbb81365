"""Data parallelism: 8 devices compute the step, and train the run, that 1
device computes.

The 8 devices are host-platform CPU devices of a subprocess
(tests/multidevice_steps.py): JAX fixes its device count when it starts.
One such process serves every test here (a module's tests share a
worker: pytest.ini).
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import REPO_ROOT
import multidevice_steps
from testbed import checkpoint_arrays
from testbed import make_tiny_config
from vae_jax.core import checkpoints
from vae_jax.core import sharding
from vae_jax.trainers import loop

SCRIPT = os.path.join(REPO_ROOT, "tests", "multidevice_steps.py")
# Not bit for bit: each sum over the batch is added in another order on 8
# devices (8 partial sums, then theirs) than on 1; float32 rounding only.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  """The workdir of tests/multidevice_steps.py's run on 8 devices, which
  restored there the checkpoint saved here on 1 device (one_device/)."""
  workdir = tmp_path_factory.mktemp("eight_devices")
  mesh = multidevice_steps.one_device_mesh()
  config, state = multidevice_steps.initial_state(
    multidevice_steps.RESTORE_MODEL, mesh
  )
  manager = checkpoints.make_manager(str(workdir / "one_device"), config)
  checkpoints.save(manager, state, jax.random.PRNGKey(9))
  checkpoints.close(manager)
  result = subprocess.run(
    [sys.executable, SCRIPT, str(workdir)],
    cwd=REPO_ROOT,
    env=multidevice_steps.eight_device_env(),
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-5000:]
  return workdir


def assert_all_close(actual: dict, expected: dict) -> None:
  assert actual.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, err_msg=name, **TOLERANCE)


def split(npz) -> tuple[dict, dict]:
  one = {k[len("one") :]: npz[k] for k in npz.files if k.startswith("one")}
  eight = {
    k[len("eight") :]: npz[k] for k in npz.files if k.startswith("eight")
  }
  return one, eight


def test_step_on_eight_devices_equals_the_step_on_one(eight_devices):
  for name in multidevice_steps.MODELS:
    one, eight = split(np.load(eight_devices / f"{name}.npz"))
    assert one["['state'].step"] == 1
    assert_all_close(eight, one)
  # BatchNorm statistics were compared: over the global batch on 8 devices.
  assert any(
    "batch_stats" in k
    for k in split(np.load(eight_devices / "batchnorm_vae.npz"))[0]
  )


def test_checkpoints_move_between_one_and_eight_devices(eight_devices):
  # The state the fixture saved on this process's single device, stepped here.
  mesh = multidevice_steps.one_device_mesh()
  name = multidevice_steps.RESTORE_MODEL
  config, state = multidevice_steps.initial_state(name, mesh)
  expected_after_restore, _ = multidevice_steps.step_on(mesh, name, state)

  # Restored onto 8 devices, stepped twice there, saved between the steps.
  assert_all_close(
    dict(np.load(eight_devices / "after_restore.npz")), expected_after_restore
  )

  # The 8-device checkpoint restored onto 1 device continues identically.
  _, target = multidevice_steps.initial_state(name, mesh)
  manager = checkpoints.make_manager(
    str(eight_devices / "eight_devices"), config
  )
  restored, _ = checkpoints.restore(manager, target, jax.random.PRNGKey(0))
  checkpoints.close(manager)
  assert int(restored.step) == 1
  assert all(
    x.sharding == sharding.replicated(mesh) for x in jax.tree.leaves(restored)
  )
  after_second_step, _ = multidevice_steps.step_on(mesh, name, restored, seed=1)
  assert_all_close(
    after_second_step, dict(np.load(eight_devices / "after_second_step.npz"))
  )


def test_eight_devices_train_alike_on_either_path(eight_devices):
  results = {
    mode: json.loads((eight_devices / mode / "results.json").read_text())
    for mode in multidevice_steps.DATA_PATHS
  }
  assert results["always"]["batches_on_device"]
  assert not results["never"]["batches_on_device"]
  assert {r["devices"] for r in results.values()} == {8}
  for name in ("test_loss", "test_recon", "test_kl", "test_mse"):
    assert results["always"][name] == results["never"][name]  # Bit for bit.


def test_eight_devices_train_as_one_device_does(eight_devices, tmp_path):
  # The same run on this process's one device: the same global batches.
  with tfds.testing.mock_data(num_examples=multidevice_steps.MOCK_EXAMPLES):
    one = loop.train_and_evaluate(
      make_tiny_config(multidevice_steps.RUN_OVERRIDES), str(tmp_path)
    )
  assert one["devices"] == 1
  expected = checkpoint_arrays(tmp_path, one["steps"])
  for mode in multidevice_steps.DATA_PATHS:
    eight = json.loads((eight_devices / mode / "results.json").read_text())
    assert eight["steps"] == one["steps"]
    for name in ("test_loss", "test_recon", "test_kl", "test_mse"):
      np.testing.assert_allclose(
        eight[name], one[name], rtol=1e-5, err_msg=name
      )
    assert_all_close(
      checkpoint_arrays(eight_devices / mode, one["steps"]), expected
    )
