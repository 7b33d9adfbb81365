"""What the analysis commands (analyze, sample, compare) share around their
work: quiet logs, TensorFlow off the accelerators, and mistakes reported in
one line instead of a traceback."""

import contextlib
from typing import Iterator

from absl import logging
import tensorflow as tf

from vae_jax import errors


@contextlib.contextmanager
def reporting_user_errors() -> Iterator[None]:
  """Ends the process with `vae_jax: error: <cause>` on a UserInputError."""
  logging.set_verbosity(logging.WARNING)  # Orbax logs every read at INFO.
  tf.config.set_visible_devices([], "GPU")  # TF only reads data.
  try:
    yield
  except errors.UserInputError as e:
    raise SystemExit(f"vae_jax: error: {e}") from None
