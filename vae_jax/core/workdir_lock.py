"""One run per workdir: a lock file that a second run finds and refuses.

Two runs training in one workdir would interleave their checkpoints,
results.json and event files. `hold(workdir)` takes `<workdir>/run.lock`
(JSON: host, pid, started) for the run's life, before its data loads, so a
second run (`vae_jax.main`, a sweep's member, a notebook) fails in one line
naming the holder. Making it is also the run's first write, so a workdir
that cannot be written fails there, before anything slow.

On a local filesystem the run holds an `fcntl.flock` on the file. The kernel
drops it when the process dies, however it dies, so a lock file that nobody
flocks was left by a killed run and is taken over, with a warning. Where
flock is missing (gs:// paths, filesystems without it), the file's content
decides: a holder on this host whose process is gone is stale; one on
another host cannot be checked and is refused.

A multi-process run holds one lock: process 0 takes it and tells the others,
so that all fail together.
"""

from collections.abc import Iterator
import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import outputs

LOCK_NAME = "run.lock"


class WorkdirInUseError(errors.UserInputError):
  """Another run, alive or not known to have ended, holds the workdir."""


# What process 0 tells the others: an index into this (0: it holds the lock),
# then the error's message, in a fixed number of bytes.
_OUTCOMES = (None, WorkdirInUseError, errors.WriteError)
_OUTCOME_BYTES = 2048


def _holder_text(holder: dict[str, Any]) -> str:
  return (
    f"the run of process {holder.get('pid', '?')} on host "
    f"{holder.get('host', '?')}, started {holder.get('started', '?')}"
  )


def _read_holder(path: str) -> dict[str, Any]:
  """The holder `path` names; {} for a file being replaced or unreadable."""
  try:
    with tf.io.gfile.GFile(path) as f:
      holder = json.loads(f.read())
  except (tf.errors.OpError, OSError, ValueError):
    return {}
  return holder if isinstance(holder, dict) else {}


def _write_error(path: str, error: OSError) -> errors.WriteError:
  return errors.WriteError(f"cannot write {path} ({error.strerror or error}).")


def _in_use(workdir: str, holder: dict[str, Any]) -> WorkdirInUseError:
  return WorkdirInUseError(
    f"workdir {workdir} is in use by {_holder_text(holder)}; wait for that "
    "run to end or stop it, or train in another workdir."
  )


def _warn_stale(path: str, holder: dict[str, Any]) -> None:
  logging.warning(
    "Taking over %s from %s, which ended without releasing it (killed?).",
    path,
    _holder_text(holder),
  )


def _is_alive(pid: Any) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError):
    return True  # Another user's process, or a pid we cannot read: keep it.
  return True


class _FlockedFile:
  """`path` flocked through `fd`: the lock of local filesystems."""

  def __init__(self, path: str, fd: int):
    self.path, self.fd = path, fd

  def release(self) -> None:
    try:  # Removed while flocked: a waiting run then finds the file gone.
      if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
        os.remove(self.path)
    except FileNotFoundError:
      pass
    finally:
      os.close(self.fd)


class _ContentLock:
  """`path` naming `holder`, where flock is not available."""

  def __init__(self, path: str, holder: dict[str, Any]):
    self.path, self.holder = path, holder

  def release(self) -> None:
    if _read_holder(self.path) == self.holder:  # Not one a user replaced.
      tf.io.gfile.remove(self.path)


