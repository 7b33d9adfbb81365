"""A procedural dSprites (Matthey et al., 2017): the original cannot be
downloaded here, so this renders its factor grid afresh.

The grid is the original's: 737,280 images of one white sprite on black,
one per combination of color (1), shape (3: square, ellipse, heart), scale
(6), orientation (40) and x and y position (32 each), in the original's
order (row-major over the factors, y fastest, as its `latents_bases`).
`generate` writes it as the TFDS dataset 'dsprites_procedural', with TFDS
'dsprites''s feature names; it is not the original, so not its name.

The geometry was measured on the only images of the original readable here,
the 320 frames of the README's animation (dsprites.gif in
github.com/deepmind/dsprites-dataset: 64x64 binary traversals of scale,
orientation and position):
- pixel (row i, column j) is white when its centre (j + 0.5, i + 0.5) lies
  inside the sprite; x is the column, y the row, (0, 0) the top left;
- the sprite's centre goes from 16 to 48 pixels (the central half of the
  image) as a position goes from 0 to 1;
- at scale 1 the square's side is 19.2 pixels and the ellipse's axes 25.6
  and 14.4; a scale multiplies both, about the sprite's centre;
- orientation turns the sprite counter-clockwise on screen about its centre.
These reproduce the animation's 46 square frames but for 8 pixels and its
46 ellipse frames but for 56. The original's heart outline was never
published: this heart (two circles on a right-angled V) is an approximation
fitted to the animation's 46 heart frames, on which it differs in about
4% of the sprite's pixels.

Positions are whole-pixel shifts of one rendering per (shape, scale,
orientation): the centre is 16 + round(32 * value) pixels, within half a
pixel of the original's 16 + 32 * value (31 steps of one pixel, one of
two). Pixels are 0 or 255, not the original's 0 or 1: vae_jax reads uint8
images as grey levels / 255, and binary images as {0, 255} (`binarize`).
"""

from collections.abc import Iterator
import functools
import hashlib
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vae_jax import errors

# The TFDS name: not TFDS's 'dsprites', whose images these are not.
NAME = "dsprites_procedural"
# Bump with every change to the images (and so to SHA256) or the splits.
VERSION = "1.1.0"
# The factors, in the original's order (its `latents_names`, with TFDS's
# names for the positions) and with its numbers of values.
FACTOR_NAMES = (
  "color",
  "shape",
  "scale",
  "orientation",
  "x_position",
  "y_position",
)
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
# The shape classes' names.
SHAPES = ("square", "ellipse", "heart")
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280: one per grid point.
IMAGE_SIZE = 64  # Pixels a side.
# SHA-256 of all images' bytes (uint8 [N, 64, 64, 1]) in index order, which
# `verify` checks before `generate` writes.
SHA256 = "d81b16860d44e1eaad6a24d97e19c48c71f4fdd09540d2091c0dd7513f0eb341"

# Each factor's values, as the original's `latents_values`: a shape's value
# is its class + 1, color's is 1. The original's 40 orientations are
# linspace(0, 2 pi, 40) with 2 pi included, so its first and last
# orientations draw the same image; these 40 stop a step short of 2 pi.
_VALUES = (
  np.array([1.0]),
  np.array([1.0, 2.0, 3.0]),
  np.linspace(0.5, 1.0, 6),
  np.linspace(0.0, 2 * np.pi, 40, endpoint=False),
  np.linspace(0.0, 1.0, 32),
  np.linspace(0.0, 1.0, 32),
)
# Index of a row of classes = classes . _BASES (y fastest).
_BASES = np.cumprod((1,) + FACTOR_SIZES[:0:-1])[::-1]

