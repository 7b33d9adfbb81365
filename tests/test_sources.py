"""Dataset preparation and preprocessing: clear errors, exact crops."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax.data import sources
from vae_jax.errors import ConfigError
from vae_jax.errors import DataError

ARCHIVES = {
  "stanford_dogs": ("images.tar", "annotation.tar", "lists.tar"),
  "celeb_a": (
    "img_align_celeba.zip",
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
  ),
}


def unprepared(tiny_config, tmp_path, dataset, download):
  tiny_config.input.update(
    dataset=dataset, data_dir=str(tmp_path), download=download, image_size=32
  )
  return tiny_config.input


@pytest.mark.parametrize("dataset", ["stanford_dogs", "celeb_a"])
def test_missing_data_says_where_to_put_the_archives(
  tiny_config, tmp_path, dataset
):
  config = unprepared(tiny_config, tmp_path, dataset, "never")
  with pytest.raises(DataError) as error:
    sources.prepare(config)
  message = str(error.value)
  assert "\n" not in message
  assert f"TFDS data dir {tmp_path} " in message
  manual_dir = os.path.join(tmp_path, "downloads", "manual")
  assert f"manual_dir {manual_dir}" in message
  assert all(archive in message for archive in ARCHIVES[dataset])
  assert "input.download is 'never'" in message


def test_unreachable_host_is_probed_not_waited_for(
  tiny_config, tmp_path, monkeypatch
):
  config = unprepared(tiny_config, tmp_path, "stanford_dogs", "auto")
  probed = []
  monkeypatch.setattr(sources.mnist_mirror, "host_answers", probed.append)
  with pytest.raises(DataError, match="vision.stanford.edu did not answer"):
    sources.prepare(config)
  assert probed == [("vision.stanford.edu", 80)]


def prepare_with_fake_download(config, monkeypatch, effect=None):
  """Runs prepare with TFDS's download_and_prepare replaced by `effect`."""
  calls = []

  def fake_download_and_prepare(builder, **unused_kwargs):
    calls.append(builder.name)
    if effect:
      effect()

  monkeypatch.setattr(
    tfds.core.DatasetBuilder, "download_and_prepare", fake_download_and_prepare
  )
  return sources.prepare(config), calls


def test_archives_in_manual_dir_are_used_without_network(
  tiny_config, tmp_path, monkeypatch
):
  config = unprepared(tiny_config, tmp_path, "stanford_dogs", "never")
  manual_dir = tmp_path / "downloads" / "manual"
  manual_dir.mkdir(parents=True)
  for archive in ARCHIVES["stanford_dogs"]:
    (manual_dir / archive).write_bytes(b"")
  monkeypatch.setattr(sources.mnist_mirror, "host_answers", pytest.fail)
  source, calls = prepare_with_fake_download(config, monkeypatch)
  assert source == "tfds_manual_dir" and calls == ["stanford_dogs"]


def test_failed_download_keeps_the_manual_dir_hint(
  tiny_config, tmp_path, monkeypatch
):
  config = unprepared(tiny_config, tmp_path, "celeb_a", "always")

  def quota_exceeded():
    raise tfds.download.DownloadError("Google Drive quota exceeded\nmore")

  with pytest.raises(
    DataError,
    match=(
      r"could not prepare it \(DownloadError: Google Drive quota exceeded\)"
      r".*img_align_celeba.zip.*manual_dir"
    ),
  ):
    prepare_with_fake_download(config, monkeypatch, quota_exceeded)


def test_crop_to_first_box_takes_its_pixels():
  image = tf.reshape(tf.range(10 * 20 * 3, dtype=tf.int32), (10, 20, 3))
  boxes = tf.constant([[0.2, 0.25, 0.6, 0.5], [0.0, 0.0, 0.1, 0.1]])
  crop_to_first_box = sources._crop_to_first_box  # pylint: disable=protected-access
  np.testing.assert_array_equal(
    crop_to_first_box(image, boxes), image[2:6, 5:10]
  )
  # No box (as in mock data): the whole image.
  np.testing.assert_array_equal(
    crop_to_first_box(image, tf.zeros((0, 4))), image
  )


@pytest.mark.parametrize(
  "options,message",
  [
    ({"dataset": "stanford_dogs"}, "image_size must be set for stanford_dogs"),
    ({"image_size": 0}, "image_size must be positive"),
    ({"crop_to_bbox": True}, "only stanford_dogs has them"),
    ({"download": "sometimes"}, "input.download 'sometimes' is unknown"),
    ({"dataset": "image_folder"}, "folder_path must be set"),
    (
      {"dataset": "celeb_a", "attributes": ("Smiling", "Grumpy")},
      r"unknown: \['Grumpy'\]",
    ),
    ({"dataset": "celeb_a", "attributes": ()}, "non-empty list"),
    (
      {"dataset": "fashoin_mnist"},
      r"'fashoin_mnist' is not one of .* nor a dataset TFDS knows \(did you "
      "mean fashion_mnist",
    ),
    ({"unreadable_images": "ignore"}, "input.unreadable_images 'ignore'"),
  ],
)
def test_bad_input_settings_name_the_field(tiny_config, options, message):
  tiny_config.input.update(**options)
  with pytest.raises(ConfigError, match=message):
    sources.check_config(tiny_config.input)


def test_any_tfds_image_dataset_loads_by_name(tiny_config):
  tiny_config.input.update(dataset="fashion_mnist", download="always")
  sources.check_config(tiny_config.input)
  with tfds.testing.mock_data(num_examples=4):
    sources.prepare(tiny_config.input)
    examples = list(sources.load(tiny_config.input, "test").as_numpy_iterator())
  assert len(examples) == 4
  assert examples[0]["image"].shape == (28, 28, 1)
  assert examples[0]["label"].dtype == np.int32


def test_tfds_dataset_without_images_is_refused(tiny_config):
  tiny_config.input.update(dataset="imdb_reviews", download="always")
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(DataError, match="'imdb_reviews' has no 'image'"):
      sources.prepare(tiny_config.input)
