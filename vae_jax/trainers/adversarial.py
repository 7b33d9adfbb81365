"""Training of GANs and ACGANs: the `train.Trainer` functions for config.trainer
'gan'.

One loop step of `train.train_and_evaluate` is one discriminator update; the
generator updates after every `n_critic`-th one, on fresh z for the labels
of the same batch. With n_critic = 1 each step is D then G, as in DCGAN and
ACGAN (WGAN-style critics take n_critic = 5). Each update changes only its own
network: the other's parameters, optimizer state and BatchNorm statistics
pass through bit-identical, and its BatchNorm runs on batch statistics whose
running averages are discarded. Both updates are one jitted, data-parallel
XLA graph, and the whole `GanState` is one checkpoint. The losses are in
`gan_losses`.
"""

import dataclasses
import functools
from typing import Any, Callable

from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vae_jax.core import finite_guard
from vae_jax.objectives import nonsaturating_gan
from vae_jax.core import image_grid
from vae_jax import models
from vae_jax.core import optimizers
from vae_jax.core import precision
from vae_jax.core import sharding
from vae_jax import errors
from vae_jax.models import gan


class NetworkState(struct.PyTreeNode):
  """One network's parameters, optimizer state and BatchNorm statistics."""
  params: Any
  opt_state: Any
  batch_stats: Any  # {} for a network without BatchNorm.
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, variables: dict[str, Any],
             tx: optax.GradientTransformation) -> "NetworkState":
    params = variables["params"]
    return cls(params=params, opt_state=tx.init(params),
               batch_stats=variables.get("batch_stats", {}), tx=tx)

  @property
  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats}

  def apply_gradients(self, grads, batch_stats) -> "NetworkState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state, batch_stats=batch_stats)


class GanState(struct.PyTreeNode):
  step: jax.Array  # int32 scalar: loop steps (discriminator updates) done.
  generator: NetworkState
  discriminator: NetworkState

  @property
  def params(self) -> dict[str, Any]:
    return {"generator": self.generator.params,
            "discriminator": self.discriminator.params}


def num_classes(input_config: ml_collections.ConfigDict) -> int:
  """Classes an ACGAN conditions on: MNIST's digits, or every combination
  of the chosen CelebA attributes."""
  if input_config.dataset == "mnist":
    return 10
  if input_config.dataset == "celeb_a":
    return 2 ** len(input_config.attributes)
  raise errors.ConfigError(
      "an ACGAN conditions on MNIST's digit or on CelebA attributes; "
      f"input.dataset {input_config.dataset!r} has neither.")


def class_labels(batch: dict[str, jax.Array]) -> jax.Array:
  """int32 [B]: the digit, or CelebA's attributes as bits (first lowest)."""
  if "attributes" in batch:
    bits = batch["attributes"].astype(jnp.int32)
    return jnp.sum(bits * (2 ** jnp.arange(bits.shape[-1]))[None, :], axis=-1)
  return batch["label"].astype(jnp.int32)


def build_model(config: ml_collections.ConfigDict,
                image_shape: tuple[int, ...]) -> gan.Gan:
  """The configured GAN; an ACGAN gets its number of classes from the data."""
  if config.model.name not in models.GAN_MODELS:
    raise errors.ConfigError(
        f"trainer 'gan' trains models {list(models.GAN_MODELS)}, not "
        f"{config.model.name!r}.")
  model_config = ml_collections.ConfigDict(config.model.to_dict())
  if config.model.name == "acgan":
    model_config.num_classes = num_classes(config.input)
  model = dataclasses.replace(models.build_model(model_config, image_shape),
                              compute_dtype=config.compute_dtype)
  activation = model.generator.output_activation
  if config.input.pixel_range != gan.OUTPUT_PIXEL_RANGES[activation]:
    raise errors.ConfigError(
        f"a {activation} generator needs input.pixel_range="
        f"{gan.OUTPUT_PIXEL_RANGES[activation]!r}, got "
        f"{config.input.pixel_range!r}.")
  return model


