"""Image folders: labels from folder names, one size or a clear error."""

import numpy as np
import pytest
import tensorflow as tf

from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.errors import DataError

# Each class's images have their own gray level, so labels can be checked;
# the last pixel numbers the image within its class.
LEVELS = {"cat": 10, "dog": 200}


def write_png(path, height=8, width=8, level=0, number=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.full((height, width, 1), level, np.uint8)
  pixels[-1, -1] = number
  path.write_bytes(tf.io.encode_png(pixels).numpy())


def make_folder(root, splits=("training", "testing"), per_class=4):
  for split in splits:
    for name, level in LEVELS.items():
      for i in range(per_class):
        write_png(root / split / name / f"{i}.png", level=level, number=i)
  return root


@pytest.fixture
def folder_config(tiny_config, tmp_path):
  tiny_config.input.update(
    dataset="image_folder",
    folder_path=str(make_folder(tmp_path / "pngs")),
    train_split="training",
    test_split="testing",
    grayscale=True,
  )
  return tiny_config.input


@pytest.mark.parametrize("in_memory", [True, False])
def test_labels_are_sorted_folder_names(folder_config, in_memory):
  folder_config.in_memory = in_memory
  data = pipeline.prepare(folder_config)
  assert data.source == "image_folder"
  assert data.image_shape == (8, 8, 1)
  assert data.steps_per_epoch(4) == 2
  train = next(data.train_batches(4, seed=0))
  test = next(data.eval_dataset(4).as_numpy_iterator())
  for batch in (train, test):
    assert batch["image"].shape == (4, 8, 8, 1)
    assert batch["label"].dtype == np.int32
    levels = np.round(batch["image"][:, 0, 0, 0] * 255)
    expected = np.array(list(LEVELS.values()))[batch["label"]]
    np.testing.assert_array_equal(levels, expected)


def test_rgb_stays_rgb_and_resizes(folder_config):
  folder_config.update(grayscale=False, image_size=4)
  assert pipeline.prepare(folder_config).image_shape == (4, 4, 3)


def test_mixed_sizes_need_image_size(folder_config, tmp_path):
  write_png(tmp_path / "pngs" / "testing" / "dog" / "big.png", 6, 10)
  with pytest.raises(
    DataError,
    match=r"dog/big.png is 6x10 but .* is 8x8; "
    "set input.image_size",
  ):
    pipeline.prepare(folder_config)
  folder_config.image_size = 8
  test = next(
    pipeline.prepare(folder_config).eval_dataset(16).as_numpy_iterator()
  )
  assert test["image"].shape == (16, 8, 8, 1) and test["mask"].sum() == 9


def test_empty_folder_is_named(folder_config, tmp_path):
  (tmp_path / "empty").mkdir()
  folder_config.folder_path = str(tmp_path / "empty")
  with pytest.raises(
    DataError, match=f"image folder {tmp_path}/empty is empty"
  ):
    pipeline.prepare(folder_config)


def test_missing_split_lists_the_splits_there(folder_config):
  folder_config.test_split = "test"
  with pytest.raises(
    DataError,
    match=r"no split folder 'test' \(it has "
    r"\['testing', 'training'\]\)",
  ):
    pipeline.prepare(folder_config)


def test_processes_read_disjoint_equal_shares(folder_config, monkeypatch):

  def identities(per_process):
    return [
      (int(ex["label"]), int(ex["image"][-1, -1, 0]))
      for ex in sources.load(
        folder_config, "train", per_process=per_process, drop_remainder=True
      ).as_numpy_iterator()
    ]

  whole = identities(per_process=False)
  monkeypatch.setattr(sources.jax, "process_count", lambda: 2)
  shares = []
  for index in (0, 1):
    monkeypatch.setattr(sources.jax, "process_index", lambda i=index: i)
    shares.append(identities(per_process=True))
  assert len(set(whole)) == 8
  assert len(shares[0]) == len(shares[1]) == 4
  assert shares[0] + shares[1] == whole


@pytest.mark.parametrize("image_size", [None, 8])
def test_split_without_images_is_named(folder_config, tmp_path, image_size):
  folder_config.image_size = image_size
  for png in (tmp_path / "pngs" / "testing").glob("*/*.png"):
    png.unlink()
  with pytest.raises(DataError, match="pngs/testing holds no .png"):
    pipeline.prepare(folder_config)


def test_unreadable_files_fail_or_are_skipped_as_configured(
  folder_config, tmp_path
):
  (tmp_path / "pngs" / "training" / "cat" / "broken.png").write_bytes(
    b"\x89PNG\r\n\x1a\n not really"
  )
  with pytest.raises(
    DataError,
    match=r"training has 1 file\(s\) that do not "
    r"decode as images, e.g. .*cat/broken.png",
  ):
    pipeline.prepare(folder_config)
  folder_config.unreadable_images = "skip"
  assert pipeline.prepare(folder_config).steps_per_epoch(1) == 8  # Not 9.
  for in_memory in (True, False):
    folder_config.in_memory = in_memory
    batch = next(pipeline.prepare(folder_config).train_batches(8, seed=0))
    assert sorted(batch["label"]) == [0] * 4 + [1] * 4
