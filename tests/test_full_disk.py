"""Every write of a run or a command, when the disk is full (ENOSPC), a file
may not grow (EFBIG), the folder is read-only (EROFS) or forbidden (EACCES):
one `errors.WriteError` naming the file and the cause, nothing half-written
under a final name, and the newest committed checkpoint intact.

Real failures, not mocks: each case gets its own small tmpfs, filled up,
remounted read-only or entered as user nobody, and a file-size limit
(RLIMIT_FSIZE) for EFBIG. Mounting needs root: without it, ENOSPC falls
back to the file-size limit, as tests/mock_runs.py does, and the cases that
need a mount are skipped.
"""

import contextlib
import errno
import json
import os
import pathlib
import re
import resource
import shutil
import subprocess
import tempfile
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
from matplotlib import figure as mpl_figure
import ml_collections
import numpy as np
import pytest

import mock_runs
from testbed import checkpoint_arrays
from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.analysis import comparison
from vae_jax.analysis import report
from vae_jax.analysis import sampling
from vae_jax.core import checkpoints
from vae_jax.core import outputs

NOBODY = 65534
# RLIMIT_FSIZE for EFBIG: the payloads below are larger, and the files the
# test process writes meanwhile (pytest's captured output) smaller.
FILE_SIZE_LIMIT = 16_000
FAULTS = ("ENOSPC", "EFBIG", "EROFS", "EACCES")


def _mount(*args: str) -> str | None:
  """None if `mount *args` worked, else why not."""
  try:
    result = subprocess.run(
      ["mount", *args], capture_output=True, text=True, check=False
    )
  except OSError as e:
    return str(e)
  return None if result.returncode == 0 else result.stderr.strip()


def _unmount(path: str) -> None:
  # Lazy: a file a failed writer still holds open must not block it.
  subprocess.run(["umount", "-l", path], capture_output=True, check=False)


@contextlib.contextmanager
def tmpfs(size: str):
  """(a folder, None): a fresh tmpfs of `size` ('256k') mounted there, which
  user nobody may enter but not write; (a plain folder, why not) where
  mounting is impossible."""
  root = tempfile.mkdtemp(prefix="vae_jax_full_disk_")
  os.chmod(root, 0o755)  # mkdtemp's 0700 would keep nobody out.
  failure = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", root)
  try:
    yield root, failure
  finally:
    if failure is None:
      _unmount(root)
    shutil.rmtree(root, ignore_errors=True)


def _fill(root: str) -> str:
  """Writes a file that takes all the space left on the tmpfs at `root`."""
  path = os.path.join(root, "filler")
  with open(path, "wb", buffering=0) as f:
    try:
      while True:
        f.write(b"\1" * 65536)
    except OSError as e:
      assert e.errno == errno.ENOSPC, e
  return path


@contextlib.contextmanager
def _file_size_limit():
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  # Python ignores SIGXFSZ, so writes past the limit fail with EFBIG.
  resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextlib.contextmanager
def _as_nobody(folder: str):
  if os.geteuid() != 0:  # Permission bits bind everyone else.
    os.chmod(folder, 0o555)
    try:
      yield
    finally:
      os.chmod(folder, 0o755)
    return
  os.seteuid(NOBODY)  # Root ignores permission bits; nobody does not.
  try:
    yield
  finally:
    os.seteuid(0)


class Fault:
  """A folder `path` where, inside `failing()`, writes fail with `kind`."""

  def __init__(self, kind: str, root: str, mounted: bool):
    if kind == "ENOSPC" and not mounted:
      kind = "EFBIG"  # The file-size limit stands in for a full disk.
    self._how, self._root = kind, root
    self.cause = os.strerror(getattr(errno, kind))
    self.path = os.path.join(root, "out")
    os.makedirs(self.path)

  @contextlib.contextmanager
  def failing(self):
    if self._how == "ENOSPC":
      filler = _fill(self._root)
      try:
        yield
      finally:
        os.remove(filler)
    elif self._how == "EFBIG":
      with _file_size_limit():
        yield
    elif self._how == "EROFS":
      failure = _mount("-o", "remount,ro", self._root)
      assert failure is None, failure
      try:
        yield
      finally:
        assert _mount("-o", "remount,rw", self._root) is None
    else:
      with _as_nobody(self.path):
        yield

  def error(self, path: str) -> str:
    """The WriteError message expected for `path` (a regex)."""
    return rf"^cannot write {path} \({re.escape(self.cause)}\)\.$"


@pytest.fixture(params=FAULTS)
def fault(request):
  with tmpfs("256k") as (root, mount_failure):
    if mount_failure is not None and request.param == "EROFS":
      pytest.skip(f"cannot mount a tmpfs to remount read-only: {mount_failure}")
    yield Fault(request.param, root, mounted=mount_failure is None)


