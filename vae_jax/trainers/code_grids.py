"""The code grids of a finished VQ-VAE run, as another run's data.

A prior over codes (`models.code_prior`) trains on the grids of codebook
indices a trained VQ-VAE assigns to its dataset's images. With
`input.codes_of=WORKDIR` (and `input.pixel_range='codes'`), `prepare_data`
loads that run at its newest checkpoint (or at `input.codes_step`) and
encodes its training and test splits once, on the devices. Where the
VQ-VAE binarizes, the images encoded are its fixed draws: the static draw
of the training split, and the test split's draw that every binarized run
evaluates on, so the prior's test codes are those of the VQ-VAE's own test
images. The grids, int32 [h, w], are then served through
`pipeline.PreparedData`'s interface: the loop, the device-held path and the
analysis read them as they read images.
"""

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from vae_jax import errors
from vae_jax.data import batching
from vae_jax.data import pipeline
from vae_jax.models import family
from vae_jax.trainers import parts as parts_lib
from vae_jax.trainers import saved_runs
from vae_jax.trainers import single_network

ENCODE_BATCH = 500  # Images encoded per compiled call.


@dataclasses.dataclass(frozen=True)
class QuantizerRun:
  """The VQ-VAE run whose codes are the data: what decodes them."""

  workdir: str
  config: ml_collections.ConfigDict
  parts: parts_lib.Parts
  state: single_network.TrainState
  step: int
  data: pipeline.PreparedData  # Its images.


def load_quantizer_run(workdir: str, step: int | None = None) -> QuantizerRun:
  """The VQ-VAE run in `workdir` at checkpoint `step` (None: its newest);
  UserInputError when it is not a vector-quantized model's run."""
  config = saved_runs.load_config(workdir)
  saved_runs.check_has_state(workdir)
  images = pipeline.prepare(config.input)
  parts = parts_lib.assemble(config, images.image_shape)
  if parts.family.kind != family.Kind.VECTOR_QUANTIZED:
    raise errors.UserInputError(
      f"input.codes_of={workdir!r} is a run of model "
      f"{config.model.name!r}, not of a vector-quantized one: its images have "
      "no code grids."
    )
  state = saved_runs.restore_state(
    workdir, config, parts, images.image_shape, step
  )
  return QuantizerRun(
    workdir=workdir,
    config=config,
    parts=parts,
    state=state,
    step=int(jax.device_get(state.step)),
    data=images,
  )


def _grid_indices(model: Any, images: jax.Array) -> jax.Array:
  return model.quantize(model.encode(images)).indices


@jax.jit
def _encode_batch(state: single_network.TrainState, images: jax.Array):
  return state.apply_fn(
    single_network.variables(state), images, method=_grid_indices
  )


@functools.partial(jax.jit, static_argnames="to_images")
def _decode_batch(
  state: single_network.TrainState,
  grids: jax.Array,
  *,
  to_images: Callable[[jax.Array], jax.Array],
):
  return to_images(
    state.apply_fn(
      single_network.variables(state), grids, method="decode_indices"
    )
  )


def _in_fixed_batches(
  function: Callable[[np.ndarray], jax.Array], inputs: np.ndarray
) -> np.ndarray:
  """`function` of `inputs`, applied to zero-padded batches of ENCODE_BATCH
  (one shape: one compilation)."""
  outputs = []
  for start in range(0, len(inputs), ENCODE_BATCH):
    chunk = inputs[start : start + ENCODE_BATCH]
    padded = np.zeros((ENCODE_BATCH, *inputs.shape[1:]), inputs.dtype)
    padded[: len(chunk)] = chunk
    outputs.append(np.asarray(function(padded))[: len(chunk)])
  return np.concatenate(outputs)


def encode_images(run: QuantizerRun, images: np.ndarray) -> np.ndarray:
  """int32 [N, h, w]: the codebook indices of uint8 `images` [N, H, W, C]."""
  return _in_fixed_batches(
    lambda batch: _encode_batch(
      run.state, batching.to_model_pixels(batch, run.config.input)
    ),
    images,
  ).astype(np.int32)


def decode_grids(run: QuantizerRun, grids: np.ndarray) -> np.ndarray:
  """Mean images in [0, 1], [N, H, W, C], of code grids int32 [N, h, w]."""
  return _in_fixed_batches(
    functools.partial(
      _decode_batch, run.state, to_images=run.parts.objective.to_images
    ),
    grids.astype(np.int32),
  )


class CodeGrids(pipeline.PreparedData):
  """`PreparedData` whose 'image' is the code grid of each image of a
  VQ-VAE run's dataset (its 'label' and any attributes kept)."""

  def __init__(self, input_config: ml_collections.ConfigDict):
    self.quantizer_run = load_quantizer_run(
      input_config.codes_of, input_config.codes_step
    )
    self._grids = {}
    for split in ("train", "test"):
      examples = self.quantizer_run.data.fixed_split(split)
      self._grids[split] = {
        **examples,
        "image": encode_images(self.quantizer_run, examples["image"]),
      }
    super().__init__(input_config)

  def grids(self, split: str) -> np.ndarray:
    """int32 [N, h, w]: the code grids of the whole `split`."""
    return self._grids[split]["image"]

  @property
  def codebook_size(self) -> int:
    """K: the codes take values in [0, K)."""
    return self.quantizer_run.parts.model.codebook_size

  def _prepare_source(self) -> str:
    return (
      f"codes of {self.quantizer_run.workdir} at step {self.quantizer_run.step}"
    )

  def _load(
    self, split: str, *, per_process: bool = True, drop_remainder: bool = False
  ) -> tf.data.Dataset:
    del drop_remainder  # Shares differ by one example at most.
    examples = tf.data.Dataset.from_tensor_slices(self._grids[split])
    if per_process:
      examples = examples.shard(jax.process_count(), jax.process_index())
    return examples


def prepare_data(config: ml_collections.ConfigDict) -> pipeline.PreparedData:
  """A run's data: its dataset's images (`pipeline.prepare`), or with
  `input.codes_of` the code grids of that VQ-VAE run, checked against the
  codebook size `config.model` declares."""
  if config.input.codes_of is None:
    return pipeline.prepare(config.input)
  grids = CodeGrids(config.input)
  declared = config.model.get("codebook_size")
  errors.require(
    declared == grids.codebook_size,
    f"model.codebook_size is {declared}, but input.codes_of's run "
    f"({config.input.codes_of}) has a codebook of {grids.codebook_size} "
    f"entries; set --config.model.codebook_size={grids.codebook_size}.",
  )
  return grids
