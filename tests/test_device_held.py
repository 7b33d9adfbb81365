"""The device-resident split and its compiled loop against the host path."""

import functools

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import gan_runs
from testbed import assemble
from vae_jax.core import sharding
from vae_jax.data import device_held
from vae_jax.data import pipeline
from vae_jax.errors import ConfigError
from vae_jax.trainers import parts as parts_lib

MOCK_EXAMPLES = 40  # 5 steps of 8 per epoch.


def run_steps(config, chunk_ends, on_device):
  """The state and per-step metrics after training in chunks ending at
  `chunk_ends` (on the host path, one step at a time)."""
  image_shape = (28, 28, 1)
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  parts = assemble(config, image_shape)
  trainer = parts.trainer
  state = jax.jit(
    functools.partial(
      trainer.create_train_state, config, parts, image_shape, total_steps=100
    ),
    out_shardings=replicated,
  )(jax.random.PRNGKey(0))
  step, _ = trainer.make_steps(config, parts)
  rng = jax.device_put(jax.random.PRNGKey(1), replicated)
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    data = pipeline.prepare(config.input)
    if on_device:
      runner = device_held.DeviceSteps(
        data.device_split(),
        step,
        mesh,
        config.batch_size,
        [config.seed],
        rng,
        max_steps=3,
      )
    else:
      runner = device_held.HostSteps(
        sharding.prefetch_to_mesh(
          data.train_batches(config.batch_size, config.seed),
          sharding.batch_sharded(mesh),
        ),
        sharding.jit_train_step(step, mesh),
        rng,
      )
    blocks, first = [], 0
    for end in chunk_ends:
      for start in [first] if on_device else range(first, end):
        state, metrics = runner(state, start, end if on_device else start + 1)
        blocks.append(metrics)
      first = end
  return state, device_held.per_step_metrics(blocks)


# Two different programs, the same bits: under the emitters runs compile with.
@pytest.mark.usefixtures("production_codegen")
@pytest.mark.parametrize("trainer", list(parts_lib.TRAINERS))
def test_compiled_loop_trains_like_the_per_step_loop(
  tiny_config, trainer, request
):
  if trainer == "single_network":  # On the executables production builds.
    request.getfixturevalue("optimized_xla")
    config = tiny_config
  else:
    config = gan_runs.tiny_gan_config()
    # The CPU's own forms: XLA:CPU rewrites its convolutions' gradients
    # differently inside the compiled loop than outside it
    # (layers.resolve_conv_impl), which changes their last bits.
    config.model.conv_impl = "auto"
  chunk_ends = (2, 5, 7)  # Crosses the epoch boundary at 5.
  device_state, device_metrics = run_steps(config, chunk_ends, on_device=True)
  host_state, host_metrics = run_steps(config, chunk_ends, on_device=False)
  assert int(device_state.step) == int(host_state.step) == 7
  assert len(device_metrics) == len(host_metrics) == 7
  # Same batches, same noise, same arithmetic: the same bits.
  for device_value, host_value in zip(
    jax.tree.leaves(device_state), jax.tree.leaves(host_state)
  ):
    np.testing.assert_array_equal(device_value, host_value)
  for device_step, host_step in zip(device_metrics, host_metrics):
    assert device_step.keys() == host_step.keys()
    for name in host_step:
      np.testing.assert_array_equal(device_step[name], host_step[name])


def test_next_stop_lands_on_every_period_and_the_end():
  stops, step = [], 0
  while step < 20:
    step = device_held.next_stop(step, 20, periods=(4, 6, 8))
    stops.append(step)
  assert stops == [4, 6, 8, 12, 16, 18, 20]
  assert device_held.next_stop(5, 20, periods=(1,)) == 6


def test_per_step_metrics_unstacks_loop_buffers():
  loop = (
    {
      "loss": np.array([1.0, 2.0, 0.0]),
      "finite": np.array([True, False, False]),
    },
    2,
  )  # Third unused.
  single = ({"loss": np.float32(3.0), "finite": np.bool_(True)}, None)
  steps = device_held.per_step_metrics([loop, single])
  assert [float(s["loss"]) for s in steps] == [1.0, 2.0, 3.0]
  assert [bool(s["finite"]) for s in steps] == [True, False, True]


def test_auto_holds_unaugmented_in_memory_splits_only(tiny_config):
  def resident():
    return device_held.is_device_resident(
      tiny_config.input, (28, 28, 1), MOCK_EXAMPLES
    )

  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    assert pipeline.prepare(tiny_config.input).is_device_resident()
  assert resident()
  tiny_config.input.rotation_degrees = 10.0
  assert not resident()
  tiny_config.input.rotation_degrees = 0.0
  tiny_config.input.in_memory = False
  assert not resident()
  tiny_config.input.device_resident = "always"
  assert resident()
  tiny_config.input.device_resident = "auto"
  tiny_config.input.in_memory = True
  # Above device_held.AUTO_MAX_BYTES of float32 pixels, it stays on the host.
  too_many = device_held.AUTO_MAX_BYTES // (28 * 28 * 4) + 1
  assert not device_held.is_device_resident(
    tiny_config.input, (28, 28, 1), too_many
  )


def test_impossible_settings_are_config_errors(tiny_config):
  tiny_config.input.device_resident = "yes"
  with pytest.raises(ConfigError, match="device_resident 'yes' is unknown"):
    device_held.check_config(tiny_config.input)
  tiny_config.input.device_resident = "always"
  tiny_config.input.brightness_jitter = 0.5
  with pytest.raises(ConfigError, match="cannot augment"):
    device_held.check_config(tiny_config.input)
