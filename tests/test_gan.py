"""GAN generator and discriminator: shapes, output ranges, parameter counts."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_models import batchnorm_params
from test_models import conv_params
from vae_jax import errors
from vae_jax.models import gan
from vae_jax.models import registry


def gan_config(name="acgan", **fields):
  config = gan.default_config(name)
  config.update(
    {
      "latent_size": 6,
      "channels": (4, 8),
      "generator_channels": None,
      "discriminator_batch_norm": False,
      "output_activation": "tanh",
      # Fewer ops than the CPU's matmul forms, so applied op by op
      # they compile faster; test_layers checks the forms agree.
      "conv_impl": "xla",
      **fields,
    }
  )
  return config


def build(config, image_shape, num_classes=10):
  """`config`'s networks; an ACGAN's for data of `num_classes` classes."""
  return registry.build(config, image_shape, num_classes)


def init(model, image_shape, batch=3):
  z = jax.random.normal(jax.random.PRNGKey(0), (batch, model.latent_size))
  labels = jnp.arange(batch) % max(model.num_classes, 1)
  # Compiled whole: op by op, Flax's init compiles each small op apart.
  g_vars = jax.jit(model.generator.init)(jax.random.PRNGKey(1), z, labels)
  images = jax.random.uniform(
    jax.random.PRNGKey(2), (batch, *image_shape), minval=-1.0, maxval=1.0
  )
  d_vars = jax.jit(model.discriminator.init)(jax.random.PRNGKey(3), images)
  return z, labels, images, g_vars, d_vars


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 16, 3)])
def test_acgan_shapes_and_output_range(image_shape):
  model = build(gan_config(), image_shape)
  z, labels, images, g_vars, d_vars = init(model, image_shape)
  fakes = model.generator.apply(g_vars, z, labels)
  assert fakes.shape == (3, *image_shape)
  assert float(jnp.abs(fakes).max()) <= 1.0
  logits, class_logits = model.discriminator.apply(d_vars, images)
  assert logits.shape == (3,)
  assert class_logits.shape == (3, 10)


def test_unconditional_gan_has_no_class_head_and_ignores_labels():
  model = build(gan_config("gan", output_activation="sigmoid"), (28, 28, 1))
  assert model.num_classes == 0
  z, _, images, g_vars, d_vars = init(model, (28, 28, 1))
  fakes = model.generator.apply(g_vars, z, jnp.array([0, 5, 9]))
  np.testing.assert_array_equal(fakes, model.generator.apply(g_vars, z))
  assert 0.0 <= float(fakes.min()) and float(fakes.max()) <= 1.0
  _, class_logits = model.discriminator.apply(d_vars, images)
  assert class_logits is None


def test_labels_change_the_acgan_sample():
  model = build(gan_config(), (28, 28, 1))
  z, _, _, g_vars, _ = init(model, (28, 28, 1))
  same_z = jnp.tile(z[:1], (2, 1))
  fakes = model.generator.apply(g_vars, same_z, jnp.array([3, 4]))
  assert not np.allclose(fakes[0], fakes[1])


def test_param_counts_follow_the_layer_shapes():
  latent, (c1, c2), classes = 6, (4, 8), 10
  model = build(gan_config(), (28, 28, 1))
  _, _, _, g_vars, d_vars = init(model, (28, 28, 1))
  generator = (
    classes * latent  # Label embedding.
    + latent * 7 * 7 * c2
    + 2 * c2  # Projection (no bias), BN.
    + 16 * c2 * c1
    + 2 * c1  # UpConv (no bias), BN.
    + 16 * c1 * 1
    + 1
  )  # Output UpConv with bias.
  discriminator = (
    16 * 1 * c1
    + c1
    + 16 * c1 * c2
    + c2  # Convs with bias.
    + (7 * 7 * c2 + 1) * (1 + classes)
  )  # Both heads.
  assert registry.count_params(g_vars["params"]) == generator
  assert registry.count_params(d_vars["params"]) == discriminator
  assert set(d_vars) == {"params"}  # No BatchNorm by default.


def test_discriminator_batch_norm_on_all_levels_but_the_first():
  model = build(gan_config(discriminator_batch_norm=True), (28, 28, 1))
  _, _, images, _, d_vars = init(model, (28, 28, 1))
  assert list(d_vars["batch_stats"]) == ["BatchNorm_0"]
  assert "bias" in d_vars["params"]["StridedConv_0"]
  assert "bias" not in d_vars["params"]["StridedConv_1"]
  _, updates = model.discriminator.apply(
    d_vars, images, train=True, mutable=["batch_stats"]
  )
  assert not np.allclose(
    updates["batch_stats"]["BatchNorm_0"]["mean"],
    d_vars["batch_stats"]["BatchNorm_0"]["mean"],
  )


def test_spectral_norm_divides_each_layer_by_its_largest_singular_value():
  """Once the power iteration has converged, the discriminator judges as
  the same network without it on weights divided by NumPy's largest
  singular value of each kernel, read as [k*k*in, out]."""
  model = build(gan_config(discriminator_spectral_norm=True), (28, 28, 1))
  _, _, images, _, d_vars = init(model, (28, 28, 1))
  assert d_vars["batch_stats"], "no power-iteration state"

  @jax.jit
  def power_step(variables):
    _, updates = model.discriminator.apply(
      variables, images, train=True, mutable=["batch_stats"]
    )
    return {**variables, **updates}

  for _ in range(300):
    d_vars = power_step(d_vars)

  def normalized(path, leaf):
    if path[-1].key != "kernel":
      return leaf
    matrix = np.asarray(leaf).reshape(-1, leaf.shape[-1])
    return leaf / np.linalg.svd(matrix, compute_uv=False)[0]

  plain = build(gan_config(), (28, 28, 1)).discriminator
  expected = plain.apply(
    {"params": jax.tree_util.tree_map_with_path(normalized, d_vars["params"])},
    images,
  )
  got = model.discriminator.apply(d_vars, images)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got[1], expected[1], rtol=1e-4, atol=1e-5)
  unnormalized = plain.apply({"params": d_vars["params"]}, images)
  assert not np.allclose(unnormalized[0], expected[0], rtol=1e-2)


def test_generator_may_be_narrower_than_the_discriminator():
  model = build(gan_config(generator_channels=(2, 3)), (28, 28, 1))
  z, labels, _, g_vars, d_vars = init(model, (28, 28, 1))
  assert g_vars["params"]["project"]["kernel"].shape == (6, 7 * 7 * 3)
  assert d_vars["params"]["StridedConv_1"]["kernel"].shape == (4, 4, 4, 8)
  assert model.generator.apply(g_vars, z, labels).shape == (3, 28, 28, 1)


@pytest.mark.parametrize(
  "config,image_shape,num_classes,message",
  [
    (gan_config(), (30, 30, 1), 10, "divisible by 4"),
    (gan_config(), (28, 28, 1), 0, "at least 2 classes, got 0"),
    (gan_config(), (28, 28, 1), 1, "at least 2 classes, got 1"),
    (
      gan_config(output_activation="relu"),
      (28, 28, 1),
      10,
      "output_activation 'relu' is unknown",
    ),
    (
      gan_config(generator_channels=(4, 8, 8)),
      (28, 28, 1),
      10,
      "as many levels",
    ),
  ],
)
def test_bad_model_configs_fail_in_one_line(
  config, image_shape, num_classes, message
):
  with pytest.raises(errors.ConfigError, match=message):
    build(config, image_shape, num_classes)


def test_pixel_range_refuses_an_unknown_output_activation():
  # Read before the model is built (`parts.assemble`): one line, not a
  # KeyError.
  with pytest.raises(
    errors.ConfigError, match="output_activation 'relu' is unknown"
  ):
    registry.get("gan").pixel_range(gan_config(output_activation="relu"))
  assert registry.get("gan").pixel_range(gan_config()) == "symmetric"


def dcgan_generator_params(latent, channels, image_shape, num_classes=0):
  """The DCGAN generator from layer shapes: z (times a class embedding)
  projected to the smallest map without bias, then 4x4 transposed convs
  with BatchNorm and no bias, and a last one to the image with bias."""
  height, width, image_channels = image_shape
  scale = 2 ** len(channels)
  widest = channels[-1]
  total = latent * (height // scale) * (width // scale) * widest
  total += batchnorm_params(widest) + num_classes * latent
  mirrored = channels[::-1]
  for a, b in zip(mirrored[:-1], mirrored[1:]):
    total += conv_params(a, b, 4, bias=False) + batchnorm_params(b)
  return total + conv_params(channels[0], image_channels, 4, bias=True)


def dcgan_discriminator_params(
  channels, image_shape, batch_norm, num_classes=0
):
  """4x4 stride-2 convs (BatchNorm without bias after the first, if on),
  then a real/fake logit and an ACGAN's class logits on the last map."""
  height, width, image_channels = image_shape
  levels = (image_channels, *channels)
  total = 0
  for level, (a, b) in enumerate(zip(levels[:-1], levels[1:])):
    normalized = batch_norm and level > 0
    total += conv_params(a, b, 4, bias=not normalized)
    total += batchnorm_params(b) if normalized else 0
  features = (height >> len(channels)) * (width >> len(channels)) * channels[-1]
  return total + (features + 1) * (1 + num_classes)


