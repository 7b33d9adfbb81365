"""Folders `<root>/<split>/<class>/*.png|jpg`, read with tfds.ImageFolder.

Labels are the indices of the class folder names in sorted order (so
`mnist_png/training/<digit>/` gives label == digit). Images decode to RGB.
"""

import functools

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax.validation import DataError


def _builder(root: str, split: str) -> tfds.ImageFolder:
  """The folder's builder, after checking that `split` holds images."""
  if not tf.io.gfile.isdir(root):
    raise DataError(f"image folder {root} does not exist.")
  builder = tfds.ImageFolder(root)
  splits = builder.info.splits
  if not splits:
    raise DataError(f"image folder {root} is empty; expected "
                    "<split>/<class>/*.png|jpg inside it.")
  # A split may be sliced, e.g. 'train[:90%]'; the folder is its base name.
  name = split.partition("[")[0]
  if name not in splits:
    raise DataError(f"image folder {root} has no split folder {name!r} (it "
                    f"has {sorted(splits)}); set input.train_split or "
                    "input.test_split.")
  if not splits[name].num_examples:
    raise DataError(f"image folder {root}/{name} holds no .png or .jpg "
                    "images in class folders.")
  return builder


def read(root: str, split: str, share) -> tf.data.Dataset:
  """Examples {'image': uint8 [H, W, 3], 'label': int64} of a split's share.

  `share` comes from tfds.split_for_jax_process(split); ImageFolder reads
  whole splits only, so the share's example range is taken here.
  """
  builder = _builder(root, split)
  parts = []
  for part in share.to_absolute(builder.info.splits):
    start = part.from_ or 0
    parts.append(builder.as_dataset(part.splitname, shuffle_files=False)
                 .skip(start)
                 .take(-1 if part.to is None else part.to - start))
  return functools.reduce(tf.data.Dataset.concatenate, parts)


def check(root: str, splits: list[str], same_size: bool) -> None:
  """Raises DataError unless each split holds images (of one size if asked).

  Checking sizes decodes every image once: batches need one size, and finding
  out before training beats a tf.data shape error mid-epoch.
  """
  builders = [_builder(root, split) for split in splits]
  if not same_size:
    return
  first = None
  for split, builder in zip(splits, builders):
    sizes = builder.as_dataset(split.partition("[")[0]).map(
        lambda ex: (tf.shape(ex["image"])[:2], ex["image/filename"]),
        num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
    for heights_widths, names in sizes.as_numpy_iterator():
      first = first or (tuple(heights_widths[0]), names[0].decode())
      odd = np.flatnonzero(np.any(heights_widths != first[0], axis=1))
      if odd.size:
        height, width = heights_widths[odd[0]]
        raise DataError(
            f"image folder {root} mixes image sizes: {names[odd[0]].decode()} "
            f"is {height}x{width} but {first[1]} is {first[0][0]}x"
            f"{first[0][1]}; set input.image_size to resize them all.")
