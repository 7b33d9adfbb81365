"""GAN training: alternating updates, n_critic, skipped steps, whole runs."""

import functools
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_runs import run
from gan_runs import tiny_gan_config
from testbed import assemble
from testbed import initial_state
from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.data import sources
from vae_jax.models import registry
from vae_jax.objectives import registry as objectives
from vae_jax.trainers import adversarial
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import trainer

IMAGE_SHAPE = (28, 28, 1)

# The per-step means an ACGAN's train step reports, and its test metrics.
ACGAN_METRICS = (
  "loss",
  "d_loss",
  "g_loss",
  "d_real_accuracy",
  "d_fake_accuracy",
  "aux_real_accuracy",
  "aux_fake_accuracy",
)


@pytest.fixture
def gan_config():
  return tiny_gan_config()


def make_state(config):
  """The steps' settings (the model, its objective) and a fresh state."""
  parts = assemble(config, IMAGE_SHAPE)
  return (
    adversarial.settings_of(config, parts),
    initial_state(config, parts, IMAGE_SHAPE, total_steps=100),
  )


@pytest.fixture(scope="module")
def tiny_state():
  """The tiny ACGAN's settings and state, shared: a jitted step compiles
  again for every new state (its optimizers are static parts of the
  pytree)."""
  return make_state(tiny_gan_config())


@pytest.fixture(scope="module")
def train_steps(tiny_state):
  """Jitted train steps of the tiny ACGAN by n_critic (~10 s to compile)."""
  settings, _ = tiny_state
  return {
    n: jax.jit(
      functools.partial(adversarial.train_step, settings=settings, n_critic=n)
    )
    for n in (1, 2)
  }


def random_batch(size=8, seed=0):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.uniform(-1, 1, (size, *IMAGE_SHAPE)).astype(np.float32),
    "label": rng.integers(0, 10, size).astype(np.int32),
  }


def leaves(network):
  return jax.tree.leaves(
    (network.params, network.opt_state, network.batch_stats)
  )


def assert_identical(network, other):
  for before, after in zip(leaves(network), leaves(other), strict=True):
    np.testing.assert_array_equal(before, after)


def assert_changed(network, other):
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(
      jax.tree.leaves(network.params), jax.tree.leaves(other.params)
    )
  )


def test_acgan_classes_come_from_the_data(gan_config):
  assert assemble(gan_config, IMAGE_SHAPE).model.num_classes == 10
  gan_config.input.dataset = "celeb_a"
  gan_config.input.attributes = ("Smiling", "Male")
  assert sources.num_classes(gan_config.input) == 4
  gan_config.input.dataset = "stanford_dogs"
  with pytest.raises(errors.ConfigError, match="has neither"):
    assemble(gan_config, IMAGE_SHAPE)
  # Refused with the config, before the data is prepared.
  gan_config.input.image_size = 32
  with pytest.raises(errors.ConfigError, match="has neither"):
    run_config.check_config(gan_config)
  gan_config.model.name = "gan"  # Unconditional: no classes needed.
  run_config.check_config(gan_config)
  assert assemble(gan_config, IMAGE_SHAPE).model.num_classes == 0


def test_celeb_a_attributes_are_read_as_bits():
  batch = {
    "label": jnp.array([1, 0, 1, 0]),
    "attributes": jnp.array([[1, 0], [0, 1], [1, 1], [0, 0]]),
  }
  np.testing.assert_array_equal(trainer.class_labels(batch), [1, 2, 3, 0])
  np.testing.assert_array_equal(
    trainer.class_labels({"label": batch["label"]}), [1, 0, 1, 0]
  )


def test_pixel_range_must_match_the_output_activation(gan_config):
  gan_config.input.pixel_range = "unit"
  with pytest.raises(errors.ConfigError, match="pixel_range='symmetric'"):
    assemble(gan_config, IMAGE_SHAPE)
  gan_config.model.output_activation = "sigmoid"
  assemble(gan_config, IMAGE_SHAPE)


@pytest.fixture(scope="module")
def batch_norm_state():
  """BatchNorm in both networks, and the discriminator's spectral norm:
  their statistics and power iterates must not leak either."""
  config = tiny_gan_config()
  config.model.discriminator_batch_norm = True
  config.model.discriminator_spectral_norm = True
  return make_state(config)


@pytest.mark.parametrize(
  "step_fn,updated,unchanged",
  [
    (adversarial.discriminator_step, "discriminator", "generator"),
    (adversarial.generator_step, "generator", "discriminator"),
  ],
)
def test_each_update_leaves_the_other_network_bit_identical(
  batch_norm_state, step_fn, updated, unchanged
):
  settings, state = batch_norm_state
  new_state, metrics, finite = jax.jit(
    functools.partial(step_fn, settings=settings)
  )(state, random_batch(), jax.random.PRNGKey(1))
  assert bool(finite) and np.isfinite(float(metrics[f"{updated[0]}_loss"]))
  assert_identical(getattr(state, unchanged), getattr(new_state, unchanged))
  assert_changed(getattr(state, updated), getattr(new_state, updated))
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(
      jax.tree.leaves(getattr(state, updated).batch_stats),
      jax.tree.leaves(getattr(new_state, updated).batch_stats),
    )
  )
  assert int(new_state.step) == 0  # Only train_step counts loop steps.