# Geometry, in pixels at scale 1 (see the module docstring for its source).
# A sprite is rendered once in a window of _WINDOW pixels, centred on the
# window's middle: the largest (the square turned by 45 degrees, 13.6
# pixels from its centre to a corner) fits with room to spare.
_WINDOW = 32
# The sprite's centre is _WINDOW / 2 = 16 pixels from the image's top and
# left at position 0; position 1 moves it _TRAVEL pixels further.
_TRAVEL = 32
_SQUARE_HALF_SIDE = 9.6
_ELLIPSE_SEMI_AXES = (12.8, 7.2)
# The heart: lobes of this radius centred at (+-x, y) (y down, its tip at
# the bottom), joined by lines at 45 degrees down to the tip.
_HEART_LOBE_RADIUS = 5.4
_HEART_LOBE_CENTRE = (4.5, -3.8)
# The 'test' split: this many grid points, drawn uniformly without
# replacement with seed 0 (`test_indices`), in index order. They are also in
# 'train': dSprites is the whole grid, and disentanglement_lib trains and
# scores on all of it. 'test' gives the loop's evaluation a fixed sample of
# the training distribution; a slice of 'train' would be one corner of the
# grid (the squares at the smallest scale), since 'train' is in index order.
TEST_SIZE = 10_000
# Examples per chunk of `chunks`: 128 MiB of images.
_CHUNK = 32_768


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  return np.maximum(np.abs(u), np.abs(v)) - _SQUARE_HALF_SIDE


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  a, b = _ELLIPSE_SEMI_AXES
  return np.hypot(u / a, v / b) - 1.0


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  x, r = np.abs(u), _HEART_LOBE_RADIUS
  cx, cy = _HEART_LOBE_CENTRE
  lobe = np.hypot(x - cx, v - cy) - r
  # The V below the lobes' centres: inside the line x + v = tip, tangent to
  # the lobe and meeting the axis at the tip (0, tip), and inside the
  # lobe's radius at 45 degrees to the point where that line touches it.
  tip = cx + cy + r * np.sqrt(2.0)
  v_shape = np.maximum.reduce([cy - v, x + v - tip, x - v - (cx - cy)])
  return np.minimum(lobe, v_shape)


# Signed outlines, one per shape class: negative inside the sprite.
_OUTLINES = (_square, _ellipse, _heart)


def sprite_outlines() -> np.ndarray:
  """float64 [3, 6, 40, W, W]: each window pixel centre's signed value
  (negative inside) for every (shape, scale, orientation)."""
  centres = np.arange(_WINDOW) + 0.5 - _WINDOW / 2
  x = centres[None, None, None, :]
  y = centres[None, None, :, None]
  scale = _VALUES[2][:, None, None, None]
  angle = _VALUES[3][None, :, None, None]
  cos, sin = np.cos(angle), np.sin(angle)
  # The inverse of a counter-clockwise turn on screen (y points down).
  u = (cos * x - sin * y) / scale
  v = (sin * x + cos * y) / scale
  return np.stack([outline(u, v) for outline in _OUTLINES])


@functools.cache
def _sprites() -> np.ndarray:
  """uint8 [3, 6, 40, W, W] in {0, 255}: every sprite at position 0."""
  sprites = np.where(sprite_outlines() < 0, 255, 0).astype(np.uint8)
  sprites.flags.writeable = False
  return sprites


def _check_classes(classes: np.ndarray) -> np.ndarray:
  classes = np.asarray(classes)
  if (
    classes.ndim != 2
    or classes.shape[1] != len(FACTOR_SIZES)
    or not np.issubdtype(classes.dtype, np.integer)
  ):
    raise ValueError(
      f"factor classes must be integers [N, {len(FACTOR_SIZES)}], got "
      f"{classes.dtype} {classes.shape}."
    )
  if ((classes < 0) | (classes >= np.array(FACTOR_SIZES))).any():
    raise ValueError(
      f"factor classes must lie in [0, {FACTOR_SIZES}) factor by factor."
    )
  return classes.astype(np.int64)


def index_of(classes: np.ndarray) -> np.ndarray:
  """int64 [N]: the images' indices in the grid of factor classes [N, 6]."""
  return _check_classes(classes) @ _BASES


