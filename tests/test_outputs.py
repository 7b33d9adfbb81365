"""Atomic run outputs: a reader sees the old file or the new one, never a
half-written one, and a failed write leaves nothing behind."""

import errno
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import outputs


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "results.json")
  outputs.write_json(path, {"test_loss": 1.0})
  with pytest.raises(RuntimeError, match="disk gone"):
    with outputs.atomic_open(path) as f:
      f.write('{"test_loss": 2.')  # Half of the new file...
      raise RuntimeError("disk gone")  # ...then the write fails.
  assert json.loads(open(path).read()) == {"test_loss": 1.0}
  assert os.listdir(tmp_path) == ["results.json"]


def test_the_new_file_appears_whole_under_its_name(tmp_path):
  path = str(tmp_path / "grid.png")
  with outputs.atomic_open(path, "wb") as f:
    f.write(b"\x89PNG")
    # Until the body ends, only the temporary exists.
    assert not os.path.exists(path)
    assert [
      name.startswith("grid.png.tmp-") for name in os.listdir(tmp_path)
    ] == [True]
  assert open(path, "rb").read() == b"\x89PNG"
  outputs.write_png(path, np.zeros((2, 3, 1), np.uint8))
  assert open(path, "rb").read()[:4] == b"\x89PNG"
  assert os.listdir(tmp_path) == ["grid.png"]


def test_a_failed_write_is_reported_even_if_its_temporary_stays(
  tmp_path, monkeypatch
):
  # As when the folder turns read-only during the write: the removal of the
  # temporary fails too, and must not hide the write's own failure.
  def cannot_remove(path):
    raise tf.errors.PermissionDeniedError(
      None, None, f"{path}; Read-only file system"
    )

  monkeypatch.setattr(tf.io.gfile, "remove", cannot_remove)
  path = str(tmp_path / "results.json")
  with pytest.raises(
    errors.WriteError,
    match=rf"^cannot write {path} \(No space left on device\)\.$",
  ):
    with outputs.atomic_open(path) as f:
      f.write('{"test_loss": 2.')
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  assert not os.path.exists(path)
