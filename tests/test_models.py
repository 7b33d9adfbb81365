"""Model shapes and parameter counts against the seed's PyTorch listings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from testbed import assemble
from vae_jax import errors
from vae_jax.models import autoencoders
from vae_jax.models import priors
from vae_jax.models import registry
from vae_jax.models import vae
from vae_jax.objectives import negative_elbo


def linear_params(sizes):
  """Weights plus biases of nn.Linear layers chained through `sizes`."""
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


# Burda et al.'s two-layer model: x-200-200-(h1: 100)-100-100-(h2: 50),
# p(h1|h2) and p(x|h1) mirrored.
TWO_LAYER_PARAMS = (
  linear_params([784, 200, 200])
  + 2 * linear_params([200, 100])
  + linear_params([100, 100, 100])
  + 2 * linear_params([100, 50])
  + linear_params([50, 100, 100])
  + 2 * linear_params([100, 100])
  + linear_params([100, 200, 200, 784])
)


def compiled(model):
  """`model`'s init and apply, each compiled whole: op by op, a conv VAE's
  hundreds of small ops took 17 s to compile one at a time."""
  return (
    jax.jit(model.init),
    jax.jit(model.apply, static_argnames=("method", "train", "mutable")),
  )


def family_config(name, **fields):
  """Family `name`'s default config.model with `fields` replaced."""
  config = registry.get(name).default_config()
  config.update(fields)
  return config


def build(model_config, image_shape):
  return registry.build(model_config, image_shape, num_classes=0)


def sample_and_decode(model, images, rng, train=False):
  """A Flax method of a VAE: logits for one z ~ q(z|x) per image, and q's
  mu and log-variance (as the negative ELBO draws them)."""
  mu, logvar = model.encode(images, train)
  z, _ = negative_elbo.reparameterize(rng, mu, logvar)
  return model.decode(z, train), mu, logvar


def mlp_vae_config(hidden_sizes, latent_size):
  return family_config(
    "mlp_vae", hidden_sizes=hidden_sizes, latent_size=latent_size
  )


@pytest.mark.parametrize(
  "image_shape,hidden,latent,expected",
  [
    # Seed listing: fc1 784->400, fc2 400->200, fc21/fc22 200->20,
    # fc3 20->200, fc4 200->400, fc5 400->784.
    (
      (28, 28, 1),
      (400, 200),
      20,
      linear_params([784, 400, 200])
      + 2 * linear_params([200, 20])
      + linear_params([20, 200, 400, 784]),
    ),
    # Seed listing for 32x32 MNIST: 1024->512, mu/sigma 512->4, 4->512->1024.
    (
      (32, 32, 1),
      (512,),
      4,
      linear_params([1024, 512])
      + 2 * linear_params([512, 4])
      + linear_params([4, 512, 1024]),
    ),
  ],
)
def test_mlp_vae_param_count_equals_pytorch_listing(
  image_shape, hidden, latent, expected
):
  model = build(mlp_vae_config(hidden, latent), image_shape)
  variables = jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jnp.zeros((1, *image_shape))
  )
  assert registry.count_params(variables["params"]) == expected


def test_mlp_vae_shapes():
  model = build(mlp_vae_config((16, 8), 3), (28, 28, 1))
  images = jnp.zeros((5, 28, 28, 1))
  init, apply = compiled(model)
  variables = init(jax.random.PRNGKey(0), images)
  assert apply(variables, images).shape == images.shape
  logits, mu, logvar = apply(
    variables, images, jax.random.PRNGKey(2), method=sample_and_decode
  )
  assert logits.shape == images.shape
  assert mu.shape == logvar.shape == (5, 3)
  decoded = apply(variables, jnp.zeros((7, 3)), method="decode")
  assert decoded.shape == (7, 28, 28, 1)


