"""Model families, chosen by `config.model.name`.

Each family module exports `build(model_config, image_shape) -> nn.Module`;
the GAN families build a `gan.Gan`, a generator and a discriminator trained
apart. Adding a family means adding its module and one line here.
"""

from typing import Sequence

import flax.linen as nn
import jax
import ml_collections

from vae_jax.models import autoencoders
from vae_jax.models import dcgan_vae
from vae_jax.models import gan
from vae_jax.models import mlp_vae
from vae_jax.models import small_conv_vae

MODELS = {
    "mlp_vae": mlp_vae.build,
    "dcgan_vae": dcgan_vae.build,
    "small_conv_vae": small_conv_vae.build,
    "fc_autoencoder": autoencoders.build_fc,
    "conv_autoencoder": autoencoders.build_conv,
    "gan": gan.build_gan,  # Trained by vae_jax.trainers.adversarial (config.trainer).
    "acgan": gan.build_acgan,
}
# The families only config.trainer 'gan' trains.
GAN_MODELS = ("gan", "acgan")


def build_model(model_config: ml_collections.ConfigDict,
                image_shape: Sequence[int]) -> nn.Module | gan.Gan:
  return MODELS[model_config.name](model_config, image_shape)


def count_params(params) -> int:
  """Number of trainable scalars (BatchNorm statistics are not params)."""
  return sum(leaf.size for leaf in jax.tree.leaves(params))
