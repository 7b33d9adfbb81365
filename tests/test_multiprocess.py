"""Two processes on localhost train one run together, as the hosts of a pod do.

launch/local_multiprocess.sh starts both under mock MNIST
(tests/mock_runs.py); they join through `jax.distributed.initialize` with a
loopback coordinator and exchange data over gloo. Each reads its own share
of the data; TFDS's mock data ignores split slicing, so here each share is
the whole mock split, which the pipeline must survive too.
"""

import json
import math
import os
import re
import signal

import mock_runs
from vae_jax.core import preemption

# 64 mock examples per process, 4 per process per step (a global batch of 8).
STEPS_PER_EPOCH = 16
TIMEOUT = 300  # Seconds; a hang fails the test instead of stalling CI.


def start_two_processes(workdir, *flags: str):
  return mock_runs.start_run(
      workdir, "--config.checkpoint_every_steps=4", *flags,
      launcher=mock_runs.local_multiprocess(2), start_new_session=True)


def process_pid(launcher, index: int) -> int:
  """The pid of process `index`, a child of the launch script."""
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{pid}/cmdline") as f:
        argv = f.read().split("\0")
    except OSError:  # It ended meanwhile.
      continue
    if parent == launcher.pid and f"--process_id={index}" in argv:
      return int(pid)
  raise LookupError(f"no process {index} under pid {launcher.pid}")


def checkpoint_steps(workdir) -> list[int]:
  return sorted(int(n) for n in os.listdir(workdir / "checkpoints")
                if n.isdigit())


def test_two_processes_stop_together_save_once_and_resume(tmp_path):
  run = start_two_processes(tmp_path, "--config.num_epochs=20")
  mock_runs.wait_for_checkpoint(tmp_path, 4, run, timeout=TIMEOUT)
  # A preemption notice that reaches one host only must stop both.
  os.kill(process_pid(run, 1), signal.SIGTERM)
  code, output = mock_runs.finish(run, timeout=TIMEOUT)
  assert code == preemption.EXIT_CODE, output[-5000:]
  stops = re.findall(r"^\[(\d)\] .*stopped by a preemption notice after "
                     r"step (\d+)", output, re.MULTILINE)
  assert sorted(index for index, _ in stops) == ["0", "1"], output[-5000:]
  assert stops[0][1] == stops[1][1]  # The same step.
  stopped_at = int(stops[0][1])
  assert checkpoint_steps(tmp_path)[-1] == stopped_at
  assert not (tmp_path / "results.json").exists()
  for index in (0, 1):
    assert f"[{index}] " in output and f"Process {index} of 2" in output

  # Both rerun to the end of the epoch they stopped in (at least one step
  # left): they resume from that checkpoint.
  num_epochs = stopped_at // STEPS_PER_EPOCH + 1
  run = start_two_processes(tmp_path, f"--config.num_epochs={num_epochs}")
  code, output = mock_runs.finish(run, timeout=TIMEOUT)
  assert code == 0, output[-5000:]
  for index in (0, 1):
    assert re.search(rf"^\[{index}\] .* trainer; step {stopped_at} of ",
                     output, re.MULTILINE)
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["start_step"] == stopped_at
  assert results["steps"] == num_epochs * STEPS_PER_EPOCH
  assert results["processes"] == 2 and results["devices"] == 2
  assert all(math.isfinite(v) for k, v in results.items()
             if k.startswith("test_"))
  assert checkpoint_steps(tmp_path)[-1] == results["steps"]

  # Process 0 alone wrote the outputs: one TensorBoard file per run, one
  # image of each kind per epoch, and no temporary files left behind.
  files = os.listdir(tmp_path)
  assert len([n for n in files if n.startswith("events.out")]) == 2
  images = {f"{kind}_{epoch * STEPS_PER_EPOCH:06d}.png"
            for kind in ("reconstructions", "samples")
            for epoch in range(1, num_epochs + 1)}
  assert {n for n in files if not n.startswith(("events.out", "config."))
          } == {"checkpoints", "results.json", *images}