def create_train_state(config: ml_collections.ConfigDict, model: gan.Gan,
                       image_shape: tuple[int, ...], rng: jax.Array,
                       total_steps: int) -> GanState:
  """Fresh networks and optimizers; jit it to initialize on devices."""
  g_rng, d_rng = jax.random.split(rng)
  g_variables = model.generator.init(
      g_rng, jnp.zeros((1, model.latent_size)), jnp.zeros((1,), jnp.int32))
  d_variables = model.discriminator.init(d_rng, jnp.zeros((1, *image_shape)))
  # The generator takes one update per n_critic loop steps; its schedule
  # spans its own updates.
  g_steps = max(1, total_steps // config.n_critic)
  return GanState(
      step=jnp.zeros((), jnp.int32),  # Strongly typed: one compilation.
      generator=NetworkState.create(g_variables, optimizers.make_optimizer(
          config.optimizer.generator, g_steps)),
      discriminator=NetworkState.create(d_variables, optimizers.make_optimizer(
          config.optimizer.discriminator, total_steps)))


def _run(model: gan.Gan, name: str, network: NetworkState, params, *args,
         train: bool) -> tuple[Any, Any]:
  """The outputs of `model`'s network `name` ('generator' or
  'discriminator') with `params`, and its updated BatchNorm statistics."""
  apply_fn = precision.apply_in(getattr(model, name).apply,
                                model.compute_dtype)
  variables = {"params": params, "batch_stats": network.batch_stats}
  if not train:
    return apply_fn(variables, *args, train=False), network.batch_stats
  outputs, updates = apply_fn(variables, *args, train=True,
                              mutable=["batch_stats"])
  return outputs, updates.get("batch_stats", network.batch_stats)


def _update(network: NetworkState, objective: Callable[..., Any]
            ) -> tuple[NetworkState, dict[str, jax.Array], jax.Array]:
  """`network` after one step down `objective(params) -> (loss, (terms,
  batch_stats))`, the terms, and whether the loss and gradients were finite."""
  (loss, (terms, stats)), grads = jax.value_and_grad(
      objective, has_aux=True)(network.params)
  return (network.apply_gradients(grads, stats), terms,
          finite_guard.all_finite(loss, grads))


def _latents(model: gan.Gan, rng: jax.Array, batch_size: int) -> jax.Array:
  return jax.random.normal(rng, (batch_size, model.latent_size))


def discriminator_step(state: GanState, batch: dict[str, jax.Array],
                       rng: jax.Array, *, model: gan.Gan, aux_weight: float
                       ) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """One discriminator update on `batch` and fakes of its labels.

  Returns the state, the mean terms (`nonsaturating_gan.discriminator_terms`) and
  whether the loss and gradients were finite. The generator is unchanged.
  """
  images, labels = batch["image"], class_labels(batch)
  fakes, _ = _run(model, "generator", state.generator, state.generator.params,
                  _latents(model, rng, images.shape[0]), labels, train=True)
  fakes = jax.lax.stop_gradient(fakes)
  network = state.discriminator

  def objective(params):
    # Real and fake batches pass apart, as in DCGAN: BatchNorm statistics
    # of a mixed batch would tell the two kinds apart by themselves.
    real, stats = _run(model, "discriminator", network, params, images,
                       train=True)
    fake, stats = _run(model, "discriminator",
                       network.replace(batch_stats=stats), params, fakes,
                       train=True)
    terms = nonsaturating_gan.discriminator_terms(real, fake, labels, aux_weight)
    terms = {name: value.mean() for name, value in terms.items()}
    return terms["d_loss"], (terms, stats)

  network, terms, finite = _update(network, objective)
  return state.replace(discriminator=network), terms, finite


def generator_step(state: GanState, batch: dict[str, jax.Array],
                   rng: jax.Array, *, model: gan.Gan, aux_weight: float
                   ) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """One generator update on fresh z for `batch`'s labels; D is unchanged."""
  labels = class_labels(batch)
  z = _latents(model, rng, labels.shape[0])
  network = state.generator

  def objective(params):
    fakes, stats = _run(model, "generator", network, params, z, labels,
                        train=True)
    # The discriminator as it judged fakes in its own update (batch
    # statistics); its updated running averages are dropped.
    fake, _ = _run(model, "discriminator", state.discriminator,
                   state.discriminator.params, fakes, train=True)
    terms = nonsaturating_gan.generator_terms(*fake, labels, aux_weight)
    terms = {name: value.mean() for name, value in terms.items()}
    return terms["g_loss"], (terms, stats)

  network, terms, finite = _update(network, objective)
  return state.replace(generator=network), terms, finite


def train_step(state: GanState, batch: dict[str, jax.Array], rng: jax.Array,
               *, model: gan.Gan, n_critic: int, aux_weight: float
               ) -> tuple[GanState, dict[str, jax.Array]]:
  """A discriminator update, then a generator update every n_critic-th step.

  `rng` is the run's base key, folded with the step. Metrics are the
  discriminator update's; 'loss' is its loss.
  """
  d_rng, g_rng = jax.random.split(jax.random.fold_in(rng, state.step))
  steps = functools.partial(discriminator_step, model=model,
                            aux_weight=aux_weight)
  updated, terms, finite = steps(state, batch, d_rng)

  def update_generator(s):
    s, _, g_finite = generator_step(s, batch, g_rng, model=model,
                                    aux_weight=aux_weight)
    return s, g_finite

  if n_critic == 1:
    updated, g_finite = update_generator(updated)
  else:
    updated, g_finite = jax.lax.cond(
        (state.step + 1) % n_critic == 0, update_generator,
        lambda s: (s, jnp.array(True)), updated)
  finite = finite & g_finite
  next_step = state.step + 1
  state = finite_guard.keep_if_finite(finite, updated.replace(step=next_step),
                                      state.replace(step=next_step))
  return state, {**terms, "loss": terms["d_loss"], "finite": finite}


def eval_step(state: GanState, batch: dict[str, jax.Array], rng: jax.Array,
              *, model: gan.Gan, aux_weight: float) -> dict[str, jax.Array]:
  """Sums over the unpadded images of `batch`, and as many fakes of their
  labels, of the discriminator's terms (accuracies, losses)."""
  images, labels = batch["image"], class_labels(batch)
  fakes, _ = _run(model, "generator", state.generator, state.generator.params,
                  _latents(model, rng, images.shape[0]), labels, train=False)
  judge = functools.partial(_run, model, "discriminator", state.discriminator,
                            state.discriminator.params, train=False)
  terms = nonsaturating_gan.discriminator_terms(judge(images)[0], judge(fakes)[0],
                                         labels, aux_weight)
  terms["loss"] = terms["d_loss"]
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: jnp.sum(value * mask) for name, value in terms.items()}
  return {**sums, "count": jnp.sum(mask)}