def noise(shape) -> np.ndarray:
  """uint8 noise: its PNG is as large as its pixels, over any size limit."""
  return np.random.default_rng(0).integers(0, 256, shape, np.uint8)


def noise_figure() -> mpl_figure.Figure:
  figure = mpl_figure.Figure(figsize=(3, 3), dpi=100)
  figure.add_subplot().imshow(noise((150, 150, 3)))
  return figure


def test_every_output_fails_in_one_line_and_keeps_the_old_file(fault):
  folder = fault.path
  results = os.path.join(folder, "results.json")
  outputs.write_json(results, {"test_loss": 1.0})
  big = {"test_loss": 2.0, "padding": "x" * 2 * FILE_SIZE_LIMIT}
  writes = {
    results: lambda: outputs.write_json(results, big),
    f"{folder}/grid.png": lambda: outputs.write_png(
      f"{folder}/grid.png", noise((100, 100, 3))
    ),
    # compare's output and the sweep's summary figure.
    f"{folder}/figure.png": lambda: outputs.save_figure(
      f"{folder}/figure.png", noise_figure()
    ),
    f"{folder}/samples.npz": lambda: sampling.write_samples(
      f"{folder}/samples.npz", noise((10, 40, 40, 3))
    ),
  }
  with fault.failing():
    for path, write in writes.items():
      with pytest.raises(errors.WriteError, match=fault.error(path)):
        write()
    # The analysis: its folder, or its first figure.
    analysis = fault.error(f"{folder}/analysis(/figure.png)?")
    with pytest.raises(errors.WriteError, match=analysis):
      outputs.write_analysis(
        f"{folder}/analysis", {"figure.png": noise_figure()}, big
      )
  assert json.loads(pathlib.Path(results).read_text()) == {"test_loss": 1.0}
  leftovers = set(os.listdir(folder)) - {"results.json", "analysis"}
  assert not leftovers  # No temporary, no half-written file.
  if os.path.isdir(f"{folder}/analysis"):
    assert not os.listdir(f"{folder}/analysis")


def test_event_writer_fails_in_one_line_naming_its_file(fault):
  """TensorFlow's event writer raises when it flushes, after every write;
  clu's AsyncWriter raises that at the next call or flush."""
  writer = None
  with fault.failing():
    with pytest.raises(errors.WriteError) as raised:
      writer = outputs.EventWriter(fault.path)
      writer.write_scalars(1, {"loss": 1.0})
      writer.write_images(1, {"noise": noise((1, 100, 100, 3))})
      writer.write_scalars(2, {"loss": 1.0})
      writer.flush()
  assert re.match(
    fault.error(rf"{fault.path}/events\.out\.tfevents\.\S+"),
    str(raised.value),
  ), raised.value
  if writer is not None:
    with contextlib.suppress(errors.WriteError):
      writer.close()


class _State(NamedTuple):
  step: jax.Array
  params: jax.Array


def test_a_failed_checkpoint_keeps_the_last_one(fault):
  config = ml_collections.ConfigDict({"max_checkpoints_to_keep": 2})
  manager = checkpoints.make_manager(fault.path, config)
  # Noise: TensorStore compresses, and zeros would stay under the limit.
  params = noise((2 * FILE_SIZE_LIMIT,)).view(np.float32)
  state, rng = _State(jnp.array(1), jnp.asarray(params)), jax.random.key(0)
  checkpoints.save(manager, state, rng)
  checkpoints.close(manager)
  manager = checkpoints.make_manager(fault.path, config)
  threads = set(threading.enumerate())
  with fault.failing():
    with pytest.raises(checkpoints.SaveError) as raised:
      checkpoints.save(manager, state._replace(step=jnp.array(2)), rng)
      checkpoints.close(manager)
  # None of Orbax's signaling threads waits on, which would hold the process
  # at its exit for minutes (its idle pools' plain threads do not).
  waiting = set(threading.enumerate()) - threads
  assert [t for t in waiting if type(t) is not threading.Thread] == []
  message = str(raised.value)
  assert message.startswith(
    f"writing a checkpoint in {fault.path}/checkpoints failed ("
  ), message
  assert fault.cause in message, message
  manager = checkpoints.make_manager(fault.path, config)
  assert manager.all_steps() == [1]
  restored, _ = checkpoints.restore(manager, state, rng)
  assert int(restored.step) == 1
  manager.close()


