r"""An ACGAN on 64x64 CelebA, conditioned on attributes ('Smiling' by default).

    python -m vae_jax.main --config=configs/celeba_acgan.py \
        --workdir=/tmp/acgan_celeba
    python -m vae_jax.main --config=configs/celeba_acgan.py:Smiling,Male \
        --workdir=/tmp/acgan_celeba_smiling_male

configs/celeba_gan.py's DCGAN, conditioned on the chosen attributes: each
combination of their values is a class (2 for one attribute, 4 for two),
embedded to z's size in the generator and predicted by the discriminator's
second head. `python -m vae_jax.analyze` draws pairs.png: the same z with
each attribute value side by side.
"""

import ml_collections

from configs import celeba_gan


def get_config(attributes: str = "Smiling") -> ml_collections.ConfigDict:
  config = celeba_gan.get_config()
  config.model.name = "acgan"  # Classes: every combination of attributes.
  # CelebA attributes conditioned on, comma-separated in the argument.
  config.input.attributes = tuple(attributes.split(","))
  config.loss.aux_weight = 1.0  # ACGAN's: class and source losses equal.
  return config