def make_jitted_steps(config: ml_collections.ConfigDict, model: gan.Gan, mesh):
  """`train_step` and `eval_step` compiled for `mesh`, as `train`'s are:
  the state replicated and donated, batches split over the data axis."""
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  settings = {"model": model, "aux_weight": config.loss.aux_weight}
  jitted_train_step = jax.jit(
      functools.partial(train_step, n_critic=config.n_critic, **settings),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=(replicated, replicated), donate_argnums=0)
  jitted_eval_step = jax.jit(
      functools.partial(eval_step, **settings),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=replicated)
  return jitted_train_step, jitted_eval_step


def generate_images(state: GanState, z: jax.Array, labels: jax.Array, *,
                    model: gan.Gan) -> jax.Array:
  """Samples in [0, 1], BatchNorm on its running averages (eval mode)."""
  images, _ = _run(model, "generator", state.generator, state.generator.params,
                   z, labels, train=False)
  if model.generator.output_activation == "tanh":
    return (images + 1) / 2
  return images


def label_grid_inputs(model: gan.Gan, z: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
  """z and labels for one row per class, each row over the same `z`."""
  num_cols = z.shape[0]
  # NumPy labels: a process-local jax.Array beside the global state would
  # not be one value on multi-process runs.
  return (jnp.tile(z, (model.num_classes, 1)),
          np.repeat(np.arange(model.num_classes, dtype=np.int32), num_cols))


def make_image_grids(config: ml_collections.ConfigDict, model: gan.Gan,
                     test_images: np.ndarray, rng: jax.Array
                     ) -> Callable[[GanState], dict[str, np.ndarray]]:
  """The grids shown each epoch: samples of z drawn once from `rng` (an
  ACGAN's cycle through the classes), and for an ACGAN 'by_label', a row
  per class over the same z, so progress shows on the same images."""
  del test_images  # A GAN reconstructs nothing.
  generate = jax.jit(functools.partial(generate_images, model=model))
  z = _latents(model, rng, config.num_image_samples)
  labels = np.arange(z.shape[0], dtype=np.int32) % max(model.num_classes, 1)
  num_cols = min(10, z.shape[0])

  def image_grids(state: GanState) -> dict[str, np.ndarray]:
    grids = {"samples": image_grid.make_grid(
        image_grid.to_uint8(sharding.to_host(generate(state, z, labels))))}
    if model.num_classes:
      by_label = generate(state, *label_grid_inputs(model, z[:num_cols]))
      grids["by_label"] = image_grid.make_grid(
          image_grid.to_uint8(sharding.to_host(by_label)), num_cols=num_cols)
    return grids

  return image_grids
