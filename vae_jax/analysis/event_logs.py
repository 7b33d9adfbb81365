"""Scalars read back from the TensorBoard event files of a run's workdir.

`loop.train_and_evaluate` logs through clu's `SummaryWriter`, which
writes `events.out.tfevents.*` files with `tf.summary.scalar`: TF2 stores each
scalar as a rank-0 tensor summary (older writers used `simple_value`; both are
read). A resumed run opens a new file and writes again the steps after its
checkpoint, so for a repeated (tag, step) the newest write wins.
"""

import os

import numpy as np
import tensorflow as tf

EVENT_FILE_PATTERN = "events.out.tfevents.*"


def _scalar(value) -> float | None:
  """The value of a scalar summary; None for images, text and other tensors."""
  if value.HasField("simple_value"):
    return float(value.simple_value)
  if not value.HasField("tensor") or value.tensor.tensor_shape.dim:
    return None  # Images are rank-1 string tensors.
  array = tf.make_ndarray(value.tensor)
  if not np.issubdtype(array.dtype, np.number):
    return None
  return float(array)


def _events(path: str):
  """The file's events in order; a tail cut short by a kill is dropped."""
  records = iter(tf.data.TFRecordDataset(path))
  while True:
    try:
      record = next(records)
    except StopIteration:
      return
    except tf.errors.DataLossError:  # The writer died mid-record.
      return
    yield tf.compat.v1.Event.FromString(record.numpy())


def read_scalars(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Tag -> (steps, values), steps ascending (int64), values float64.

  Reads every event file directly in `workdir`. For a step written more than
  once, the write with the latest wall time wins (file order breaks ties).
  """
  paths = tf.io.gfile.glob(os.path.join(workdir, EVENT_FILE_PATTERN))
  # By tag, then step: (wall_time, order) of the kept write, and its value.
  latest: dict[str, dict[int, tuple[tuple[float, int], float]]] = {}
  order = 0
  for path in sorted(paths):
    for event in _events(path):
      for value in event.summary.value:
        scalar = _scalar(value)
        if scalar is None:
          continue
        order += 1
        key = (event.wall_time, order)
        by_step = latest.setdefault(value.tag, {})
        kept = by_step.get(event.step)
        if kept is None or key >= kept[0]:
          by_step[event.step] = (key, scalar)
  scalars = {}
  for tag, by_step in sorted(latest.items()):
    steps = np.array(sorted(by_step), np.int64)
    values = np.array([by_step[s][1] for s in steps], np.float64)
    scalars[tag] = (steps, values)
  return scalars
