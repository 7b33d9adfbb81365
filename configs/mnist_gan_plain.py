r"""A narrow DCGAN on 28x28 MNIST with the plain recipe: the non-saturating
loss, Adam (β1 = 0.5) per network, samples from the trained generator.

    python -m vae_jax.main --config=configs/mnist_gan_plain.py \
        --workdir=/tmp/gan_mnist_plain

Generator: z (64) projected to 7x7x48, then UpConv 4x4 stride 2 to 14x14x24
(BatchNorm, ReLU) and to 28x28x1 (tanh). Discriminator: StridedConv 4x4
stride 2 and LeakyReLU(0.2), 28x28x1 -> 14x14x16 -> 7x7x32, then one logit
(vae_jax/models/gan.py): the fastest GAN here, at about a third of
configs/mnist_gan.py's step time, and the baseline of its recipe
comparison. The generator is the wider network: a discriminator as wide as
the generator wins the game too easily. DCGAN's 64x64 sizes are in
configs/celeba_gan.py.

Samples of every epoch are in the workdir (samples_<step>.png);
`python -m vae_jax.analyze --workdir=...` draws the learning curves, with
the discriminator's accuracies that show collapse.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  # DCGAN's networks, non-saturating loss and Adam (β1 = 0.5, 2e-4) per
  # network; see vae_jax/models/gan.py and vae_jax/trainers/adversarial.py.
  config = run_config.default_config("gan")
  config.num_epochs = 16  # 14,992 steps of batch 64.
  config.batch_size = 64  # Global batch of real images (and as many fakes).
  config.checkpoint_every_steps = 1000  # GANs can collapse late: see below.
  # Every periodic checkpoint is kept (2 MB each), so the step before a
  # collapse can still be analyzed (`analyze --step=...`).
  config.max_checkpoints_to_keep = 1000
  config.model.latent_size = 64  # Dimensions of z ~ N(0, I).
  config.model.channels = (16, 32)  # Discriminator convs, each halving.
  # Wider than the discriminator, which would otherwise win too easily.
  config.model.generator_channels = (24, 48)
  config.model.discriminator_batch_norm = False  # Narrow: none needed.
  return config
