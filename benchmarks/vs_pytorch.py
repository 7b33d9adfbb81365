r"""vae_jax's training step against a PyTorch twin of each seed model.

    pip install -e '.[bench]'  # PyTorch's CPU build.
    python benchmarks/vs_pytorch.py \
        --output=benchmarks/results/vs_pytorch_cpu_2cores.json
    python benchmarks/vs_pytorch.py --whole_job  # + the 30-epoch MNIST job.

For each config, builds vae_jax's model and its train step as training
compiles them (`Trainer.make_steps`), and a PyTorch twin of the
seed listing (checked to have the same number of parameters), then times
one training step of each (forward, backward, Adam update; for a GAN or
ACGAN a discriminator and a generator update with the config's loss, R1
penalty and generator average, n_critic = 1) on the same random batch, in
alternating rounds, and reports the medians and their ratio: PyTorch's
time / vae_jax's, so above 1 vae_jax is faster. PyTorch runs eager, NCHW,
in a process of its own, on all cores and on one thread; the ratio takes
its faster setting (on a shared machine its threads wait for each other
whenever another job holds a core). Rounds alternate so that both see
the same load from anything else on the machine.

--whole_job also times whole processes, alternated: `python -m
vae_jax.main` on configs/mnist_linear.py (30 epochs), the seed's own PyTorch
loop (`seed_mnist_vae` below) and benchmarks/minimal_jax_mlp.py. They read
MNIST as vae_jax does (TFDS, or its mirror). Not a test: timings depend on
the machine and on what else runs on it.
"""

import dataclasses
import functools
import importlib
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
import torch
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# The repository's own modules, importable when run as a script.
from vae_jax.core import outputs  # noqa: E402
from vae_jax.core import sharding  # noqa: E402
from vae_jax.data import batching  # noqa: E402
from vae_jax.data import device_held  # noqa: E402
from vae_jax.data import pipeline  # noqa: E402
from vae_jax.data import sources  # noqa: E402
from vae_jax.models import family  # noqa: E402
from vae_jax.models import registry  # noqa: E402
from vae_jax.trainers import adversarial  # noqa: E402
from vae_jax.trainers import parts as parts_lib  # noqa: E402

CONFIGS = (
  "mnist_conv",
  "mnist_convvae:16",
  "mnist_convvae:256",
  "dogs_conv",
  "dogs_ae:conv",
  "celeba_gan",
  "mnist_gan",
  "mnist_acgan",
  "mnist_linear",
)
flags.DEFINE_list(
  "configs", list(CONFIGS), "Configs (configs/<name>.py[:arg])."
)
flags.DEFINE_integer("rounds", 7, "Alternating timed rounds; medians.")
flags.DEFINE_float(
  "round_seconds", 1.5, "About how long each side runs per round."
)
flags.DEFINE_string("conv_impl", None, "Overrides each config's conv_impl.")
flags.DEFINE_bool(
  "whole_job",
  False,
  "Also time the 30-epoch mnist_linear job as processes (minutes).",
)
flags.DEFINE_integer("job_rounds", 1, "Alternating rounds of --whole_job.")
flags.DEFINE_integer(
  "seed_loop_threads",
  1,
  "PyTorch threads of the seed loop process: on a shared "
  "machine all cores can be 15x slower than one.",
)
flags.DEFINE_bool(
  "seed_loop",
  False,
  "Internal: runs the seed's PyTorch "
  "MNIST loop (one of --whole_job's processes).",
)
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
FLAGS = flags.FLAGS

IMAGE_CHANNELS = {"mnist": 1, "stanford_dogs": 3, "celeb_a": 3}
# Lets the cores a side just used go idle (XLA's and PyTorch's threads spin
# a little after their work) before the other side's timing starts.
PAUSE_SECONDS = 0.05


