"""Real runs in subprocesses, on TFDS's mock data, for tests that kill them.

    python tests/mock_runs.py vae_jax.main --config=... --workdir=...

Tests that must signal, kill or starve a run (preemption, crashes, a full
disk, sweeps) need it in its own process, and `tfds.testing.mock_data` only
patches the process it runs in. $MOCK_NUM_EXAMPLES sets the examples per
split (default 64). The runs they compare with, or rerun, train in the
test's own process (`train_here`).
"""

import os
import resource
import runpy
import signal
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # For configs/, run as a script or imported.
# ruff: noqa: E402
# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from orbax.checkpoint.path import atomicity
import tensorflow as tf
import tensorflow_datasets as tfds

import testbed
from vae_jax.trainers import loop

# pylint: enable=g-import-not-at-top,wrong-import-position

# Testbed's tiny mnist_linear (`testbed.make_tiny_config`), changed: 8 steps
# per epoch on 64 mock examples, a save at every one, and a smaller MLP.
TINY_RUN = {
  "num_epochs": 4,
  "checkpoint_every_steps": 1,  # Most of a run is spent saving.
  "max_checkpoints_to_keep": 2,
  "num_image_samples": 4,
  "model.hidden_sizes": (16,),
  "model.latent_size": 2,
}


def config_flags(overrides) -> tuple[str, ...]:
  """The command line's flags for `overrides` ({dotted name: value})."""
  return tuple(f"--config.{name}={value}" for name, value in overrides.items())


# Every field that `tiny_run_config` sets, so that the run's config is the
# same.
TINY_RUN_FLAGS = (
  f"--config={os.path.join(REPO_ROOT, 'configs', 'mnist_linear.py')}",
  *config_flags({**testbed.SHORT_RUN, **testbed.TINY_MLP, **TINY_RUN}),
)
TOTAL_STEPS = 32
NUM_EXAMPLES = 64  # Mock examples per split, unless $MOCK_NUM_EXAMPLES says.


def tiny_run_config(overrides=None):
  """The config of `start_run`'s run, with `overrides` ({dotted name:
  value}) as `config_flags(overrides)` would set them."""
  return testbed.make_tiny_config({**TINY_RUN, **(overrides or {})})


def train_here(workdir, overrides=None) -> dict:
  """The tiny run trained in this process, as `start_run(workdir,
  *config_flags(overrides))` would train it, and its results: for the runs
  that nothing kills, which in a process of their own would spend seconds
  importing."""
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    return loop.train_and_evaluate(tiny_run_config(overrides), str(workdir))


# Set (to anything), the runs read `sharded_mock_data` instead of TFDS's mock.
SHARDED_SPLITS = "MOCK_SHARDED_SPLITS"


