"""The datasets vae_jax reads, all through TFDS, preprocessed to uint8 images.

`load` gives examples {'image': uint8 [H, W, C], 'label': int32} (celeb_a adds
'attributes': int32 [n]) after cropping, resizing and grayscale. Resized
pixels are rounded back to uint8, as the seed's PIL transforms did, which
keeps in-memory copies small. `factor_grid` gives the ground-truth factors of
the datasets rendered from them, which the disentanglement metrics read.
"""

from collections.abc import Callable
import dataclasses
import difflib
import functools
import os
import urllib.parse

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax import errors
from vae_jax.data import dsprites
from vae_jax.data import image_folder
from vae_jax.data import mnist_mirror

DATASETS = (
  "mnist",
  "stanford_dogs",
  "celeb_a",
  "image_folder",
  dsprites.NAME,  # Generated the first time (`data.dsprites`).
)
DOWNLOAD_MODES = ("auto", "always", "never")
# CelebA's aligned faces are 218x178; the 140x140 square around the center
# keeps the face and little background. It is the usual crop before the
# resize to 64x64 for DCGAN-style VAEs and autoencoders (WAE, RAE);
# carpedm20's DCGAN-tensorflow crops 108x108 instead.
CELEB_A_CROP = 140


@dataclasses.dataclass(frozen=True)
class FactorGrid:
  """A dataset's ground-truth factors: an image for every point of the
  product grid of their values."""

  names: tuple[str, ...]  # One per factor.
  sizes: tuple[int, ...]  # Each factor's number of values.
  # Factor classes [N, F] int -> uint8 images [N, H, W, C], as `load`
  # gives them.
  images: Callable[[np.ndarray], np.ndarray]


# The datasets rendered from known factors, with their renderers' images.
FACTOR_GRIDS = {
  dsprites.NAME: FactorGrid(
    names=dsprites.FACTOR_NAMES,
    sizes=dsprites.FACTOR_SIZES,
    images=dsprites.images,
  ),
}


def factor_grid(input_config: ml_collections.ConfigDict) -> FactorGrid | None:
  """The factors of input.dataset, its images resized as `load` resizes
  them (input.image_size); None for a dataset without known factors."""
  grid = FACTOR_GRIDS.get(input_config.dataset)
  if grid is None:
    return None

  def preprocessed(classes: np.ndarray) -> np.ndarray:
    return np.asarray(
      _resize_and_gray(tf.constant(grid.images(classes)), input_config)
    )

  return dataclasses.replace(grid, images=preprocessed)


