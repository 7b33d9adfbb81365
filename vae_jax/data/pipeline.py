"""A run's data, prepared once: its config section, its checks, and
`PreparedData`, the one object the training loop and the analysis read.

`prepare(input_config)` makes the dataset readable (TFDS's data dir, the
MNIST mirror, an image folder), opens this process's share of each split
once, and then answers everything a run asks of its data: the image shape,
the split sizes, training batches from the host or held on the devices,
padded eval batches and the first test images.
"""

from collections.abc import Iterator
import functools

import jax
import ml_collections
from ml_collections import config_dict
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.data import augment
from vae_jax.data import batching
from vae_jax.data import binarize
from vae_jax.data import device_held
from vae_jax.data import sources


def default_config() -> ml_collections.ConfigDict:
  """config.input: MNIST as the seed read it."""
  config = ml_collections.ConfigDict()
  config.dataset = "mnist"  # TFDS name, or 'image_folder'.
  # TFDS data dir; unset means TFDS's default ($TFDS_DATA_DIR or
  # ~/tensorflow_datasets).
  config.data_dir = config_dict.placeholder(str)
  # 'auto': the TFDS copy, else TFDS's download if reachable, else the
  # registry mirror; 'tfds' or 'mirror' force one source.
  config.mnist_source = "auto"
  # Hold the decoded training split in host memory (MNIST: 47 MB) instead
  # of streaming it through tf.data each epoch.
  config.in_memory = True
  config.shuffle_buffer_size = 60_000  # Streaming only: full shuffle.
  # 'auto': an in-memory split (up to 1 GiB of float32 pixels, no
  # augmentation: MNIST's 188 MB) is copied to every device once, and the
  # steps between log, checkpoint and epoch boundaries run as one compiled
  # loop that gathers its batches there;
  # 'always' insists (an error with augmentation, which runs in tf.data);
  # 'never' feeds one batch per step from the host. Either way batch k of
  # epoch e holds the same examples.
  config.device_resident = "auto"
  # 'unit' ([0, 1]) for VAEs; 'symmetric' ([-1, 1]) for the plain
  # autoencoders' tanh outputs. Must be the range the model family reads.
  config.pixel_range = "unit"
  # Square side images are resized to; None keeps the dataset's own (MNIST
  # 28, celeb_a's 140 center crop). The seed: 32 for MNIST's conv and
  # 1024-input MLPs, 32 or 64 for stanford_dogs (which needs one), 64 celeb_a.
  config.image_size = config_dict.placeholder(int)
  config.grayscale = False  # RGB to one channel, after resizing.
  # stanford_dogs: crop to the first annotated box (the dog) before resizing.
  config.crop_to_bbox = False
  # celeb_a: attributes kept as 'attributes' (int32 [n]); the first is also
  # the 'label' used for conditioning and for coloring plots.
  config.attributes = ("Smiling",)
  # image_folder: a root laid out <root>/<split>/<class>/*.png|jpg; labels
  # are the sorted class folder names' indices.
  config.folder_path = config_dict.placeholder(str)
  # image_folder: files that do not decode as images 'fail' the run (naming
  # one), or are counted and left out ('skip').
  config.unreadable_images = "fail"
  # Splits for training and evaluation ('training' and 'testing' for the
  # seed's mnist_png folder; celeb_a also has 'validation').
  config.train_split = "train"
  config.test_split = "test"
  # stanford_dogs and celeb_a when not yet in the data dir: 'auto' lets TFDS
  # download them if their host answers within 3 s; 'always' skips that
  # probe (behind a proxy; tests set it, as under tfds.testing.mock_data the
  # download is a no-op); 'never' only prepares from archives placed in
  # <data_dir>/downloads/manual, as any mode does when they are there.
  config.download = "auto"
  # Training-only augmentations, a pure function of (seed, step) in both the
  # in-memory and the streamed paths; 0 is off.
  config.rotation_degrees = 0.0  # Uniform in ±this; the seed used 45.
  config.autocontrast_prob = 0.0  # Per image; the seed used 0.5.
  # Brightness scaled by U[max(0, 1 - j), 1 + j]; the seed used 0.5.
  config.brightness_jitter = 0.0
  # 'none' keeps grey levels; 'dynamic' draws each pixel from Bernoulli(its
  # grey level) afresh each time a training image is used (Burda et al.'s
  # binarized MNIST); 'static' draws the training split once. Either
  # evaluates on one fixed binarization of the test split (`data.binarize`).
  config.binarize = "none"
  # A finished VQ-VAE run's workdir: train on its code grids of its own
  # dataset, encoded once at the start (`trainers.code_grids`), instead of
  # on images; the fields above are then that run's. Needs pixel_range
  # 'codes', which the priors over codes read.
  config.codes_of = config_dict.placeholder(str)
  # That run's checkpoint step to encode with; None: its newest. Pin it
  # when that run may train on while this one resumes.
  config.codes_step = config_dict.placeholder(int)
  return config


