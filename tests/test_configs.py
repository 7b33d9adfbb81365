"""Every experiment config: its model is the seed listing's, and it trains
end to end on mock or test-written data.

The parameter count is taken from the config's own full-size model without
computing anything (`loop.abstract_train_state`). The run is the config's
own dataset, image size, pipeline and model family, shortened and with every
layer narrowed: full-size convolutions on 64x64 images took half a minute to
compile and run here.
"""

import contextlib
import importlib
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from test_models import TWO_LAYER_PARAMS
from test_models import conv_params
from test_models import convs_params
from test_models import dcgan_listing_params
from test_models import linear_params
from testbed import make_tiny_config
from vae_jax.data import pipeline
from vae_jax.models import registry
from vae_jax.trainers import loop

SMALL_CONV_16 = (
  convs_params([1, 32, 64, 128], 3, bias=True)
  + linear_params([2048, 256])
  + 2 * linear_params([256, 16])
  + linear_params([16, 256, 2048])
  + convs_params([128, 64, 32, 1], 3, bias=True)
)

GATED_MLP = (
  2 * linear_params([784, 300, 300])
  + 2 * linear_params([300, 40])
  + 2 * linear_params([40, 300, 300])
  + linear_params([300, 784])
)
VAMP_PSEUDO_INPUTS = 500 * 784
# Sonnet's VQ-VAE example at widths 32, 64, residual 32, D = 16: an 'ema'
# codebook is statistics, not parameters.
VQ_RESIDUAL_BLOCK = conv_params(64, 32, 3, bias=True) + conv_params(
  32, 64, 1, bias=True
)
VQ_VAE = (
  convs_params([1, 32, 64], 4, bias=True)
  + conv_params(64, 64, 3, bias=True)
  + 2 * VQ_RESIDUAL_BLOCK
  + conv_params(64, 16, 1, bias=True)  # To the codes.
  + conv_params(16, 64, 3, bias=True)
  + 2 * VQ_RESIDUAL_BLOCK
  + convs_params([64, 32, 1], 4, bias=True)
)

# (config module, argument, listing's parameter count).
CONFIGS = [
  (
    "mnist_linear",
    None,  # 784-400-200-(20, 20), 20-200-400-784.
    linear_params([784, 400, 200])
    + 2 * linear_params([200, 20])
    + linear_params([20, 200, 400, 784]),
  ),
  (
    "mnist_linear_4d",
    None,  # 1024-512-(4, 4), 4-512-1024.
    linear_params([1024, 512])
    + 2 * linear_params([512, 4])
    + linear_params([4, 512, 1024]),
  ),
  ("mnist_conv", None, dcgan_listing_params(1, 512, 128)),
  ("mnist_convvae", "16", SMALL_CONV_16),
  ("dogs_conv", None, dcgan_listing_params(3, 2048, 128)),
  (
    "dogs_ae",
    "fcn3",
    linear_params([12288, 512, 128, 64, 32, 12, 3])
    + linear_params([3, 12, 32, 64, 128, 512, 12288]),
  ),
  (
    "dogs_ae",
    "conv",
    convs_params([3, 64, 128, 256, 512], 4, bias=True)
    + convs_params([512, 256, 128, 64, 3], 4, bias=True),
  ),
  ("celeba_vae", None, dcgan_listing_params(3, 2048, 128)),
  (
    "folder_vae",
    "FOLDER",  # The MLP VAE on 28x28 grayscale PNGs.
    linear_params([784, 400, 200])
    + 2 * linear_params([200, 20])
    + linear_params([20, 200, 400, 784]),
  ),
  # Burda et al.'s two-layer model, trained end to end on binarized images.
  (
    "iwae_paper",
    "iwae,k=5,layers=2",
    TWO_LAYER_PARAMS,
  ),
  # The seed's MLP VAE, latent 8, the one-hot digit beside x and beside z.
  (
    "mnist_cvae",
    None,
    linear_params([784 + 10, 400, 200])
    + 2 * linear_params([200, 8])
    + linear_params([8 + 10, 200, 400, 784]),
  ),
  # Tomczak & Welling's gated MLP: each gated layer is two linear ones;
  # the VampPrior adds its 500 pseudo-images.
  ("vampprior_paper", "vamp", GATED_MLP + VAMP_PSEUDO_INPUTS),
  ("mnist_vqvae", None, VQ_VAE),
]
# Configs whose parameter count is checked, but which train as one above.
COUNTED_ONLY = [
  (
    "iwae_paper",
    "vae,k=1,layers=1",  # 784-200-200-(50, 50), 50-200-200-784.
    linear_params([784, 200, 200])
    + 2 * linear_params([200, 50])
    + linear_params([50, 200, 200, 784]),
  ),
  ("mnist_convvae_seed", "16", SMALL_CONV_16),  # mnist_convvae's model.
  ("vampprior_paper", "standard", GATED_MLP),
  ("vampprior_paper", "vamp,layers=2", TWO_LAYER_PARAMS + VAMP_PSEUDO_INPUTS),
]


