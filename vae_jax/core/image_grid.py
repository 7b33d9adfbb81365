"""Image grids for TensorBoard and PNG files (see `outputs.write_png`)."""

import math

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[0, 1] floats to uint8 pixels."""
  return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def make_grid(
  images: np.ndarray, num_cols: int | None = None, padding: int = 2
) -> np.ndarray:
  """Tiles [N, H, W, C] images into one [rows*(H+p)+p, cols*(W+p)+p, C]
  image."""
  num, height, width, channels = images.shape
  num_cols = num_cols or math.ceil(math.sqrt(num))
  num_rows = math.ceil(num / num_cols)
  grid = np.full(
    (
      num_rows * (height + padding) + padding,
      num_cols * (width + padding) + padding,
      channels,
    ),
    255 if images.dtype == np.uint8 else 1.0,
    images.dtype,
  )
  for i, image in enumerate(images):
    row, col = divmod(i, num_cols)
    top = padding + row * (height + padding)
    left = padding + col * (width + padding)
    grid[top : top + height, left : left + width] = image
  return grid
