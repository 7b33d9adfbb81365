"""The command line: bad input ends in one clear line, not a traceback."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def run_main(*args):
  return subprocess.run(
      [sys.executable, "-m", "vae_jax.main",
       "--config=configs/mnist_linear.py", *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("override,message", [
    # Rejected while parsing flags.
    ("--config.num_epoch=3", "unknown config field 'num_epoch'"),
    # Raised by the config file's get_config (its traceback is dropped).
    ("--config=configs/dogs_ae.py:fcn9", "dogs_ae variant 'fcn9' is unknown"),
    # Rejected by validation.validate_config inside train_and_evaluate.
    ("--config.batch_size=0", "batch_size must be positive"),
    # A hand-made cluster described in part, before JAX would wait for it.
    ("--num_processes=2", "needs all of --coordinator_address"),
])
def test_bad_config_fails_with_one_line(tmp_path, override, message):
  workdir = tmp_path / "run"
  result = run_main(f"--workdir={workdir}", override)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("vae_jax: error:") and message in last_line
  assert not workdir.exists()  # A run that cannot start writes nothing.


def test_workdir_that_is_a_file_fails_with_one_line(tmp_path):
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("x")
  result = run_main(f"--workdir={not_a_dir}")
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  assert "is not a directory" in result.stderr.strip().splitlines()[-1]
