"""The mesh, the global batch and its checks, on this process's devices.

Steps on 8 devices are in test_multidevice.py, two processes in
test_multiprocess.py.
"""

import jax
import numpy as np
import pytest

from vae_jax import errors
from vae_jax.core import sharding


@pytest.mark.parametrize(
  "per_device,devices,processes,expected",
  [
    (False, 1, 1, 8),
    (False, 4, 2, 8),  # A fixed global batch, 2 images per device.
    (True, 4, 2, 32),  # 8 per device: the global batch grows.
  ],
)
def test_global_batch_is_fixed_or_per_device(
  tiny_config, monkeypatch, per_device, devices, processes, expected
):
  monkeypatch.setattr(jax, "device_count", lambda: devices)
  monkeypatch.setattr(jax, "process_count", lambda: processes)
  tiny_config.batch_size_per_device = per_device
  assert sharding.global_batch_size(tiny_config) == expected
  assert sharding.local_batch_size(expected) == expected // processes


@pytest.mark.parametrize(
  "batch_size,devices,processes,message",
  [
    (
      8,
      3,
      1,
      "batch_size 8 is not divisible by the 3 devices of the 1 process(es)",
    ),
    (
      6,
      6,
      4,
      "the 6 devices of the 4 process(es) that share it; choose a "
      "multiple of 12",
    ),
  ],
)
def test_indivisible_batch_is_a_one_line_error(
  tiny_config, monkeypatch, batch_size, devices, processes, message
):
  monkeypatch.setattr(jax, "device_count", lambda: devices)
  monkeypatch.setattr(jax, "process_count", lambda: processes)
  tiny_config.batch_size = batch_size
  with pytest.raises(errors.ConfigError) as error:
    sharding.global_batch_size(tiny_config)
  assert message in str(error.value) and "\n" not in str(error.value)


def test_hand_made_cluster_needs_all_three_flags():
  with pytest.raises(errors.UserInputError, match="needs all of"):
    sharding.initialize_distributed("localhost:1234", num_processes=2)


def test_global_batch_round_trips_through_the_mesh():
  mesh = sharding.make_mesh()
  batch = {"image": np.arange(24, dtype=np.float32).reshape(4, 6)}
  global_batch = sharding.to_global(batch, sharding.batch_sharded(mesh))
  assert global_batch["image"].sharding == sharding.batch_sharded(mesh)
  np.testing.assert_array_equal(
    sharding.to_host(global_batch)["image"], batch["image"]
  )
