r"""The seed's plain autoencoders on 64x64 RGB Stanford Dogs (MSE, tanh).

    python -m vae_jax.main --config=configs/dogs_ae.py:fcn1 \
        --workdir=/tmp/ae_fcn1
    python -m vae_jax.main --config=configs/dogs_ae.py:conv \
        --workdir=/tmp/ae_conv

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
from vae_jax.trainers import run_config


def get_config(variant: str = "fcn1") -> ml_collections.ConfigDict:
  if variant not in (*autoencoders.SEED_FC_SIZES, "conv"):
    raise ValueError(
      f"dogs_ae variant {variant!r} is unknown; choose one of "
      f"{sorted(autoencoders.SEED_FC_SIZES) + ['conv']}."
    )
  config = dogs_conv.get_config()  # Its data, schedule and optimizer.
  # The family's model section, its MSE loss and its [-1, 1] pixels.
  family = run_config.default_config(
    "conv_autoencoder" if variant == "conv" else "fc_autoencoder"
  )
  config.model, config.loss = family.model, family.loss
  config.input.pixel_range = family.input.pixel_range
  if variant != "conv":
    encoder_sizes, decoder_sizes = autoencoders.SEED_FC_SIZES[variant]
    config.model.encoder_sizes = encoder_sizes  # After the 12288 inputs.
    config.model.decoder_sizes = decoder_sizes  # Before the 12288 outputs.
  return config
