r"""The DCGAN-style conv VAE on Stanford Dogs, 64x64 RGB, cropped to the dog.

    python -m vae_jax.main --config=configs/dogs_conv.py --workdir=/tmp/vae_dogs

Needs TFDS's stanford_dogs in the data dir: without it the run stops and says
where to put the archives. With 64x64 inputs the flattened encoder output is
4x4x128 = 2048, so the heads are 2048 -> 128 (the 32x32 listing had 512).
"""

import ml_collections

from configs import mnist_conv


def get_config() -> ml_collections.ConfigDict:
  config = mnist_conv.get_config()
  config.num_epochs = 50  # 12,000 training images: many short epochs.
  config.input.dataset = "stanford_dogs"  # TFDS name.
  config.input.image_size = 64  # The seed's dog VAE worked at 64x64.
  config.input.crop_to_bbox = True  # The dog, not the background.
  config.input.rotation_degrees = 0.0  # Seed augmentations, off by default:
  config.input.autocontrast_prob = 0.0  # rotation 45, autocontrast 0.5,
  config.input.brightness_jitter = 0.0  # brightness 0.5 when enabled.
  return config
