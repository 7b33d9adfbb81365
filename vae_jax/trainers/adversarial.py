"""The adversarial trainer: GANs and ACGANs, a generator against a
discriminator.

One loop step of `loop.train_and_evaluate` is one discriminator update; the
generator updates after every `n_critic`-th one, on fresh z for the labels
of the same batch. With n_critic = 1 each step is D then G, as in DCGAN and
ACGAN (WGAN-style critics take n_critic = 5). Each update changes only its own
network: the other's parameters, optimizer state and BatchNorm statistics
pass through bit-identical, and its BatchNorm runs on batch statistics whose
running averages are discarded. Both updates are one jitted, data-parallel
XLA graph, and the whole `GanState` is one checkpoint. The per-image terms
are the objective's (`objectives.nonsaturating_gan`, `objectives.hinge_gan`).

Two recipe options, both off by default: an R1 penalty on the
discriminator's gradient at real images (`r1_weight`), and an exponential
moving average of the generator's weights (`generator_ema_decay`), kept in
an `EmaGanState` and used for every sample and evaluation.
"""

from collections.abc import Callable
import functools
from typing import Any, NamedTuple

from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vae_jax import errors
from vae_jax.core import finite_guard
from vae_jax.core import image_grid
from vae_jax.core import optimizers
from vae_jax.core import sharding
from vae_jax.models import gan
from vae_jax.objectives import objective as objective_lib
from vae_jax.trainers import trainer

NETWORKS = ("generator", "discriminator")


class NetworkState(struct.PyTreeNode):
  """One network's parameters, optimizer state and BatchNorm statistics."""

  params: Any
  opt_state: Any
  batch_stats: Any  # {} for a network without BatchNorm.
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(
    cls, variables: dict[str, Any], tx: optax.GradientTransformation
  ) -> "NetworkState":
    params = variables["params"]
    return cls(
      params=params,
      opt_state=tx.init(params),
      batch_stats=variables.get("batch_stats", {}),
      tx=tx,
    )

  @property
  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats}

  def apply_gradients(self, grads, batch_stats) -> "NetworkState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(
      params=optax.apply_updates(self.params, updates),
      opt_state=opt_state,
      batch_stats=batch_stats,
    )


class GanState(struct.PyTreeNode):
  step: jax.Array  # int32 scalar: loop steps (discriminator updates) done.
  generator: NetworkState
  discriminator: NetworkState

  @property
  def params(self) -> dict[str, Any]:
    return {
      "generator": self.generator.params,
      "discriminator": self.discriminator.params,
    }

  @property
  def sampling_params(self) -> Any:
    """The generator's weights that samples and evaluation use."""
    return self.generator.params


class EmaGanState(GanState):
  """A `GanState` with a moving average of the generator's weights, which
  samples come from. A subclass, not an optional field: without the average
  the state's tree, and so its checkpoints, stay as they were."""

  generator_ema: Any  # The generator's params, averaged over its updates.

  @property
  def sampling_params(self) -> Any:
    return self.generator_ema