def conv_params(in_channels, out_channels, kernel_size, bias):
  """Weights (plus biases) of one square nn.Conv2d or nn.ConvTranspose2d."""
  return in_channels * out_channels * kernel_size**2 + (
    out_channels if bias else 0
  )


def batchnorm_params(channels):
  """nn.BatchNorm2d(affine=True): scale and shift; running stats not params."""
  return 2 * channels


def convs_params(channels, kernel_size, bias):
  """Convolutions chained through `channels`."""
  return sum(
    conv_params(a, b, kernel_size, bias)
    for a, b in zip(channels[:-1], channels[1:])
  )


# disentanglement_lib's conv_encoder on 64x64x1: convs 1->32->32 (4x4) and
# 32->64->64 (2x2), Dense 4*4*64 -> 256, means and log_var 256 -> 10;
# deconv_decoder: Dense 10 -> 256 -> 1024, transposed convs
# 64 -> 64 -> 32 -> 32 -> 1 (4x4); biases throughout.
DISENTANGLEMENT_CONV_PARAMS = (
  convs_params([1, 32, 32], 4, bias=True)
  + convs_params([32, 64, 64], 2, bias=True)
  + linear_params([4 * 4 * 64, 256])
  + 2 * linear_params([256, 10])
  + linear_params([10, 256, 1024])
  + convs_params([64, 64, 32, 32, 1], 4, bias=True)
)


def count_listing_params(model_config, image_shape):
  model = build(model_config, image_shape)
  variables = jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jnp.zeros((1, *image_shape))
  )
  return registry.count_params(variables["params"])


def dcgan_listing_params(image_channels, flatten_size, latent_size):
  """The seed's DCGAN VAE listing, from its PyTorch layer shapes."""
  encoder = (
    convs_params([image_channels, 64, 128, 256, 128], 4, bias=False)
    + sum(batchnorm_params(c) for c in (64, 128, 256, 128))
    + 2 * linear_params([flatten_size, latent_size])
  )  # mu, σ heads.
  decoder = (
    linear_params([latent_size, 512, flatten_size])
    + convs_params([128, 256, 128, 64, image_channels], 4, bias=False)
    + sum(batchnorm_params(c) for c in (256, 128, 64))
  )
  return encoder + decoder


@pytest.mark.parametrize(
  "image_shape,flatten_size",
  [
    ((32, 32, 1), 2 * 2 * 128),  # The listing: 32x32 MNIST, 512 -> 128 heads.
    ((64, 64, 3), 4 * 4 * 128),
  ],
)
def test_dcgan_vae_param_count_equals_pytorch_listing(
  image_shape, flatten_size
):
  config = family_config("dcgan_vae", latent_size=128)
  assert count_listing_params(config, image_shape) == dcgan_listing_params(
    image_shape[-1], flatten_size, 128
  )


@pytest.mark.parametrize("latent_size", [16, 256])
def test_small_conv_vae_param_count_equals_pytorch_listing(latent_size):
  # The seed's three-layer conv VAE on 32x32x1, d = 32: encoder convs
  # 1->32->64->128 (3x3, bias), Linear 2048->256, mu/σ heads 256->latent;
  # decoder Linear latent->256->2048, ConvTranspose 128->64->32->1 (3x3, bias).
  expected = (
    convs_params([1, 32, 64, 128], 3, bias=True)
    + linear_params([4 * 4 * 128, 256])
    + 2 * linear_params([256, latent_size])
    + linear_params([latent_size, 256, 4 * 4 * 128])
    + convs_params([128, 64, 32, 1], 3, bias=True)
  )
  config = family_config("small_conv_vae", latent_size=latent_size)
  assert count_listing_params(config, (32, 32, 1)) == expected


