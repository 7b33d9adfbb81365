"""The console of the commands: plain progress lines, marked warnings."""

import errno
import logging
import os
import re

import pytest

import mock_runs
from vae_jax import cli
from vae_jax.trainers import console as console_lib

# absl's own prefix: level, date, time, thread, file and line.
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]")


def record(level, message, *args, exc_info=None):
  return logging.LogRecord(
    "absl", level, "/x/vae_jax/loop.py", 12, message, args, exc_info
  )


def test_info_is_printed_as_its_message_alone():
  formatter = cli.ConsoleFormatter()
  assert formatter.format(record(logging.INFO, "step %d/%d", 3, 9)) == (
    "step 3/9"
  )


@pytest.mark.parametrize(
  "level,marker", [(logging.WARNING, "warning"), (logging.ERROR, "error")]
)
def test_warnings_and_errors_keep_a_marker(level, marker):
  formatter = cli.ConsoleFormatter()
  assert formatter.format(record(level, "disk %s", "full")) == (
    f"{marker} (loop.py:12): disk full"
  )


def test_a_logged_traceback_follows_its_marked_line():
  try:
    raise OSError("no space left")
  except OSError as e:
    exc_info = (type(e), e, e.__traceback__)
  lines = cli.ConsoleFormatter().format(
    record(logging.ERROR, "save failed", exc_info=exc_info)
  )
  assert lines.startswith("error (loop.py:12): save failed\nTraceback")
  assert lines.endswith("OSError: no space left")


def test_progress_lines_give_the_pace_and_the_time_left(monkeypatch, caplog):
  clock = iter([0.0, 10.0, 12.0, 13.0])
  monkeypatch.setattr(console_lib.time, "perf_counter", lambda: next(clock))
  caplog.set_level(logging.INFO)
  console = console_lib.Console(
    total_steps=1000, steps_per_epoch=200, start_step=0, batch_size=10
  )
  console.window(100, {"loss": 2.5, "kl": 0.125, "nonfinite_steps": 0.0})
  console.window(200, {"loss": 2.0, "kl": 0.25, "nonfinite_steps": 3.0})
  console.epoch(200, {"test_loss": 1.5})
  # 100 steps of 10 images in 10 s, then in 2 s. The first window's pace
  # (compilation included) projects its 900 steps left; later ones the pace
  # since it: 800 steps at 2 s per 100, then at 3 s per 100 once the epoch's
  # evaluation is in.
  assert caplog.messages == [
    "step 100/1000: kl 0.125, loss 2.5; 100 images/s; 1m30s left",
    "step 200/1000: kl 0.25, loss 2; 500 images/s; 0m16s left; "
    "3 non-finite steps skipped",
    "epoch 1/5: test loss 1.5; 0m24s left",
  ]


def test_a_failed_write_in_a_library_is_one_line():
  def save_fails():  # As an unwrapped write on a full disk raises.
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/w/x.json")

  with pytest.raises(SystemExit) as exited:
    cli.run_reporting_errors(save_fails)
  assert str(exited.value) == (
    "vae_jax: error: cannot write /w/x.json (No space left on device)."
  )
  # Other OSErrors are bugs, or failures to read: kept whole.
  with pytest.raises(FileNotFoundError):
    cli.run_reporting_errors(open, "/no/such/file")


@pytest.mark.parametrize(
  "path,message,exc_info,kept",
  [
    # Failures of background writes, raised again later as one line.
    ("/x/clu/asynclib.py", "Error in producer thread for AsyncWriter", 1, 0),
    ("/x/orbax/checkpoint/future.py", "_SignalingThread.run() raised", 1, 0),
    ("/x/orbax/checkpoint/checkpoint.py", "Metadata file does not exist", 0, 1),
  ],
)
def test_background_write_failures_are_left_to_their_one_line(
  path, message, exc_info, kept
):
  try:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  except OSError as e:
    error = (type(e), e, e.__traceback__) if exc_info else None
  record = logging.LogRecord("absl", logging.ERROR, path, 1, message, (), error)
  quiet = cli._QuietLibraries()  # pylint: disable=protected-access
  assert quiet.filter(record) == bool(kept)


@pytest.mark.slow
def test_a_run_prints_its_config_line_then_plain_progress(tmp_path):
  # One epoch of mock_runs' tiny run: 8 steps, a log line every 2.
  code, output = mock_runs.finish(
    mock_runs.start_run(
      tmp_path, "--config.num_epochs=1", "--config.checkpoint_every_steps=8"
    )
  )
  assert code == 0, output[-3000:]
  lines = output.strip().splitlines()
  config_json = os.path.join(tmp_path, "config.json")
  assert lines[0].startswith(f"Config {mock_runs.TINY_RUN_FLAGS[0][9:]}, ")
  assert "num_epochs=1" in lines[0]
  assert lines[0].endswith(f"; the whole config is written to {config_json}.")
  assert os.path.isfile(config_json)
  assert not [line for line in lines if ABSL_PREFIX.match(line)]
  progress = [line for line in lines if line.startswith("step ")]
  assert [line.split(":")[0] for line in progress] == [
    f"step {step}/8" for step in (2, 4, 6, 8)
  ]
  for line in progress:
    assert re.fullmatch(
      r"step \d/8: .*loss [-\d.e+]+.*; \d+ images/s; \d+m\d\ds left", line
    ), line
  # The config is one line, not a dump of its every field.
  before = lines[: lines.index(progress[0])]
  assert len([line for line in before if not line.startswith("warning")]) <= 6


def test_a_run_stopped_by_non_finite_steps_ends_in_one_line():
  # The loop's FloatingPointError names the steps and what to try instead.
  def diverge():
    raise FloatingPointError("the last 2 steps, to step 7, had a NaN loss.")

  with pytest.raises(SystemExit) as stopped:
    cli.run_reporting_errors(diverge)
  assert str(stopped.value) == (
    cli.ERROR_PREFIX + "the last 2 steps, to step 7, had a NaN loss."
  )
