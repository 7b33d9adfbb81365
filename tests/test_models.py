"""Model shapes and parameter counts against the seed's PyTorch listings."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from vae_jax import models


def linear_params(sizes):
  """Weights plus biases of nn.Linear layers chained through `sizes`."""
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def mlp_vae_config(hidden_sizes, latent_size):
  return ml_collections.ConfigDict({
      "name": "mlp_vae", "hidden_sizes": hidden_sizes,
      "latent_size": latent_size})


@pytest.mark.parametrize("image_shape,hidden,latent,expected", [
    # Seed listing: fc1 784->400, fc2 400->200, fc21/fc22 200->20,
    # fc3 20->200, fc4 200->400, fc5 400->784.
    ((28, 28, 1), (400, 200), 20,
     linear_params([784, 400, 200]) + 2 * linear_params([200, 20])
     + linear_params([20, 200, 400, 784])),
    # Seed listing for 32x32 MNIST: 1024->512, mu/sigma 512->4, 4->512->1024.
    ((32, 32, 1), (512,), 4,
     linear_params([1024, 512]) + 2 * linear_params([512, 4])
     + linear_params([4, 512, 1024])),
])
def test_mlp_vae_param_count_equals_pytorch_listing(image_shape, hidden,
                                                    latent, expected):
  model = models.build_model(mlp_vae_config(hidden, latent), image_shape)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                             jnp.zeros((1, *image_shape)),
                             jax.random.PRNGKey(1))
  assert models.count_params(variables["params"]) == expected


def test_mlp_vae_shapes():
  model = models.build_model(mlp_vae_config((16, 8), 3), (28, 28, 1))
  images = jnp.zeros((5, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), images, jax.random.PRNGKey(1))
  logits, mu, logvar = model.apply(variables, images, jax.random.PRNGKey(2))
  assert logits.shape == images.shape
  assert mu.shape == logvar.shape == (5, 3)
  decoded = model.apply(variables, jnp.zeros((7, 3)), method="decode")
  assert decoded.shape == (7, 28, 28, 1)
