r"""Seed 002's KL-weight study at its own settings; the latent size as argument.

    python -m vae_jax.sweep --config=configs/mnist_convvae_seed.py:16 \
        --workdir=/tmp/kl_study \
        --sweep='loss.kl_weight=5e-1,5e-2,5e-3,5e-4,5e-5,5e-6'
    python -m vae_jax.sweep --config=configs/mnist_convvae_seed.py:16 \
        --workdir=/tmp/latent_study \
        --sweep='model.latent_size=16,256' --config.loss.kl_weight=5e-3

The seed's three-layer conv VAE on 32x32 MNIST, batch 16, Adam at 1e-4, and
its augmentation (rotation in ±45°, autocontrast with probability 0.5,
brightness jitter 0.5).

The seed's listing does not show its loss; its values of β only mean what it
reports (the loss drops only below β = 5e-2) under PyTorch's default
reduction: the squared error averaged over pixels, beside the KL summed over
the latent, both averaged over the batch,

    loss = mean_pixels (x - x̂)² + β · KL(q(z|x) || N(0, I)).

That is, up to a constant, the negative ELBO under a Gaussian likelihood of
per-pixel variance D / 2 (D = 32·32 = 1,024 pixels), which is what this
config trains: -log N(x; x̂, D/2) = Σ (x - x̂)² / D + const. Measured in
nats per image of the unit-variance Gaussian (Σ (x - x̂)² / 2), the same
objective has KL weight β · D / 2 = 512 β: β = 5e-3 is 2.56.
"""

import ml_collections

from configs import mnist_convvae


def get_config(latent_size: str = "16") -> ml_collections.ConfigDict:
  config = mnist_convvae.get_config(latent_size)
  config.batch_size = 16  # The seed's DataLoader batch.
  config.optimizer.learning_rate = 1e-4  # The seed's Adam.
  config.input.rotation_degrees = 45.0  # RandomRotation(45).
  config.input.autocontrast_prob = 0.5  # RandomAutocontrast(p=0.5).
  config.input.brightness_jitter = 0.5  # ColorJitter(brightness=0.5).
  # mean_pixels (x - x̂)²: a Gaussian of variance D / 2 (module docstring),
  # D the pixels of a (one-channel) image.
  config.loss.likelihood = "gaussian"
  config.loss.gaussian_variance = config.input.image_size**2 / 2
  config.loss.kl_weight = 5e-3  # The seed's pick; swept as above.
  config.log_every_steps = 500  # 3,750 steps an epoch at batch 16.
  config.checkpoint_every_steps = 3750  # Once an epoch.
  return config
