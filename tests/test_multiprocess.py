"""Two processes on localhost train one run together, as the hosts of a pod do.

launch/local_multiprocess.sh starts both under mock MNIST
(tests/mock_runs.py); they join through `jax.distributed.initialize` with a
loopback coordinator and exchange data over gloo. Each reads its own share
of each split (`mock_runs.sharded_mock_data`: different examples in each
share, as in a prepared dataset), the training share held on the devices at
its offset in the whole split, then, resumed, fed from the host. Their
numbers must be one process's over the same global batches
(`SharesSideBySide`): a process that read another's share, or gathered its
batches at another's offset, would train on other data.
"""

import json
import os
import re
import signal

import numpy as np
import pytest
import tensorflow as tf

import mock_runs
from testbed import checkpoint_arrays
from vae_jax.core import preemption
from vae_jax.data import batching
from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.trainers import loop

# 128 mock examples per split, 64 per process; 4 per process per step (a
# global batch of 8).
NUM_PROCESSES = 2
NUM_EXAMPLES = 128
STEPS_PER_EPOCH = 16
TIMEOUT = 300  # Seconds; a hang fails the test instead of stalling CI.


def start_two_processes(workdir, *flags: str):
  return mock_runs.start_run(
    workdir,
    "--config.checkpoint_every_steps=4",
    *flags,
    launcher=mock_runs.local_multiprocess(NUM_PROCESSES),
    faults={
      mock_runs.SHARDED_SPLITS: "1",
      "MOCK_NUM_EXAMPLES": str(NUM_EXAMPLES),
    },
    start_new_session=True,
  )


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


def concatenated(batches) -> dict:
  """The processes' local batches, in process order: a global batch."""
  return {
    name: np.concatenate([b[name] for b in batches]) for name in batches[0]
  }


class SharesSideBySide(pipeline.PreparedData):
  """The data of a one-process run whose every global batch is what the
  processes' local batches make together: process p's share of a split is
  its p-th of NUM_PROCESSES equal slices (`tfds.split_for_jax_process`),
  batched alone, and its part of each global batch the p-th.

  Batches come from the host: `batching.in_memory_batches` picks each
  share's examples as the processes did on either path
  (`batching.epoch_batch_indices`).
  """

  def _shares(self, arrays: dict) -> list[dict]:
    return [
      {
        name: np.split(value, NUM_PROCESSES)[p]
        for name, value in arrays.items()
      }
      for p in range(NUM_PROCESSES)
    ]

  def steps_per_epoch(self, local_batch_size):
    return batching.steps_per_epoch(
      self.num_train_examples // NUM_PROCESSES,
      local_batch_size // NUM_PROCESSES,
    )

  def is_device_resident(self):
    return False

  def train_batches(self, local_batch_size, seed, start_step=0):
    each = [
      batching.in_memory_batches(
        share, self.config, local_batch_size // NUM_PROCESSES, seed, start_step
      )
      for share in self._shares(
        batching.load_in_memory(sources.load(self.config, "train"))
      )
    ]
    return map(concatenated, zip(*each))

  def eval_dataset(self, local_batch_size):
    whole = sources.load(self.config, "test")
    size = int(whole.cardinality()) // NUM_PROCESSES
    shares = tuple(
      batching.eval_dataset(
        whole.skip(p * size).take(size),
        self.config,
        local_batch_size // NUM_PROCESSES,
      )
      for p in range(NUM_PROCESSES)
    )
    return tf.data.Dataset.zip(shares).map(
      lambda *batches: {
        name: tf.concat([b[name] for b in batches], axis=0)
        for name in batches[0]
      }
    )


def train_in_one_process(workdir, num_epochs):
  """The two processes' run over the same global batches, on one device."""
  config = mock_runs.tiny_run_config(
    {"num_epochs": num_epochs, "checkpoint_every_steps": 10_000}
  )
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pipeline, "prepare", SharesSideBySide)
    with mock_runs.sharded_mock_data(NUM_EXAMPLES):
      return loop.train_and_evaluate(config, str(workdir))


