"""What every vae_jax command shares: flag parsing, process setup, and
mistakes reported in one line instead of a traceback.

Commands training a config (`main`, `sweep`) define their flags with
`define_run_flags`, parse them with `parse_flags`, call `prepare_process`
and run their work through `run_reporting_errors`. The analysis commands
(`analyze`, `sample`, `compare`) wrap theirs in `reporting_user_errors`.
Every command's log is plain: INFO lines carry no prefix, warnings and
errors a short one (`ConsoleFormatter`).
"""

from collections.abc import Callable, Iterator
import contextlib
import errno
import importlib.util
import logging as python_logging
import os
import sys
from typing import Any

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import tensorflow as tf

from vae_jax import errors
from vae_jax.core import checkpoints
from vae_jax.core import preemption
from vae_jax.core import sharding

FLAGS = flags.FLAGS
ERROR_PREFIX = "vae_jax: error: "


def define_run_flags() -> None:
  """--config, --workdir and the flags of multi-process runs; once per
  process, however many commands define them."""
  if "config" in FLAGS:
    return
  config_flags.DEFINE_config_file(
    "config",
    None,
    "Path to a config file, optionally `path:argument`.",
    lock_config=True,
  )
  flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, logs, images."
  )
  flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-process run on a cluster JAX detects (Cloud TPU, SLURM, "
    "Kubernetes): initializes jax.distributed with no arguments.",
  )
  flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0, for a multi-process run JAX cannot detect "
    "(see launch/local_multiprocess.sh); needs --num_processes, "
    "--process_id.",
  )
  flags.DEFINE_integer("num_processes", None, "Processes in the run.")
  flags.DEFINE_integer("process_id", None, "This process's index, from 0.")
  flags.mark_flags_as_required(["config", "workdir"])


# Libraries whose INFO records say nothing a user needs: Orbax logs every
# step of every save, TFDS every file it opens. Orbax's first.
_QUIET_INFO = ("/orbax/", "/tensorflow_datasets/")
# Warnings nobody can act on: (logger path fragment, message fragment).
_QUIET_WARNINGS = (
  # The MNIST the registry mirror writes (`data.mnist_mirror`) has no
  # description or citation on disk; TFDS then uses its code's.
  ("/tensorflow_datasets/", "differ on disk and in the code"),
  ("/tensorflow_datasets/", "has no dataset_info.json"),
  # JAX looks for a TPU library on every machine.
  ("/jax/_src/xla_bridge.py", "Unable to initialize backend"),
  # A failed write of TensorBoard events, with its traceback: the writer
  # raises it again at its next call, as one line (`outputs.EventWriter`).
  ("/clu/asynclib.py", "Error in producer thread"),
)


class _QuietLibraries(python_logging.Filter):
  """Drops the records of `_QUIET_INFO` and `_QUIET_WARNINGS`, and Orbax's
  records of exceptions: each failure of a save's background writes is
  logged by several of its threads, some after the run has ended, and
  raised at the next save or wait, where the run reports its cause in one
  line (`checkpoints.SaveError`)."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    in_library = [path in record.pathname for path in _QUIET_INFO]
    if record.levelno < python_logging.WARNING and any(in_library):
      return False
    if in_library[0] and record.exc_info:  # Orbax's, of an exception.
      return False
    message = record.getMessage()
    return not any(
      path in record.pathname and fragment in message
      for path, fragment in _QUIET_WARNINGS
    )


def _config_paths(argv: list[str]) -> list[str]:
  """The files `--config` names in `argv`, without their `:argument`."""
  values = [
    arg.split("=", 1)[1]
    for arg in argv
    if arg.startswith(("--config=", "-config="))
  ]
  values += [
    value
    for flag, value in zip(argv, argv[1:])
    if flag in ("--config", "-config")
  ]
  return [value.split(":", 1)[0] for value in values]


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with config mistakes reported as one line.

  ml_collections keeps a config file it cannot read (a mistyped path) as a
  stand-in that raises OSError at its first use: while parsing when a flag
  overrides one of its fields, else deep inside the run. So a missing file
  is named before parsing, and the config is used once after it.
  """
  try:
    for path in _config_paths(argv):
      errors.require(os.path.isfile(path), f"config file {path} does not exist")
    argv = FLAGS(argv)
    if "config" in FLAGS and FLAGS["config"].value is not None:
      FLAGS.config.keys()  # The stand-in raises on any use.
    return argv
  except errors.ConfigError as e:
    message = str(e)
  except OSError as e:  # The config file failed to load.
    message = f"config file failed to load: {e.__cause__ or e}"
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
  raise SystemExit(ERROR_PREFIX + " ".join(message.split()))


def _is_abandoned_write(error_type: type, error: BaseException) -> bool:
  return (
    issubclass(error_type, RuntimeError)
    and str(error) == "Event loop is closed"
  )


