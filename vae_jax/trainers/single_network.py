"""The trainer of one network under one objective: VAEs, plain autoencoders.

`train_step` is the whole update: the objective's terms (for a VAE, the
reparameterized sample and the negative ELBO: `objectives.negative_elbo`),
the gradient, the finite check and the optimizer update. Config values are
bound with `functools.partial` (`make_steps`), never traced; the loop
compiles the step once, for its mesh.
"""

from collections.abc import Callable
import functools
from typing import Any, NamedTuple

from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vae_jax.core import finite_guard
from vae_jax.core import image_grid
from vae_jax.core import optimizers
from vae_jax.core import sharding
from vae_jax.models import family
from vae_jax.models import vae
from vae_jax.objectives import objective
from vae_jax.objectives import registry as objectives
from vae_jax.trainers import trainer


class TrainState(train_state.TrainState):
  # Non-trainable model state (BatchNorm statistics); {} for models without.
  batch_stats: Any = None


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.optimizer = optimizers.default_config()
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  optimizers.check_config(config.optimizer, "optimizer")
  for _, field in objectives.get(config.loss.objective).optimized_apart:
    optimizers.check_config(config.loss[field], f"loss.{field}")


def make_optimizer(
  config: ml_collections.ConfigDict, total_steps: int
) -> optax.GradientTransformation:
  """`config.optimizer`'s optimizer, for every parameter but those the
  objective declares optimized apart (`Objective.optimized_apart`), which
  their own section of `config.loss` updates."""
  whole = optimizers.make_optimizer(config.optimizer, total_steps)
  apart = dict(objectives.get(config.loss.objective).optimized_apart)
  if not apart:
    # The plain optimizer, not a one-part multi_transform: the optimizer
    # state keeps the structure that existing checkpoints hold.
    return whole
  # Each part is labelled with the config section that updates it.
  transforms = {
    f"loss.{field}": optimizers.make_optimizer(config.loss[field], total_steps)
    for field in apart.values()
  }

  def labels(params: dict[str, Any]) -> dict[str, str]:
    return {
      key: f"loss.{apart[key]}" if key in apart else "optimizer"
      for key in params
    }

  return optax.multi_transform({"optimizer": whole, **transforms}, labels)


def with_optimizers(
  state: TrainState, config: ml_collections.ConfigDict, total_steps: int
) -> TrainState:
  """`Trainer.with_optimizers`: `state` updated by `config.optimizer`, and
  the parameters the objective optimizes apart by their own sections."""
  return state.replace(tx=make_optimizer(config, total_steps))


def variables(state: TrainState) -> dict[str, Any]:
  return {"params": state.params, "batch_stats": state.batch_stats}


def create_train_state(
  config: ml_collections.ConfigDict,
  parts,
  image_shape: tuple[int, ...],
  rng: jax.Array,
  total_steps: int,
) -> TrainState:
  """Fresh parameters and optimizer state; jit it to initialize on devices."""
  param_rng, _ = jax.random.split(rng)
  initial = parts.model.init(param_rng, jnp.zeros((1, *image_shape)))
  state = TrainState.create(
    apply_fn=parts.model.apply,
    params=initial["params"],
    batch_stats=initial.get("batch_stats", {}),
    tx=make_optimizer(config, total_steps),
  )
  # A weakly typed Python 0 would become strong int32 after one update and
  # make the jitted step compile a second time.
  return state.replace(step=jnp.zeros((), jnp.int32))


class Settings(NamedTuple):
  """What the steps are given besides their arrays (bound, never traced)."""

  model: Any  # The Flax module trained.
  # The objective's `terms` with its loss config bound: (network, images,
  # rng, step) -> (per-image terms, batch_stats).
  terms: Callable[..., tuple[dict[str, jax.Array], Any]]
  compute_dtype: str  # The model's arithmetic (`core.precision`).


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  *,
  settings: Settings,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update on `batch`; `rng` is the run's base key, folded with the
  step."""
  step_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(params):
    network = objective.Network(
      module=settings.model,
      variables=vae.conditioned(
        {"params": params, "batch_stats": state.batch_stats},
        trainer.class_labels(batch),
      ),
      train=True,
      compute_dtype=settings.compute_dtype,
    )
    terms, batch_stats = settings.terms(
      network, batch["image"], step_rng, state.step
    )
    return terms["loss"].mean(), (terms, batch_stats)

  (loss, (terms, batch_stats)), grads = jax.value_and_grad(
    loss_fn, has_aux=True
  )(state.params)
  finite = finite_guard.all_finite(loss, grads)
  # A branch, not a select of both outcomes: only one of them is computed,
  # and an applied update makes no extra pass over the parameters and the
  # optimizer state.
  state = jax.lax.cond(
    finite,
    lambda s: s.apply_gradients(grads=grads, batch_stats=batch_stats),
    lambda s: s.replace(step=s.step + 1),
    state,
  )
  metrics = {name: value.mean() for name, value in terms.items()}
  return state, {**metrics, "finite": finite}


def eval_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  *,
  settings: Settings,
) -> dict[str, jax.Array]:
  """Sums of the per-image terms over the unpadded images of `batch`."""
  network = objective.Network(
    module=settings.model,
    variables=vae.conditioned(variables(state), trainer.class_labels(batch)),
    train=False,
    compute_dtype=settings.compute_dtype,
  )
  terms, _ = settings.terms(network, batch["image"], rng, state.step)
  return trainer.masked_sums(terms, batch["mask"])


def make_steps(
  config: ml_collections.ConfigDict, parts
) -> tuple[Callable[..., Any], Callable[..., Any]]:
  """`train_step` and `eval_step` with `parts`' model and objective and
  `config`'s settings bound: `(state, batch, rng)` functions, not yet
  compiled."""
  settings = Settings(
    model=parts.model,
    terms=functools.partial(parts.objective.terms, loss_config=config.loss),
    compute_dtype=config.compute_dtype,
  )
  return (
    functools.partial(train_step, settings=settings),
    functools.partial(eval_step, settings=settings),
  )


def decode_images(
  state: TrainState,
  codes: jax.Array,
  labels: jax.Array,
  *,
  to_images: Callable[[jax.Array], jax.Array],
) -> jax.Array:
  """Mean images in [0, 1] of latents or codes [N, D], of classes `labels`
  [N] for a conditional model (others ignore them); `to_images` is the
  objective's."""
  return to_images(
    state.apply_fn(
      vae.conditioned(variables(state), labels), codes, method="decode"
    )
  )


