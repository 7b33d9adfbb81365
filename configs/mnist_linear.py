r"""The seed's MLP ("linear") VAE on MNIST: 784-400-200-20, Bernoulli likelihood.

    python -m vae_jax.main --config=configs/mnist_linear.py --workdir=/tmp/vae_mnist

Reproduces the seed report's first experiment (it ended at a train loss of
about 99 nats per image after 30 epochs of Adam at 1e-3, batch 128). Every
section's fields, each with its comment, come from the piece that reads it:
the loop's (`vae_jax/trainers/loop.py`), `input` (`vae_jax/data/pipeline.py`),
`model` (`vae_jax/models/mlp_vae.py`), `loss`
(`vae_jax/objectives/negative_elbo.py`) and `optimizer`
(`vae_jax/core/optimizers.py`). Their defaults are the seed's settings.
"""

import ml_collections

from vae_jax.trainers import loop


def get_config() -> ml_collections.ConfigDict:
  return loop.default_config("mlp_vae")
