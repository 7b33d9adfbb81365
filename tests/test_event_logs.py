"""Scalars read back from the event files clu's default writer leaves."""

import glob
import time

from clu import metric_writers
import numpy as np

from vae_jax.analysis import event_logs


def write(workdir, scalars_by_step, images=False):
  """One writer (so one events file) with `{step: {tag: value}}`."""
  writer = metric_writers.create_default_writer(str(workdir))
  for step, scalars in scalars_by_step.items():
    writer.write_scalars(step, scalars)
    if images:
      writer.write_images(step, {"samples": np.zeros((1, 4, 4, 1), np.uint8)})
  writer.flush()
  writer.close()


def test_reads_scalars_sorted_by_step_and_skips_images(tmp_path):
  write(
    tmp_path,
    {2: {"train_loss": 3.0, "test_loss": 4.0}, 1: {"train_loss": 5.0}},
    images=True,
  )
  scalars = event_logs.read_scalars(str(tmp_path))
  assert set(scalars) == {"train_loss", "test_loss"}
  steps, values = scalars["train_loss"]
  assert steps.dtype == np.int64 and values.dtype == np.float64
  np.testing.assert_array_equal(steps, [1, 2])
  np.testing.assert_allclose(values, [5.0, 3.0])


def test_a_resumed_run_rewrites_steps(tmp_path):
  write(tmp_path, {step: {"train_loss": float(step)} for step in (1, 2, 3)})
  time.sleep(0.01)  # The resumed run's writes are strictly newer.
  # Resumed from the checkpoint at step 2: step 3 is written again.
  write(tmp_path, {step: {"train_loss": 10.0 * step} for step in (3, 4)})
  assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 2
  steps, values = event_logs.read_scalars(str(tmp_path))["train_loss"]
  np.testing.assert_array_equal(steps, [1, 2, 3, 4])
  np.testing.assert_allclose(values, [1.0, 2.0, 30.0, 40.0])


def test_a_truncated_file_keeps_what_was_written(tmp_path):
  write(tmp_path, {step: {"train_loss": float(step)} for step in (1, 2)})
  (path,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
  with open(path, "rb+") as f:  # A kill in the middle of the last record.
    f.truncate(len(f.read()) - 5)
  steps, _ = event_logs.read_scalars(str(tmp_path))["train_loss"]
  np.testing.assert_array_equal(steps, [1])


def test_a_workdir_without_events_has_no_scalars(tmp_path):
  assert not event_logs.read_scalars(str(tmp_path))
