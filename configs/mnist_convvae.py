r"""The seed's three-layer conv VAE on 32x32 MNIST; latent size as argument.

    python -m vae_jax.main --config=configs/mnist_convvae.py:16 --workdir=/tmp/convvae16
    python -m vae_jax.main --config=configs/mnist_convvae.py:256 --workdir=/tmp/convvae256

The seed compared latent 16 with 256, and swept the KL weight over
5e-1, 5e-2, 5e-3, 5e-4, 5e-5, 5e-6 (`--config.loss.kl_weight=5e-3`): the loss
only dropped below weight 5e-2, and 5e-3 kept reconstructions sharp with the
most diverse samples.
"""

import ml_collections

from configs import mnist_linear


def get_config(latent_size: str = "16") -> ml_collections.ConfigDict:
  config = mnist_linear.get_config()
  config.num_epochs = 10  # A few epochs already show the latent-size effect.
  config.input.image_size = 32  # Three stride-2 convs: 32 -> 16 -> 8 -> 4.
  config.model = ml_collections.ConfigDict()
  config.model.name = "small_conv_vae"  # vae_jax/models/small_conv_vae.py.
  config.model.latent_size = int(latent_size)  # 16 or 256 in the seed.
  config.model.base_channels = 32  # d: convs have d, 2d, 4d channels.
  config.model.dense_size = 256  # Linear between the convs and the heads.
  # Form of the conv layers ('auto', 'xla', 'matmul'; vae_jax/models/
  # layers.py). 'auto': XLA's convolutions on GPU/TPU, the matmul forms
  # on CPU. All forms share parameters: checkpoints load in any.
  config.model.conv_impl = "auto"
  return config