def default_config() -> ml_collections.ConfigDict:
  """An update schedule and one optimizer per network: DCGAN's Adam."""
  config = ml_collections.ConfigDict()
  # Discriminator updates per generator update; WGAN-style critics take 5.
  config.n_critic = 1
  # R1 (Mescheder et al. 2018): adds (r1_weight / 2) * E||grad_x D(x)||^2
  # over real images to the discriminator's loss; 0 is off. StyleGAN takes
  # 10 at 1024x1024, much less on small images.
  config.r1_weight = 0.0
  # Decay of an exponential moving average of the generator's weights,
  # updated after each generator update; samples and evaluation use it.
  # 0 is off (the state then holds no average); 0.999 is usual.
  config.generator_ema_decay = 0.0
  # True: the generator's update backpropagates through the fakes the
  # discriminator has just judged (one generator forward pass a step, as
  # PyTorch's DCGAN example does); False: through fresh fakes of new z.
  # With n_critic 1 only.
  config.generator_reuses_fakes = False
  config.optimizer = ml_collections.ConfigDict()
  for network in NETWORKS:
    optimizer = optimizers.default_config()
    optimizer.learning_rate = 2e-4  # DCGAN's.
    optimizer.b1 = 0.5  # DCGAN's: 0.9 makes GAN training oscillate.
    config.optimizer[network] = optimizer
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  errors.require(
    config.n_critic >= 1, f"n_critic must be >= 1, got {config.n_critic}."
  )
  errors.require(
    config.r1_weight >= 0, f"r1_weight must be >= 0, got {config.r1_weight}."
  )
  errors.require(
    not config.generator_reuses_fakes or config.n_critic == 1,
    "generator_reuses_fakes needs n_critic=1: with more discriminator "
    f"updates per generator update (n_critic={config.n_critic}) there is "
    "no single batch of fakes to reuse.",
  )
  errors.require(
    0 <= config.generator_ema_decay < 1,
    f"generator_ema_decay must be in [0, 1), got {config.generator_ema_decay}.",
  )
  for network in NETWORKS:
    optimizers.check_config(config.optimizer[network], f"optimizer.{network}")