def sharded_mock_data(num_examples: int):
  """`tfds.testing.mock_data` whose splits each hold `num_examples` different
  examples, and whose slices (`train[64:]`, a process's share from
  `tfds.split_for_jax_process`) read their own, as a prepared dataset does.

  TFDS's mock gives every split and every slice the same examples: each
  process of a run would read the same share. Example i of a split is a pure
  function of the split's name and i. Flat features only (MNIST's).
  """
  splits = tfds.core.SplitDict(
    [
      tfds.core.SplitInfo(name=name, shard_lengths=[num_examples], num_bytes=0)
      for name in ("train", "test")
    ]
  )

  def whole_split(builder, name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(list(name.encode()))
    return {
      feature: rng.integers(
        0, 256 if info.dtype == tf.uint8 else 10, (num_examples, *info.shape)
      ).astype(info.dtype.as_numpy_dtype)
      for feature, info in builder.info.features.get_tensor_info().items()
    }

  def as_dataset(builder, split, **kwargs):
    del kwargs
    slices = [
      {
        feature: values[piece.from_ : piece.to]
        for feature, values in whole_split(builder, piece.splitname).items()
      }
      for piece in tfds.core.splits.AbstractSplit.from_spec(split).to_absolute(
        splits
      )
    ]
    return tf.data.Dataset.from_tensor_slices(
      {name: np.concatenate([s[name] for s in slices]) for name in slices[0]}
    )

  return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def subprocess_env(**overrides: str) -> dict[str, str]:
  """The environment of test subprocesses: cheap compilation, CPU only, and
  this checkout's vae_jax (not an installed copy)."""
  python_path = os.pathsep.join(
    p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p
  )
  xla_flags = " ".join(
    filter(None, (os.environ.get("XLA_FLAGS"), testbed.FAST_CODEGEN_XLA_FLAG))
  )
  return {
    **os.environ,
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "JAX_PLATFORMS": "cpu",
    "PYTHONPATH": python_path,
    "XLA_FLAGS": xla_flags,
    **overrides,
  }


def start(
  module: str,
  *flags: str,
  launcher: tuple[str, ...] = (),
  faults: dict[str, str] | None = None,
  **popen_kwargs,
) -> subprocess.Popen:
  """`python -m module *flags` under mock data, through `launcher` if given
  (see `local_multiprocess`), with `faults` injected (see below)."""
  return subprocess.Popen(
    [*launcher, sys.executable, os.path.abspath(__file__), module, *flags],
    cwd=REPO_ROOT,
    env=subprocess_env(**(faults or {})),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    **popen_kwargs,
  )


def start_run(workdir, *extra_flags: str, **kwargs) -> subprocess.Popen:
  """The tiny run in `workdir`; `extra_flags` override its config.

  Each replaces the tiny run's flag for the same field: ml_collections
  appends a repeated flag of a tuple field to the first.
  """
  replaced = {flag.split("=")[0] for flag in extra_flags}
  return start(
    "vae_jax.main",
    *(f for f in TINY_RUN_FLAGS if f.split("=")[0] not in replaced),
    f"--workdir={workdir}",
    *extra_flags,
    **kwargs,
  )


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def local_multiprocess(num_processes: int) -> tuple[str, ...]:
  """A `launcher` that runs the command as `num_processes` processes of one
  JAX job on this machine (launch/local_multiprocess.sh)."""
  return (
    os.path.join(REPO_ROOT, "launch", "local_multiprocess.sh"),
    str(num_processes),
    f"--port={free_port()}",
    "--",
  )


def finish(process, timeout=240):
  """Exit status and output; a run still going after `timeout` seconds is
  killed, with its children, and fails the test with its output."""
  try:
    output, _ = process.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    try:  # Its process group, when started with start_new_session=True.
      os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
      process.kill()
    output, _ = process.communicate()
    raise AssertionError(
      f"still running after {timeout} s (a hang?); output:\n{output[-5000:]}"
    ) from None
  return process.returncode, output


def wait_for_checkpoint(workdir, min_step, process, timeout=240):
  """Returns once a checkpoint at `min_step` or later is complete."""
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, finish(process)[1][-3000:]
    if os.path.isdir(checkpoint_dir) and any(
      name.isdigit() and int(name) >= min_step
      for name in os.listdir(checkpoint_dir)
    ):
      return
    time.sleep(0.05)
  raise TimeoutError(f"no checkpoint at step {min_step} in {workdir}")


# Faults injected into the run at one exact point of its checkpointing, by
# environment variable (each a step number):
# - $MOCK_KILL_BEFORE_COMMIT: SIGKILL inside that step's save, its data
#   written but its commit (Orbax's rename of <step>.orbax-checkpoint-tmp-*
#   to <step>) not made;
# - $MOCK_DISK_FULL_AFTER: once that step's checkpoint is committed, files
#   can no longer grow past 48 kB, as when the disk fills.
KILL_BEFORE_COMMIT = "MOCK_KILL_BEFORE_COMMIT"
DISK_FULL_AFTER = "MOCK_DISK_FULL_AFTER"
FULL_DISK_FILE_BYTES = 48_000


def _limit_file_size():
  # Python ignores SIGXFSZ, so writes past the limit fail with EFBIG
  # ("File too large"), as on a full disk.
  resource.setrlimit(
    resource.RLIMIT_FSIZE, (FULL_DISK_FILE_BYTES, FULL_DISK_FILE_BYTES)
  )


def _inject_checkpoint_faults():
  kill_step = os.environ.get(KILL_BEFORE_COMMIT)
  full_step = os.environ.get(DISK_FULL_AFTER)
  if kill_step is None and full_step is None:
    return  # Orbax as it is.
  # Both of Orbax's ways to commit a step: the rename of a temporary folder
  # (local disks), and a commit file written into the step's own folder
  # (buckets; tests/break_on_purpose.py also tries it on a local disk).
  # Both are public (`orbax.checkpoint.path.atomicity`), and `finalize`, the
  # commit, is a method of their public protocol (`TemporaryPath`).
  for temporary_path in (
    atomicity.AtomicRenameTemporaryPath,
    atomicity.CommitFileTemporaryPath,
  ):
    temporary_path.finalize = _faulty_commit(
      temporary_path.finalize, kill_step, full_step
    )


def _faulty_commit(commit, kill_step, full_step):
  async def faulty_commit(self):
    step = self.get_final().name
    if step == kill_step:
      os.kill(os.getpid(), signal.SIGKILL)
    await commit(self)
    if step == full_step:
      _limit_file_size()

  return faulty_commit


if __name__ == "__main__":
  _inject_checkpoint_faults()
  module = sys.argv.pop(1)
  sys.argv[0] = module
  num_examples = int(os.environ.get("MOCK_NUM_EXAMPLES", NUM_EXAMPLES))
  with (
    sharded_mock_data(num_examples)
    if SHARDED_SPLITS in os.environ
    else tfds.testing.mock_data(num_examples=num_examples)
  ):
    runpy.run_module(module, run_name="__main__", alter_sys=True)