@pytest.mark.parametrize("n_critic", [1, 2])
def test_generator_updates_every_n_critic_steps(
  tiny_state, train_steps, n_critic
):
  _, state = tiny_state
  step = train_steps[n_critic]
  rng = jax.random.PRNGKey(1)
  for i in range(1, 4):
    new_state, metrics = step(state, random_batch(seed=i), rng)
    assert bool(metrics["finite"]) and int(new_state.step) == i
    assert_changed(state.discriminator, new_state.discriminator)
    if i % n_critic == 0:
      assert_changed(state.generator, new_state.generator)
    else:
      assert_identical(state.generator, new_state.generator)
    state = new_state
  assert step._cache_size() == 1  # pylint: disable=protected-access
  for name in ACGAN_METRICS:
    assert metrics[name].shape == ()


def test_non_finite_step_is_skipped_but_counted(tiny_state, train_steps):
  _, state = tiny_state
  step = train_steps[1]
  poisoned = random_batch()
  poisoned["image"][0, 0, 0, 0] = np.nan
  skipped, metrics = step(state, poisoned, jax.random.PRNGKey(1))
  assert not bool(metrics["finite"])
  assert int(skipped.step) == 1
  assert_identical(state.generator, skipped.generator)
  assert_identical(state.discriminator, skipped.discriminator)


def test_eval_step_ignores_padding(tiny_state):
  settings, state = tiny_state
  batch = random_batch()
  batch["mask"] = np.array([True] * 5 + [False] * 3)
  eval_step = jax.jit(
    functools.partial(adversarial.eval_step, settings=settings)
  )
  sums = eval_step(state, batch, jax.random.PRNGKey(0))
  unpadded = eval_step(
    state, {k: v[:5] for k, v in batch.items()}, jax.random.PRNGKey(0)
  )
  assert float(sums["count"]) == 5
  # Fakes differ with the batch size; the real images' terms must not.
  for name in ("d_real_accuracy", "aux_real_accuracy", "aux_real_loss"):
    np.testing.assert_allclose(sums[name], unpadded[name], rtol=1e-5)


def test_hinge_loss_is_its_formula_and_keeps_the_class_terms():
  real = (jnp.array([2.0, 0.5, -1.0]), jnp.array([[3.0, 0.0]] * 3))
  fake = (jnp.array([-2.0, 0.0, 0.5]), jnp.array([[0.0, 3.0]] * 3))
  labels = jnp.array([0, 1, 0])
  hinge = objectives.get("hinge_gan")
  nonsaturating = objectives.get("nonsaturating_gan")
  loss_config = hinge.default_config()
  assert loss_config.objective == "hinge_gan"
  terms = hinge.terms.discriminator(real, fake, labels, loss_config)
  old = nonsaturating.terms.discriminator(real, fake, labels, loss_config)
  aux = old["aux_real_loss"] + old["aux_fake_loss"]
  # relu(1 - real) + relu(1 + fake), and the ACGAN class losses as before.
  np.testing.assert_allclose(
    terms["d_loss"], jnp.array([0.0, 1.5, 3.5]) + aux, rtol=1e-6
  )
  np.testing.assert_allclose(
    terms["g_loss"], jnp.array([2.0, 0.0, -0.5]) + old["aux_fake_loss"]
  )
  np.testing.assert_array_equal(terms["aux_real_loss"], old["aux_real_loss"])


# Separate learning rates (TTUR), an R1 penalty and a generator average.
RECIPE = {"r1_weight": 3.0, "generator_ema_decay": 0.75}
LEARNING_RATES = {"generator": 1e-3, "discriminator": 4e-3}


@pytest.fixture(scope="module")
def recipe_steps():
  """The tiny ACGAN with RECIPE and LEARNING_RATES: its settings, its fresh
  state, and the states and metrics after a step and after a skipped one."""
  config = tiny_gan_config()
  config.update(RECIPE)
  for network, rate in LEARNING_RATES.items():
    config.optimizer[network].learning_rate = rate
  settings, state = make_state(config)
  step = jax.jit(
    functools.partial(adversarial.train_step, settings=settings, n_critic=1)
  )
  poisoned = random_batch()
  poisoned["image"][0, 0, 0, 0] = np.nan
  rng = jax.random.PRNGKey(1)
  return (
    settings,
    state,
    step(state, random_batch(), rng),
    step(state, poisoned, rng),
  )