def check_config(input_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for input settings no run could use."""
  errors.require_choice(
    input_config.pixel_range, batching.PIXEL_RANGES, "input.pixel_range"
  )
  errors.require(
    (input_config.codes_of is None) == (input_config.pixel_range != "codes"),
    "input.pixel_range='codes' reads the code grids of a VQ-VAE run, and only "
    "those: set both it and input.codes_of=WORKDIR, or neither.",
  )
  sources.check_config(input_config)
  augment.check_config(input_config)
  device_held.check_config(input_config)
  binarize.check_config(input_config)


class PreparedData:
  """One dataset, readable, with this process's share of each split open."""

  def __init__(self, input_config: ml_collections.ConfigDict):
    self.config = input_config
    # Where it came from ('tfds_data_dir', 'registry_mirror', ...).
    self.source = self._prepare_source()
    self._train = self._load("train", drop_remainder=True)
    self.image_shape = sources.image_shape(self._train)
    # This process's share; the shares of several processes may differ.
    self.num_train_examples = batching.num_examples(self._train)
    self._eval_datasets = {}  # By local batch size.

  def _prepare_source(self) -> str:
    """Makes the examples readable; says where they come from."""
    return sources.prepare(self.config)

  def _load(self, split: str, **kwargs) -> tf.data.Dataset:
    """`sources.load`, with the fixed binarizations drawn."""
    examples = sources.load(self.config, split, **kwargs)
    mode = self.config.binarize
    if split == "test" and mode != "none":
      return binarize.fixed_draw(examples, binarize.TEST_DRAW)
    if split == "train" and mode == "static":
      return binarize.fixed_draw(examples, binarize.STATIC_TRAIN_DRAW)
    return examples

  def fixed_split(self, split: str) -> dict[str, np.ndarray]:
    """The whole `split` ('train' or 'test'), unaugmented, in memory: uint8
    images, binarized (when the run binarizes) by that split's fixed draw,
    which for a dynamically binarized training split is the static one."""
    examples = sources.load(self.config, split, per_process=False)
    if self.config.binarize != "none":
      draw = (
        binarize.TEST_DRAW if split == "test" else binarize.STATIC_TRAIN_DRAW
      )
      examples = binarize.fixed_draw(examples, draw)
    return batching.load_in_memory(examples)

  @functools.cached_property
  def _test(self) -> tf.data.Dataset:
    return self._load("test")

  def on_device_input(self, train_step, seed: int):
    """A trainer's train step, uncompiled, made to read its batches as this
    input section finishes them on the devices: dynamically binarized for
    the state's step when `binarize` is 'dynamic', else unchanged.

    On the devices, so that the device-held and host-fed paths draw the same
    pixels for a step.
    """
    if self.config.binarize != "dynamic":
      return train_step

    def binarized_step(state, batch, rng):
      images = binarize.dynamic_draw(batch["image"], seed, state.step)
      return train_step(state, {**batch, "image": images}, rng)

    return binarized_step

  def steps_per_epoch(self, local_batch_size: int) -> int:
    """Steps every process takes per epoch (of its shortest share)."""
    return batching.steps_per_epoch(self.num_train_examples, local_batch_size)

  def is_device_resident(self) -> bool:
    """Whether training batches come from a copy held on the devices."""
    return device_held.is_device_resident(
      self.config, self.image_shape, self.num_train_examples
    )

  @functools.cached_property
  def _in_memory(self) -> dict[str, np.ndarray]:
    return batching.load_in_memory(self._train)

  def read_into_memory(self) -> None:
    """Decodes this process's training split now when `input.in_memory`
    holds it (else does nothing).

    Training calls it before any other work: a split that cannot be decoded
    fails the run first, and the decode runs alone, faster than beside the
    model's compiles and Orbax's threads.
    """
    if self.config.in_memory:
      _ = self._in_memory

  def device_split(self) -> dict[str, np.ndarray]:
    """The in-memory split with its images as the model reads them: float32
    pixels, converted as the host path converts each batch."""
    return {
      **self._in_memory,
      "image": batching.to_model_pixels(self._in_memory["image"], self.config),
    }

  def train_batches(
    self, local_batch_size: int, seed: int, start_step: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    """Endless shuffled, augmented training batches of this process.

    Batch k of epoch e depends only on (seed, e, k), so a resumed run
    continues with exactly the batches an uninterrupted run would have used.
    """
    if self.config.in_memory:
      return batching.in_memory_batches(
        self._in_memory, self.config, local_batch_size, seed, start_step
      )
    return batching.streamed_batches(
      self._train, self.config, local_batch_size, seed, start_step
    )

  def eval_dataset(self, local_batch_size: int) -> tf.data.Dataset:
    """This process's share of the test split in padded batches with 'mask'
    (`batching.eval_dataset`), built once per batch size."""
    if local_batch_size not in self._eval_datasets:
      self._eval_datasets[local_batch_size] = batching.eval_dataset(
        self._test, self.config, local_batch_size
      )
    return self._eval_datasets[local_batch_size]

  def first_test_batch(self, count: int) -> dict[str, np.ndarray]:
    """The first `count` examples of the whole test split, unaugmented, as
    one batch.

    The same on every process, unlike `eval_dataset`'s shares: image grids
    are computed by all processes together.
    """
    whole = (
      self._test
      if jax.process_count() == 1
      else self._load("test", per_process=False)
    )
    return batching.first_examples(whole, count, self.config)


def prepare(input_config: ml_collections.ConfigDict) -> PreparedData:
  """Makes the dataset readable and opens it; see `PreparedData`."""
  return PreparedData(input_config)