def write_png_folder(root):
  """<root>/<split>/<digit>/*.png, like the seed's mnist_png."""
  rng = np.random.default_rng(0)
  for split in ("training", "testing"):
    for label in ("3", "7"):
      (root / split / label).mkdir(parents=True)
      for i in range(4):
        pixels = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
        tf.io.write_file(
          str(root / split / label / f"{i}.png"), tf.io.encode_png(pixels)
        )
  return str(root)


# The end-to-end runs' cap on every layer width and the latent size.
NARROW_WIDTH = 8
WIDTH_FIELDS = (
  "hidden_sizes",
  "latent_size",
  "channels",
  "base_channels",
  "dense_size",
  "encoder_sizes",
  "decoder_sizes",
  "bottom_latent_size",
  "upper_hidden_sizes",
)


def narrow(model_config):
  """`model_config` with each width capped at NARROW_WIDTH, every layer kept.

  Its convolutions are XLA's own: these runs check each config's wiring, and
  the matmul forms that 'auto' picks on CPU, which test_layers checks
  against XLA's and PyTorch's definitions, took twice as long to compile.
  """
  if "conv_impl" in model_config:
    model_config.conv_impl = "xla"
  for field in WIDTH_FIELDS:
    if field in model_config:
      width = model_config[field]
      model_config[field] = (
        tuple(min(w, NARROW_WIDTH) for w in width)
        if isinstance(width, tuple)
        else min(width, NARROW_WIDTH)
      )
  return model_config


# One epoch of 2 steps on the 8 images of `config_and_data`.
ONE_EPOCH = {
  "num_epochs": 1,
  "batch_size": 4,
  "num_image_samples": 4,
  "input.mnist_source": "tfds",  # TFDS's (mocked) download.
  "input.download": "always",  # Likewise for stanford_dogs, celeb_a.
}


def config_and_data(name, argument, tmp_path):
  """`name`'s config, shortened, and a context in which its data is read."""
  module = importlib.import_module(f"configs.{name}")
  # Image folders are real files the test writes; TFDS datasets are mocked.
  data = tfds.testing.mock_data(num_examples=8)
  if argument == "FOLDER":
    argument = write_png_folder(tmp_path / "mnist_png")
    data = contextlib.nullcontext()
  config = module.get_config(argument) if argument else module.get_config()
  return make_tiny_config(base=config, model={}, run=ONE_EPOCH), data


def abstract_params(config):
  """`config`'s parameter count, from shapes alone; reads one image."""
  state = loop.abstract_train_state(
    config, image_shape=pipeline.prepare(config.input).image_shape
  )
  return registry.count_params(state.params)


def config_ids(configs):
  return [f"{n}:{a}" if a else n for n, a, _ in configs]


CONFIG_IDS = config_ids(CONFIGS)


@pytest.mark.parametrize(
  "name,argument,listing_params",
  CONFIGS + COUNTED_ONLY,
  ids=config_ids(CONFIGS + COUNTED_ONLY),
)
def test_config_model_has_the_listing_params(
  name, argument, listing_params, tmp_path
):
  config, data = config_and_data(name, argument, tmp_path)
  with data:
    assert abstract_params(config) == listing_params


@pytest.mark.parametrize(
  "name,argument", [c[:2] for c in CONFIGS], ids=CONFIG_IDS
)
def test_config_trains_end_to_end_with_narrow_layers(name, argument, tmp_path):
  config, data = config_and_data(name, argument, tmp_path)
  narrow(config.model)
  with data:
    results = loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert results["num_params"] == abstract_params(config)
  assert results["steps"] == 2
  on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
  assert np.isfinite(on_disk["test_loss"]) and np.isfinite(on_disk["test_mse"])
  assert (tmp_path / "run" / "reconstructions_000002.png").exists()
