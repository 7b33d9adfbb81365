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
  # True: batch_size is each device's share instead, so the global batch is
  # batch_size × device count and grows with the slice (per-step work per
  # device stays fixed). False keeps the global batch, and with it the
  # learning-rate tuning, the same on any device count.
  config.batch_size_per_device = False
  config.log_every_steps = 100  # Train metrics are averaged over this window.
  config.checkpoint_every_steps = 2000  # Also saved at the end of training.
  config.max_checkpoints_to_keep = 3  # Older checkpoints are deleted.
  config.num_image_samples = 64  # Samples per grid; half as many recons.
  # Updates with a non-finite loss or gradient are skipped; this many in a
  # row stop the run (the checkpoints before them stay intact).
  config.max_consecutive_nonfinite = 20
  # A workdir whose saved config differs in a field that changes the train
  # state's shapes is refused; True starts over there instead, keeping the
  # old checkpoints in checkpoints.before_<time>/.
  config.allow_config_change = False
  # 'bfloat16': models compute in bfloat16 (mixed precision, for GPUs and
  # TPUs); parameters, optimizer state and the loss stay float32. Slower than
  # 'float32' on CPUs.
  config.compute_dtype = "float32"

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
  # 'auto': an in-memory split (up to 1 GiB of float32 pixels, no
  # augmentation: MNIST's 188 MB) is copied to every device once, and the
  # steps between log, checkpoint and epoch boundaries run as one compiled
  # loop that gathers its batches there;
  # 'always' insists (an error with augmentation, which runs in tf.data);
  # 'never' feeds one batch per step from the host. Either way batch k of
  # epoch e holds the same examples.
  config.input.device_resident = "auto"
  # 'unit' ([0, 1]) for VAEs; 'symmetric' ([-1, 1]) for the plain
  # autoencoders' tanh outputs.
  config.input.pixel_range = "unit"
  # Square side images are resized to; None keeps the dataset's own (MNIST
  # 28, celeb_a's 140 center crop). The seed: 32 for MNIST's conv and
  # 1024-input MLPs, 32 or 64 for stanford_dogs (which needs one), 64 celeb_a.
  config.input.image_size = config_dict.placeholder(int)
  config.input.grayscale = False  # RGB to one channel, after resizing.
  # stanford_dogs: crop to the first annotated box (the dog) before resizing.
  config.input.crop_to_bbox = False
  # celeb_a: attributes kept as 'attributes' (int32 [n]); the first is also
  # the 'label' used for conditioning and for coloring plots.
  config.input.attributes = ("Smiling",)
  # image_folder: a root laid out <root>/<split>/<class>/*.png|jpg; labels
  # are the sorted class folder names' indices.
  config.input.folder_path = config_dict.placeholder(str)
  # image_folder: files that do not decode as images 'fail' the run (naming
  # one), or are counted and left out ('skip').
  config.input.unreadable_images = "fail"
  # Splits for training and evaluation ('training' and 'testing' for the
  # seed's mnist_png folder; celeb_a also has 'validation').
  config.input.train_split = "train"
  config.input.test_split = "test"
  # stanford_dogs and celeb_a when not yet in the data dir: 'auto' lets TFDS
  # download them if their host answers within 3 s; 'always' skips that
  # probe (behind a proxy; tests set it, as under tfds.testing.mock_data the
  # download is a no-op); 'never' only prepares from archives placed in
  # <data_dir>/downloads/manual, as any mode does when they are there.
  config.input.download = "auto"
  # Training-only augmentations, a pure function of (seed, step) in both the
  # in-memory and the streamed paths; 0 is off.
  config.input.rotation_degrees = 0.0  # Uniform in ±this; the seed used 45.
  config.input.autocontrast_prob = 0.0  # Per image; the seed used 0.5.
  # Brightness scaled by U[max(0, 1 - j), 1 + j]; the seed used 0.5.
  config.input.brightness_jitter = 0.0

  # 'autoencoder': VAEs and plain autoencoders (vae_jax.trainers.loop);
  # 'gan': GANs and ACGANs (vae_jax.trainers.adversarial).
  config.trainer = "autoencoder"

  config.model = ml_collections.ConfigDict()
  config.model.name = "mlp_vae"  # A key of vae_jax.models.MODELS.
  config.model.hidden_sizes = (400, 200)  # Encoder; the decoder mirrors it.
  config.model.latent_size = 20  # Dimensions of z.

  config.loss = ml_collections.ConfigDict()
  # 'bernoulli' (BCE), 'gaussian' (fixed variance: MSE) or
  # 'gaussian_learned' (variance learned with the model).
  config.loss.likelihood = "bernoulli"
  config.loss.gaussian_variance = 1.0  # Fixed pixel variance of 'gaussian'.
  # 'gaussian_learned': one 'shared' variance or one per pixel ('per_pixel').
  config.loss.learned_variance = "per_pixel"
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
