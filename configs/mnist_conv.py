r"""The seed's DCGAN-style conv VAE on 32x32 MNIST (latent 128, BatchNorm).

    python -m vae_jax.main --config=configs/mnist_conv.py \
        --workdir=/tmp/vae_mnist_conv

Encoder: four Conv 4x4 stride 2 (64, 128, 256, 128), ReLU then BatchNorm, and
linear heads 512 -> 128; decoder: Linear 128 -> 512 -> 512, four
ConvTranspose 4x4 stride 2 back to 32x32 (vae_jax/models/dcgan_vae.py, whose
defaults are the listing's sizes).
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  config = run_config.default_config("dcgan_vae")
  config.num_epochs = 10  # Conv layers cost ~10x the MLP's FLOPs per image.
  config.input.image_size = 32  # Four stride-2 convs need a multiple of 16.
  return config
