r"""The conv VAE on CelebA faces, 64x64, RMSprop, batch 128.

    python -m vae_jax.main --config=configs/celeba_vae.py \
        --workdir=/tmp/vae_celeba

Needs TFDS's celeb_a in the data dir (its host rate-limits downloads): without
it the run stops and says where to put the files. The seed's faces VAE used a
small KL weight so faces stay sharp; sweep it over 5e-2 ... 5e-6
(`--config.loss.kl_weight=...`). The 'Smiling' attribute is kept as the label
for coloring latent maps and for the conditional models.
"""

import ml_collections

from configs import mnist_conv


def get_config() -> ml_collections.ConfigDict:
  config = mnist_conv.get_config()
  config.num_epochs = 5  # 162,770 training faces: 1,271 steps per epoch.
  config.batch_size = 128  # The seed's batch.
  config.input.dataset = "celeb_a"  # TFDS name; aligned faces.
  config.input.image_size = 64  # Center crop resized to 64x64.
  config.input.attributes = ("Smiling",)  # The first is the 'label'.
  config.input.test_split = "test"  # celeb_a also has 'validation'.
  config.input.in_memory = False  # 2.0 GB of pixels: stream them instead.
  config.loss.kl_weight = 5e-3  # Small β: the seed's faces stayed sharp.
  config.optimizer.name = "rmsprop"  # The seed trained faces with RMSprop.
  config.optimizer.learning_rate = 1e-4  # RMSprop's usual step for DCGANs.
  return config
