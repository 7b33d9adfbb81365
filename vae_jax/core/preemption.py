"""Stopping cleanly when the machine is taken away (SIGTERM) or on Ctrl-C.

Preemptible TPUs and shared GPU queues send SIGTERM some seconds before they
kill a job. The trainer then finishes its step, saves a checkpoint, waits
until it is durable and raises `Preempted`; `main` exits with `EXIT_CODE`, and
rerunning the same command resumes. On multi-process runs JAX's coordination
service catches the signal and `CheckpointManager.reached_preemption` makes
every process stop at the same step, so all of them take part in the save.
"""

import signal
import threading
from types import FrameType

from absl import logging
import jax
import orbax.checkpoint as ocp

# sysexits.h EX_TEMPFAIL: "try again later", which is what the caller should
# do: the checkpoint is saved and the same command resumes.
EXIT_CODE = 75


class Preempted(Exception):
  """Training stopped on a signal after saving the checkpoint at `step`."""

  def __init__(self, step: int, signal_name: str):
    super().__init__(
      f"stopped by {signal_name} after step {step}; its "
      "checkpoint is saved; rerun the same command to resume."
    )
    self.step = step


class StopRequests:
  """Records SIGTERM and SIGINT while active, instead of dying mid-step.

  A second Ctrl-C interrupts at once, for when the checkpoint is not wanted.
  Single-process runs only: on multi-process runs JAX's own handler must
  see SIGTERM, and `should_stop` asks Orbax instead.
  """

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self) -> "StopRequests":
    if (
      jax.process_count() == 1
      and threading.current_thread() is threading.main_thread()
    ):
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._record)
    return self

  def __exit__(self, *unused) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def _record(self, signum: int, unused_frame: FrameType | None) -> None:
    if signum == signal.SIGINT and self.signal_name == "SIGINT":
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    logging.warning(
      "Received %s: stopping after this step's checkpoint.", self.signal_name
    )

  def should_stop(
    self, manager: ocp.CheckpointManager, first_step: int, last_step: int
  ) -> bool:
    """Whether to stop after `last_step`, having run steps `first_step`..
    `last_step` since the last call (one compiled loop may run several)."""
    # JAX's coordination service picks one step at which every process
    # stops; it is reached only if each step is reported (a list, not a
    # short-circuiting generator).
    if jax.process_count() > 1 and any(
      [
        manager.reached_preemption(step)
        for step in range(first_step, last_step + 1)
      ]
    ):
      self.signal_name = "a preemption notice"
    return self.signal_name is not None