def _quiet_abandoned_writes() -> None:
  """Keeps a failed checkpoint's abandoned writes from printing.

  When one write of an asynchronous save fails (a full disk), its other
  writes fail one by one in TensorStore's threads, whose callbacks then find
  their event loop closed and each print a traceback as an unraisable
  exception, while asyncio logs each failure nobody awaited: a screen of
  tracebacks, printed while the run reports the one line that names the
  cause.
  """
  python_logging.getLogger("asyncio").setLevel(python_logging.CRITICAL)
  default_hook = sys.unraisablehook

  def unraisablehook(unraisable):
    if not _is_abandoned_write(unraisable.exc_type, unraisable.exc_value):
      default_hook(unraisable)

  sys.unraisablehook = unraisablehook


class ConsoleFormatter(python_logging.Formatter):
  """INFO records as their bare message; warnings and errors marked with
  their level and where they were logged (`warning (file.py:12): ...`).

  absl's prefix (date, time, thread id, file and line) on every line buries
  the step, the loss and the time left that a person watches for.
  """

  def format(self, record: python_logging.LogRecord) -> str:
    text = super().format(record)  # The message, and any traceback.
    if record.levelno < python_logging.WARNING:
      return text
    origin = f"{os.path.basename(record.pathname)}:{record.lineno}"
    return f"{record.levelname.lower()} ({origin}): {text}"


def quiet_libraries() -> None:
  """Keeps what the libraries log at INFO, and their warnings and stray
  tracebacks nobody can act on, out of the log; prints what remains plainly
  (`ConsoleFormatter`)."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.get_absl_handler().setFormatter(ConsoleFormatter())
  _quiet_abandoned_writes()
  # TensorFlow only feeds data; keep it off the accelerators JAX uses.
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")


def prepare_process() -> None:
  """What every training command does before its work (main, sweep)."""
  quiet_libraries()
  cluster = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.distributed or any(flag is not None for flag in cluster):
    try:
      sharding.initialize_distributed(*cluster)
    except errors.UserInputError as e:
      raise SystemExit(f"{ERROR_PREFIX}{e}") from None


def config_with_argument(argument: str) -> ml_collections.ConfigDict:
  """The --config file's `get_config(argument)`, with the fields the
  command line overrode: a sweep over the file's argument (`vae_jax.sweep
  --sweep=config=A,B`)."""
  path = config_flags.get_config_filename(FLAGS["config"])
  spec = importlib.util.spec_from_file_location("swept_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(argument)
  config.update_from_flattened_dict(
    config_flags.get_override_values(FLAGS["config"])
  )
  return config


def log_config(workdir: str) -> None:
  """One line for the config: its file, the fields the command line
  overrode, and where the whole config is written."""
  overrides = config_flags.get_override_values(FLAGS["config"])
  logging.info(
    "Config %s%s; the whole config is written to %s.",
    config_flags.get_config_filename(FLAGS["config"]),
    "".join(f", {field}={value!r}" for field, value in overrides.items()),
    os.path.join(workdir, "config.json"),
  )


# What a write that vae_jax does not wrap in WriteError (a library's) fails
# with when the disk or the user's rights are the problem.
_WRITE_ERRNOS = frozenset(
  (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES)
)


def _write_failure(error: OSError) -> str:
  where = f" {error.filename}" if error.filename else ""
  return f"{ERROR_PREFIX}cannot write{where} ({error.strerror})."


def run_reporting_errors(work: Callable[..., Any], *args: Any) -> Any:
  """Runs `work(*args)`; what the user can act on ends the process in one line.

  A mistake or a failure to save or write exits 1 with `vae_jax: error:
  <cause>`; a preemption exits with `preemption.EXIT_CODE` after its
  checkpoint.
  """
  try:
    return work(*args)
  except (
    errors.UserInputError,
    FloatingPointError,
    checkpoints.SaveError,
  ) as e:
    raise SystemExit(f"{ERROR_PREFIX}{e}") from None
  except OSError as e:
    if e.errno not in _WRITE_ERRNOS:
      raise
    raise SystemExit(_write_failure(e)) from None
  except preemption.Preempted as e:
    logging.warning("vae_jax: %s", e)
    sys.exit(preemption.EXIT_CODE)


@contextlib.contextmanager
def reporting_user_errors() -> Iterator[None]:
  """For the analysis commands: quiet logs (Orbax logs every read at INFO),
  TensorFlow off the accelerators, and `vae_jax: error: <cause>` on a
  UserInputError or a failed write."""
  logging.set_verbosity(logging.WARNING)
  quiet_libraries()
  try:
    yield
  except errors.UserInputError as e:
    raise SystemExit(f"{ERROR_PREFIX}{e}") from None
  except OSError as e:
    if e.errno not in _WRITE_ERRNOS:
      raise
    raise SystemExit(_write_failure(e)) from None