@pytest.mark.parametrize(
  "name,image_shape,num_classes,expected",
  [
    ("mnist_gan", (28, 28, 1), 0, (533_889, 36_513)),
    ("mnist_acgan", (28, 28, 1), 10, (534_529, 67_883)),
    ("mnist_gan_plain", (28, 28, 1), 0, (169_489, 10_065)),
    ("celeba_gan", (64, 64, 3), 0, (3_576_707, 2_765_633)),
    ("celeba_acgan", (64, 64, 3), 2, (3_576_907, 2_782_019)),
  ],
)
def test_gan_configs_have_the_listing_params(
  name, image_shape, num_classes, expected
):
  model_config = importlib.import_module(f"configs.{name}").get_config().model
  from_shapes = (
    dcgan_generator_params(
      model_config.latent_size,
      tuple(model_config.generator_channels),
      image_shape,
      num_classes,
    ),
    dcgan_discriminator_params(
      tuple(model_config.channels),
      image_shape,
      model_config.discriminator_batch_norm,
      num_classes,
    ),
  )
  assert from_shapes == expected  # The figures the README gives.
  model = build(model_config, image_shape, num_classes)
  z = jnp.zeros((1, model.latent_size))
  labels = jnp.zeros((1,), jnp.int32)
  generator = jax.eval_shape(
    model.generator.init, jax.random.PRNGKey(0), z, labels
  )
  discriminator = jax.eval_shape(
    model.discriminator.init,
    jax.random.PRNGKey(0),
    jnp.zeros((1, *image_shape)),
  )
  assert (
    registry.count_params(generator["params"]),
    registry.count_params(discriminator["params"]),
  ) == expected