@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS", "EACCES"], indirect=True)
def test_commands_check_their_output_before_the_slow_part(fault):
  """analyze, compare and sample probe their output folder first: here no
  run is loaded, so anything but a WriteError means they did not. (A
  file-size limit lets the probe's byte through.)"""
  folder = fault.path
  run_dir = os.path.join(folder, "run")
  os.makedirs(run_dir)
  with open(os.path.join(run_dir, "config.json"), "w") as f:
    f.write(make_tiny_config().to_json())
  with fault.failing():
    with pytest.raises(
      errors.WriteError, match=fault.error(f"{run_dir}/analysis")
    ):
      report.analyze(run_dir)
    with pytest.raises(errors.WriteError, match=fault.error(folder)):
      comparison.compare(["a", "b"], f"{folder}/compare.png")
    with pytest.raises(errors.WriteError, match=fault.error(folder)):
      outputs.check_output_path(f"{folder}/samples.npz", ".npz")
  assert sorted(os.listdir(folder)) == ["run"]


def _newest_checkpoint(workdir: str) -> int | None:
  config = ml_collections.ConfigDict({"max_checkpoints_to_keep": 2})
  manager = checkpoints.make_manager(workdir, config)
  newest = manager.latest_step()
  manager.close()
  return newest


def _assert_nothing_half_written(workdir: str) -> None:
  names = os.listdir(workdir)
  assert not [name for name in names if ".tmp-" in name], names
  assert "results.json" not in names
  for name in names:  # Each file under its final name is whole.
    if name.endswith(".png"):
      png = pathlib.Path(workdir, name).read_bytes()
      assert png[-8:-4] == b"IEND", name


def _one_line_save_failure(output: str, cause: str) -> None:
  """The run's report is its one error line, and the last thing printed:
  the failed save's other writes are waited for and Orbax's threads stopped
  before it, so none print tracebacks as the process exits."""
  lines = output.strip().splitlines()
  assert [line for line in lines if "error" in line] == lines[-1:], output
  assert "Traceback" not in output, output[-3000:]
  assert lines[-1].startswith("vae_jax: error: writing a checkpoint in "), (
    output[-3000:]
  )
  assert cause in lines[-1], lines[-1]


@pytest.mark.slow
def test_a_full_disk_stops_a_run_in_one_line_and_a_rerun_resumes(monkeypatch):
  """One run's life on full disks: its checkpoints' filesystem fills (the
  command ends in one line), then its workdir's while the rerun trains (a
  WriteError naming an image or an events file), and a rerun with room
  finishes from the newest committed checkpoint. The checkpoints are a
  tmpfs of their own, for two of the tiny run's ~390 kB checkpoints but not
  a third; without mounts, a file-size limit fills the disk once step 3 is
  committed, and the workdir's part is left out."""
  overrides = {"num_epochs": 1}  # 8 steps, a save at each.
  with tmpfs("16m") as (workdir, failure):
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    os.makedirs(checkpoint_dir)
    mounted = failure is None and (
      _mount("-t", "tmpfs", "-o", "size=1000k", "tmpfs", checkpoint_dir) is None
    )
    try:
      faults = {} if mounted else {mock_runs.DISK_FULL_AFTER: "3"}
      code, output = mock_runs.finish(
        mock_runs.start_run(
          workdir, *mock_runs.config_flags(overrides), faults=faults
        )
      )
      assert code == 1, output[-3000:]
      _one_line_save_failure(
        output, os.strerror(errno.ENOSPC if mounted else errno.EFBIG)
      )
      _assert_nothing_half_written(workdir)
      newest = _newest_checkpoint(workdir)
      assert newest is not None and 0 < newest < 8, output[-3000:]
      arrays = checkpoint_arrays(workdir, newest)
      assert arrays["['state']['step']"] == newest

      if mounted:  # Room for checkpoints; the workdir fills at a save.
        assert _mount("-o", "remount,size=16m", checkpoint_dir) is None
        save, filled = checkpoints.save, []

        def save_then_fill(*args, **kwargs):
          save(*args, **kwargs)
          if not filled:
            filled.append(_fill(workdir))

        monkeypatch.setattr(checkpoints, "save", save_then_fill)
        with pytest.raises(
          errors.WriteError,
          match=rf"^cannot write {workdir}/[\w.-]+ \(No space left on device\)",
        ):
          mock_runs.train_here(workdir, overrides)
        monkeypatch.undo()
        os.remove(filled[0])
        _assert_nothing_half_written(workdir)
        assert _newest_checkpoint(workdir) > newest
        newest = _newest_checkpoint(workdir)

      results = mock_runs.train_here(workdir, overrides)
      assert results["start_step"] == newest and results["steps"] == 8
    finally:
      if mounted:
        _unmount(checkpoint_dir)
