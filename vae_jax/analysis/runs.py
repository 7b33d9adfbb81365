"""A finished (or running) training run read back from its workdir.

`load(workdir)` gives the config the run wrote to config.json, its model (and
what declares it: family, objective, trainer), its data and the train state
of its newest checkpoint (or of a chosen step), or of the weights of a
pretrained model's folder (`core.weights_file`), so analysis, sampling and
sweeps share one way of reading runs. It needs nothing but the workdir: the
fields a config.json lacks take the defaults of the pieces that read them.
`encode`, `decode` and `reconstruct` apply the loaded model to host arrays;
`encode_split` and `iwae_nll` run it over a dataset.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.analysis import latent_metrics
from vae_jax.core import checkpoints
from vae_jax.core import image_grid
from vae_jax.core import sharding
from vae_jax.core import weights_file
from vae_jax.data import binarize
from vae_jax.data import pipeline
from vae_jax.models import code_prior
from vae_jax.models import family
from vae_jax.models import vae
from vae_jax.objectives import iwae
from vae_jax.trainers import code_grids
from vae_jax.trainers import loop
from vae_jax.trainers import parts as parts_lib
from vae_jax.trainers import saved_runs
from vae_jax.trainers import single_network
from vae_jax.trainers import trainer

DECODE_BATCH = 256  # Codes decoded per call by `decode`.
# Output pixels decoded per IWAE chunk: bounds memory whatever K is. A conv
# decoder's activations are ~1 KB per output pixel (dcgan_vae, 32x32: 1.2 GB).
IWAE_PIXELS_PER_CHUNK = 2**20
IWAE_BATCH = 8  # Images whose draws are decoded together.
# Code grids a prior draws per compiled call, its key-value caches held
# for all of them.
SAMPLE_GRIDS_BATCH = 1000


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """Everything needed to evaluate, sample from or plot one run."""

  workdir: str
  config: ml_collections.ConfigDict  # As the run wrote it, with defaults.
  parts: parts_lib.Parts  # The model, and its family, objective, trainer.
  data: pipeline.PreparedData
  state: Any  # The trainer's: a `single_network.TrainState`, a `GanState`.
  step: int

  @property
  def model(self) -> Any:
    return self.parts.model

  @property
  def image_shape(self) -> tuple[int, ...]:
    return self.data.image_shape

  @property
  def variational(self) -> bool:
    """Whether the model has a prior to sample (its declared kind)."""
    return self.parts.family.kind == family.Kind.LATENT_VARIABLE

  @property
  def adversarial(self) -> bool:
    """Whether the model is a GAN (its declared kind)."""
    return self.parts.family.kind == family.Kind.GAN

  @property
  def code_prior(self) -> bool:
    """Whether the model is a prior over a VQ-VAE run's code grids (its
    declared kind); `quantizer_run` gives that run."""
    return self.parts.family.kind == family.Kind.CODE_PRIOR

  @property
  def images_input(self) -> ml_collections.ConfigDict:
    """The input section of the images the model's samples are of: its own,
    or for a code prior that of the VQ-VAE run whose codes it models."""
    if self.code_prior:
      return self.data.quantizer_run.config.input
    return self.config.input

  @property
  def vector_quantized(self) -> bool:
    """Whether the model quantizes a grid to a codebook (its declared kind):
    its codes are the grids before quantization, flat."""
    return self.parts.family.kind == family.Kind.VECTOR_QUANTIZED


load_config = saved_runs.load_config


def load(
  workdir: str, step: int | None = None, *, data_dir: str | None = None
) -> TrainedRun:
  """The run in `workdir` at its newest checkpoint, or at exactly `step`.

  The run's dataset must be readable (see `data.pipeline.prepare`), from
  `data_dir` where given (a pretrained model's, trained elsewhere), else
  from the config's `input.data_dir`.
  """
  config = load_config(workdir)
  if data_dir is not None:
    config.input.data_dir = data_dir
  saved_runs.check_has_state(workdir)
  data = code_grids.prepare_data(config)
  parts = parts_lib.assemble(config, data.image_shape)
  return _restore(workdir, config, parts, data, step)


def at_step(run: TrainedRun, step: int) -> TrainedRun:
  """`run` at its checkpoint of `step`, without reading its data again."""
  return _restore(run.workdir, run.config, run.parts, run.data, step)


def quantizer_run(run: TrainedRun) -> TrainedRun:
  """The VQ-VAE run whose code grids a code prior `run` models, as loaded
  for its data (`trainers.code_grids`)."""
  source = run.data.quantizer_run
  return TrainedRun(
    workdir=source.workdir,
    config=source.config,
    parts=source.parts,
    data=source.data,
    state=source.state,
    step=source.step,
  )


def sample_code_grids(run: TrainedRun, rng: jax.Array, num: int) -> np.ndarray:
  """int32 [num, h, w]: grids drawn ancestrally from a code prior `run`, in
  batches of at most SAMPLE_GRIDS_BATCH (batch i keyed by fold_in(rng, i))."""
  batch = min(num, SAMPLE_GRIDS_BATCH)
  grids = [
    np.asarray(
      code_prior.sample(
        run.model, run.state.params, jax.random.fold_in(rng, index), batch
      )
    )
    for index in range(math.ceil(num / batch))
  ]
  return np.concatenate(grids)[:num]


def pixels_likelihood(config: ml_collections.ConfigDict) -> str:
  """What a likelihood of a run's test images measures, in words for
  analysis.json: comparable with published NLLs on binarized images only."""
  if config.input.binarize != "none":
    return (
      "binarized test images (one fixed draw, the same for every run: "
      f"data.binarize.TEST_DRAW = {binarize.TEST_DRAW}): a test NLL in "
      "nats, comparable with the binarized-MNIST literature"
    )
  likelihood = config.loss.likelihood
  if likelihood == "bernoulli":
    return (
      "grey-level pixels read as Bernoulli means: a cross-entropy in "
      "nats, not the likelihood of any data, so not comparable with "
      "published NLLs"
    )
  return (
    f"grey-level pixels under the {likelihood} likelihood "
    "(loss.likelihood): a density of continuous pixels in nats, not "
    "comparable with published NLLs of discrete data"
  )


def kept_steps(workdir: str) -> list[int]:
  """The steps of the checkpoints in `workdir`, oldest first (a pretrained
  model's: the one its weights are of)."""
  if weights_file.holds_weights(workdir):
    return [weights_file.saved_step(workdir)]
  manager = checkpoints.make_manager(workdir, load_config(workdir))
  try:
    return sorted(manager.all_steps())
  finally:
    manager.close()


def _restore(
  workdir: str,
  config: ml_collections.ConfigDict,
  parts: parts_lib.Parts,
  data: pipeline.PreparedData,
  step: int | None,
) -> TrainedRun:
  state = saved_runs.restore_state(
    workdir, config, parts, data.image_shape, step
  )
  return TrainedRun(
    workdir=workdir,
    config=config,
    parts=parts,
    data=data,
    state=state,
    step=int(jax.device_get(state.step)),
  )


@jax.jit
def _encode(
  state: single_network.TrainState, images: jax.Array, labels: jax.Array
):
  return state.apply_fn(
    vae.conditioned(single_network.variables(state), labels),
    images,
    method="encode",
  )


def encode(
  run: TrainedRun, images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
  """Posterior means and log-variances of `images` of classes `labels`
  (read by conditional models only); an autoencoder's codes, or a
  vector-quantized model's grids before quantization, flat [N, h*w*D],
  and None."""
  code = jax.device_get(_encode(run.state, images, labels))
  return code if run.variational else (code.reshape(len(code), -1), None)


_decode = jax.jit(single_network.decode_images, static_argnames="to_images")
_reconstruct = jax.jit(
  single_network.reconstruct_images, static_argnames=("kind", "to_images")
)


_sample_prior = jax.jit(single_network.sample_prior, static_argnames="num")
_quantized_grids = jax.jit(single_network.quantized_grids)


def prior_samples(run: TrainedRun, rng: jax.Array, num: int) -> np.ndarray:
  """z ~ the run's prior (`models.priors`), [num, D]."""
  return np.asarray(_sample_prior(run.state, rng, num=num))


def sample_classes(
  run: TrainedRun, num: int, label: int | None = None
) -> np.ndarray:
  """Classes [num] of samples: `label` for each (a conditional model's
  class, as `--label` asks), or every class in turn."""
  if label is None:
    return trainer.sample_labels(run.parts, num)
  if not run.parts.family.conditional:
    raise errors.UserInputError(
      f"--label needs a conditional model; {run.config.model.name!r} is "
      "unconditional."
    )
  if not 0 <= label < run.model.num_classes:
    raise errors.UserInputError(
      f"--label must be a class in [0, {run.model.num_classes}), got {label}."
    )
  return np.full((num,), label, np.int32)


def decode(
  run: TrainedRun, codes: np.ndarray, labels: np.ndarray | None = None
) -> np.ndarray:
  """uint8 images [N, H, W, C] of codes [N, D], decoded in fixed batches;
  a conditional model's of classes `labels` (None: every class in turn); a
  vector-quantized model's codes (`encode`'s) are quantized first."""
  if labels is None:
    labels = sample_classes(run, len(codes))
  batches = []
  for start in range(0, len(codes), DECODE_BATCH):
    chunk = codes[start : start + DECODE_BATCH]
    padded = np.zeros((DECODE_BATCH, *codes.shape[1:]), np.float32)
    padded[: len(chunk)] = chunk  # One shape: one compilation.
    padded_labels = np.zeros((DECODE_BATCH,), np.int32)
    padded_labels[: len(chunk)] = labels[start : start + DECODE_BATCH]
    decoder_input = jnp.asarray(padded)
    if run.vector_quantized:
      decoder_input = _quantized_grids(run.state, decoder_input)
    images = _decode(
      run.state,
      decoder_input,
      jnp.asarray(padded_labels),
      to_images=run.parts.objective.to_images,
    )
    batches.append(np.asarray(images)[: len(chunk)])
  return image_grid.to_uint8(np.concatenate(batches))


def reconstruct(
  run: TrainedRun, images: np.ndarray, labels: np.ndarray
) -> np.ndarray:
  """uint8 reconstructions of images in the model's pixel range, of
  classes `labels` (read by conditional models only)."""
  return image_grid.to_uint8(
    np.asarray(
      _reconstruct(
        run.state,
        jnp.asarray(images),
        jnp.asarray(labels),
        kind=run.parts.family.kind,
        to_images=run.parts.objective.to_images,
      )
    )
  )


def model_log_weights(
  state: single_network.TrainState,
  examples: dict[str, jax.Array],
  rng: jax.Array,
  num_samples: int,
  *,
  likelihood: str,
  gaussian_variance: float,
) -> jax.Array:
  """log w [num_samples, B] of draws from the model's posterior for
  `examples` ({'image', 'label': the classes a conditional model reads}),
  as its objective (`objectives.iwae`) weighs them: the `log_weights_fn` of
  `latent_metrics` IWAE estimates; bind the keywords with functools.partial.
  """
  images = examples["image"]
  logits, log_latent_ratio = state.apply_fn(
    vae.conditioned(single_network.variables(state), examples["label"]),
    images,
    rng,
    train=False,
    method=lambda vae, *args, train: iwae.draw_latents(
      vae, *args, train, num_samples=num_samples
    ),
  )
  weights, _ = iwae.log_weights(
    logits,
    log_latent_ratio,
    images,
    likelihood=likelihood,
    gaussian_variance=gaussian_variance,
    pixel_logvar=state.params.get("pixel_logvar"),
  )
  return weights


@dataclasses.dataclass(frozen=True)
class EncodedSplit:
  """A split's codes and labels, and its first images."""

  # [N, D]: posterior means, an autoencoder's codes, or a vector-quantized
  # model's grids before quantization, flat.
  codes: np.ndarray
  logvar: np.ndarray | None  # [N, D] posterior log-variances of a VAE.
  labels: np.ndarray  # [N]: the dataset's label, or a chosen attribute.
  images: np.ndarray  # [K, H, W, C] uint8, the first K test images.
  model_images: np.ndarray  # The same K, as the model reads them.
  model_labels: np.ndarray  # [K]: their classes, as a model is conditioned.


def encode_split(
  run: TrainedRun,
  eval_ds: tf.data.Dataset,
  attribute_index: int | None,
  num_keep: int,
) -> EncodedSplit:
  """Codes and labels of every image of `eval_ds`; its first `num_keep`.

  `eval_ds` gives padded batches with a 'mask', as from
  `PreparedData.eval_dataset`. Labels are the dataset's, or column
  `attribute_index` of CelebA's attributes.
  """
  codes, logvars, labels, kept, kept_classes = [], [], [], [], []
  for batch in eval_ds.as_numpy_iterator():
    mask = batch["mask"]
    classes = np.asarray(trainer.class_labels(batch))
    code, logvar = encode(run, batch["image"], classes)
    codes.append(code[mask])
    if logvar is not None:
      logvars.append(logvar[mask])
    labels.append(
      batch["label"][mask]
      if attribute_index is None
      else batch["attributes"][mask, attribute_index]
    )
    if sum(map(len, kept)) < num_keep:
      kept.append(batch["image"][mask])
      kept_classes.append(classes[mask])
  model_images = np.concatenate(kept)[:num_keep]
  unit = (
    model_images
    if run.config.input.pixel_range == "unit"
    else (model_images + 1) / 2
  )
  return EncodedSplit(
    codes=np.concatenate(codes),
    logvar=np.concatenate(logvars) if logvars else None,
    labels=np.concatenate(labels),
    images=image_grid.to_uint8(unit),
    model_images=model_images,
    model_labels=np.concatenate(kept_classes)[:num_keep],
  )


def first_examples(
  eval_ds: tf.data.Dataset, count: int | None
) -> dict[str, np.ndarray]:
  """The first `count` unpadded images of `eval_ds` (None: all of them), and
  their classes: {'image', 'label'}."""
  images, classes, total = [], [], 0
  for batch in eval_ds.as_numpy_iterator():
    images.append(batch["image"][batch["mask"]])
    classes.append(np.asarray(trainer.class_labels(batch))[batch["mask"]])
    total += len(images[-1])
    if count is not None and total >= count:
      break
  return {
    "image": np.concatenate(images)[:count],
    "label": np.concatenate(classes)[:count],
  }


def iwae_nll(
  run: TrainedRun,
  eval_ds: tf.data.Dataset,
  num_samples: int,
  num_examples: int | None,
  rng: jax.Array,
) -> tuple[float, float]:
  """Means of -log p(x) (IWAE; -log p(x | y) for a conditional model, given
  each image's class) and of -ELBO over the first `num_examples` test
  images (None: all), from the same `num_samples` draws per image, as
  one compiled loop (`latent_metrics.importance_weighted_log_likelihood`).
  """
  return examples_nll(
    run, first_examples(eval_ds, num_examples), num_samples, rng
  )


def examples_nll(
  run: TrainedRun,
  examples: dict[str, np.ndarray],
  num_samples: int,
  rng: jax.Array,
) -> tuple[float, float]:
  """`iwae_nll` of `examples` ({'image' as the model reads them, 'label':
  their classes})."""
  log_weights_fn = functools.partial(
    model_log_weights,
    likelihood=run.config.loss.likelihood,
    gaussian_variance=run.config.loss.gaussian_variance,
  )
  pixels = math.prod(examples["image"].shape[1:])
  log_px, elbo = latent_metrics.importance_weighted_log_likelihood(
    log_weights_fn,
    run.state,
    examples,
    rng,
    num_samples=num_samples,
    batch_size=IWAE_BATCH,
    chunk_size=max(1, IWAE_PIXELS_PER_CHUNK // (IWAE_BATCH * pixels)),
  )
  return -float(np.mean(log_px)), -float(np.mean(elbo))


def evaluate(
  run: TrainedRun, eval_ds: tf.data.Dataset, rng: jax.Array
) -> dict[str, float]:
  """The 'test_<term>' means of the run's objective over `eval_ds` (padded
  batches of the run's local batch size), as training evaluates."""
  mesh = sharding.make_mesh()
  _, eval_step = run.parts.trainer.make_steps(run.config, run.parts)
  return loop.per_image_means(
    loop.evaluate(
      sharding.jit_eval_step(eval_step, mesh),
      run.state,
      eval_ds,
      rng,
      sharding.batch_sharded(mesh),
    )
  )


def test_batches(run: TrainedRun) -> tf.data.Dataset:
  """The run's test split in padded batches of its local batch size."""
  return run.data.eval_dataset(sharding.local_batch_size(run.config.batch_size))
