"""Signals and kills in the middle of real runs: nothing is lost or changed.

Each interrupted run is a subprocess on mock MNIST (tests/mock_runs.py). A
run stopped by SIGTERM or killed by SIGKILL, then rerun with the same
config (in this process), must end with bit-identical parameters and test
metrics to a run never interrupted.
"""

import json
import os
import signal

import numpy as np
import pytest

import mock_runs
from mock_runs import TOTAL_STEPS
from mock_runs import finish
from mock_runs import start_run
from mock_runs import wait_for_checkpoint
from testbed import checkpoint_arrays
from vae_jax.core import preemption


def final_test_metrics(workdir):
  results = json.loads((workdir / "results.json").read_text())
  return {k: v for k, v in results.items() if k.startswith("test_")}


def assert_same_run(workdir, reference):
  # Bit for bit.
  assert final_test_metrics(workdir) == final_test_metrics(reference)
  arrays = checkpoint_arrays(workdir, TOTAL_STEPS)
  expected = checkpoint_arrays(reference, TOTAL_STEPS)
  assert arrays.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(arrays[name], value, err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """The same run, never interrupted. Saved only at the end: it runs its
  steps in the loops between log steps, not one at a time as the runs saving
  each step do, which must not change a bit."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  mock_runs.train_here(workdir, {"checkpoint_every_steps": TOTAL_STEPS})
  return workdir


def test_sigterm_saves_exits_75_and_resumes_identically(
  uninterrupted, tmp_path
):
  run = start_run(tmp_path)
  wait_for_checkpoint(tmp_path, 6, run)
  run.send_signal(signal.SIGTERM)
  code, output = finish(run)
  assert code == preemption.EXIT_CODE, output[-3000:]
  assert "rerun the same command to resume" in output
  assert not (tmp_path / "results.json").exists()
  stopped_at = max(
    int(n) for n in os.listdir(tmp_path / "checkpoints") if n.isdigit()
  )
  assert 6 <= stopped_at < TOTAL_STEPS
  assert mock_runs.train_here(tmp_path)["start_step"] == stopped_at
  assert_same_run(tmp_path, uninterrupted)


def test_sigkill_inside_a_save_is_ignored_and_resumes_identically(
  uninterrupted, tmp_path
):
  # Killed inside step 6's save: its files written, its commit not made.
  code, output = finish(
    start_run(tmp_path, faults={mock_runs.KILL_BEFORE_COMMIT: "6"})
  )
  assert code == -signal.SIGKILL, output[-3000:]
  checkpoint_dir = tmp_path / "checkpoints"
  unfinished = list(checkpoint_dir.glob("6.orbax-checkpoint-tmp*"))
  assert len(unfinished) == 1 and any(unfinished[0].rglob("*")), sorted(
    os.listdir(checkpoint_dir)
  )
  assert not (checkpoint_dir / "6").exists()
  # Resumed from the last committed save, not the half-written one.
  assert mock_runs.train_here(tmp_path)["start_step"] == 5
  assert not list(checkpoint_dir.glob("*.orbax-checkpoint-tmp*"))
  assert_same_run(tmp_path, uninterrupted)


def test_ctrl_c_requests_a_stop_and_a_second_one_interrupts():
  previous = signal.getsignal(signal.SIGINT)
  with preemption.StopRequests() as requests:
    assert not requests.should_stop(manager=None, first_step=1, last_step=1)
    os.kill(os.getpid(), signal.SIGINT)
    assert requests.should_stop(manager=None, first_step=1, last_step=1)
    assert requests.signal_name == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is previous