def test_each_network_steps_at_its_own_learning_rate(recipe_steps):
  _, state, (stepped, _), _ = recipe_steps
  for network, rate in LEARNING_RATES.items():
    # Adam's first step moves each weight by the learning rate (±).
    moved = [
      np.max(np.abs(np.asarray(a) - np.asarray(b)))
      for a, b in zip(
        jax.tree.leaves(getattr(state, network).params),
        jax.tree.leaves(getattr(stepped, network).params),
      )
    ]
    np.testing.assert_allclose(max(moved), rate, rtol=1e-3)


def test_r1_penalty_matches_finite_differences(recipe_steps):
  settings, state, (_, metrics), _ = recipe_steps
  images = random_batch()["image"]
  eps = 1e-2
  # Every pixel of every image moved by ±eps, in one batch.
  offsets = eps * np.eye(images[0].size, dtype=np.float32).reshape(
    -1, *IMAGE_SHAPE
  )
  moved = np.concatenate(
    [image + sign * offsets for image in images for sign in (1, -1)]
  )
  discriminator = settings.model.discriminator
  logits, _ = jax.jit(discriminator.apply)(state.discriminator.variables, moved)
  plus, minus = (
    np.asarray(logits).reshape(len(images), 2, -1).transpose(1, 0, 2)
  )
  gradients = (plus - minus) / (2 * eps)
  expected = RECIPE["r1_weight"] / 2 * np.mean(np.sum(gradients**2, -1))
  assert expected > 0
  np.testing.assert_allclose(metrics["r1_penalty"], expected, rtol=1e-2)

  # And the discriminator's loss holds it: the same step without R1 (whose
  # forward pass is the same) reports a loss smaller by exactly the penalty.
  config = tiny_gan_config()
  config.update({**RECIPE, "r1_weight": 0.0})
  plain_settings, _ = make_state(config)
  plain_step = jax.jit(
    functools.partial(
      adversarial.train_step, settings=plain_settings, n_critic=1
    )
  )
  _, plain = plain_step(state, random_batch(), jax.random.PRNGKey(1))
  assert "r1_penalty" not in plain
  np.testing.assert_allclose(
    metrics["d_loss"] - plain["d_loss"], metrics["r1_penalty"], rtol=1e-4
  )


def test_generator_average_follows_its_formula_and_makes_the_samples(
  recipe_steps,
):
  settings, state, (stepped, _), (skipped, skipped_metrics) = recipe_steps
  decay = RECIPE["generator_ema_decay"]
  assert isinstance(state, adversarial.EmaGanState)
  for ema, before, after in zip(
    jax.tree.leaves(stepped.generator_ema),
    jax.tree.leaves(state.generator.params),  # The average starts here.
    jax.tree.leaves(stepped.generator.params),
    strict=True,
  ):
    np.testing.assert_allclose(
      ema, decay * before + (1 - decay) * after, rtol=1e-6, atol=1e-8
    )
  # A skipped step leaves the average too.
  assert not bool(skipped_metrics["finite"])
  for before, after in zip(
    jax.tree.leaves(state.generator_ema),
    jax.tree.leaves(skipped.generator_ema),
    strict=True,
  ):
    np.testing.assert_array_equal(before, after)
  # Samples (and evaluation, and analysis) come from the average.
  z = jnp.ones((2, settings.model.latent_size))
  labels = jnp.array([0, 1])
  samples = adversarial.generate_images(stepped, z, labels, settings=settings)
  of_average = adversarial.generate_images(
    stepped.replace(
      generator=stepped.generator.replace(params=stepped.generator_ema)
    ),
    z,
    labels,
    settings=settings,
  )
  np.testing.assert_array_equal(samples, of_average)
  assert not np.array_equal(
    samples,
    adversarial.generate_images(
      stepped.replace(generator_ema=stepped.generator.params),
      z,
      labels,
      settings=settings,
    ),
  )


def test_gan_and_autoencoder_settings_are_checked_apart(gan_config):
  gan_config.n_critic = 0
  with pytest.raises(errors.ConfigError, match="n_critic must be >= 1"):
    run_config.check_config(gan_config)
  gan_config.n_critic = 1
  for field, value in (("r1_weight", -1.0), ("generator_ema_decay", 1.0)):
    default, gan_config[field] = gan_config[field], value
    with pytest.raises(errors.ConfigError, match=f"{field} must be"):
      run_config.check_config(gan_config)
    gan_config[field] = default
  gan_config.optimizer.generator.learning_rate = 0.0
  with pytest.raises(
    errors.ConfigError, match="optimizer.generator.learning_rate"
  ):
    run_config.check_config(gan_config)
  gan_config.optimizer.generator.learning_rate = 1e-4
  run_config.check_config(gan_config)
  # The family names its trainer; an objective of the other trainer is
  # refused.
  gan_config.loss.objective = "negative_elbo"
  with pytest.raises(
    errors.ConfigError,
    match="loss.objective "
    "'negative_elbo' trains latent_variable models; model "
    "'acgan' is a gan model",
  ):
    run_config.check_config(gan_config)