def load_config(spec: str, conv_impl: str | None = None):
  """configs/<name>.py's config for 'name[:arg]', its conv_impl overridden."""
  name, _, arg = spec.partition(":")
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config(arg) if arg else module.get_config()
  if conv_impl and "conv_impl" in config.model:
    config.model.conv_impl = conv_impl
  return config


def config_image_shape(config) -> tuple[int, int, int]:
  """The preprocessed image shape, without reading the dataset."""
  size = config.input.image_size or 28
  return (size, size, IMAGE_CHANNELS[config.input.dataset])


# PyTorch twins, NCHW, built from the seed listings described in
# vae_jax/models/*.py.


def _bn_relu_after(conv: nn.Module, features: int) -> list[nn.Module]:
  """The DCGAN VAE's level: conv, ReLU, then BatchNorm."""
  return [conv, nn.ReLU(), nn.BatchNorm2d(features)]


class Vae(nn.Module):
  """The wiring of vae_jax.models.vae: `encoder` -> mu, logvar heads, and
  z -> `dense` -> a [C, H, W] map of shape `start` -> `decoder`."""

  def _heads_and_dense(self, features, latent, dense, flat):
    self.mu = nn.Linear(features, latent)
    self.logvar = nn.Linear(features, latent)
    self.dense = nn.Sequential(
      nn.Linear(latent, dense), nn.ReLU(), nn.Linear(dense, flat), nn.ReLU()
    )

  def forward(self, x):
    h = self.encoder(x)
    return self.mu(h), self.logvar(h)

  def decode(self, z):
    return self.decoder(self.dense(z).view(z.shape[0], *self.start))


