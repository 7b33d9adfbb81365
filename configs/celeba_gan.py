r"""DCGAN on 64x64 CelebA faces: the DCGAN paper's networks and Adam settings,
with configs/mnist_gan.py's recipe (the hinge loss, samples from an average
of the generator's weights).

    python -m vae_jax.main --config=configs/celeba_gan.py \
        --workdir=/tmp/gan_celeba

Generator: z (100) projected to 4x4x512, then UpConv 4x4 stride 2 to
8x8x256, 16x16x128, 32x32x64 (BatchNorm, ReLU) and 64x64x3 (tanh); the
discriminator mirrors it with StridedConv 4x4 stride 2, BatchNorm from the
second level and LeakyReLU(0.2), then one logit. Needs TFDS's celeb_a in the
data dir (see configs/celeba_vae.py). Every checkpoint is kept (every 2,000
steps) so the steps before a collapse can still be analyzed. The recipe was
measured on MNIST only: CelebA cannot be downloaded where the project is
tested, so no figure here says how it does on faces.
"""

import ml_collections

from configs import mnist_gan


def get_config() -> ml_collections.ConfigDict:
  config = mnist_gan.get_config()
  config.num_epochs = 5  # 162,770 training faces: 1,271 steps of 128.
  config.batch_size = 128  # DCGAN's batch.
  config.checkpoint_every_steps = 2000  # 75 MB each; all are kept.
  config.input.dataset = "celeb_a"  # TFDS name; aligned faces.
  config.input.image_size = 64  # Center crop resized to 64x64.
  config.input.attributes = ("Smiling",)  # Conditioning of celeba_acgan.
  config.input.in_memory = False  # 2.0 GB of pixels: stream them instead.
  config.model.latent_size = 100  # DCGAN's z.
  config.model.channels = (64, 128, 256, 512)  # 64x64 -> 4x4.
  config.model.generator_channels = (64, 128, 256, 512)  # DCGAN: a mirror.
  config.model.discriminator_batch_norm = True  # As in DCGAN.
  return config