def check_config(input_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for input settings no run could use."""
  name, size = input_config.dataset, input_config.image_size
  errors.require_choice(
    input_config.mnist_source, mnist_mirror.SOURCES, "input.mnist_source"
  )
  if name not in DATASETS:
    known = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(name, known, n=3)
    errors.require(
      name in known,
      f"input.dataset {name!r} is not one of {list(DATASETS)} nor a "
      "dataset TFDS knows"
      + (f" (did you mean {', '.join(close)}?)" if close else "")
      + ".",
    )
  errors.require(
    size is None or size > 0,
    f"input.image_size must be positive or None, got {size}.",
  )
  errors.require(
    name != "stanford_dogs" or size,
    "input.image_size must be set for stanford_dogs, whose images vary "
    "in size (the seed used 32 or 64).",
  )
  errors.require(
    not input_config.crop_to_bbox or name == "stanford_dogs",
    "input.crop_to_bbox needs bounding boxes; only stanford_dogs has them.",
  )
  errors.require_choice(input_config.download, DOWNLOAD_MODES, "input.download")
  errors.require(
    name != "image_folder" or input_config.folder_path,
    "input.folder_path must be set for the image_folder dataset.",
  )
  errors.require_choice(
    input_config.unreadable_images,
    image_folder.UNREADABLE_MODES,
    "input.unreadable_images",
  )
  if name == "celeb_a":
    builder = tfds.builder("celeb_a", data_dir=input_config.data_dir)
    known = builder.info.features["attributes"].keys()
    unknown = [a for a in input_config.attributes if a not in known]
    errors.require(
      input_config.attributes and not unknown,
      f"input.attributes {list(input_config.attributes)} must be a "
      f"non-empty list of CelebA attributes; unknown: {unknown}.",
    )


def _not_prepared(
  builder, archives: list[str], manual_dir: str, reason: str
) -> errors.DataError:
  root, name = builder.data_dir_root, builder.name
  return errors.DataError(
    f"{name} is not prepared in the TFDS data dir {root} and {reason}. "
    f"Either let TFDS download it where its host is reachable "
    f"(input.download='auto', or `tfds build {name} --data_dir={root}`), or "
    f"get {', '.join(archives)} from {builder.info.homepage} and place them "
    f"in TFDS's manual_dir {manual_dir}, then rerun."
  )


def _ensure_tfds_prepared(input_config: ml_collections.ConfigDict) -> str:
  """Prepares a TFDS dataset from manual_dir archives or TFDS's download."""
  builder = tfds.builder(input_config.dataset, data_dir=input_config.data_dir)
  if builder.is_prepared():
    return "tfds_data_dir"
  manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual")
  archives = sorted({info.filename for info in builder.url_infos.values()})
  placed = all(os.path.exists(os.path.join(manual_dir, a)) for a in archives)
  urls = [urllib.parse.urlsplit(url) for url in builder.url_infos]
  hosts = sorted(
    {(u.hostname, u.port or (80 if u.scheme == "http" else 443)) for u in urls}
  )
  mode = input_config.download
  # Offline, TFDS would retry for minutes before failing: probe first.
  if not (
    placed
    or mode == "always"
    or (
      mode == "auto" and all(mnist_mirror.host_answers(host) for host in hosts)
    )
  ):
    raise _not_prepared(
      builder,
      archives,
      manual_dir,
      "input.download is 'never'"
      if mode == "never"
      else f"{' and '.join(h for h, _ in hosts)} did not answer within 3 s",
    )
  try:
    builder.download_and_prepare()
  # TFDS fails in many ways here (HTTP errors, a rate-limit page that fails
  # its checksum, truncated archives); each needs the same advice.
  except Exception as e:  # pylint: disable=broad-exception-caught
    first_line = (str(e).strip().splitlines() or [""])[0]
    raise _not_prepared(
      builder,
      archives,
      manual_dir,
      f"TFDS could not prepare it ({type(e).__name__}: {first_line})",
    ) from e
  return "tfds_manual_dir" if placed else "tfds_download"


def prepare(input_config: ml_collections.ConfigDict) -> str:
  """Makes the data readable; returns its source."""
  if input_config.dataset == "mnist":
    return mnist_mirror.ensure_mnist(
      input_config.data_dir, input_config.mnist_source
    )
  if input_config.dataset == dsprites.NAME:
    return dsprites.ensure(input_config.data_dir)
  if input_config.dataset == "image_folder":
    image_folder.check(
      input_config.folder_path,
      [input_config.train_split, input_config.test_split],
      same_size=not input_config.image_size,
      unreadable_images=input_config.unreadable_images,
    )
    return "image_folder"
  source = _ensure_tfds_prepared(input_config)
  features = tfds.builder(
    input_config.dataset, data_dir=input_config.data_dir
  ).info.features
  if not isinstance(dict(features).get("image"), tfds.features.Image):
    raise errors.DataError(
      f"TFDS dataset {input_config.dataset!r} has no 'image' "
      f"feature (it has {sorted(features)})."
    )
  return source


def _crop_to_first_box(image: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
  """Crops to boxes[0], normalized (ymin, xmin, ymax, xmax)."""
  # Every Stanford Dogs image has a box; mock data may have none, and then
  # the whole frame stands in.
  box = tf.concat([boxes, [[0.0, 0.0, 1.0, 1.0]]], axis=0)[0]
  limit = tf.shape(image)[:2]
  size = tf.cast(limit, tf.float32)
  top_left = tf.clip_by_value(
    tf.cast(tf.floor(box[:2] * size), tf.int32), 0, limit - 1
  )
  bottom_right = tf.cast(tf.math.ceil(box[2:] * size), tf.int32)
  extent = tf.clip_by_value(bottom_right - top_left, 1, limit - top_left)
  bottom_right = top_left + extent
  # Slicing, unlike tf.slice, keeps the static channel count.
  return image[top_left[0] : bottom_right[0], top_left[1] : bottom_right[1]]


def _resize_and_gray(
  image: tf.Tensor, input_config: ml_collections.ConfigDict
) -> tf.Tensor:
  size = input_config.image_size
  gray = input_config.grayscale and image.shape[-1] == 3
  if not size and not gray:
    return image
  pixels = tf.cast(image, tf.float32)
  if size:  # A square, like torchvision's Resize((size, size)).
    pixels = tf.image.resize(pixels, (size, size), antialias=True)
  if gray:
    pixels = tf.image.rgb_to_grayscale(pixels)
  return tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)


def _preprocess(example, input_config: ml_collections.ConfigDict):
  name, image = input_config.dataset, example["image"]
  if name == "stanford_dogs" and input_config.crop_to_bbox:
    image = _crop_to_first_box(image, example["objects"]["bbox"])
  if name == "celeb_a":
    image = tf.image.resize_with_crop_or_pad(image, CELEB_A_CROP, CELEB_A_CROP)
  image = _resize_and_gray(image, input_config)
  if name == "celeb_a":
    attributes = tf.stack(
      [
        tf.cast(example["attributes"][a], tf.int32)
        for a in input_config.attributes
      ]
    )
    return {"image": image, "label": attributes[0], "attributes": attributes}
  if name == dsprites.NAME:
    # The shape is the class plots color by; the metrics read every factor.
    factors = tf.cast(dsprites.example_factors(example), tf.int32)
    return {"image": image, "label": factors[1], "factors": factors}
  # Other TFDS datasets may come without labels; plots then use one color.
  label = example.get("label", tf.constant(0))
  return {"image": image, "label": tf.cast(label, tf.int32)}


def load(
  input_config: ml_collections.ConfigDict,
  split: str,
  *,
  per_process: bool = True,
  drop_remainder: bool = False,
) -> tf.data.Dataset:
  """Preprocessed examples of `split`: this process's share, or all of it.

  'train' and 'test' stand for input.train_split and input.test_split; any
  other TFDS split name (e.g. 'validation') is read as given.
  """
  split = {
    "train": input_config.train_split,
    "test": input_config.test_split,
  }.get(split, split)
  index, count = (
    (jax.process_index(), jax.process_count()) if per_process else (0, 1)
  )
  share = tfds.split_for_jax_process(
    split,
    process_index=index,
    process_count=count,
    drop_remainder=drop_remainder,
  )
  if input_config.dataset == "image_folder":
    examples = image_folder.read(input_config.folder_path, split, share)
  else:
    # No auto-cache: the pipeline caches what it reads twice (the eval
    # batches), and a cache that a partial read (the first test images)
    # leaves behind is discarded with a warning.
    examples = tfds.load(
      input_config.dataset,
      split=share,
      shuffle_files=False,
      data_dir=input_config.data_dir,
      read_config=tfds.ReadConfig(try_autocache=False),
    )
  return examples.map(
    functools.partial(_preprocess, input_config=input_config),
    num_parallel_calls=tf.data.AUTOTUNE,
  )


def image_shape(examples: tf.data.Dataset) -> tuple[int, ...]:
  """The shape of a preprocessed image of `examples`, e.g. (32, 32, 1)."""
  shape = examples.element_spec["image"].shape
  if not shape.is_fully_defined():  # Decoded sizes vary: read one.
    shape = next(iter(examples.take(1)))["image"].shape
  return tuple(shape)


def num_classes(input_config: ml_collections.ConfigDict) -> int:
  """Classes a conditional model can be given: MNIST's digits, or every
  combination of the chosen CelebA attributes."""
  if input_config.dataset == "mnist":
    return 10
  if input_config.dataset == "celeb_a":
    return 2 ** len(input_config.attributes)
  raise errors.ConfigError(
    "only MNIST's digit and CelebA's attributes are class labels to "
    f"condition on; input.dataset {input_config.dataset!r} has neither."
  )