@pytest.mark.parametrize(
  "variant,encoder,decoder",
  [
    # The seed's fcn1/fcn2/fcn3 listings on 64x64x3 (12288 inputs); fcn2/fcn3
    # with the evident 64->32->12->3 for the listing's Linear(64,32), (12,3).
    (
      "fcn1",
      [12288, 2048, 1024, 512, 256, 128, 3],
      [3, 12, 256, 512, 1024, 2048, 12288],
    ),
    (
      "fcn2",
      [12288, 1024, 128, 64, 32, 12, 3],
      [3, 12, 32, 64, 128, 1024, 12288],
    ),
    (
      "fcn3",
      [12288, 512, 128, 64, 32, 12, 3],
      [3, 12, 32, 64, 128, 512, 12288],
    ),
  ],
)
def test_fc_autoencoder_param_count_equals_pytorch_listing(
  variant, encoder, decoder
):
  encoder_sizes, decoder_sizes = autoencoders.SEED_FC_SIZES[variant]
  assert [12288, *encoder_sizes] == encoder
  assert [3, *decoder_sizes, 12288] == decoder
  config = family_config(
    "fc_autoencoder", encoder_sizes=encoder_sizes, decoder_sizes=decoder_sizes
  )
  assert count_listing_params(config, (64, 64, 3)) == (
    linear_params(encoder) + linear_params(decoder)
  )


def test_conv_autoencoder_param_count_equals_pytorch_listing():
  # The seed's conv autoencoder: Conv 4x4 3->64->128->256->512 and
  # ConvTranspose 4x4 512->256->128->64->3, all with bias.
  expected = convs_params([3, 64, 128, 256, 512], 4, bias=True) + convs_params(
    [512, 256, 128, 64, 3], 4, bias=True
  )
  config = family_config("conv_autoencoder")
  assert count_listing_params(config, (64, 64, 3)) == expected


def check_vae_shapes(model, image_shape, latent_size):
  init, apply = compiled(model)
  images = jax.random.uniform(jax.random.PRNGKey(3), (2, *image_shape))
  variables = init(jax.random.PRNGKey(0), images)
  assert apply(variables, images).shape == images.shape
  logits, mu, logvar = apply(
    variables, images, jax.random.PRNGKey(2), method=sample_and_decode
  )
  assert logits.shape == images.shape
  assert mu.shape == logvar.shape == (2, latent_size)
  decoded = apply(variables, jnp.zeros((3, latent_size)), method="decode")
  assert decoded.shape == (3, *image_shape)
  return images, variables


def test_dcgan_vae_shapes_and_batch_stats():
  # XLA's convolutions compile faster; every form has the same shapes
  # (test_layers).
  config = family_config(
    "dcgan_vae",
    latent_size=5,
    channels=(4, 8, 8, 6),
    dense_size=16,
    conv_impl="xla",
  )
  model = build(config, (32, 48, 3))
  images, variables = check_vae_shapes(model, (32, 48, 3), 5)
  assert "batch_stats" in variables
  _, apply = compiled(model)
  rng = jax.random.PRNGKey(2)
  _, trained = apply(
    variables,
    images,
    rng,
    train=True,
    mutable=("batch_stats",),
    method=sample_and_decode,
  )
  changed = jax.tree.map(
    lambda a, b: bool(jnp.any(a != b)),
    variables["batch_stats"],
    trained["batch_stats"],
  )
  assert all(jax.tree.leaves(changed))
  _, evaluated = apply(
    variables,
    images,
    rng,
    train=False,
    mutable=("batch_stats",),
    method=sample_and_decode,
  )
  unchanged = jax.tree.map(
    lambda a, b: bool(jnp.all(a == b)),
    variables["batch_stats"],
    evaluated["batch_stats"],
  )
  assert all(jax.tree.leaves(unchanged))


def test_small_conv_vae_shapes():
  config = family_config(
    "small_conv_vae", latent_size=4, base_channels=4, dense_size=16
  )
  model = build(config, (32, 48, 1))
  _, variables = check_vae_shapes(model, (32, 48, 1), 4)
  assert "batch_stats" not in variables


