"""The console of a training run: one line per log window, one per epoch.

Every scalar and image also goes to TensorBoard; the console says what a
person watching needs: where the run is, how it is doing, how fast, and how
long is left. The commands print these lines without absl's prefix
(`cli.ConsoleFormatter`).
"""

import time

from absl import logging


def _metrics_text(metrics: dict[str, float], prefix: str = "") -> str:
  return ", ".join(
    f"{name[len(prefix) :]} {value:.4g}"
    for name, value in sorted(metrics.items())
    if name.startswith(prefix)
  )


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Console:
  """The run's log: a line per log window and one per epoch, nothing more
  (TensorBoard gets every scalar and image)."""

  def __init__(
    self,
    total_steps: int,
    steps_per_epoch: int,
    start_step: int,
    batch_size: int,
    name: str = "",
  ):
    self._total_steps, self._steps_per_epoch = total_steps, steps_per_epoch
    self._batch_size = batch_size
    # Starts every line: a vectorized group's member, by name.
    self._prefix = f"{name}: " if name else ""
    self._start = (time.perf_counter(), start_step)
    self._window_start = self._start
    # (time, step) at the end of the first window: the time left is
    # projected from the pace since then, which leaves compilation out.
    self._steady = None

  def _left(self, now: float, step: int) -> str:
    """The time the steps after `step` will take at the pace so far."""
    steady = self._steady is not None and step > self._steady[1]
    since_time, since_step = self._steady if steady else self._start
    seconds_per_step = (now - since_time) / max(step - since_step, 1)
    return _duration((self._total_steps - step) * seconds_per_step)

  def window(self, step: int, summary: dict[str, float]) -> None:
    now = time.perf_counter()
    seconds, steps = now - self._window_start[0], step - self._window_start[1]
    self._window_start = (now, step)
    skipped = int(summary.get("nonfinite_steps", 0))
    logging.info(
      "%sstep %d/%d: %s; %.0f images/s; %s left%s",
      self._prefix,
      step,
      self._total_steps,
      _metrics_text(
        {k: v for k, v in summary.items() if k != "nonfinite_steps"}
      ),
      steps * self._batch_size / max(seconds, 1e-9),
      self._left(now, step),
      f"; {skipped} non-finite steps skipped" if skipped else "",
    )
    if self._steady is None:
      self._steady = (now, step)

  def epoch(self, step: int, metrics: dict[str, float]) -> None:
    logging.info(
      "%sepoch %d/%d: test %s; %s left",
      self._prefix,
      step // self._steps_per_epoch,
      self._total_steps // self._steps_per_epoch,
      _metrics_text(metrics, "test_"),
      self._left(time.perf_counter(), step),
    )

  def final(
    self, metrics: dict[str, float], steps_run: int, train_seconds: float
  ) -> None:
    logging.info(
      "%sFinal test metrics: %s; %d steps in %s.",
      self._prefix,
      _metrics_text(metrics, "test_"),
      steps_run,
      _duration(train_seconds),
    )
