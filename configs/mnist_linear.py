r"""The seed's MLP ("linear") VAE on MNIST: 784-400-200-20, Bernoulli pixels.

    python -m vae_jax.main --config=configs/mnist_linear.py \
        --workdir=/tmp/vae_mnist

Reproduces the seed report's first experiment: 30 epochs of Adam at 1e-3,
batch 128. Every section's fields, each with its comment, come from the piece
that reads it: the loop's (`vae_jax/trainers/run_config.py`), `input`
(`vae_jax/data/pipeline.py`),
`model` (`vae_jax/models/mlp_vae.py`), `loss`
(`vae_jax/objectives/negative_elbo.py`) and `optimizer`
(`vae_jax/core/optimizers.py`). Their defaults are the seed's settings.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  return run_config.default_config("mlp_vae")
