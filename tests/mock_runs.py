"""Real runs in subprocesses, on TFDS's mock data, for tests that kill them.

    python tests/mock_runs.py vae_jax.main --config=... --workdir=...

Tests that must signal, kill or starve a run (preemption, crashes, a full
disk, sweeps) need it in its own process, and `tfds.testing.mock_data` only
patches the process it runs in. $MOCK_NUM_EXAMPLES sets the examples per
split (default 64).
"""

import os
import runpy
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny mnist_linear: 8 steps per epoch on 64 mock examples.
TINY_RUN_FLAGS = (
    f"--config={os.path.join(REPO_ROOT, 'configs', 'mnist_linear.py')}",
    "--config.num_epochs=4",
    "--config.batch_size=8",
    "--config.log_every_steps=2",
    "--config.checkpoint_every_steps=1",  # Most of a run is spent saving.
    "--config.max_checkpoints_to_keep=2",
    "--config.num_image_samples=4",
    "--config.model.hidden_sizes=(16,)",
    "--config.model.latent_size=2",
    "--config.input.mnist_source=tfds",
)
TOTAL_STEPS = 32


def start(module: str, *flags: str, **popen_kwargs) -> subprocess.Popen:
  """`python -m module *flags` under mock data, with cheap compilation."""
  env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true",
         "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), module, *flags],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, **popen_kwargs)


def start_run(workdir, *extra_flags: str, **popen_kwargs) -> subprocess.Popen:
  """The tiny run in `workdir`; `extra_flags` override its config."""
  return start("vae_jax.main", *TINY_RUN_FLAGS, f"--workdir={workdir}",
               *extra_flags, **popen_kwargs)


def finish(process, timeout=240):
  output, _ = process.communicate(timeout=timeout)
  return process.returncode, output


def wait_for_checkpoint(workdir, min_step, process, timeout=240):
  """Returns once a checkpoint at `min_step` or later is complete."""
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, finish(process)[1][-3000:]
    if os.path.isdir(checkpoint_dir) and any(
        name.isdigit() and int(name) >= min_step
        for name in os.listdir(checkpoint_dir)):
      return
    time.sleep(0.05)
  raise TimeoutError(f"no checkpoint at step {min_step} in {workdir}")


if __name__ == "__main__":
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  module = sys.argv.pop(1)
  sys.argv[0] = module
  with tfds.testing.mock_data(
      num_examples=int(os.environ.get("MOCK_NUM_EXAMPLES", "64"))):
    runpy.run_module(module, run_name="__main__", alter_sys=True)
