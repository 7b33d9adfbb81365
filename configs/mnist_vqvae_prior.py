r"""The VQ-VAE's second stage: a prior over the code grids of a finished
configs/mnist_vqvae.py run, which makes the pair generative.

    python -m vae_jax.main --config=configs/mnist_vqvae.py \
        --workdir=/tmp/vqvae_mnist
    python -m vae_jax.main --config=configs/mnist_vqvae_prior.py \
        --workdir=/tmp/vqvae_prior --config.input.codes_of=/tmp/vqvae_mnist
    python -m vae_jax.analyze --workdir=/tmp/vqvae_prior
    python -m vae_jax.sample --workdir=/tmp/vqvae_prior --num_samples=64 \
        --output=/tmp/vqvae_samples.npz

The codes of the VQ-VAE's 60,000 training images (its static binarization)
and 10,000 test images (the fixed test binarization every binarized run is
scored on) are computed once when the run starts, and held like the MNIST
split (`vae_jax/trainers/code_grids.py`). The prior is a small causal
Transformer over the 49 positions of the 7x7 grid in raster order
(`vae_jax/models/code_prior.py`), trained on the log-loss of the grids
(`vae_jax/objectives/code_log_loss.py`). `analyze` adds the VQ-VAE's
reconstruction term of the same test images to the prior's log-loss: an
upper bound on -log p(x) in nats, comparable with the likelihood table.
"""

import ml_collections

from vae_jax.trainers import run_config


def get_config() -> ml_collections.ConfigDict:
  config = run_config.default_config("code_prior")
  # The VQ-VAE run whose codes are the data: configs/mnist_vqvae.py's
  # command above. Its dataset, binarization and splits are the prior's.
  config.input.codes_of = "/tmp/vqvae_mnist"
  config.model.codebook_size = 64  # mnist_vqvae's K; checked against the run.
  config.num_epochs = 10  # 4,680 steps of batch 128.
  config.batch_size = 128
  config.optimizer.learning_rate = 3e-4  # Adam, as is usual for Transformers.
  config.checkpoint_every_steps = 2340  # Every 5 epochs.
  return config
