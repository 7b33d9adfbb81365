"""A tiny MNIST in TFDS's own format, for code that mock data cannot reach.

`tfds.testing.mock_data` patches only the process it runs in; a notebook's
kernel or any other child process reads a real TFDS data dir. This writes
one through the code that writes the registry mirror's MNIST
(`mnist_mirror.store_as_tfds`), so `tfds.load('mnist', data_dir=...)` reads
it back like the real dataset.
"""

import numpy as np

from vae_jax.data import mnist_mirror

NUM_TRAIN = 64  # 8 steps of 8 per epoch.
NUM_TEST = 32


def _split(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
  return {
    "image": rng.integers(0, 256, (size, 28, 28, 1), dtype=np.uint8),
    # Every digit appears, so plots colored by class have them all.
    "label": (np.arange(size) % 10).astype(np.int64),
  }


def write(data_dir: str, seed: int = 0) -> str:
  """Random-pixel 'mnist' (train and test splits) in `data_dir`; returns it."""
  rng = np.random.default_rng(seed)
  mnist_mirror.store_as_tfds(
    {"train": _split(rng, NUM_TRAIN), "test": _split(rng, NUM_TEST)}, data_dir
  )
  return data_dir
