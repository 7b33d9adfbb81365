"""Which code, on which devices, trained a run: what its results name."""

import os
import subprocess

import jax

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str:
  return subprocess.run(
    ["git", "-C", _PACKAGE_DIR, *args],
    capture_output=True,
    text=True,
    timeout=30,
    check=True,
  ).stdout.strip()


def source_commit() -> str | None:
  """The commit of the git checkout that vae_jax runs from, '+modified'
  appended when its tracked files differ from it; None when vae_jax is not
  a tracked part of a checkout (an installed wheel) or git is missing.

  Asking git about this file, not the working directory, names the code
  that runs whatever directory a run is started from.
  """
  try:
    # A wheel installed into a virtualenv inside some checkout is in that
    # checkout's tree but not tracked by it: not its code.
    _git("ls-files", "--error-unmatch", "__init__.py")
    head = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no")
  except (OSError, subprocess.SubprocessError):
    return None
  return f"{head}+modified" if changed else head


def hardware() -> str:
  """The devices this process trains on, in words."""
  return (
    f"{jax.device_count()} x {jax.devices()[0].device_kind} "
    f"({jax.default_backend()}), {jax.process_count()} process(es), "
    f"{os.cpu_count()} CPU cores on the host"
  )
