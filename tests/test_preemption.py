"""Signals and kills in the middle of real runs: nothing is lost or changed.

Each run is a subprocess on mock MNIST (tests/mock_runs.py). A run
stopped by SIGTERM or killed by SIGKILL, then rerun with the same command,
must end with bit-identical parameters and test metrics to a run never
interrupted.
"""

import json
import os
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mock_runs import TOTAL_STEPS, finish, start_run, wait_for_checkpoint
from vae_jax.core import preemption

# One worker runs the uninterrupted reference both runs compare to
# (pytest.ini).
pytestmark = pytest.mark.xdist_group("preemption_reference")


def final_arrays(workdir):
  path = os.path.join(workdir, "checkpoints", str(TOTAL_STEPS), "default")
  restored = ocp.StandardCheckpointer().restore(path)
  return {"/".join(map(str, p)): np.asarray(x) for p, x in
          jax.tree_util.tree_flatten_with_path(restored)[0]}


def final_test_metrics(workdir):
  results = json.loads((workdir / "results.json").read_text())
  return {k: v for k, v in results.items() if k.startswith("test_")}


def assert_same_run(workdir, reference):
  assert final_test_metrics(workdir) == final_test_metrics(reference)  # Bit for bit.
  arrays, expected = final_arrays(workdir), final_arrays(reference)
  assert arrays.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(arrays[name], value, err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  code, output = finish(start_run(workdir))
  assert code == 0, output[-3000:]
  return workdir


def test_sigterm_saves_exits_75_and_resumes_identically(uninterrupted,
                                                         tmp_path):
  run = start_run(tmp_path)
  wait_for_checkpoint(tmp_path, 6, run)
  run.send_signal(signal.SIGTERM)
  code, output = finish(run)
  assert code == preemption.EXIT_CODE, output[-3000:]
  assert "rerun the same command to resume" in output
  assert not (tmp_path / "results.json").exists()
  stopped_at = max(int(n) for n in os.listdir(tmp_path / "checkpoints")
                   if n.isdigit())
  assert 6 <= stopped_at < TOTAL_STEPS
  code, output = finish(start_run(tmp_path))
  assert code == 0, output[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["start_step"] == stopped_at
  assert_same_run(tmp_path, uninterrupted)


def test_sigkill_mid_save_resumes_identically(uninterrupted, tmp_path):
  run = start_run(tmp_path)
  wait_for_checkpoint(tmp_path, 5, run)
  run.kill()  # Checkpoints are saved every step: likely during a save.
  run.wait()
  code, output = finish(start_run(tmp_path))
  assert code == 0, output[-3000:]
  assert json.loads((tmp_path / "results.json").read_text())["start_step"] >= 5
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
