r"""The seed's 32x32 MNIST MLP VAE: 1024-512-(mu, logvar: 4) and back.

    python -m vae_jax.main --config=configs/mnist_linear_4d.py \
        --workdir=/tmp/vae_mnist_4d

Reproduces the seed's small-latent linear model (sigmoid output, BCE).
"""

import ml_collections

from configs import mnist_linear


def get_config() -> ml_collections.ConfigDict:
  config = mnist_linear.get_config()
  config.input.image_size = 32  # The seed resized MNIST to 32x32: 1024 inputs.
  config.model.hidden_sizes = (512,)  # 1024-512-4; the decoder mirrors it.
  config.model.latent_size = 4  # Small enough to traverse by eye.
  return config
