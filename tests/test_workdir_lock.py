"""One run per workdir (`workdir_lock`): a second run fails in one line
before its data loads, a killed run's lock is taken over, an unwritable
workdir fails first, and a sweep's runs each hold their own."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

from matplotlib import figure
import pytest

import mock_runs
from vae_jax import cli
from vae_jax import errors
from vae_jax.core import outputs
from vae_jax.core import workdir_lock
from vae_jax.data import pipeline
from vae_jax.sweeps import runner
from vae_jax.trainers import loop

# A run holding <argv[1]>/run.lock as every vae_jax run does (its holder,
# and a flock for its life), in a process that starts in milliseconds.
HOLDER = """
import fcntl, json, os, socket, sys
with open(os.path.join(sys.argv[1], "run.lock"), "w") as f:
  json.dump({"host": socket.gethostname(), "pid": os.getpid(),
             "started": "just now"}, f)
  f.flush()
  fcntl.flock(f, fcntl.LOCK_EX)
  print("held", flush=True)
  sys.stdin.read()
"""


def start_holder(workdir) -> subprocess.Popen:
  """A process holding `workdir` until it is killed."""
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLDER, str(workdir)],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert holder.stdout.readline() == "held\n"
  return holder


@pytest.fixture
def data_unread(monkeypatch):
  """Fails the test if the run starts reading its data."""

  def prepare(input_config):
    raise AssertionError(f"the run read {input_config.dataset}")

  monkeypatch.setattr(pipeline, "prepare", prepare)


def one_line_error(workdir) -> str:
  """What `python -m vae_jax.main` would exit with, training in `workdir`."""
  with pytest.raises(SystemExit) as exit_info:
    cli.run_reporting_errors(
      loop.train_and_evaluate, mock_runs.tiny_run_config(), str(workdir)
    )
  message = exit_info.value.code
  assert isinstance(message, str) and "\n" not in message
  assert message.startswith(cli.ERROR_PREFIX)
  return message


def test_a_live_runs_workdir_fails_a_second_run_in_one_line(
  tmp_path, data_unread
):
  holder = start_holder(tmp_path)
  try:
    message = one_line_error(tmp_path)
    assert f"process {holder.pid} on host {socket.gethostname()}" in message
    assert "in use" in message and "another workdir" in message
    assert os.listdir(tmp_path) == ["run.lock"]
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == holder.pid
    # In this process too: a notebook training twice in one workdir.
    with workdir_lock.hold(str(tmp_path / "notebook")):
      assert f"process {os.getpid()} " in one_line_error(tmp_path / "notebook")
  finally:
    holder.kill()
    holder.communicate()


def test_a_killed_runs_lock_is_taken_over_and_the_run_trains(tmp_path, caplog):
  holder = start_holder(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.communicate()
  assert (tmp_path / "run.lock").exists()  # Left behind, its flock gone.
  # The config of test_preemption's uninterrupted run: compiled already.
  results = mock_runs.train_here(
    tmp_path, {"checkpoint_every_steps": mock_runs.TOTAL_STEPS}
  )
  assert results["steps"] == mock_runs.TOTAL_STEPS
  (warning,) = [r for r in caplog.records if "Taking over" in r.getMessage()]
  assert warning.levelname == "WARNING"
  assert f"process {holder.pid} on host" in warning.getMessage()
  assert (tmp_path / "results.json").exists()
  assert not (tmp_path / "run.lock").exists()  # Released at the end.


@contextlib.contextmanager
def read_only_folder(path):
  """`path`, made read-only: a read-only mount for root, whom permission
  bits do not stop."""
  path.mkdir()
  if os.geteuid() != 0:
    path.chmod(0o555)
    try:
      yield
    finally:
      path.chmod(0o755)
    return
  mount = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(path)],
    capture_output=True,
    text=True,
    check=False,
  )
  if mount.returncode:
    pytest.skip(f"root, and cannot mount a read-only tmpfs: {mount.stderr}")
  try:
    yield
  finally:
    subprocess.run(["umount", str(path)], check=True)


def test_an_unwritable_workdir_fails_in_one_line_before_the_data_loads(
  tmp_path, data_unread
):
  read_only = tmp_path / "read_only"
  with read_only_folder(read_only):
    cause = "Read-only file system" if os.geteuid() == 0 else "Permission"
    message = one_line_error(read_only)
    assert f"cannot write {read_only / 'run.lock'} ({cause}" in message
    # A parent that cannot hold the workdir.
    message = one_line_error(read_only / "new" / "run")
    assert f"cannot write {read_only / 'new'} ({cause}" in message
    assert os.listdir(read_only) == []


def test_a_run_that_cannot_read_its_data_leaves_no_workdir(
  tmp_path, monkeypatch
):
  def prepare(input_config):
    raise errors.DataError(f"{input_config.dataset} is missing")

  monkeypatch.setattr(pipeline, "prepare", prepare)
  for workdir in (tmp_path / "new" / "run", tmp_path / "existing"):
    if workdir.name == "existing":
      workdir.mkdir()
    assert "is missing" in one_line_error(workdir)
  # The folders the run made are gone; the one it found is left, empty.
  assert sorted(os.listdir(tmp_path)) == ["existing"]
  assert os.listdir(tmp_path / "existing") == []


def test_without_flock_the_holder_named_in_the_file_decides(
  tmp_path, monkeypatch, caplog
):
  """As on gs:// paths and filesystems without flock."""
  monkeypatch.setattr(workdir_lock, "_take_flock", lambda *args: None)
  lock_file = tmp_path / "run.lock"
  here = socket.gethostname()
  for holder, refused in (
    ({"host": here, "pid": os.getpid()}, "delete"),  # Alive: refused.
    ({"host": "elsewhere", "pid": 1}, "host elsewhere"),  # Unknowable.
    ({"host": here, "pid": 2**22 + 1}, None),  # Above Linux's pid_max: gone.
  ):
    lock_file.write_text(json.dumps({**holder, "started": "then"}))
    if refused:
      with pytest.raises(workdir_lock.WorkdirInUseError, match=refused):
        with workdir_lock.hold(str(tmp_path)):
          pass
      assert json.loads(lock_file.read_text())["pid"] == holder["pid"]
    else:
      with workdir_lock.hold(str(tmp_path)):
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
      assert "Taking over" in caplog.text
      assert not lock_file.exists()


