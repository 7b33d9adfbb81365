"""Tiny ACGAN and GAN configs, and whole runs of them on mock MNIST, for GAN
tests."""

import tensorflow_datasets as tfds

from configs import mnist_acgan
from configs import mnist_gan
from testbed import make_tiny_config
from vae_jax.trainers import loop

MOCK_EXAMPLES = 40  # Per split: 5 steps of 8 per epoch.
# mnist_acgan's (and mnist_gan's) two networks, narrowed.
TINY_ACGAN = {
  "model.channels": (4, 8),
  "model.generator_channels": (4, 8),
  "model.latent_size": 4,
  # XLA's convolutions compile in half the time of the matmul forms that
  # 'auto' picks on CPU, which test_layers checks against them; the tiny
  # DCGAN VAE of testbed.batchnorm_config trains on those.
  "model.conv_impl": "xla",
}


def tiny_gan_config(conditional=True):
  """mnist_acgan, or mnist_gan if not `conditional`, shrunk so a whole run
  takes seconds on mock data."""
  base = mnist_acgan if conditional else mnist_gan
  return make_tiny_config(base=base.get_config(), model=TINY_ACGAN)


def run(config, workdir, num_examples=MOCK_EXAMPLES):
  with tfds.testing.mock_data(num_examples=num_examples):
    return loop.train_and_evaluate(config, str(workdir))
