r"""The seed's MLP ("linear") VAE on MNIST: 784-400-200-20, Bernoulli likelihood.

    python -m vae_jax.main --config=configs/mnist_linear.py --workdir=/tmp/vae_mnist

Reproduces the seed report's first experiment (it ended at a train loss of
about 99 nats per image after 30 epochs of Adam at 1e-3, batch 128).
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameters, sampling noise and data order.
  config.num_epochs = 30  # Passes over the training split.
  config.batch_size = 128  # Global batch, split over all devices.
  config.log_every_steps = 100  # Train metrics are averaged over this window.
  config.checkpoint_every_steps = 2000  # Also saved at the end of training.
  config.max_checkpoints_to_keep = 3  # Older checkpoints are deleted.
  config.num_image_samples = 64  # Samples per grid; half as many recons.

  config.input = ml_collections.ConfigDict()
  config.input.dataset = "mnist"  # TFDS name.
  # TFDS data dir; unset means TFDS's default ($TFDS_DATA_DIR or
  # ~/tensorflow_datasets).
  config.input.data_dir = config_dict.placeholder(str)
  # 'auto': the TFDS copy, else TFDS's download if reachable, else the
  # registry mirror; 'tfds' or 'mirror' force one source.
  config.input.mnist_source = "auto"
  # Hold the decoded training split in host memory (MNIST: 47 MB) instead
  # of streaming it through tf.data each epoch.
  config.input.in_memory = True
  config.input.shuffle_buffer_size = 60_000  # Streaming only: full shuffle.

  config.model = ml_collections.ConfigDict()
  config.model.name = "mlp_vae"  # A key of vae_jax.models.MODELS.
  config.model.hidden_sizes = (400, 200)  # Encoder; the decoder mirrors it.
  config.model.latent_size = 20  # Dimensions of z.

  config.loss = ml_collections.ConfigDict()
  config.loss.likelihood = "bernoulli"  # 'bernoulli' (BCE) or 'gaussian'.
  config.loss.gaussian_variance = 1.0  # Fixed pixel variance of 'gaussian'.
  config.loss.kl_weight = 1.0  # β; 1.0 is the true ELBO.
  config.loss.kl_warmup_steps = 0  # Steps over which β ramps up from 0.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"  # 'adam', 'adamw', 'rmsprop' or 'sgd'.
  config.optimizer.learning_rate = 1e-3  # Peak learning rate.
  config.optimizer.schedule = "constant"  # 'constant' or 'cosine' decay.
  config.optimizer.warmup_steps = 0  # Linear warm-up from 0.
  config.optimizer.b1 = 0.9  # Adam's first-moment decay.
  config.optimizer.b2 = 0.999  # Adam's second-moment decay.
  config.optimizer.weight_decay = 0.0  # Used by 'adamw' only.
  config.optimizer.momentum = 0.0  # Used by 'sgd' only.
  config.optimizer.grad_clip_norm = 0.0  # Global-norm clipping; 0 is off.
  return config
