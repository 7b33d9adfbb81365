r"""The seed's three-layer conv VAE on 32x32 MNIST; latent size as argument.

    python -m vae_jax.main --config=configs/mnist_convvae.py:16 \
        --workdir=/tmp/convvae16
    python -m vae_jax.main --config=configs/mnist_convvae.py:256 \
        --workdir=/tmp/convvae256

The seed compared latent 16 with 256, and swept the KL weight over
5e-1, 5e-2, 5e-3, 5e-4, 5e-5, 5e-6 (`--config.loss.kl_weight=5e-3`);
configs/mnist_convvae_seed.py runs that study at the seed's settings.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config(latent_size: str = "16") -> ml_collections.ConfigDict:
  config = run_config.default_config("small_conv_vae")  # The listing's sizes.
  config.num_epochs = 10  # A few epochs already show the latent-size effect.
  config.input.image_size = 32  # Three stride-2 convs: 32 -> 16 -> 8 -> 4.
  config.model.latent_size = int(latent_size)  # 16 or 256 in the seed.
  return config
