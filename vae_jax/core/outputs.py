"""Run outputs written atomically: a reader sees the old file or the new one.

Everything a run leaves for people and tools (config.json, results.json,
figures, sample arrays) goes through `atomic_open`, so a crash, a kill or a
full disk never leaves a half-written file under the final name. Paths may
be local or on any filesystem `tf.io.gfile` knows (gs://...).
"""

from collections.abc import Iterator
import contextlib
import io
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from vae_jax import errors


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[Any]:
  """A file object for `path`; renamed into place only if the body succeeds."""
  tmp_path = f"{path}.tmp-{os.getpid()}"
  try:
    with tf.io.gfile.GFile(tmp_path, mode) as f:
      yield f
    tf.io.gfile.rename(tmp_path, path, overwrite=True)
  finally:
    if tf.io.gfile.exists(tmp_path):
      tf.io.gfile.remove(tmp_path)


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
    raise errors.UserInputError(
      f"cannot create the folder of --output {path!r} ({type(e).__name__})."
    ) from None


def write_analysis(
  out_dir: str, figures: dict[str, Any], report: dict[str, Any]
) -> None:
  """An analysis: each figure as out_dir/<name>, then analysis.json."""
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


def figure_png(figure) -> bytes:
  """A matplotlib figure as PNG bytes, as `save_figure` writes it."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight")
  return buffer.getvalue()


def save_figure(path: str, figure) -> None:
  """A matplotlib figure to `path` as PNG."""
  with atomic_open(path, "wb") as f:
    f.write(figure_png(figure))


def check_workdir(workdir: str) -> None:
  """Raises UserInputError when `workdir` cannot hold a run's outputs."""
  if tf.io.gfile.exists(workdir) and not tf.io.gfile.isdir(workdir):
    raise errors.UserInputError(
      f"workdir {workdir!r} exists and is not a directory."
    )
