"""Folders `<root>/<split>/<class>/*.png|jpg`, read with tfds.ImageFolder.

Labels are the indices of the class folder names in sorted order (so
`mnist_png/training/<digit>/` gives label == digit). Images decode to RGB.
"""

import functools

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax import errors


def _builder(root: str, split: str) -> tfds.ImageFolder:
  """The folder's builder, after checking that `split` holds images."""
  if not tf.io.gfile.isdir(root):
    raise errors.DataError(f"image folder {root} does not exist.")
  builder = tfds.ImageFolder(root)
  splits = builder.info.splits
  if not splits:
    raise errors.DataError(
      f"image folder {root} is empty; expected "
      "<split>/<class>/*.png|jpg inside it."
    )
  # A split may be sliced, e.g. 'train[:90%]'; the folder is its base name.
  name = split.partition("[")[0]
  if name not in splits:
    raise errors.DataError(
      f"image folder {root} has no split folder {name!r} (it "
      f"has {sorted(splits)}); set input.train_split or "
      "input.test_split."
    )
  if not splits[name].num_examples:
    raise errors.DataError(
      f"image folder {root}/{name} holds no .png or .jpg "
      "images in class folders."
    )
  return builder


UNREADABLE_MODES = ("fail", "skip")


@functools.cache
def survey(root: str, split: str) -> tuple[frozenset[str], dict[str, tuple]]:
  """Decodes every image of a split once: (unreadable files, sizes of the rest).

  Cached: `check` and every `read` of a split in this process share one pass.
  """
  builder = _builder(root, split)
  name = split.partition("[")[0]
  image_feature = builder.info.features["image"]
  encoded = builder.as_dataset(
    name, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
  )
  filenames = [
    f.decode()
    for f in encoded.map(lambda ex: ex["image/filename"]).as_numpy_iterator()
  ]
  # A decode error would end the dataset; ignore_errors drops that example.
  decoded = encoded.map(
    lambda ex: (
      ex["image/filename"],
      tf.shape(image_feature.decode_example(ex["image"]))[:2],
    ),
    num_parallel_calls=tf.data.AUTOTUNE,
  ).ignore_errors()
  sizes = {
    f.decode(): tuple(int(v) for v in size)
    for f, size in decoded.as_numpy_iterator()
  }
  return frozenset(filenames) - sizes.keys(), sizes


def read(root: str, split: str, share) -> tf.data.Dataset:
  """Examples {'image': uint8 [H, W, 3], 'label': int64} of a split's share.

  `share` comes from tfds.split_for_jax_process(split); ImageFolder reads
  whole splits only, so the share's example range is taken here. Files that
  do not decode (see `check`) are left out.
  """
  builder = _builder(root, split)
  unreadable = sorted(survey(root, split)[0])
  image_feature = builder.info.features["image"]
  parts = []
  for part in share.to_absolute(builder.info.splits):
    start = part.from_ or 0
    parts.append(
      builder.as_dataset(
        part.splitname,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
      )
      .skip(start)
      .take(-1 if part.to is None else part.to - start)
    )
  encoded = functools.reduce(tf.data.Dataset.concatenate, parts)
  if unreadable:
    encoded = encoded.filter(
      lambda ex: tf.reduce_all(ex["image/filename"] != tf.constant(unreadable))
    )
    # filter() forgets the count, which the pipeline needs for its epochs.
    count = sum(1 for _ in encoded.map(lambda ex: 0).as_numpy_iterator())
    encoded = encoded.apply(tf.data.experimental.assert_cardinality(count))
  return encoded.map(
    lambda ex: {**ex, "image": image_feature.decode_example(ex["image"])},
    num_parallel_calls=tf.data.AUTOTUNE,
  )


def check(
  root: str, splits: list[str], same_size: bool, unreadable_images: str
) -> None:
  """Raises DataError unless each split holds images (of one size if asked).

  Files that do not decode fail the run, or with `unreadable_images='skip'`
  are counted and left out. Checking decodes every image once: batches need
  one size, and finding out before training beats a tf.data error mid-epoch.
  """
  first = None
  for split in splits:
    unreadable, sizes = survey(root, split)
    if unreadable and unreadable_images == "fail":
      raise errors.DataError(
        f"image folder {root}/{split} has {len(unreadable)} file(s) that do "
        f"not decode as images, e.g. {min(unreadable)}; remove them, or set "
        "input.unreadable_images='skip' to leave them out."
      )
    if unreadable:
      logging.warning(
        "Leaving out %d unreadable file(s) of %s/%s, e.g. %s.",
        len(unreadable),
        root,
        split,
        min(unreadable),
      )
    if not sizes:
      raise errors.DataError(
        f"image folder {root}/{split} has no readable image."
      )
    if not same_size:
      continue
    for filename, size in sorted(sizes.items()):
      first = first or (filename, size)
      if size != first[1]:
        raise errors.DataError(
          f"image folder {root} mixes image sizes: {filename} is "
          f"{size[0]}x{size[1]} but {first[0]} is {first[1][0]}x"
          f"{first[1][1]}; set input.image_size to resize them all."
        )