class DcganVae(Vae):
  """dcgan_vae: the encoder and decoder listed in models/dcgan_vae.py."""

  def __init__(self, image_shape, channels, latent, dense):
    super().__init__()
    height, _, image_channels = image_shape
    self.start = (channels[-1], height // 16, height // 16)
    flat = int(np.prod(self.start))
    encoder, previous = [], image_channels
    for features in channels:
      encoder += _bn_relu_after(
        nn.Conv2d(previous, features, 4, 2, 1, bias=False), features
      )
      previous = features
    self.encoder = nn.Sequential(*encoder, nn.Flatten())
    self._heads_and_dense(flat, latent, dense, flat)
    decoder, previous = [], channels[-1]
    for features in channels[-2::-1]:
      decoder += _bn_relu_after(
        nn.ConvTranspose2d(previous, features, 4, 2, 1, bias=False), features
      )
      previous = features
    decoder.append(
      nn.ConvTranspose2d(previous, image_channels, 4, 2, 1, bias=False)
    )
    self.decoder = nn.Sequential(*decoder)


class SmallConvVae(Vae):
  """small_conv_vae: models/small_conv_vae.py's listing, d = 32."""

  def __init__(self, image_shape, latent, d=32, dense=256):
    super().__init__()
    height, _, image_channels = image_shape
    self.start = (4 * d, height // 8, height // 8)
    flat = int(np.prod(self.start))
    self.encoder = nn.Sequential(
      nn.Conv2d(image_channels, d, 3, 2, 1),
      nn.ReLU(),
      nn.Conv2d(d, 2 * d, 3, 2, 1),
      nn.ReLU(),
      nn.Conv2d(2 * d, 4 * d, 3, 2, 1),
      nn.ReLU(),
      nn.Flatten(),
      nn.Linear(flat, dense),
      nn.ReLU(),
    )
    self._heads_and_dense(dense, latent, dense, flat)
    self.decoder = nn.Sequential(
      nn.ConvTranspose2d(4 * d, 2 * d, 3, 2, 1, 1),
      nn.ReLU(),
      nn.ConvTranspose2d(2 * d, d, 3, 2, 1, 1),
      nn.ReLU(),
      nn.ConvTranspose2d(d, image_channels, 3, 2, 1, 1),
    )


class MlpVae(Vae):
  """mlp_vae: the seed's 784-400-200-20 listing (models/mlp_vae.py)."""

  def __init__(self, pixels=784, hidden=(400, 200), latent=20):
    super().__init__()
    sizes = (pixels, *hidden)
    encoder = []
    for a, b in zip(sizes[:-1], sizes[1:]):
      encoder += [nn.Linear(a, b), nn.ReLU()]
    self.encoder = nn.Sequential(nn.Flatten(), *encoder)
    self.mu = nn.Linear(sizes[-1], latent)
    self.logvar = nn.Linear(sizes[-1], latent)
    back = (latent, *sizes[::-1])
    decoder = []
    for a, b in zip(back[:-1], back[1:]):
      decoder += [nn.Linear(a, b), nn.ReLU()]
    self.decoder = nn.Sequential(*decoder[:-1])  # Logits out.

  def decode(self, z):
    return self.decoder(z)


class ConvAutoencoder(nn.Module):
  """conv_autoencoder: Conv 4x4 stride 2 with bias and ReLU, mirrored."""

  def __init__(self, image_channels, channels):
    super().__init__()
    encoder, previous = [], image_channels
    for features in channels:
      encoder += [nn.Conv2d(previous, features, 4, 2, 1), nn.ReLU()]
      previous = features
    decoder = []
    for features in (*channels[-2::-1], image_channels):
      decoder += [nn.ConvTranspose2d(previous, features, 4, 2, 1), nn.ReLU()]
      previous = features
    self.net = nn.Sequential(*encoder, *decoder[:-1])

  def forward(self, x):
    return self.net(x)


OUTPUT_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class Generator(nn.Module):
  """models/gan.py's generator: (an ACGAN's z scaled by its label's
  embedding,) project, BatchNorm, ReLU, UpConvs, tanh or sigmoid."""

  def __init__(self, model_config, image_shape, num_classes):
    super().__init__()
    height, _, image_channels = image_shape
    latent = model_config.latent_size
    channels = tuple(model_config.generator_channels or model_config.channels)
    # nn.Embedding's init is N(0, 1), as the label_embedding's.
    self.label_embedding = (
      nn.Embedding(num_classes, latent) if num_classes else None
    )
    self.start = (
      channels[-1],
      height // 2 ** len(channels),
      height // 2 ** len(channels),
    )
    self.project = nn.Linear(latent, int(np.prod(self.start)), bias=False)
    layers_ = [nn.BatchNorm2d(channels[-1]), nn.ReLU()]
    previous = channels[-1]
    for features in channels[-2::-1]:
      layers_ += [
        nn.ConvTranspose2d(previous, features, 4, 2, 1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(),
      ]
      previous = features
    layers_ += [
      nn.ConvTranspose2d(previous, image_channels, 4, 2, 1),
      OUTPUT_ACTIVATIONS[model_config.output_activation](),
    ]
    self.net = nn.Sequential(*layers_)

  def forward(self, z, labels):
    if self.label_embedding is not None:
      z = z * self.label_embedding(labels)
    return self.net(self.project(z).view(z.shape[0], *self.start))


class Discriminator(nn.Module):
  """models/gan.py's discriminator: (logits [B], class logits or None)."""

  def __init__(self, model_config, image_shape, num_classes):
    super().__init__()
    height, _, previous = image_shape
    channels = tuple(model_config.channels)
    # As flax's nn.SpectralNorm in training: one power iteration per call,
    # its u vectors buffers (flax: batch_stats), not parameters.
    wrap = (
      functools.partial(
        nn.utils.parametrizations.spectral_norm, n_power_iterations=1
      )
      if model_config.discriminator_spectral_norm
      else lambda layer: layer
    )
    layers_ = []
    for level, features in enumerate(channels):
      normalized = model_config.discriminator_batch_norm and level > 0
      layers_.append(
        wrap(nn.Conv2d(previous, features, 4, 2, 1, bias=not normalized))
      )
      if normalized:
        layers_.append(nn.BatchNorm2d(features))
      layers_.append(nn.LeakyReLU(0.2))
      previous = features
    flat = previous * (height // 2 ** len(channels)) ** 2
    self.features = nn.Sequential(*layers_, nn.Flatten())
    self.real_fake = wrap(nn.Linear(flat, 1))
    self.classes = wrap(nn.Linear(flat, num_classes)) if num_classes else None

  def forward(self, x):
    h = self.features(x)
    class_logits = None if self.classes is None else self.classes(h)
    return self.real_fake(h)[:, 0], class_logits


# objectives/nonsaturating_gan.py's and hinge_gan.py's per-image losses:
# (generator's of the fakes' logits, discriminator's of real and fake).
GAN_LOSSES = {
  "nonsaturating_gan": (
    lambda fake: nn.functional.softplus(-fake),
    lambda real, fake: (
      nn.functional.softplus(-real) + nn.functional.softplus(fake)
    ),
  ),
  "hinge_gan": (
    lambda fake: -fake,
    lambda real, fake: (
      nn.functional.relu(1 - real) + nn.functional.relu(1 + fake)
    ),
  ),
}


@dataclasses.dataclass
class GanTwin:
  """The networks, optimizers and recipe of trainers/adversarial.py."""

  generator: Generator
  discriminator: Discriminator
  g_optimizer: torch.optim.Optimizer
  d_optimizer: torch.optim.Optimizer
  latent_size: int
  losses: tuple  # A GAN_LOSSES value.
  aux_weight: float  # ACGAN's class cross-entropy weight.
  r1_weight: float  # 0: no R1 penalty.
  ema_decay: float  # 0: no average of the generator.
  ema: list  # The generator's averaged parameters; [] without.


def vae_step(model, optimizer, images, labels):
  """Sampled z, BCE summed per image + KL, batch mean; one Adam update."""
  del labels  # Unconditional.
  optimizer.zero_grad(set_to_none=True)
  mu, logvar = model(images)
  z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
  logits = model.decode(z).reshape(images.shape[0], -1)
  recon = nn.functional.binary_cross_entropy_with_logits(
    logits, images.reshape(images.shape[0], -1), reduction="none"
  ).sum(1)
  kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)
  (recon + kl).mean().backward()
  optimizer.step()


def autoencoder_step(model, optimizer, images, labels):
  """tanh outputs, MSE per image, batch mean; one Adam update."""
  del labels  # Unconditional.
  optimizer.zero_grad(set_to_none=True)
  outputs = torch.tanh(model(images))
  ((outputs - images) ** 2).mean().backward()
  optimizer.step()


def _class_loss(class_logits, labels, aux_weight):
  """ACGAN's weighted class cross-entropy, batch mean; 0 without classes."""
  if class_logits is None:
    return 0.0
  return aux_weight * nn.functional.cross_entropy(class_logits, labels)


def gan_step(twin: GanTwin, images, labels):
  """adversarial.train_step with n_critic = 1: a discriminator update on
  real and fake batches, passed apart, with the R1 penalty on real images
  if any, then a generator update on fresh z for the same labels, then the
  generator's moving average if any."""
  generator, discriminator = twin.generator, twin.discriminator
  g_loss_of, d_loss_of = twin.losses
  batch = images.shape[0]
  twin.d_optimizer.zero_grad(set_to_none=True)
  with torch.no_grad():  # As stop_gradient: no graph through G.
    fakes = generator(torch.randn(batch, twin.latent_size), labels)
  if twin.r1_weight:
    images = images.detach().requires_grad_(True)
  real_logits, real_classes = discriminator(images)
  fake_logits, fake_classes = discriminator(fakes)
  d_loss = (
    d_loss_of(real_logits, fake_logits).mean()
    + _class_loss(real_classes, labels, twin.aux_weight)
    + _class_loss(fake_classes, labels, twin.aux_weight)
  )
  if twin.r1_weight:
    # Each logit depends on its own image only (BatchNorm aside): the
    # gradient of their sum holds each image's gradient.
    (grad_x,) = torch.autograd.grad(
      real_logits.sum(), images, create_graph=True
    )
    d_loss = (
      d_loss + twin.r1_weight / 2 * grad_x.square().flatten(1).sum(1).mean()
    )
  d_loss.backward()
  twin.d_optimizer.step()
  twin.g_optimizer.zero_grad(set_to_none=True)
  fake_logits, fake_classes = discriminator(
    generator(torch.randn(batch, twin.latent_size), labels)
  )
  g_loss = g_loss_of(fake_logits).mean() + _class_loss(
    fake_classes, labels, twin.aux_weight
  )
  g_loss.backward()
  twin.g_optimizer.step()
  if twin.ema:
    with torch.no_grad():  # ema = decay * ema + (1 - decay) * params.
      torch._foreach_lerp_(
        twin.ema, list(generator.parameters()), 1 - twin.ema_decay
      )


def gan_twin(config, image_shape) -> GanTwin:
  """The GAN or ACGAN `config` trains, with its recipe's options."""
  if config.n_critic != 1:
    raise ValueError(
      f"the PyTorch twin runs n_critic = 1 only, got {config.n_critic}"
    )
  if config.loss.objective not in GAN_LOSSES:
    raise ValueError(f"no PyTorch twin of loss {config.loss.objective!r}")
  model_config = config.model
  # As parts.assemble: only an ACGAN is told the data's classes.
  num_classes = (
    sources.num_classes(config.input)
    if registry.get(model_config.name).conditional
    else 0
  )
  generator = Generator(model_config, image_shape, num_classes)
  discriminator = Discriminator(model_config, image_shape, num_classes)
  g_optimizer, d_optimizer = (
    torch.optim.Adam(net.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2))
    for net, o in (
      (generator, config.optimizer.generator),
      (discriminator, config.optimizer.discriminator),
    )
  )
  return GanTwin(
    generator=generator,
    discriminator=discriminator,
    g_optimizer=g_optimizer,
    d_optimizer=d_optimizer,
    latent_size=model_config.latent_size,
    losses=GAN_LOSSES[config.loss.objective],
    aux_weight=config.loss.aux_weight,
    r1_weight=config.r1_weight,
    ema_decay=config.generator_ema_decay,
    ema=(
      [p.detach().clone() for p in generator.parameters()]
      if config.generator_ema_decay
      else []
    ),
  )


def torch_twin(config, image_shape):
  """(step function of images and labels, its parameter count) for the
  twin."""
  model_config = config.model
  name = model_config.name
  if registry.get(name).kind == family.Kind.GAN:
    twin = gan_twin(config, image_shape)
    count = sum(
      p.numel()
      for net in (twin.generator, twin.discriminator)
      for p in net.parameters()
    )
    return functools.partial(gan_step, twin), count
  if name == "dcgan_vae":
    model, step = (
      DcganVae(
        image_shape,
        tuple(model_config.channels),
        model_config.latent_size,
        model_config.dense_size,
      ),
      vae_step,
    )
  elif name == "small_conv_vae":
    model, step = (
      SmallConvVae(
        image_shape,
        model_config.latent_size,
        model_config.base_channels,
        model_config.dense_size,
      ),
      vae_step,
    )
  elif name == "mlp_vae":
    model, step = (
      MlpVae(
        int(np.prod(image_shape)),
        tuple(model_config.hidden_sizes),
        model_config.latent_size,
      ),
      vae_step,
    )
  elif name == "conv_autoencoder":
    model, step = (
      ConvAutoencoder(image_shape[-1], tuple(model_config.channels)),
      autoencoder_step,
    )
  else:
    raise ValueError(f"no PyTorch twin for model {name!r}")
  optimizer = torch.optim.Adam(
    model.parameters(),
    lr=config.optimizer.learning_rate,
    betas=(config.optimizer.b1, config.optimizer.b2),
  )
  return (
    functools.partial(step, model, optimizer),
    sum(p.numel() for p in model.parameters()),
  )


# Examples of the random split the compiled loop is timed on: as many
# batches as a timed call runs steps, at most.
SPLIT_BATCHES = 16


def random_labels(config, count: int, rng) -> dict[str, np.ndarray]:
  """Random class fields of `count` examples as `sources.load` gives them:
  int32 'label' (a digit), and CelebA's 'attributes' (the first is also
  'label'), so that an ACGAN's classes all occur."""
  if config.input.dataset == "celeb_a":
    attributes = rng.integers(
      0, 2, (count, len(config.input.attributes)), np.int32
    )
    return {"label": attributes[:, 0], "attributes": attributes}
  return {"label": rng.integers(0, 10, count, np.int32)}


def random_split(config, image_shape) -> dict[str, np.ndarray]:
  """A training split of random uint8 pixels, as `load_in_memory` gives."""
  rng = np.random.default_rng(0)
  count = SPLIT_BATCHES * config.batch_size
  return {
    "image": rng.integers(0, 256, (count, *image_shape), np.uint8),
    **random_labels(config, count, rng),
  }


def jax_runner(config, image_shape, batch):
  """(run training's steps, steps per run, parameter count) for vae_jax.

  As training runs them: a split held in memory is held on the device and
  its steps run as one compiled loop (`device_held.DeviceSteps`, here over
  a random split); a streamed one (celeba) calls the jitted step once per
  batch, here on a batch already on the device (the input pipeline's cost
  is left out).
  """
  parts = parts_lib.assemble(config, image_shape)
  trainer = parts.trainer
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  train_step, _ = trainer.make_steps(config, parts)
  state = jax.jit(
    functools.partial(
      trainer.create_train_state, config, parts, image_shape, total_steps=10**6
    ),
    out_shardings=replicated,
  )(jax.random.PRNGKey(0))
  rng = jax.device_put(jax.random.PRNGKey(1), replicated)
  count = registry.count_params(state.params)
  holder = [state]
  if config.input.in_memory:
    split = random_split(config, image_shape)
    split["image"] = batching.to_model_pixels(split["image"], config.input)
    loop = device_held.DeviceSteps(
      split,
      train_step,
      mesh,
      config.batch_size,
      seeds=[0],
      rng=rng,
      max_steps=SPLIT_BATCHES,
    )

    def run_loop():
      holder[0], (metrics, _) = loop(holder[0], 0, SPLIT_BATCHES)
      return metrics

    return run_loop, SPLIT_BATCHES, count
  batch = sharding.to_global(batch, sharding.batch_sharded(mesh))
  jitted_step = sharding.jit_train_step(train_step, mesh)

  def run_step():
    holder[0], metrics = jitted_step(holder[0], batch, rng)
    return metrics

  return run_step, 1, count


def time_alternating(
  runs: dict, rounds: int, round_seconds: float
) -> dict[str, float]:
  """Median ms per step of each of `runs` ({name: (time_calls, steps per
  call)}, where time_calls(n) returns the seconds of n calls), timed in
  alternating rounds of enough calls to last about `round_seconds`."""
  calls = {}
  for name, (time_calls, _) in runs.items():
    time_calls(1)  # Compiles, warms caches.
    calls[name] = max(1, int(round_seconds / time_calls(1)))
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, (time_calls, steps) in runs.items():
      time.sleep(PAUSE_SECONDS)
      times[name].append(time_calls(calls[name]) / (calls[name] * steps))
  return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def torch_worker(connection) -> None:
  """Runs in its own process: builds twins and times steps on request.

  PyTorch runs apart from JAX so that neither's threads (both spin a while
  after their work) take cores from the other while it is timed; the
  parent alternates the two, so both still see the same load.
  """
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  step = None
  while True:
    request = connection.recv()
    if request[0] == "build":
      _, spec, images, labels = request
      try:
        config = load_config(spec)
        step, count = torch_twin(config, config_image_shape(config))
        images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        labels = torch.from_numpy(labels.astype(np.int64))
        step(images, labels)  # Warms up its allocations.
      except Exception as e:  # The parent raises it: no hang on recv.
        connection.send((None, f"{spec}: {type(e).__name__}: {e}"))
        continue
      connection.send((count, None))
    elif request[0] == "time":
      torch.set_num_threads(request[2])
      start = time.perf_counter()
      for _ in range(request[1]):
        step(images, labels)
      connection.send(time.perf_counter() - start)
    else:
      return


def benchmark_config(spec: str, connection) -> dict:
  config = load_config(spec, FLAGS.conv_impl)
  image_shape = config_image_shape(config)
  batch_size = config.batch_size
  rng = np.random.default_rng(0)
  low = -1.0 if config.input.pixel_range == "symmetric" else 0.0
  images = rng.uniform(low, 1.0, (batch_size, *image_shape)).astype(np.float32)
  labels = random_labels(config, batch_size, rng)
  # The class index an ACGAN is conditioned on, as the trainer reads it.
  classes = np.asarray(adversarial.class_labels(labels))
  connection.send(("build", spec, images, classes))
  torch_count, error = connection.recv()
  if error:
    raise ValueError(f"no PyTorch twin: {error}")
  jax_run, jax_steps, jax_count = jax_runner(
    config, image_shape, {"image": images, **labels}
  )
  if torch_count != jax_count:
    raise AssertionError(
      f"{spec}: the PyTorch twin has {torch_count:,} "
      f"parameters, vae_jax's model {jax_count:,}."
    )

  def run_jax(calls):
    start = time.perf_counter()
    for _ in range(calls):
      metrics = jax_run()
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  def run_torch(calls, threads):
    connection.send(("time", calls, threads))
    return connection.recv()

  ms = time_alternating(
    {
      "vae_jax": (run_jax, jax_steps),
      "pytorch": (functools.partial(run_torch, threads=os.cpu_count()), 1),
      "pytorch_1_thread": (functools.partial(run_torch, threads=1), 1),
    },
    FLAGS.rounds,
    FLAGS.round_seconds,
  )
  # PyTorch's better setting: on a shared machine its threads wait for
  # each other whenever another job takes a core (15x slower on 2 cores).
  best_torch = min(ms["pytorch"], ms["pytorch_1_thread"])
  return {
    "config": spec,
    "batch_size": batch_size,
    "image_shape": list(image_shape),
    "params": jax_count,
    "conv_impl": config.model.get("conv_impl"),
    "vae_jax_path": (
      "compiled loop on the device-held split"
      if jax_steps > 1
      else "jitted step per batch"
    ),
    "load_average": os.getloadavg(),
    "ms_per_step": ms,
    "pytorch_best_ms": best_torch,
    "ratio": best_torch / ms["vae_jax"],
  }


def seed_mnist_vae(epochs: int = 30) -> None:
  """The seed's PyTorch MNIST VAE loop: 784-400-200-20, BCE summed + KL,
  Adam 1e-3, batch 128, a test evaluation each epoch."""
  config = load_config("mnist_linear")
  pipeline.prepare(config.input)  # MNIST into the data dir, if needed.
  splits = {}
  for split in ("train", "test"):
    images = batching.load_in_memory(sources.load(config.input, split))["image"]
    splits[split] = torch.from_numpy(
      images.reshape(len(images), -1).astype(np.float32) / 255.0
    )
  torch.set_num_threads(FLAGS.seed_loop_threads)
  torch.manual_seed(0)
  model = MlpVae()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

  def loss_fn(x):
    mu, logvar = model(x)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    bce = nn.functional.binary_cross_entropy_with_logits(
      model.decode(z), x, reduction="sum"
    )
    return bce - 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())

  train_images, test_images = splits["train"], splits["test"]
  for epoch in range(epochs):
    model.train()
    order = torch.randperm(len(train_images))
    for i in range(0, len(order) - 127, 128):
      optimizer.zero_grad()
      loss_fn(train_images[order[i : i + 128]]).backward()
      optimizer.step()
    model.eval()
    with torch.no_grad():
      test_loss = sum(
        float(loss_fn(test_images[i : i + 128]))
        for i in range(0, len(test_images), 128)
      )
    print(
      f"epoch {epoch + 1} test_loss {test_loss / len(test_images):.2f}",
      flush=True,
    )


def whole_jobs() -> dict:
  """Seconds of each whole 30-epoch mnist_linear process, alternated."""
  python = sys.executable
  script = os.path.abspath(__file__)
  commands = {
    "vae_jax.main": [
      python,
      "-m",
      "vae_jax.main",
      "--config=configs/mnist_linear.py",
    ],
    "pytorch_seed_loop": [
      python,
      script,
      "--seed_loop",
      f"--seed_loop_threads={FLAGS.seed_loop_threads}",
    ],
    "minimal_jax_mlp": [
      python,
      os.path.join(REPO_ROOT, "benchmarks", "minimal_jax_mlp.py"),
    ],
  }
  seconds = {name: [] for name in commands}
  for _ in range(FLAGS.job_rounds):
    for name, command in commands.items():
      with tempfile.TemporaryDirectory() as workdir:
        argv = command
        if name == "vae_jax.main":
          argv = command + [f"--workdir={workdir}"]
        start = time.perf_counter()
        done = subprocess.run(
          argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        seconds[name].append(time.perf_counter() - start)
      if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
      last = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "test_loss" in line
      ]
      print(
        f"{name}: {seconds[name][-1]:.0f} s; {last[-1][-120:] if last else ''}",
        flush=True,
      )
  return {name: float(np.median(s)) for name, s in seconds.items()}


def main(argv):
  del argv
  if FLAGS.seed_loop:
    seed_mnist_vae()
    return
  parent, child = multiprocessing.get_context("spawn").Pipe()
  worker = multiprocessing.get_context("spawn").Process(
    target=torch_worker, args=(child,)
  )
  worker.start()
  results = []
  for spec in FLAGS.configs:
    results.append(benchmark_config(spec, parent))
    print(f"{spec}: {results[-1]['ms_per_step']}", flush=True)
  parent.send(("stop",))
  worker.join()
  figures = {
    "machine": {
      "platform": jax.default_backend(),
      "cpu_count": os.cpu_count(),
      "processor": platform.processor() or platform.machine(),
      "jax": jax.__version__,
      "torch": torch.__version__,
      "torch_threads": os.cpu_count(),
    },
    "rounds": FLAGS.rounds,
    "configs": results,
  }
  lines = [
    "| config | vae_jax ms/step | PyTorch ms/step (all cores / 1 "
    "thread) | ratio | load |",
    "| --- | ---: | ---: | ---: | ---: |",
  ]
  for r in results:
    ms = r["ms_per_step"]
    lines.append(
      f"| {r['config']} | {ms['vae_jax']:.1f} | "
      f"{ms['pytorch']:.1f} / {ms['pytorch_1_thread']:.1f} | "
      f"{r['ratio']:.2f} | {r['load_average'][0]:.1f} |"
    )
  if FLAGS.whole_job:
    jobs = whole_jobs()
    figures["whole_job_seconds"] = jobs
    lines += ["", "| 30-epoch mnist_linear job | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {s:.0f} |" for name, s in jobs.items()]
  print("\n".join(lines))
  if FLAGS.output:
    outputs.write_json(FLAGS.output, figures)


if __name__ == "__main__":
  app.run(main)
