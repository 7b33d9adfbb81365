r"""The MLP VAE on any image folder laid out <root>/<split>/<class>/*.png.

    python -m vae_jax.main --config=configs/folder_vae.py:/data/mnist_png \
        --workdir=/tmp/vae_folder

The seed trained on `mnist_png/training/<digit>/*.png` (test split
`testing`); labels come from the class folder names. Images of mixed sizes
are resized to `input.image_size`; set `--config.input.grayscale=False` and a
`--config.model.hidden_sizes` for colour folders.
"""

import ml_collections

from configs import mnist_linear


def get_config(path: str | None = None) -> ml_collections.ConfigDict:
  config = mnist_linear.get_config()
  config.input.dataset = "image_folder"  # TFDS's ImageFolder builder.
  if path:
    config.input.folder_path = path  # Root holding one folder per split.
  config.input.train_split = "training"  # mnist_png's split names.
  config.input.test_split = "testing"
  config.input.image_size = 28  # Every image resized to 28x28.
  config.input.grayscale = True  # One channel, as the seed's digits.
  return config