def _flocked(fd: int) -> bool:
  """Flocks `fd`; False when another open file holds the flock."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  return True


class _NoHardLinks(Exception):
  """This filesystem cannot link the lock file into place."""


def _placed(workdir: str, tmp_path: str, path: str) -> bool:
  """Puts the flocked `tmp_path` at `path`, over a stale lock if need be;
  False when `path` changed meanwhile (try again)."""
  try:
    os.link(tmp_path, path)  # Never replaces a file, unlike a rename.
    return True
  except FileExistsError:
    pass
  except OSError as e:
    if e.errno in (errno.EPERM, errno.EOPNOTSUPP):
      raise _NoHardLinks() from e
    raise
  try:
    old_fd = os.open(path, os.O_RDONLY)
  except FileNotFoundError:  # Released meanwhile.
    return False
  try:
    if not _flocked(old_fd):
      raise _in_use(workdir, _read_holder(path))
    try:
      if not os.path.samestat(os.fstat(old_fd), os.stat(path)):
        return False  # Its run removed it and another made a new one.
    except FileNotFoundError:  # Its run removed it before we flocked it.
      return False
    _warn_stale(path, _read_holder(path))
    os.rename(tmp_path, path)
    return True
  finally:
    os.close(old_fd)


def _take_flock(
  workdir: str, path: str, holder: dict[str, Any]
) -> _FlockedFile | None:
  """`path` made or taken over, flocked; None where flock or hard links are
  missing.

  The holder is written to a flocked temporary file that is then linked, or
  renamed over a stale lock, into place: no run ever finds the lock file
  empty, or unflocked while its run lives.
  """
  tmp_path = f"{path}.tmp-{holder['host']}-{holder['pid']}"
  try:
    fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
  except OSError as e:  # The workdir's first write.
    raise _write_error(path, e) from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # A new file nobody holds: this filesystem lacks flock.
      os.close(fd)
      return None
    try:
      os.write(fd, json.dumps(holder).encode())
      while not _placed(workdir, tmp_path, path):
        pass
    except _NoHardLinks:
      os.close(fd)
      return None
    except OSError as e:
      raise _write_error(path, e) from None
    return _FlockedFile(path, fd)
  except BaseException:
    with contextlib.suppress(OSError):
      os.close(fd)
    raise
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp_path)


def _take_by_content(
  workdir: str, path: str, holder: dict[str, Any]
) -> _ContentLock:
  """`path` written with `holder`, unless a run that may live names itself
  there. Two runs starting within the same moment may both proceed: without
  flock nothing makes the check and the write one step."""
  if tf.io.gfile.exists(path):
    old = _read_holder(path)
    if old.get("host") != holder["host"] or _is_alive(old.get("pid")):
      raise WorkdirInUseError(
        f"workdir {workdir} is locked by {_holder_text(old)}; if that run "
        f"has ended, delete {path}, else wait for it or train in another "
        "workdir."
      )
    _warn_stale(path, old)
  outputs.write_json(path, holder)  # Raises WriteError naming `path`.
  written = _read_holder(path)
  if written != holder:  # Another run wrote it at the same time.
    raise _in_use(workdir, written)
  return _ContentLock(path, holder)


def _is_remote(path: str) -> bool:
  return "://" in path


def _remove_if_empty(folders: list[str]) -> None:
  """Removes `folders`, deepest first, while they are empty."""
  for folder in folders:
    try:
      os.rmdir(folder)
    except OSError:  # Not empty: the run wrote something, keep it.
      return


def _make_folders(workdir: str) -> list[str]:
  """Makes `workdir` and its missing parents; returns those made, deepest
  first, to remove again if the run writes nothing."""
  if _is_remote(workdir):  # Buckets have no folders to leave behind.
    try:
      tf.io.gfile.makedirs(workdir)
    except tf.errors.OpError as e:
      raise errors.WriteError(
        f"cannot write {workdir} ({e.message})."
      ) from None
    return []
  missing, folder = [], os.path.abspath(workdir)
  while not os.path.lexists(folder):
    missing.append(folder)
    folder = os.path.dirname(folder)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    _remove_if_empty(missing)
    raise _write_error(e.filename or workdir, e) from None
  return missing


def _take(workdir: str) -> _FlockedFile | _ContentLock:
  holder = {
    "host": socket.gethostname(),
    "pid": os.getpid(),
    "started": datetime.datetime.now().astimezone().isoformat(" ", "seconds"),
  }
  path = os.path.join(workdir, LOCK_NAME)
  lock = None if _is_remote(path) else _take_flock(workdir, path, holder)
  return lock or _take_by_content(workdir, path, holder)


def _share_outcome(
  error: errors.UserInputError | None,
) -> errors.UserInputError | None:
  """Process 0's outcome on every process: the error each raises, if any.
  All processes must call it together."""
  payload = np.zeros(_OUTCOME_BYTES, np.int32)
  if error is not None:
    message = np.frombuffer(str(error).encode(), np.uint8)
    message = message[: _OUTCOME_BYTES - 1]
    payload[0] = _OUTCOMES.index(type(error))
    payload[1 : 1 + len(message)] = message
  payload = np.asarray(multihost_utils.broadcast_one_to_all(payload))
  if jax.process_index() == 0 or not payload[0]:
    return error
  message = payload[1:].astype(np.uint8).tobytes().rstrip(b"\0")
  return _OUTCOMES[payload[0]](message.decode(errors="replace"))


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds `workdir` for the body: makes it, and `workdir`/run.lock.

  Raises WorkdirInUseError when another run holds it, WriteError when it
  cannot be written, on every process of a multi-process run. The lock is
  released however the body ends; folders it made are removed again if the
  run left them empty (a run that could not read its data).
  """
  made, lock, error = [], None, None
  if jax.process_index() == 0:
    try:
      made = _make_folders(workdir)
      lock = _take(workdir)
    except (WorkdirInUseError, errors.WriteError) as e:
      error = e
  if jax.process_count() > 1:
    error = _share_outcome(error)
  try:
    if error is not None:
      raise error
    yield
  finally:
    if lock is not None:
      lock.release()
    _remove_if_empty(made)
