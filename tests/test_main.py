"""The command line: bad input ends in one clear line, not a traceback.

Every mistake goes through what `python -m vae_jax.main` runs,
`cli.parse_flags` then `main`, in one process started for them all
(`exit_messages`): a process of its own per mistake took seconds each to
import TensorFlow and JAX, and this test process holds other tools' flags
besides main's. A few are also made on the real command line, whose
whole output must be the error.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

# Parsing and running each argv given as JSON as the command would, prints
# the code each ended with (SystemExit's message), as JSON.
MAIN_ON_EACH_ARGV = """
import json, sys
from absl.testing import flagsaver
from vae_jax import cli
from vae_jax import main

codes = []
for argv in json.loads(sys.argv[1]):
  sys.argv = argv  # The config flag finds its overrides here, as under app.run.
  with flagsaver.flagsaver():
    try:
      main.main(cli.parse_flags(argv))
      codes.append(0)
    except SystemExit as e:
      codes.append(e.code)
print(json.dumps(codes))
"""

BAD_CONFIGS = [
  # Rejected while parsing flags.
  ("--config.num_epoch=3", "unknown config field 'num_epoch'"),
  # Raised by the config file's get_config (its traceback is dropped).
  ("--config=configs/dogs_ae.py:fcn9", "dogs_ae variant 'fcn9' is unknown"),
  # Rejected by run_config.check_config before the run starts.
  ("--config.batch_size=0", "batch_size must be positive"),
  # A hand-made cluster described in part, before JAX would wait for it.
  ("--num_processes=2", "needs all of --coordinator_address"),
]


def main_args(*args):
  return ["--config=configs/mnist_linear.py", *args]


@pytest.fixture(scope="module")
def exit_messages(tmp_path_factory):
  """{test name: (workdir, what main exited with)} for these tests' input."""
  root = tmp_path_factory.mktemp("main")
  (root / "file").write_text("x")
  cases = {
    override: (
      root / f"run_{i}",
      main_args(f"--workdir={root / f'run_{i}'}", override),
    )
    for i, (override, _) in enumerate(BAD_CONFIGS)
  }
  cases["workdir_is_a_file"] = (
    root / "file",
    main_args(f"--workdir={root / 'file'}"),
  )
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      MAIN_ON_EACH_ARGV,
      json.dumps([["vae_jax.main", *argv] for _, argv in cases.values()]),
    ],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
  )
  assert result.returncode == 0, result.stderr[-3000:]
  codes = json.loads(result.stdout.strip().splitlines()[-1])
  return {
    name: (workdir, code)
    for (name, (workdir, _)), code in zip(cases.items(), codes)
  }


def assert_one_line_error(code, message):
  # A string code: Python prints it as the last line and exits with 1.
  assert isinstance(code, str) and "\n" not in code
  assert code.startswith("vae_jax: error:") and message in code


@pytest.mark.parametrize("override,message", BAD_CONFIGS)
def test_bad_config_fails_with_one_line(exit_messages, override, message):
  workdir, code = exit_messages[override]
  assert_one_line_error(code, message)
  assert not workdir.exists()  # A run that cannot start writes nothing.


def test_workdir_that_is_a_file_fails_with_one_line(exit_messages):
  _, code = exit_messages["workdir_is_a_file"]
  assert_one_line_error(code, "is not a directory")


# Mistakes made on the real command line, each in a process of its own.
COMMAND_LINE_MISTAKES = [
  (
    ("--config=configs/mnist_linear.py", "--config.no_such_field=1"),
    "vae_jax: error: unknown config field 'no_such_field'",
  ),
  (
    ("--config=configs/mnist_linear.py", "--config.batch_size=0"),
    "vae_jax: error: batch_size must be positive, got 0.",
  ),
  (
    ("--config=configs/nope.py",),
    "vae_jax: error: config file configs/nope.py does not exist",
  ),
]


@pytest.fixture(scope="module")
def command_line_outputs(tmp_path_factory):
  """[(workdir, exit status, stdout and stderr)] of `python -m vae_jax.main`
  on each of COMMAND_LINE_MISTAKES, started together: each pays seconds of
  imports."""
  root = tmp_path_factory.mktemp("command_line")
  # What a user's shell holds: vae_jax sets TensorFlow's log switches itself.
  env = {
    name: value
    for name, value in os.environ.items()
    if name not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
  }
  runs = []
  for i, (flags, _) in enumerate(COMMAND_LINE_MISTAKES):
    workdir = root / f"run_{i}"
    process = subprocess.Popen(
      [sys.executable, "-m", "vae_jax.main", *flags, f"--workdir={workdir}"],
      cwd=REPO_ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    runs.append((workdir, process))
  results = []
  for workdir, process in runs:
    output, _ = process.communicate(timeout=120)
    results.append((workdir, process.returncode, output))
  return results


@pytest.mark.parametrize("index", range(len(COMMAND_LINE_MISTAKES)))
def test_command_line_prints_its_error_alone(command_line_outputs, index):
  workdir, status, output = command_line_outputs[index]
  assert status == 1
  assert output == COMMAND_LINE_MISTAKES[index][1] + "\n"
  assert not workdir.exists()
