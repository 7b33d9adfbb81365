"""A SIGTERM mid-run, then a rerun, equals a run never interrupted, bit for
bit, for each kind of run, on the executables production compiles.

Each case trains on mock MNIST with XLA's default optimizations and fusion
emitters (testbed's `optimized_xla`) three times: uninterrupted; stopped by
a real SIGTERM that this process sends itself while the steps after
`SIGNAL_STEP` run, which the loop's `preemption.StopRequests` records in
the main thread (where pytest-xdist runs tests) and then saves and stops
on; and rerun in the stopped run's workdir.
"""

import contextlib
import json
import os
import signal
import threading

import jax
import numpy as np
import pytest

import gan_runs
import testbed
from vae_jax.core import preemption
from vae_jax.data import device_held

# 6-12 s each, most of it compiling with XLA's optimizations.
pytestmark = pytest.mark.slow

# gan_runs.run: 5 steps of 8 per epoch, 2 epochs (testbed.SHORT_RUN);
# checkpoints after steps 3, 6, 9 and 10, logs after every second step.
TOTAL_STEPS = 10
# Sent as the loop starts the steps after this one: the device loop's chunk,
# or the host's one step, ends at step 4, between the checkpoints at 3 and 6,
# and the rerun crosses the epoch boundary at 5.
SIGNAL_STEP = 3


def _gan_with_cosine_warmup():
  config = gan_runs.tiny_gan_config(conditional=False)
  # The generator updates every second step, the rerun's first (step 5)
  # not; its schedule spans its own 5 updates.
  config.n_critic = 2
  for network in ("generator", "discriminator"):
    config.optimizer[network].update(schedule="cosine", warmup_steps=3)
  # The recipe options: the generator's average and the spectral norm's
  # power iterates are part of the state, and R1 differentiates through the
  # discriminator's input.
  config.generator_ema_decay = 0.9
  config.r1_weight = 1.0
  config.loss.objective = "hinge_gan"
  config.model.discriminator_spectral_norm = True
  return config


def _acgan_with_stages():
  config = gan_runs.tiny_gan_config()
  for network in ("generator", "discriminator"):
    # The rate drops after steps 3 and 7.
    config.optimizer[network].update(schedule="stages", stage_lengths=(1, 1, 1))
  return config


def _vae_with_kl_warmup_augmented_binarized():
  return testbed.make_tiny_config(
    {
      "loss.kl_warmup_steps": 6,
      "input.binarize": "dynamic",  # Its draws, too, continue exactly.
      "input.rotation_degrees": 15.0,
      "input.autocontrast_prob": 0.5,
      "input.brightness_jitter": 0.3,
    }
  )


# {name: (config factory, whether its batches are held on the devices)}.
# Each kind of run covers two of the six features whose resume must be
# exact: a case per feature would double the time, most of it compiling.
CASES = {
  "gan_cosine_warmup": (_gan_with_cosine_warmup, True),
  "acgan_stages": (_acgan_with_stages, True),
  # Augmented batches come from the host ('auto', `device_held`).
  "vae_kl_warmup_augmented_on_host": (
    _vae_with_kl_warmup_augmented_binarized,
    False,
  ),
}


@contextlib.contextmanager
def sigterm_after(step):
  """A real SIGTERM, from this process to itself, as the loop starts the
  steps after `step`: it asks `device_held.next_stop` where they end."""
  next_stop = device_held.next_stop

  def next_stop_sending_sigterm(current, total_steps, periods):
    if current == step:
      os.kill(os.getpid(), signal.SIGTERM)
    return next_stop(current, total_steps, periods)

  device_held.next_stop = next_stop_sending_sigterm
  try:
    yield
  finally:
    device_held.next_stop = next_stop


def checkpoint_steps(workdir):
  return sorted(
    int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()
  )


def final_test_metrics(workdir):
  results = json.loads((workdir / "results.json").read_text())
  return {k: v for k, v in results.items() if k.startswith("test_")}


def check_sigterm_then_rerun_is_exact(run, make_config, tmp_path, part):
  """`run(make_config(), workdir)`, a 10-step run, once whole and once
  stopped by SIGTERM after step 3 and rerun: the same test metrics and the
  same checkpointed arrays, bit for bit, among them one whose name holds
  `part` (the state the caller is about). Returns the whole run's
  results."""
  reference, resumed = tmp_path / "reference", tmp_path / "resumed"
  results = run(make_config(), reference)
  assert results["steps"] == 10 and results["nonfinite_steps"] == 0
  with (
    sigterm_after(3),
    pytest.raises(preemption.Preempted, match="after step 4;"),
  ):
    run(make_config(), resumed)
  assert run(make_config(), resumed)["start_step"] == 4
  assert final_test_metrics(resumed) == final_test_metrics(reference)
  arrays = testbed.checkpoint_arrays(resumed, checkpoint_steps(resumed)[-1])
  expected = testbed.checkpoint_arrays(reference, 10)
  assert arrays.keys() == expected.keys()
  assert any(part in name for name in arrays), part
  for name, value in expected.items():
    np.testing.assert_array_equal(arrays[name], value, err_msg=name)
  return results


@pytest.mark.usefixtures("optimized_xla")
@pytest.mark.parametrize("case", CASES)
def test_sigterm_then_rerun_equals_the_uninterrupted_run(case, tmp_path):
  assert not jax.config.read("jax_disable_most_optimizations")
  # Elsewhere StopRequests would not catch SIGTERM, and it would end pytest.
  assert threading.current_thread() is threading.main_thread()
  make_config, on_device = CASES[case]
  reference, resumed = tmp_path / "reference", tmp_path / "resumed"
  results = gan_runs.run(make_config(), reference)
  assert results["batches_on_device"] == on_device
  assert results["steps"] == TOTAL_STEPS

  with (
    sigterm_after(SIGNAL_STEP),
    pytest.raises(preemption.Preempted, match="by SIGTERM after step 4;"),
  ):
    gan_runs.run(make_config(), resumed)
  # Saved on the signal, mid-run and strictly between two checkpoints.
  assert checkpoint_steps(resumed) == [3, 4]
  assert gan_runs.run(make_config(), resumed)["start_step"] == 4
  assert checkpoint_steps(resumed)[-1] == TOTAL_STEPS

  # Bit for bit: every test metric, parameter, optimizer state and RNG.
  expected = final_test_metrics(reference)
  assert expected
  assert final_test_metrics(resumed) == expected
  arrays = testbed.checkpoint_arrays(resumed, TOTAL_STEPS)
  expected = testbed.checkpoint_arrays(reference, TOTAL_STEPS)
  assert arrays.keys() == expected.keys()
  # A generator average and the power iterates are checkpointed where the
  # config has them, so compared too.
  config = make_config()
  assert any("generator_ema" in name for name in arrays) == bool(
    config.get("generator_ema_decay")
  )
  assert any("SpectralNorm" in name for name in arrays) == bool(
    config.model.get("discriminator_spectral_norm")
  )
  for name, value in expected.items():
    np.testing.assert_array_equal(arrays[name], value, err_msg=name)
