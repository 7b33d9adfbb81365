r"""The seed's plain autoencoders on 64x64 RGB Stanford Dogs (MSE, tanh).

    python -m vae_jax.main --config=configs/dogs_ae.py:fcn1 --workdir=/tmp/ae_fcn1
    python -m vae_jax.main --config=configs/dogs_ae.py:conv --workdir=/tmp/ae_conv

Variants: fcn1 (12288-2048-1024-512-256-128-3, back through 3-12-256-...),
fcn2 (12288-1024-128-64-32-12-3, mirrored), fcn3 (12288-512-128-64-32-12-3,
mirrored), conv (Conv 4x4 stride 2: 3-64-128-256-512, mirrored). Differences
from the seed listings, which could not run as written: fcn2/fcn3 had a
Linear(64, 32) followed by a Linear(12, 3), built here as 64-32-12-3; the conv
decoder returned 16x16 from a 64x64 input, built here as an exact mirror back
to 64x64x3. Inputs are scaled to [-1, 1] to match the tanh output.
"""

import ml_collections

from configs import dogs_conv
from vae_jax.models import autoencoders


def get_config(variant: str = "fcn1") -> ml_collections.ConfigDict:
  config = dogs_conv.get_config()
  config.input.pixel_range = "symmetric"  # [-1, 1], for the tanh output.
  config.model = ml_collections.ConfigDict()
  if variant == "conv":
    config.model.name = "conv_autoencoder"  # vae_jax/models/autoencoders.py.
    config.model.channels = (64, 128, 256, 512)  # Encoder; mirrored back.
    # Form of the conv layers ('auto', 'xla', 'matmul'; vae_jax/models/
    # layers.py). 'auto': XLA's convolutions on GPU/TPU, the matmul forms
    # on CPU. All forms share parameters: checkpoints load in any.
    config.model.conv_impl = "auto"
  elif variant in autoencoders.SEED_FC_SIZES:
    encoder_sizes, decoder_sizes = autoencoders.SEED_FC_SIZES[variant]
    config.model.name = "fc_autoencoder"  # vae_jax/models/autoencoders.py.
    config.model.encoder_sizes = encoder_sizes  # After the 12288 inputs.
    config.model.decoder_sizes = decoder_sizes  # Before the 12288 outputs.
  else:
    raise ValueError(f"dogs_ae variant {variant!r} is unknown; choose one of "
                     f"{sorted(autoencoders.SEED_FC_SIZES) + ['conv']}.")
  return config