def _optimizers(
  config: ml_collections.ConfigDict, total_steps: int
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """The generator's and the discriminator's optimizers."""
  # The generator takes one update per n_critic loop steps; its schedule
  # spans its own updates.
  g_steps = max(1, total_steps // config.n_critic)
  return (
    optimizers.make_optimizer(config.optimizer.generator, g_steps),
    optimizers.make_optimizer(config.optimizer.discriminator, total_steps),
  )


def with_optimizers(
  state: GanState, config: ml_collections.ConfigDict, total_steps: int
) -> GanState:
  """`Trainer.with_optimizers`: each network updated by its own section of
  `config.optimizer`."""
  g_tx, d_tx = _optimizers(config, total_steps)
  return state.replace(
    generator=state.generator.replace(tx=g_tx),
    discriminator=state.discriminator.replace(tx=d_tx),
  )


def create_train_state(
  config: ml_collections.ConfigDict,
  parts,
  image_shape: tuple[int, ...],
  rng: jax.Array,
  total_steps: int,
) -> GanState:
  """Fresh networks and optimizers; jit it to initialize on devices."""
  model = parts.model
  g_rng, d_rng = jax.random.split(rng)
  g_variables = model.generator.init(
    g_rng, jnp.zeros((1, model.latent_size)), jnp.zeros((1,), jnp.int32)
  )
  d_variables = model.discriminator.init(d_rng, jnp.zeros((1, *image_shape)))
  g_tx, d_tx = _optimizers(config, total_steps)
  fields = dict(
    step=jnp.zeros((), jnp.int32),  # Strongly typed: one compilation.
    generator=NetworkState.create(g_variables, g_tx),
    discriminator=NetworkState.create(d_variables, d_tx),
  )
  if config.generator_ema_decay:
    return EmaGanState(**fields, generator_ema=g_variables["params"])
  return GanState(**fields)


class Settings(NamedTuple):
  """What the steps are given besides their arrays (bound, never traced)."""

  model: gan.Gan
  terms: objective_lib.AdversarialTerms  # The objective's.
  loss_config: ml_collections.FrozenConfigDict  # Hashable: a static arg.
  compute_dtype: str  # The networks' arithmetic (`core.precision`).
  r1_weight: float  # 0: no R1 penalty.
  ema_decay: float  # 0: no average of the generator (a plain GanState).
  reuse_fakes: bool  # The generator learns from the discriminator's fakes.


def _network(
  settings: Settings,
  name: str,
  network: NetworkState,
  *,
  train: bool,
  params: Any = None,
) -> objective_lib.Network:
  """Network `name` ('generator' or 'discriminator') as a step runs it,
  with `params` (by default its own), for `objective_lib.apply`."""
  return objective_lib.Network(
    module=getattr(settings.model, name),
    variables={
      "params": network.params if params is None else params,
      "batch_stats": network.batch_stats,
    },
    train=train,
    compute_dtype=settings.compute_dtype,
  )


def _update(
  network: NetworkState, objective: Callable[..., Any]
) -> tuple[NetworkState, dict[str, jax.Array], jax.Array]:
  """`network` after one step down `objective(params) -> (loss, (terms,
  batch_stats))`, the terms, and whether the loss and gradients were finite."""
  (loss, (terms, stats)), grads = jax.value_and_grad(objective, has_aux=True)(
    network.params
  )
  return (
    network.apply_gradients(grads, stats),
    terms,
    finite_guard.all_finite(loss, grads),
  )


def _sampling_generator(settings: Settings, state: GanState):
  """The generator that samples and evaluation use: eval mode, on the
  averaged weights where the state keeps them (`sampling_params`)."""
  return _network(
    settings,
    "generator",
    state.generator,
    train=False,
    params=state.sampling_params,
  )


def _latents(model: gan.Gan, rng: jax.Array, batch_size: int) -> jax.Array:
  return jax.random.normal(rng, (batch_size, model.latent_size))


def discriminator_step(
  state: GanState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  settings: Settings,
) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """One discriminator update on `batch` and fakes of its labels.

  Returns the state, the mean terms (the objective's discriminator terms)
  and whether the loss and gradients were finite. The generator is
  unchanged.
  """
  labels = trainer.class_labels(batch)
  fakes, _ = _generate(settings, state.generator, rng, labels)
  return _discriminator_update(
    state, batch, jax.lax.stop_gradient(fakes), settings
  )


def _generate(
  settings: Settings,
  generator: NetworkState,
  rng: jax.Array,
  labels: jax.Array,
  params: Any = None,
) -> tuple[jax.Array, Any]:
  """Fakes of z drawn with `rng`, one per label, by the training-mode
  generator with `params` (by default its own), and its BatchNorm
  statistics."""
  return objective_lib.apply(
    _network(settings, "generator", generator, train=True, params=params),
    _latents(settings.model, rng, labels.shape[0]),
    labels,
  )


def _discriminator_update(
  state: GanState,
  batch: dict[str, jax.Array],
  fakes: jax.Array,
  settings: Settings,
) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """`discriminator_step` on given `fakes` (no gradient flows into them)."""
  images, labels = batch["image"], trainer.class_labels(batch)
  network = state.discriminator

  def judge_real(params, x):
    """The sum of D's logits of real images `x`, and (its output, stats)."""
    real, stats = objective_lib.apply(
      _network(settings, "discriminator", network, train=True, params=params),
      x,
    )
    return jnp.sum(real[0].astype(jnp.float32)), (real, stats)

  def objective(params):
    # Real and fake batches pass apart, as in DCGAN: BatchNorm statistics
    # of a mixed batch would tell the two kinds apart by themselves.
    if settings.r1_weight:
      # Each image's logit depends on its own pixels only (BatchNorm
      # aside), so the gradient of their sum holds each one's gradient.
      grad_x, (real, stats) = jax.grad(judge_real, 1, has_aux=True)(
        params, images
      )
    else:
      _, (real, stats) = judge_real(params, images)
    fake, stats = objective_lib.apply(
      _network(
        settings,
        "discriminator",
        network.replace(batch_stats=stats),
        train=True,
        params=params,
      ),
      fakes,
    )
    terms = settings.terms.discriminator(
      real, fake, labels, settings.loss_config
    )
    terms = {name: value.mean() for name, value in terms.items()}
    if settings.r1_weight:
      terms["r1_penalty"] = r1_penalty(grad_x, settings.r1_weight)
      terms["d_loss"] += terms["r1_penalty"]
    return terms["d_loss"], (terms, stats)

  network, terms, finite = _update(network, objective)
  return state.replace(discriminator=network), terms, finite


def r1_penalty(grad_x: jax.Array, r1_weight: float) -> jax.Array:
  """(r1_weight / 2) * the mean over images of ||grad_x D(x)||^2."""
  squared_norms = jnp.sum(
    jnp.square(grad_x.astype(jnp.float32)).reshape(grad_x.shape[0], -1), -1
  )
  return r1_weight / 2 * jnp.mean(squared_norms)


def update_ema(ema: Any, params: Any, decay: float) -> Any:
  """decay * ema + (1 - decay) * params, leaf by leaf."""
  return jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)


def generator_step(
  state: GanState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  settings: Settings,
) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """One generator update on fresh z for `batch`'s labels; D is unchanged."""
  labels = trainer.class_labels(batch)

  def objective(params):
    fakes, stats = _generate(settings, state.generator, rng, labels, params)
    loss, terms = _judged(settings, state.discriminator, fakes, labels)
    return loss, (terms, stats)

  network, terms, finite = _update(state.generator, objective)
  return _with_generator(state, network, settings), terms, finite


def _judged(
  settings: Settings,
  discriminator: NetworkState,
  fakes: jax.Array,
  labels: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The generator's loss and mean terms, for `fakes` of `labels`."""
  # The discriminator as it judged fakes in its own update (batch
  # statistics); its updated running averages are dropped.
  fake, _ = objective_lib.apply(
    _network(settings, "discriminator", discriminator, train=True), fakes
  )
  terms = settings.terms.generator(fake, labels, settings.loss_config)
  terms = {name: value.mean() for name, value in terms.items()}
  return terms["g_loss"], terms


def _with_generator(
  state: GanState, network: NetworkState, settings: Settings
) -> GanState:
  """`state` with the updated generator `network`, and its average."""
  state = state.replace(generator=network)
  if settings.ema_decay:
    state = state.replace(
      generator_ema=update_ema(
        state.generator_ema, network.params, settings.ema_decay
      )
    )
  return state


def _both_updates_on_one_batch_of_fakes(
  state: GanState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  settings: Settings,
) -> tuple[GanState, dict[str, jax.Array], jax.Array]:
  """`discriminator_step`, then a generator update through the very fakes
  it judged: the generator's forward pass is kept (`jax.vjp`) and pulled
  back once the updated discriminator has judged them. The same update as
  `generator_step` on z drawn with `rng`, with one forward pass fewer."""
  labels = trainer.class_labels(batch)
  fakes, pullback, stats = jax.vjp(
    lambda params: _generate(settings, state.generator, rng, labels, params),
    state.generator.params,
    has_aux=True,
  )
  state, terms, finite = _discriminator_update(
    state, batch, jax.lax.stop_gradient(fakes), settings
  )
  (loss, _), fakes_gradient = jax.value_and_grad(
    lambda f: _judged(settings, state.discriminator, f, labels), has_aux=True
  )(fakes)
  (grads,) = pullback(fakes_gradient)
  network = state.generator.apply_gradients(grads, stats)
  finite = finite & finite_guard.all_finite(loss, grads)
  return _with_generator(state, network, settings), terms, finite


def train_step(
  state: GanState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  *,
  settings: Settings,
  n_critic: int,
) -> tuple[GanState, dict[str, jax.Array]]:
  """A discriminator update, then a generator update every n_critic-th step
  (on fresh fakes; with `reuse_fakes`, on those the discriminator judged).

  `rng` is the run's base key, folded with the step. Metrics are the
  discriminator update's; 'loss' is its loss.
  """
  d_rng, g_rng = jax.random.split(jax.random.fold_in(rng, state.step))
  if settings.reuse_fakes:
    updated, terms, finite = _both_updates_on_one_batch_of_fakes(
      state, batch, d_rng, settings
    )
  else:
    updated, terms, finite = discriminator_step(state, batch, d_rng, settings)

    def update_generator(s):
      s, _, g_finite = generator_step(s, batch, g_rng, settings)
      return s, g_finite

    if n_critic == 1:
      updated, g_finite = update_generator(updated)
    else:
      updated, g_finite = jax.lax.cond(
        (state.step + 1) % n_critic == 0,
        update_generator,
        lambda s: (s, jnp.array(True)),
        updated,
      )
    finite = finite & g_finite
  next_step = state.step + 1
  state = finite_guard.keep_if_finite(
    finite, updated.replace(step=next_step), state.replace(step=next_step)
  )
  return state, {**terms, "loss": terms["d_loss"], "finite": finite}


def eval_step(
  state: GanState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  *,
  settings: Settings,
) -> dict[str, jax.Array]:
  """Sums over the unpadded images of `batch`, and as many fakes of their
  labels, of the discriminator's terms (accuracies, losses)."""
  images, labels = batch["image"], trainer.class_labels(batch)
  generator = _sampling_generator(settings, state)
  fakes, _ = objective_lib.apply(
    generator, _latents(settings.model, rng, images.shape[0]), labels
  )
  discriminator = _network(
    settings, "discriminator", state.discriminator, train=False
  )
  real, _ = objective_lib.apply(discriminator, images)
  fake, _ = objective_lib.apply(discriminator, fakes)
  terms = settings.terms.discriminator(real, fake, labels, settings.loss_config)
  terms["loss"] = terms["d_loss"]
  return trainer.masked_sums(terms, batch["mask"])


def settings_of(config: ml_collections.ConfigDict, parts) -> Settings:
  # Frozen, so that Settings hash: jit takes them as a static argument.
  return Settings(
    model=parts.model,
    terms=parts.objective.terms,
    loss_config=ml_collections.FrozenConfigDict(config.loss),
    compute_dtype=config.compute_dtype,
    r1_weight=config.r1_weight,
    ema_decay=config.generator_ema_decay,
    reuse_fakes=config.generator_reuses_fakes,
  )


def make_steps(
  config: ml_collections.ConfigDict, parts
) -> tuple[Callable[..., Any], Callable[..., Any]]:
  """`train_step` and `eval_step` with `config`'s settings bound:
  `(state, batch, rng)` functions, not yet compiled."""
  settings = settings_of(config, parts)
  return (
    functools.partial(train_step, settings=settings, n_critic=config.n_critic),
    functools.partial(eval_step, settings=settings),
  )


def generate_images(
  state: GanState, z: jax.Array, labels: jax.Array, *, settings: Settings
) -> jax.Array:
  """Samples in [0, 1], BatchNorm on its running averages (eval mode), of
  the averaged weights where the state keeps them."""
  generator = _sampling_generator(settings, state)
  images, _ = objective_lib.apply(generator, z, labels)
  if settings.model.generator.output_activation == "tanh":
    return (images + 1) / 2
  return images


def make_image_grids(
  config: ml_collections.ConfigDict,
  parts,
  test_batch: dict[str, np.ndarray],
  rng: jax.Array,
) -> Callable[[GanState], dict[str, np.ndarray]]:
  """The grids shown each epoch: samples of z drawn once from `rng` (an
  ACGAN's cycle through the classes), and for an ACGAN 'by_label', a row
  per class over the same z, so progress shows on the same images."""
  del test_batch  # A GAN reconstructs nothing.
  model = parts.model
  generate = jax.jit(
    functools.partial(generate_images, settings=settings_of(config, parts))
  )
  z = _latents(model, rng, config.num_image_samples)
  labels = trainer.sample_labels(parts, z.shape[0])
  num_cols = min(10, z.shape[0])

  def image_grids(state: GanState) -> dict[str, np.ndarray]:
    grids = {
      "samples": image_grid.make_grid(
        image_grid.to_uint8(sharding.to_host(generate(state, z, labels)))
      )
    }
    if model.num_classes:
      by_label = generate(
        state, *trainer.label_grid_inputs(z[:num_cols], model.num_classes)
      )
      grids["by_label"] = image_grid.make_grid(
        image_grid.to_uint8(sharding.to_host(by_label)), num_cols=num_cols
      )
    return grids

  return image_grids


TRAINER = trainer.Trainer(
  name="adversarial",
  default_config=default_config,
  check_config=check_config,
  create_train_state=create_train_state,
  make_steps=make_steps,
  make_image_grids=make_image_grids,
  with_optimizers=with_optimizers,
  traced_fields=tuple(
    f"optimizer.{network}.learning_rate" for network in NETWORKS
  ),
)
