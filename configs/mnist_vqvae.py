r"""The VQ-VAE (van den Oord et al., 2017) on dynamically binarized MNIST.

    python -m vae_jax.main --config=configs/mnist_vqvae.py \
        --workdir=/tmp/vqvae_mnist
    python -m vae_jax.analyze --workdir=/tmp/vqvae_mnist

A 7x7 grid of 16-dim vectors, each quantized to one of 64 codebook entries
learned by moving averages (unused ones restarted), under a Bernoulli
likelihood, with the paper's β = 0.25 and batch 128 (`vae_jax/models/vq_vae.py`,
`vae_jax/objectives/vq_vae.py`). Its length trains in about ten minutes on
a 2-core CPU. No prior over the codes yet, so no samples and no NLL: the
analysis reconstructs and interpolates.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  config = run_config.default_config("vq_vae")
  # Fresh binary images every epoch, the binarized-MNIST literature's data.
  config.input.binarize = "dynamic"
  config.num_epochs = 6  # 2,808 steps: about ten minutes on 2 CPU cores.
  # Adam at 1e-3, not the paper's 2e-4: these 2,808 steps are a sliver of
  # the paper's 250,000, and the 'ema' codebook follows its own averages,
  # not this rate.
  config.optimizer.learning_rate = 1e-3
  # Entries no vector chose for 100 steps restart at encoder outputs: from
  # its random start, most of the codebook is otherwise never chosen.
  config.model.dead_code_restart_steps = 100
  return config