def test_every_process_fails_as_process_0_does(tmp_path, monkeypatch):
  """A multi-process run's processes, played one after another here: process
  0 takes the lock and broadcasts the outcome, which the others raise."""
  held, free = str(tmp_path / "held"), str(tmp_path / "free")
  this_process, broadcasts = [0], []

  def broadcast_one_to_all(payload):  # Process 0's payload, to all.
    if this_process[0] == 0:
      broadcasts.append(payload.copy())
    return broadcasts[-1]

  def hold_as(process_index, workdir):
    this_process[0] = process_index
    return workdir_lock.hold(workdir)

  jax = workdir_lock.jax
  monkeypatch.setattr(jax, "process_index", lambda: this_process[0])
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(
    workdir_lock.multihost_utils, "broadcast_one_to_all", broadcast_one_to_all
  )
  with hold_as(0, held):  # A live run's.
    messages = []
    for process_index in (0, 1):
      with pytest.raises(workdir_lock.WorkdirInUseError) as error:
        with hold_as(process_index, held):
          pass
      messages.append(str(error.value))
    assert messages[0] == messages[1] and "in use by" in messages[0]
    this_process[0] = 0  # Releases it.
  # A free workdir: process 0 takes it; the others go on, making nothing.
  with hold_as(0, free):
    assert os.listdir(free) == ["run.lock"]
  with hold_as(1, free):
    assert not os.path.exists(free)
  assert [payload[0] for payload in broadcasts] == [0, 1, 0]


def test_a_sweeps_runs_each_hold_their_own_lock(
  tiny_config, tmp_path, monkeypatch
):
  """The sweep's own loop, each run's training and analysis stood in for: a
  real sweep takes seconds (tests/test_sweep.py has them)."""
  sweep = tmp_path / "sweep"
  held = []

  def training(members):  # In the workdir train_group holds.
    (workdir,) = members.workdirs
    held.append(sorted(str(p.parent) for p in sweep.rglob("run.lock")))
    with workdir_lock.hold(str(sweep)):  # Runs block neither their parent,
      with workdir_lock.hold(workdir + "_sibling"):  # nor each other.
        outputs.write_json(os.path.join(workdir, "results.json"), {"steps": 1})
    return [loop.Outcome(results={})]

  def analyze(run_dir):
    os.makedirs(os.path.join(run_dir, "analysis"))
    outputs.write_json(os.path.join(run_dir, "analysis", "analysis.json"), {})

  monkeypatch.setattr(loop, "_train_group", training)
  monkeypatch.setattr(runner.report, "analyze", analyze)
  monkeypatch.setattr(
    runner.sweep_report, "summary_figure", lambda *args: figure.Figure()
  )
  runner.run_sweep(tiny_config, str(sweep), ["loss.kl_weight=1,0.1"])
  runs = [sweep / "loss.kl_weight=1.0", sweep / "loss.kl_weight=0.1"]
  assert held == [[str(run)] for run in runs]
  assert not list(tmp_path.rglob("run.lock*"))  # Each released its own.
  for run in runs:
    assert (run / "results.json").exists()
    assert not run.with_name(run.name + "_sibling").exists()