def sample_prior(state: TrainState, rng: jax.Array, *, num: int) -> jax.Array:
  """`num` latents z ~ p(z) of a latent-variable model, [num, D]: the
  model's prior (`models.priors`), which may have parameters."""
  return state.apply_fn(variables(state), rng, num, method="sample_prior")


def reconstruct_images(
  state: TrainState,
  images: jax.Array,
  labels: jax.Array,
  *,
  kind: family.Kind,
  to_images: Callable[[jax.Array], jax.Array],
) -> jax.Array:
  """Reconstructions in [0, 1] of `images` of classes `labels`; a
  latent-variable model decodes its posterior mean (no noise), a
  vector-quantized one its grid's nearest codebook entries."""
  code = state.apply_fn(
    vae.conditioned(variables(state), labels), images, method="encode"
  )
  if kind == family.Kind.LATENT_VARIABLE:
    code = code[0]
  if kind == family.Kind.VECTOR_QUANTIZED:
    code = quantized_grids(state, code)
  return decode_images(state, code, labels, to_images=to_images)


def _quantize_flat(model: Any, codes: jax.Array) -> jax.Array:
  return model.quantize(codes.reshape(-1, *model.grid_shape)).quantized


def quantized_grids(state: TrainState, codes: jax.Array) -> jax.Array:
  """A vector-quantized model's decoder input [N, h, w, D]: the nearest
  codebook entries of pre-quantization grids `codes`, [N, h, w, D] or flat
  [N, h*w*D] (as code-space tools hold them)."""
  return state.apply_fn(variables(state), codes, method=_quantize_flat)


def make_image_grids(
  config: ml_collections.ConfigDict,
  parts,
  test_batch: dict[str, np.ndarray],
  rng: jax.Array,
) -> Callable[[TrainState], dict[str, np.ndarray]]:
  """The grids shown each epoch, as a function of the state.

  Reconstructions of `test_batch`'s images, and for models with a prior
  (latent-variable ones: a vector-quantized model has no prior over its
  codes yet) decodings of latents drawn from it with `rng` (a conditional
  model's of every class in turn, and a row per class over the same z):
  the same images and noise every epoch show progress.
  """
  if parts.family.kind == family.Kind.CODE_PRIOR:
    # Its grids are drawn as images by the VQ-VAE run whose codes it
    # models, which training does not load: `sample` and `analyze` do.
    return lambda state: {}
  test_images = test_batch["image"]
  # NumPy inputs: on multi-process runs jit takes them as the same value on
  # every process, as these test images are.
  test_labels = np.asarray(trainer.class_labels(test_batch))
  sampled_labels = trainer.sample_labels(parts, config.num_image_samples)
  kind, to_images = parts.family.kind, parts.objective.to_images
  reconstruct = jax.jit(
    functools.partial(reconstruct_images, kind=kind, to_images=to_images)
  )
  decode = jax.jit(functools.partial(decode_images, to_images=to_images))
  draw = jax.jit(functools.partial(sample_prior, num=config.num_image_samples))
  has_prior = kind == family.Kind.LATENT_VARIABLE
  originals = (
    test_images if config.input.pixel_range == "unit" else (test_images + 1) / 2
  )
  num_cols = min(16, len(originals))

  def image_grids(state: TrainState) -> dict[str, np.ndarray]:
    recons = sharding.to_host(reconstruct(state, test_images, test_labels))
    # Rows alternate: num_cols test images, then their reconstructions.
    rows = [
      part
      for start in range(0, len(originals), num_cols)
      for part in (
        originals[start : start + num_cols],
        recons[start : start + num_cols],
      )
    ]
    grids = {
      "reconstructions": image_grid.make_grid(
        image_grid.to_uint8(np.concatenate(rows)), num_cols=num_cols
      )
    }
    if has_prior:
      # The same key every epoch: the same z where the prior has no
      # parameters.
      z = draw(state, rng)
      grids["samples"] = image_grid.make_grid(
        image_grid.to_uint8(sharding.to_host(decode(state, z, sampled_labels)))
      )
    if parts.family.conditional:
      by_label = decode(
        state,
        *trainer.label_grid_inputs(z[:num_cols], parts.model.num_classes),
      )
      grids["by_label"] = image_grid.make_grid(
        image_grid.to_uint8(sharding.to_host(by_label)), num_cols=num_cols
      )
    return grids

  return image_grids


TRAINER = trainer.Trainer(
  name="single_network",
  default_config=default_config,
  check_config=check_config,
  create_train_state=create_train_state,
  make_steps=make_steps,
  make_image_grids=make_image_grids,
  with_optimizers=with_optimizers,
  traced_fields=("optimizer.learning_rate",),
)
