r"""The conditional VAE on MNIST (Sohn et al. 2015): the seed's MLP VAE,
784-400-200-20 and back, with the digit given to its encoder and decoder.

    python -m vae_jax.main --config=configs/mnist_cvae.py \
        --workdir=/tmp/cvae_mnist
    python -m vae_jax.sample --workdir=/tmp/cvae_mnist --label=7 \
        --num_samples=100 --output=/tmp/sevens.npz
    python -m vae_jax.analyze --workdir=/tmp/cvae_mnist

As mnist_linear.py otherwise: 30 epochs of Adam at 1e-3, batch 128, a
Bernoulli likelihood on grey levels. `analyze` judges samples drawn for
every digit in turn with the project's classifier (the conditional
accuracy, overall and per digit), and draws pairs.png: each column one z,
each row the digit it is decoded as.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  return run_config.default_config("conditional_vae")