@pytest.mark.parametrize("name", ["small_conv_vae", "dcgan_vae"])
def test_conv_vaes_reject_sizes_they_cannot_rebuild(name):
  config = family_config(name, latent_size=4)
  with pytest.raises(errors.ConfigError):
    build(config, (28, 28, 1))


@pytest.mark.parametrize(
  "model_config,image_shape,code_size",
  [
    (
      {
        "name": "fc_autoencoder",
        "encoder_sizes": (16, 3),
        "decoder_sizes": (12,),
      },
      (8, 8, 3),
      3,
    ),
    (
      {"name": "conv_autoencoder", "channels": (4, 8, 8, 6)},
      (64, 64, 3),
      4 * 4 * 6,
    ),
  ],
)
def test_autoencoder_shapes(model_config, image_shape, code_size):
  fields = dict(model_config)
  model = build(family_config(fields.pop("name"), **fields), image_shape)
  assert model.code_size == code_size
  init, apply = compiled(model)
  images = jax.random.uniform(
    jax.random.PRNGKey(3), (2, *image_shape), minval=-1.0, maxval=1.0
  )
  variables = init(jax.random.PRNGKey(0), images)
  assert set(variables) == {"params"}
  outputs = apply(variables, images)
  assert outputs.shape == images.shape
  code = apply(variables, images, method="encode")
  assert code.shape == (2, code_size)
  decoded = apply(variables, code, method="decode")
  assert decoded.shape == images.shape
  assert jnp.allclose(decoded, outputs)


def test_extreme_posterior_log_variances_stay_finite(tiny_config):
  model = assemble(tiny_config).model
  init, apply = compiled(model)
  variables = init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  # Weights large enough that the raw encoder would output logvar ~ 1e4.
  variables = jax.tree.map(lambda x: x * 1e3, variables)
  images = jnp.ones((2, 28, 28, 1))
  logits, mu, logvar = apply(
    variables, images, jax.random.PRNGKey(2), method=sample_and_decode
  )
  low, high = vae.POSTERIOR_LOGVAR_RANGE
  assert low <= float(logvar.min()) and float(logvar.max()) <= high
  assert np.any((logvar == low) | (logvar == high))  # Clipped, not small.
  assert np.isfinite(float(priors.kl_to_standard_normal(mu, logvar).sum()))


def test_disentanglement_conv_vae_param_count_equals_disentanglement_lib():
  config = family_config("disentanglement_conv_vae")
  assert (
    count_listing_params(config, (64, 64, 1)) == DISENTANGLEMENT_CONV_PARAMS
  )


@pytest.mark.parametrize("conv_impl", ["matmul", "xla"])
def test_disentanglement_conv_vae_pads_as_tensorflows_same(conv_impl):
  """Its convs are TensorFlow's stride-2 'same' convs, as
  disentanglement_lib's: the encoder's mu against tf.nn.conv2d's."""
  config = family_config(
    "disentanglement_conv_vae", latent_size=3, conv_impl=conv_impl
  )
  model = build(config, (64, 64, 1))
  _, variables = check_vae_shapes(model, (64, 64, 1), 3)
  images = jax.random.uniform(jax.random.PRNGKey(5), (2, 64, 64, 1))
  encoder = variables["params"]["encoder"]
  h = np.asarray(images)
  for index in range(4):
    conv = encoder[f"StridedConv_{index}"]
    h = tf.nn.relu(
      tf.nn.conv2d(h, np.asarray(conv["kernel"]), 2, "SAME")
      + np.asarray(conv["bias"])
    ).numpy()
  dense, mu = jax.device_get((encoder["Dense_0"], encoder["mu"]))
  h = np.maximum(h.reshape(2, -1) @ dense["kernel"] + dense["bias"], 0)
  expected_mu = h @ mu["kernel"] + mu["bias"]
  actual_mu, _ = model.apply(variables, images, method="encode")
  np.testing.assert_allclose(actual_mu, expected_mu, rtol=1e-4, atol=1e-5)
