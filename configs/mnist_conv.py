r"""The seed's DCGAN-style conv VAE on 32x32 MNIST (latent 128, BatchNorm).

    python -m vae_jax.main --config=configs/mnist_conv.py --workdir=/tmp/vae_mnist_conv

Encoder: four Conv 4x4 stride 2 (64, 128, 256, 128), ReLU then BatchNorm, and
linear heads 512 -> 128; decoder: Linear 128 -> 512 -> 512, four
ConvTranspose 4x4 stride 2 back to 32x32 (see vae_jax/models/dcgan_vae.py).
"""

import ml_collections

from configs import mnist_linear


def get_config() -> ml_collections.ConfigDict:
  config = mnist_linear.get_config()
  config.num_epochs = 10  # Conv layers cost ~10x the MLP's FLOPs per image.
  config.input.image_size = 32  # Four stride-2 convs need a multiple of 16.
  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan_vae"  # vae_jax/models/dcgan_vae.py.
  config.model.latent_size = 128  # The listing's mu/sigma heads: 512 -> 128.
  config.model.channels = (64, 128, 256, 128)  # Encoder convs; mirrored back.
  config.model.dense_size = 512  # Decoder's first Linear: latent -> 512.
  # Form of the conv layers ('auto', 'xla', 'matmul'; vae_jax/models/
  # layers.py). 'auto': XLA's convolutions on GPU/TPU, the matmul forms
  # on CPU. All forms share parameters: checkpoints load in any.
  config.model.conv_impl = "auto"
  return config
