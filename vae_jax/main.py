r"""Trains and evaluates a model from a config file.

    python -m vae_jax.main --config=configs/mnist_linear.py --workdir=/tmp/vae

Any config field can be overridden, e.g. `--config.num_epochs=5`. The logic
lives in `vae_jax.trainers.loop` so that tests, notebooks and launch scripts call it
directly; this file only parses flags.
"""

import logging as python_logging
import sys
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tensorflow as tf

from vae_jax.core import checkpoints
from vae_jax.core import preemption
from vae_jax.core import sharding
from vae_jax.trainers import loop
from vae_jax import errors

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally `path:argument`.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, images.")
flags.DEFINE_bool(
    "distributed", False,
    "Multi-process run on a cluster JAX detects (Cloud TPU, SLURM, "
    "Kubernetes): initializes jax.distributed with no arguments.")
flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0, for a multi-process run JAX cannot detect "
    "(see launch/local_multiprocess.sh); needs --num_processes, --process_id.")
flags.DEFINE_integer("num_processes", None, "Processes in the run.")
flags.DEFINE_integer("process_id", None, "This process's index, from 0.")
flags.mark_flags_as_required(["config", "workdir"])


class _OrbaxWarningsOnly(python_logging.Filter):
  """Orbax logs every step of every save at INFO; keep the training log."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    return (record.levelno >= python_logging.WARNING
            or "/orbax/" not in record.pathname)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with config mistakes reported as one line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    message = str(e)
    if "Traceback (most recent call last)" in message:
      # A config file's get_config raised; its last line names the cause.
      message = message.strip().splitlines()[-1]
  except AttributeError as e:  # ml_collections: no such config field.
    cause = e.args[0] if e.args else e
    if isinstance(cause, KeyError) and cause.args:  # Unwrap its repr.
      cause = cause.args[0]
    message = f"unknown config field {cause}"
  raise SystemExit("vae_jax: error: " + " ".join(message.split()))


def prepare_process() -> None:
  """What every vae_jax command does before its work (main, sweep, ...)."""
  logging.get_absl_handler().addFilter(_OrbaxWarningsOnly())
  # TensorFlow only feeds data; keep it off the accelerators JAX uses.
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")
  cluster = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.distributed or any(flag is not None for flag in cluster):
    try:
      sharding.initialize_distributed(*cluster)
    except errors.UserInputError as e:
      raise SystemExit(f"vae_jax: error: {e}") from None


def run_reporting_errors(work: Callable[..., Any], *args: Any) -> Any:
  """Runs `work(*args)`; what the user can act on ends the process in one line.

  A mistake or a failure to save exits 1 with `vae_jax: error: <cause>`; a
  preemption exits with `preemption.EXIT_CODE` after its checkpoint.
  """
  try:
    return work(*args)
  except (errors.UserInputError, FloatingPointError,
          checkpoints.SaveError) as e:
    raise SystemExit(f"vae_jax: error: {e}") from None
  except preemption.Preempted as e:
    logging.warning("vae_jax: %s", e)
    sys.exit(preemption.EXIT_CODE)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  prepare_process()
  logging.info("Config:\n%s", FLAGS.config)
  run_reporting_errors(loop.train_and_evaluate, FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
