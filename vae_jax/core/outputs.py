"""Run outputs written atomically: a reader sees the old file or the new one.

Everything a run leaves for people and tools (config.json, results.json,
figures, sample arrays) goes through `atomic_open`, so a crash, a kill or a
full disk never leaves a half-written file under the final name. Paths may
be local or on any filesystem `tf.io.gfile` knows (gs://...).

A write that fails (a full disk, a file-size limit, a read-only or forbidden
folder) raises `errors.WriteError`, which names the file and the cause, so
that every command reports it in one line. TensorBoard's events are written
in the background (`EventWriter`); their failures surface at the next write
or flush.
"""

from collections.abc import Iterator, Mapping
import contextlib
import io
import json
import os
import re
from typing import Any

from clu import asynclib
from clu import metric_writers
import numpy as np
import tensorflow as tf

from vae_jax import errors

# TensorFlow's file errors read "[{{function_node ...}} ]<path>; <cause>",
# then lines of context and " [Op:...] name: " for ops.
_TF_FILE_ERROR = re.compile(
  r"^(?:\{\{[^}]*\}\}\s*)?(?P<path>.+?); (?P<cause>[^;\[]+?)(?:\s*\[Op:.*)?$"
)


def _named_cause(error: BaseException) -> tuple[str | None, str]:
  """The file a TensorFlow or OS error names (None if none) and its cause in
  words ("No space left on device")."""
  if getattr(error, "strerror", None):  # An OSError.
    return error.filename, error.strerror
  first_line = (getattr(error, "message", "") or str(error)).strip()
  first_line = first_line.splitlines()[0] if first_line else ""
  match = _TF_FILE_ERROR.match(first_line)
  if match is None:
    return None, first_line or type(error).__name__
  return match["path"], match["cause"]


def _write_error(path: str, error: BaseException) -> errors.WriteError:
  """A WriteError for `error`, an OSError or a tf.errors.OpError raised
  while writing `path`."""
  _, cause = _named_cause(error)
  return errors.WriteError(f"cannot write {path} ({cause}).")


@contextlib.contextmanager
def reporting_write_errors(path: str) -> Iterator[None]:
  """OSError and TensorFlow's file errors in the body as WriteError, naming
  `path`."""
  try:
    yield
  except (tf.errors.OpError, OSError) as e:
    raise _write_error(path, e) from e


def _remove_temporary(tmp_path: str) -> None:
  try:
    if tf.io.gfile.exists(tmp_path):
      tf.io.gfile.remove(tmp_path)
  except (tf.errors.OpError, OSError):
    # A folder that turned read-only keeps it; it is not under the final
    # name, and the write's own failure is the one to report.
    pass


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[Any]:
  """A file object for `path`; renamed into place only if the body succeeds.

  A failure to write raises WriteError naming `path`; the temporary file is
  removed whatever fails.
  """
  tmp_path = f"{path}.tmp-{os.getpid()}"
  try:
    with reporting_write_errors(path):
      with tf.io.gfile.GFile(tmp_path, mode) as f:
        yield f
      tf.io.gfile.rename(tmp_path, path, overwrite=True)
  finally:
    _remove_temporary(tmp_path)


def check_writable(folder: str) -> None:
  """Makes `folder`; raises WriteError unless a file can be written in it.

  For commands to call before their slow part, not after it. A disk with a
  few bytes left passes, and fails at the real write.
  """
  folder = folder or "."
  probe = os.path.join(folder, f".vae_jax-write-check-{os.getpid()}")
  with reporting_write_errors(folder):
    tf.io.gfile.makedirs(folder)
  try:
    with reporting_write_errors(folder):
      with tf.io.gfile.GFile(probe, "wb") as f:
        f.write(b"\0")
  finally:
    _remove_temporary(probe)


def check_output_path(path: str, extension: str) -> None:
  """Makes the folder of a command's --output `path`; fails in one line when
  `path` cannot hold the file or lacks `extension` ('.png')."""
  if not path.endswith(extension):
    raise errors.UserInputError(f"--output {path!r} must end in {extension}.")
  if tf.io.gfile.isdir(path):
    raise errors.UserInputError(f"--output {path!r} is a directory.")
  folder = os.path.dirname(path)
  try:
    if folder:
      tf.io.gfile.makedirs(folder)
  except (tf.errors.OpError, OSError) as e:
    raise errors.WriteError(
      f"cannot create the folder of --output {path!r} ({_named_cause(e)[1]})."
    ) from None
  check_writable(folder)