def checkpoint_steps(workdir) -> list[int]:
  return sorted(
    int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()
  )


def test_two_processes_stop_together_save_once_and_resume(tmp_path):
  run = start_two_processes(tmp_path, "--config.num_epochs=20")
  mock_runs.wait_for_checkpoint(tmp_path, 4, run, timeout=TIMEOUT)
  # One lock for the run, held by process 0 (`core.workdir_lock`).
  lock = json.loads((tmp_path / "run.lock").read_text())
  assert lock["pid"] == process_pid(run, 0)
  # A preemption notice that reaches one host only must stop both.
  os.kill(process_pid(run, 1), signal.SIGTERM)
  code, output = mock_runs.finish(run, timeout=TIMEOUT)
  assert code == preemption.EXIT_CODE, output[-5000:]
  stops = re.findall(
    r"^\[(\d)\] .*stopped by a preemption notice after "
    r"step (\d+)",
    output,
    re.MULTILINE,
  )
  assert sorted(index for index, _ in stops) == ["0", "1"], output[-5000:]
  assert stops[0][1] == stops[1][1]  # The same step.
  stopped_at = int(stops[0][1])
  assert checkpoint_steps(tmp_path)[-1] == stopped_at
  assert not (tmp_path / "results.json").exists()
  for index in (0, 1):
    assert f"[{index}] " in output and f"Process {index} of 2" in output
    assert (
      f"[{index}] Training on 2 devices; batches gathered on the devices"
      in output
    )

  # Both rerun to the end of the epoch they stopped in (at least one step
  # left): they resume from that checkpoint, fed from the host this time.
  num_epochs = stopped_at // STEPS_PER_EPOCH + 1
  run = start_two_processes(
    tmp_path,
    f"--config.num_epochs={num_epochs}",
    "--config.input.device_resident=never",
  )
  code, output = mock_runs.finish(run, timeout=TIMEOUT)
  assert code == 0, output[-5000:]
  for index in (0, 1):
    assert re.search(
      rf"^\[{index}\] .* trainer; step {stopped_at} of ", output, re.MULTILINE
    )
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["start_step"] == stopped_at
  assert results["steps"] == num_epochs * STEPS_PER_EPOCH
  assert results["processes"] == 2 and results["devices"] == 2
  assert not results["batches_on_device"]
  assert checkpoint_steps(tmp_path)[-1] == results["steps"]

  # The same numbers as one process on one device over the same global
  # batches, up to float32 rounding: the order in which each sum over the
  # batch is added differs (two partial sums, then gloo's, against one).
  one_process = train_in_one_process(
    tmp_path.parent / "one_process", num_epochs
  )
  assert (one_process["processes"], one_process["devices"]) == (1, 1)
  test_metrics = [name for name in results if name.startswith("test_")]
  np.testing.assert_allclose(
    [results[k] for k in test_metrics],
    [one_process[k] for k in test_metrics],
    rtol=1e-5,
    err_msg=f"2 processes against 1: {test_metrics}",
  )
  expected = checkpoint_arrays(
    tmp_path.parent / "one_process", results["steps"]
  )
  for name, value in checkpoint_arrays(tmp_path, results["steps"]).items():
    np.testing.assert_allclose(
      value,
      expected[name],
      rtol=1e-5,
      atol=1e-6,
      err_msg=f"2 processes against 1: {name}",
    )

  # Process 0 alone wrote the outputs: one TensorBoard file per run, one
  # image of each kind per epoch, and no temporary files left behind.
  files = os.listdir(tmp_path)
  assert len([n for n in files if n.startswith("events.out")]) == 2
  images = {
    f"{kind}_{epoch * STEPS_PER_EPOCH:06d}.png"
    for kind in ("reconstructions", "samples")
    for epoch in range(1, num_epochs + 1)
  }
  assert {n for n in files if not n.startswith(("events.out", "config."))} == {
    "checkpoints",
    "results.json",
    *images,
  }
