r"""A DCGAN on 28x28 MNIST: non-saturating loss, Adam (β1 = 0.5) per network.

    python -m vae_jax.main --config=configs/mnist_gan.py --workdir=/tmp/gan_mnist

Generator: z (64) projected to 7x7x48, then UpConv 4x4 stride 2 to 14x14x24
(BatchNorm, ReLU) and to 28x28x1 (tanh). Discriminator: StridedConv 4x4
stride 2 and LeakyReLU(0.2), 28x28x1 -> 14x14x16 -> 7x7x32, then one logit
(vae_jax/models/gan.py). Narrow for a shared 2-core CPU, where a step took
35-80 ms (430 ms with (32, 64) channels in both networks). The generator
is the wider network: in ACGAN runs of 10-12 epochs, (16, 32) for both gave
digits that the project's classifier recognized as the conditioning digit
91% of the time, and a discriminator of (32, 64) only 80%. DCGAN's 64x64
sizes are in configs/celeba_gan.py.

Samples of every epoch are in the workdir (samples_<step>.png);
`python -m vae_jax.analyze --workdir=...` draws the learning curves, with
the discriminator's accuracies that show collapse.
"""

import ml_collections

from configs import mnist_linear


def adam(base: ml_collections.ConfigDict,
         learning_rate: float) -> ml_collections.ConfigDict:
  """`base`'s optimizer fields as DCGAN's Adam: β1 = 0.5, constant rate."""
  optimizer = base.copy_and_resolve_references()
  optimizer.name = "adam"
  optimizer.learning_rate = learning_rate
  optimizer.schedule = "constant"
  optimizer.b1 = 0.5  # DCGAN's: 0.9 makes GAN training oscillate.
  optimizer.b2 = 0.999
  return optimizer


def get_config() -> ml_collections.ConfigDict:
  config = mnist_linear.get_config()
  config.num_epochs = 16  # 14,992 steps of batch 64.
  config.batch_size = 64  # Global batch of real images (and as many fakes).
  config.checkpoint_every_steps = 1000  # GANs can collapse late: see below.
  # Every periodic checkpoint is kept (2 MB each), so the step before a
  # collapse can still be analyzed (`analyze --step=...`).
  config.max_checkpoints_to_keep = 1000
  config.input.pixel_range = "symmetric"  # [-1, 1], the tanh output's range.
  config.trainer = "gan"  # vae_jax/gan_train.py.
  # Discriminator updates per generator update; WGAN-style critics take 5.
  config.n_critic = 1

  config.model = ml_collections.ConfigDict()
  config.model.name = "gan"  # 'gan' or 'acgan' (vae_jax/models/gan.py).
  config.model.latent_size = 64  # Dimensions of z ~ N(0, I).
  # Discriminator convs, each halving the image.
  config.model.channels = (16, 32)
  # The generator's, in the same order (it runs them backwards). Wider than
  # the discriminator: a discriminator wider than the generator won the
  # game too easily (see the docstring).
  config.model.generator_channels = (24, 48)
  # DCGAN's BatchNorm in the discriminator (all levels but the first).
  config.model.discriminator_batch_norm = False
  # 'tanh' ([-1, 1], pixel_range 'symmetric') or 'sigmoid' ([0, 1], 'unit').
  config.model.output_activation = "tanh"
  # Form of the conv layers ('auto', 'xla', 'matmul'; vae_jax/models/
  # layers.py). 'auto': XLA's convolutions on GPU/TPU, the matmul forms
  # on CPU. All forms share parameters: checkpoints load in any.
  config.model.conv_impl = "auto"

  config.loss = ml_collections.ConfigDict()
  # ACGAN: weight of the class cross-entropy (real and fake for the
  # discriminator, fake for the generator); unused by 'gan'.
  config.loss.aux_weight = 1.0

  # One optimizer per network, each with every field of mnist_linear's.
  base = config.optimizer
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.generator = adam(base, 2e-4)  # DCGAN's rates.
  config.optimizer.discriminator = adam(base, 2e-4)
  return config