def write_analysis(
  out_dir: str, figures: dict[str, Any], report: dict[str, Any]
) -> None:
  """An analysis: each figure as out_dir/<name>, then analysis.json."""
  with reporting_write_errors(out_dir):
    tf.io.gfile.makedirs(out_dir)
  for name, figure in figures.items():
    save_figure(os.path.join(out_dir, name), figure)
  write_json(os.path.join(out_dir, "analysis.json"), report)


def write_json(path: str, payload: Any) -> None:
  """`payload`, or an already serialized JSON string, to `path`."""
  with atomic_open(path) as f:
    f.write(
      payload
      if isinstance(payload, str)
      else json.dumps(payload, indent=2, sort_keys=True)
    )


def write_png(path: str, image: np.ndarray) -> None:
  """A [H, W, C] uint8 image to `path`."""
  with atomic_open(path, "wb") as f:
    f.write(tf.io.encode_png(image).numpy())


def write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
  """`arrays` as the named arrays of the compressed .npz file `path`."""
  # zipfile reads back what it wrote, which a GFile open for writing can't.
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  with atomic_open(path, "wb") as f:
    f.write(buffer.getvalue())


def figure_png(figure) -> bytes:
  """A matplotlib figure as PNG bytes, as `save_figure` writes it."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight")
  return buffer.getvalue()


def save_figure(path: str, figure) -> None:
  """A matplotlib figure to `path` as PNG."""
  png = figure_png(figure)  # Drawn before the file is opened.
  with atomic_open(path, "wb") as f:
    f.write(png)


def check_workdir(workdir: str) -> None:
  """Raises UserInputError when `workdir` cannot hold a run's outputs."""
  if tf.io.gfile.exists(workdir) and not tf.io.gfile.isdir(workdir):
    raise errors.UserInputError(
      f"workdir {workdir!r} exists and is not a directory."
    )


@contextlib.contextmanager
def _reporting_event_errors(workdir: str) -> Iterator[None]:
  try:
    yield
  except (asynclib.AsyncError, tf.errors.OpError, OSError) as e:
    # clu wraps the writer's own error, twice: report the innermost.
    cause = e
    while cause.__cause__ is not None:
      cause = cause.__cause__
    path, _ = _named_cause(cause)
    raise _write_error(path or os.path.join(workdir, "events"), cause) from e


class EventWriter(metric_writers.MetricWriter):
  """TensorBoard summaries in `workdir`, written in a background thread.

  TensorFlow's event writer raises on a full disk (and on a read-only or
  forbidden folder) when it flushes, which it does after every write; clu's
  AsyncWriter keeps that error and raises it at the next call. Either way it
  leaves here as WriteError naming the event file, so a run stops in one
  line instead of losing its events.
  """

  def __init__(self, workdir: str):
    self._workdir = workdir
    with _reporting_event_errors(workdir):
      self._writer = metric_writers.AsyncWriter(
        metric_writers.SummaryWriter(workdir)
      )

  def _call(self, method: str, *args, **kwargs) -> None:
    with _reporting_event_errors(self._workdir):
      getattr(self._writer, method)(*args, **kwargs)

  def write_summaries(self, step, values, metadata=None):
    self._call("write_summaries", step, values, metadata)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    self._call("write_scalars", step, scalars)

  def write_images(self, step: int, images: Mapping[str, Any]):
    self._call("write_images", step, images)

  def write_videos(self, step: int, videos: Mapping[str, Any]):
    self._call("write_videos", step, videos)

  def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate):
    self._call("write_audios", step, audios, sample_rate=sample_rate)

  def write_texts(self, step: int, texts: Mapping[str, str]):
    self._call("write_texts", step, texts)

  def write_histograms(self, step: int, arrays, num_buckets=None):
    self._call("write_histograms", step, arrays, num_buckets)

  def write_hparams(self, hparams: Mapping[str, Any]):
    self._call("write_hparams", hparams)

  def flush(self):
    self._call("flush")

  def close(self):
    self._call("close")