def test_acgan_trains_and_writes_every_output(gan_config, tmp_path):
  # Resuming is the generic loop's (tests/test_loop.py); restoring a
  # GanState is tested through trained.load (test_gan_report).
  results = run(gan_config, tmp_path)
  steps_per_epoch = 40 // gan_config.batch_size
  assert results["steps"] == 2 * steps_per_epoch
  state = loop.abstract_train_state(gan_config, image_shape=IMAGE_SHAPE)
  assert results["num_params"] == registry.count_params(state.params)
  for name in ACGAN_METRICS:
    assert np.isfinite(results[f"test_{name}"])
  for name in ("samples", "by_label"):
    assert (tmp_path / f"{name}_{2 * steps_per_epoch:06d}.png").exists()
  # Every periodic checkpoint is kept, so any of them can be analyzed.
  assert sorted(int(p) for p in os.listdir(tmp_path / "checkpoints")) == [
    3,
    6,
    9,
    10,
  ]
  assert json.loads((tmp_path / "config.json").read_text())["n_critic"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["celeba_gan", "celeba_acgan"])
def test_celeba_configs_train_end_to_end(name, tmp_path):
  config = make_tiny_config(
    base=importlib.import_module(f"configs.{name}").get_config(),
    run={
      "num_epochs": 1,
      "batch_size": 4,
      "num_image_samples": 4,
      # Under mock data the download is a no-op.
      "input.download": "always",
    },
    # Narrow layers, in both networks, compile and run in seconds; the
    # 64x64x3 shape, BatchNorm in the discriminator and the attributes are
    # the configs' own.
    model={
      "model.channels": (4, 4, 4, 8),
      "model.generator_channels": (4, 4, 4, 8),
      "model.latent_size": 8,
      # XLA's convolutions compile in half the time of the CPU's matmul
      # forms, which test_layers checks against them.
      "model.conv_impl": "xla",
    },
  )
  results = run(config, tmp_path, num_examples=8)
  assert results["steps"] == 2
  assert np.isfinite(results["test_d_loss"])
  assert (tmp_path / "samples_000002.png").exists()
  if name == "celeba_acgan":
    assert np.isfinite(results["test_aux_real_accuracy"])
    assert (tmp_path / "by_label_000002.png").exists()


def test_reusing_the_fakes_is_a_generator_step_on_the_same_z():
  """One generator forward pass, kept by `jax.vjp` and pulled back after the
  discriminator's update, gives what the discriminator step followed by a
  generator step on the same z gives: both networks, their BatchNorm
  statistics, optimizer states and the generator's average."""
  config = tiny_gan_config()
  config.model.discriminator_batch_norm = True
  config.generator_ema_decay = 0.9
  config.generator_reuses_fakes = True
  settings, state = make_state(config)
  batch, rng = random_batch(seed=5), jax.random.PRNGKey(2)
  reused, terms, finite = jax.jit(
    functools.partial(
      adversarial._both_updates_on_one_batch_of_fakes,  # pylint: disable=protected-access
      settings=settings,
    )
  )(state, batch, rng)
  after_discriminator, expected_terms, _ = adversarial.discriminator_step(
    state, batch, rng, settings
  )
  expected, _, _ = adversarial.generator_step(
    after_discriminator, batch, rng, settings
  )
  assert bool(finite)
  for name, value in expected_terms.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-6, err_msg=name)
  for got, want in zip(
    jax.tree.leaves(reused), jax.tree.leaves(expected), strict=True
  ):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
  assert_changed(state.generator, reused.generator)
  # The loop's step takes that path, on the step's discriminator key.
  step = adversarial.make_steps(config, assemble(config, IMAGE_SHAPE))[0]
  stepped, _ = jax.jit(step)(state, batch, rng)
  d_rng, _ = jax.random.split(jax.random.fold_in(rng, state.step))
  direct, _, _ = adversarial.discriminator_step(state, batch, d_rng, settings)
  direct, _, _ = adversarial.generator_step(direct, batch, d_rng, settings)
  np.testing.assert_allclose(
    jax.tree.leaves(stepped.generator.params)[0],
    jax.tree.leaves(direct.generator.params)[0],
    rtol=2e-5,
    atol=1e-6,
  )


def test_reusing_the_fakes_needs_one_critic_update():
  config = tiny_gan_config()
  config.generator_reuses_fakes, config.n_critic = True, 2
  with pytest.raises(errors.ConfigError, match="needs n_critic=1"):
    adversarial.check_config(config)
