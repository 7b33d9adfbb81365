"""The conditional VAE: its bound against the unconditional VAE's, and its
samples of the class asked for."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from testbed import assemble
from testbed import make_tiny_config
from vae_jax import errors
from vae_jax.analysis import runs
from vae_jax.models import vae
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import objective
from vae_jax.trainers import loop
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network

NUM_CLASSES = 10  # Mock MNIST's.
HIDDEN, LATENT = (32, 16), 4  # testbed's tiny MLP.


def cvae_config():
  return make_tiny_config(base=run_config.default_config("conditional_vae"))


def images(count=6):
  rng = np.random.default_rng(0)
  return jnp.asarray(rng.uniform(size=(count, 28, 28, 1)), jnp.float32)


def terms(model, variables, x, labels):
  network = objective.Network(
    module=model,
    variables=vae.conditioned(variables, labels),
    train=False,
    compute_dtype="float32",
  )
  values, _ = negative_elbo.terms(
    network,
    x,
    jax.random.PRNGKey(3),
    jnp.zeros((), jnp.int32),
    loss_config=run_config.default_config("mlp_vae").loss,
  )
  return values


def unconditional_twin(cvae_params, label):
  """mlp_vae's parameters that compute what the CVAE computes for class
  `label`: the one-hot's rows of each first layer become a bias."""
  params = jax.tree.map(np.asarray, cvae_params)
  twin = {
    "encoder": dict(params["encoder"]["mlp"]),
    "decoder": dict(params["decoder"]["mlp"]),
  }
  for part, inputs in (("encoder", 28 * 28), ("decoder", LATENT)):
    first = dict(twin[part]["Dense_0"])
    kernel = first["kernel"]
    first["bias"] = first["bias"] + kernel[inputs + label]
    first["kernel"] = kernel[:inputs]
    twin[part]["Dense_0"] = first
  return twin


def test_at_a_constant_class_the_bound_is_an_unconditional_vaes():
  model = assemble(cvae_config()).model
  x = images()
  variables = {**model.init(jax.random.PRNGKey(0), x), "batch_stats": {}}
  unconditional = assemble(make_tiny_config()).model
  label = 7
  twin = unconditional_twin(variables["params"], label)
  ours = terms(model, variables, x, jnp.full((len(x),), label))
  reference = terms(
    unconditional,
    {"params": twin, "batch_stats": {}},
    x,
    jnp.zeros((len(x),), jnp.int32),
  )
  for name in ("loss", "recon", "kl", "mse"):
    np.testing.assert_allclose(ours[name], reference[name], rtol=1e-5)
  # And the class matters: another gives another bound.
  other = terms(model, variables, x, jnp.full((len(x),), 3))
  assert not np.allclose(ours["recon"], other["recon"])


def template_decoder_params(params, templates):
  """Decoder weights under which class k decodes to `templates[k]` (binary
  images) whatever z: z's rows are zero, the class picks a hidden unit."""
  decoder = jax.tree.map(np.zeros_like, params["decoder"]["mlp"])
  decoder = jax.tree.map(np.asarray, decoder)
  first, second = decoder["Dense_0"]["kernel"], decoder["Dense_1"]["kernel"]
  for k in range(NUM_CLASSES):
    first[LATENT + k, k] = 1.0  # Hidden unit k is on for class k only.
    second[k, k] = 1.0
  flat = templates.reshape(NUM_CLASSES, -1)
  decoder["logits"]["kernel"][:NUM_CLASSES] = 20.0 * (2 * flat - 1)
  decoder["logits"]["bias"][:] = -10.0  # Off where no class is on.
  return {**params, "decoder": {"mlp": decoder}}


def test_samples_are_of_the_class_asked_for_on_a_constructed_decoder():
  config = cvae_config()
  config.model.hidden_sizes = (NUM_CLASSES + 2, NUM_CLASSES + 2)
  parts = assemble(config)
  model = parts.model
  variables = model.init(jax.random.PRNGKey(0), images(1))
  templates = (
    np.random.default_rng(1).uniform(size=(NUM_CLASSES, 28, 28, 1)) > 0.5
  ).astype(np.float32)
  params = template_decoder_params(variables["params"], templates)
  state = single_network.TrainState.create(
    apply_fn=model.apply, params=params, tx=optax.identity(), batch_stats={}
  )
  z = jax.random.normal(jax.random.PRNGKey(2), (NUM_CLASSES * 3, LATENT))
  labels = np.arange(NUM_CLASSES * 3, dtype=np.int32) % NUM_CLASSES
  decoded = single_network.decode_images(
    state, z, labels, to_images=jax.nn.sigmoid
  )
  np.testing.assert_allclose(decoded, templates[labels], atol=1e-4)


def test_a_vamp_prior_is_refused_for_the_conditional_vae():
  config = cvae_config()
  config.model.prior.name = "vamp"
  with pytest.raises(errors.ConfigError, match="pseudo-inputs have no class"):
    assemble(config)


def test_celeb_a_attributes_condition_a_trained_cvae(tmp_path):
  """CelebA's listed attributes are the classes, as for the ACGAN: each
  combination one class (`trainer.class_labels`), sampled by --label."""
  config = cvae_config()
  config.input.update(
    dataset="celeb_a",
    download="always",
    attributes=("Smiling", "Male"),
    image_size=16,
  )
  config.num_epochs = 1
  with tfds.testing.mock_data(num_examples=16):
    loop.train_and_evaluate(config, str(tmp_path))
    run = runs.load(str(tmp_path))
  assert run.model.num_classes == 4
  codes = np.zeros((4, LATENT), np.float32)
  by_class = runs.decode(run, codes, runs.sample_classes(run, 4))
  assert by_class.shape == (4, 16, 16, 3)
  # The same z decodes differently under each combination of attributes.
  assert len({image.tobytes() for image in by_class}) == 4
  np.testing.assert_array_equal(
    runs.decode(run, codes, runs.sample_classes(run, 4, label=3)),
    np.repeat(by_class[3:], 4, axis=0),
  )
  with pytest.raises(errors.UserInputError, match=r"in \[0, 4\)"):
    runs.sample_classes(run, 4, label=4)