def classes_of(index: np.ndarray) -> np.ndarray:
  """int64 [N, 6]: the factor classes of grid indices [N]."""
  index = np.asarray(index, np.int64)
  if index.ndim != 1 or ((index < 0) | (index >= NUM_IMAGES)).any():
    raise ValueError(f"indices must be a vector in [0, {NUM_IMAGES}).")
  return (index[:, None] // _BASES) % np.array(FACTOR_SIZES)


def factor_values(classes: np.ndarray) -> np.ndarray:
  """float64 [N, 6]: the factor values of factor classes [N, 6]."""
  classes = _check_classes(classes)
  return np.stack(
    [values[column] for values, column in zip(_VALUES, classes.T)], axis=1
  )


def images(classes: np.ndarray) -> np.ndarray:
  """uint8 [N, 64, 64, 1] in {0, 255}: the images of factor classes [N, 6]."""
  classes = _check_classes(classes)
  _, shape, scale, orientation, x, y = classes.T
  sprites = _sprites()[shape, scale, orientation]
  # Whole-pixel offsets of the window's top left: 0 to _TRAVEL.
  left = np.round(_VALUES[4][x] * _TRAVEL).astype(np.int64)
  top = np.round(_VALUES[5][y] * _TRAVEL).astype(np.int64)
  window = np.arange(_WINDOW)
  out = np.zeros((len(classes), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
  out[
    np.arange(len(classes))[:, None, None],
    (top[:, None] + window)[:, :, None],
    (left[:, None] + window)[:, None, :],
  ] = sprites
  return out[..., None]


def chunks(
  indices: np.ndarray | None = None, size: int = _CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """(indices [n], images [n, 64, 64, 1]) of `indices` (the whole grid in
  index order by default), `size` at a time."""
  if indices is None:
    indices = np.arange(NUM_IMAGES)
  for start in range(0, len(indices), size):
    part = np.asarray(indices[start : start + size])
    yield part, images(classes_of(part))


def digest() -> str:
  """SHA-256 of all images in index order (the value SHA256 pins)."""
  sha = hashlib.sha256()
  for _, part in chunks():
    sha.update(part.tobytes())
  return sha.hexdigest()


def verify() -> None:
  """Raises DataError unless this machine draws the images SHA256 pins."""
  found = digest()
  if found != SHA256:
    raise errors.DataError(
      f"the procedural dSprites images hash to {found}, not the pinned "
      f"{SHA256}: this NumPy draws them differently, or the drawing "
      "changed without a new SHA256 and VERSION."
    )


def _features() -> tfds.features.FeaturesDict:
  """TFDS 'dsprites''s features: the image, and a class and a value per
  factor but color."""
  features = {"image": tfds.features.Image(shape=(64, 64, 1))}
  for name, size in zip(FACTOR_NAMES[1:], FACTOR_SIZES[1:]):
    features[f"label_{name}"] = tfds.features.ClassLabel(num_classes=size)
    features[f"value_{name}"] = tfds.features.Tensor(shape=(), dtype=np.float32)
  return tfds.features.FeaturesDict(features)


def _examples(indices: np.ndarray | None) -> Iterator[tuple[int, dict]]:
  """(key, example) of the images of `indices` (all by default)."""
  for part, part_images in chunks(indices):
    classes = classes_of(part)
    values = factor_values(classes).astype(np.float32)
    for row, (index, image) in enumerate(zip(part, part_images)):
      example = {"image": image}
      for column, name in enumerate(FACTOR_NAMES[1:], start=1):
        example[f"label_{name}"] = classes[row, column]
        example[f"value_{name}"] = values[row, column]
      yield int(index), example


def test_indices() -> np.ndarray:
  """int64 [TEST_SIZE]: the grid points of the 'test' split, sorted."""
  rng = np.random.default_rng(0)
  return np.sort(rng.choice(NUM_IMAGES, size=TEST_SIZE, replace=False))


def example_factors(example: dict) -> tf.Tensor:
  """int32 [6]: the factor classes of a TFDS example, color's (always 0)
  included, in FACTOR_NAMES' order, as `index_of` and the metrics read
  them."""
  return tf.stack(
    [tf.constant(0, tf.int64)]
    + [tf.cast(example[f"label_{name}"], tf.int64) for name in FACTOR_NAMES[1:]]
  )


def ensure(data_dir: str | None) -> str:
  """Makes 'dsprites_procedural' readable in `data_dir` (None: TFDS's
  default), generating it there the first time; returns the source."""
  data_dir = data_dir or tfds.core.constants.get_default_data_dir()
  if os.path.isdir(os.path.join(data_dir, NAME, VERSION)):
    return "tfds_data_dir"
  generate(data_dir)
  return "generated"


def generate(data_dir: str, indices: np.ndarray | None = None) -> str:
  """Writes 'dsprites_procedural' into `data_dir`; returns its folder.

  Two splits in index order (read them with shuffle_files=False): 'train',
  the whole grid, and 'test', `test_indices`' points. The grid is checked
  against SHA256 first (`verify`, seconds); `indices` (for tests) writes
  those images only, unchecked, as both splits. Builds in a
  scratch folder beside the target and renames it into place, so a crash or
  a concurrent process never leaves a half-written dataset; a dataset
  already in place is kept.
  """
  target = os.path.join(data_dir, NAME, VERSION)
  if os.path.isdir(target):
    return target
  if indices is None:
    verify()
  os.makedirs(data_dir, exist_ok=True)
  scratch = tempfile.mkdtemp(prefix=f".{NAME}-", dir=data_dir)
  try:
    tfds.dataset_builders.store_as_tfds_dataset(
      name=NAME,
      version=VERSION,
      features=_features(),
      split_datasets={
        "train": _examples(indices),
        "test": _examples(test_indices() if indices is None else indices),
      },
      data_dir=scratch,
      description=(
        "A procedural dSprites (vae_jax.data.dsprites): the original's "
        "factor grid, re-rendered with an approximate heart."
      ),
      homepage="https://github.com/deepmind/dsprites-dataset",
      disable_shuffling=True,
    )
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
      os.rename(os.path.join(scratch, NAME, VERSION), target)
    except OSError:
      if not os.path.isdir(target):  # Lost a race with another process: fine.
        raise
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return target
