"""A VAE with two stochastic layers: Burda et al.'s (2016) deeper model.

    q(h1 | x)  = N(MLP_200-200(x))     p(h2)      = N(0, I)*,    h2: 50
    q(h2 | h1) = N(MLP_100-100(h1))    p(h1 | h2) = N(MLP_100-100(h2))
                                       p(x | h1)  = Bernoulli(MLP_200-200(h1))

with h1 of 100 units. (*) Or the VampPrior (`model.prior`), whose
components are `encode`'s q(h2 | mean of q(h1 | u_k)). Its bounds
(`objectives.iwae`) read both layers' priors and posteriors through the
methods `vae.VAE` describes. The methods the analysis and the image grids
use act on the top layer h2: `encode(x)` is q(h2 | mean of q(h1 | x)), and
`decode(h2)` decodes the mean of p(h1 | h2), so latent maps, traversals and
samples from the prior work as for a one-layer VAE.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import errors
from vae_jax.models import family
from vae_jax.models import mlp_vae
from vae_jax.models import priors
from vae_jax.models import vae


class TwoLayerVAE(vae.WithPrior, nn.Module):
  """x -> h1 -> h2 and back, each stochastic layer Gaussian; p(h2) from
  `prior`."""

  hidden_sizes: Sequence[int]  # Of the MLPs between x and h1.
  upper_hidden_sizes: Sequence[int]  # Of the MLPs between h1 and h2.
  bottom_latent_size: int  # h1.
  latent_size: int  # h2, the top: what `encode` and `decode` read.
  image_shape: Sequence[int]
  activation: str
  prior: nn.Module  # A `priors` module over h2.

  def setup(self):
    self.q_h1 = mlp_vae.MlpEncoder(
      self.hidden_sizes, self.bottom_latent_size, self.activation
    )
    self.q_h2 = mlp_vae.MlpEncoder(
      self.upper_hidden_sizes, self.latent_size, self.activation
    )
    self.p_h1 = mlp_vae.MlpEncoder(
      self.upper_hidden_sizes[::-1], self.bottom_latent_size, self.activation
    )
    self.p_x = mlp_vae.MlpDecoder(
      self.hidden_sizes[::-1], self.image_shape, self.activation
    )

  @property
  def stochastic_layers(self) -> int:
    return 2

  def posterior(
    self, layer: int, inputs: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    mu, logvar = (self.q_h1, self.q_h2)[layer](inputs, train=train)
    return mu, jnp.clip(logvar, *vae.POSTERIOR_LOGVAR_RANGE)

  def conditional_prior(
    self, layer: int, above: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    del layer  # Always 1: p(h1 | h2).
    mu, logvar = self.p_h1(above, train=train)
    return mu, jnp.clip(logvar, *vae.POSTERIOR_LOGVAR_RANGE)

  def likelihood_logits(self, h1: jax.Array, train: bool = False) -> jax.Array:
    return self.p_x(h1, train=train)

  def encode(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    h1, _ = self.posterior(0, images, train)
    return self.posterior(1, h1, train)

  def decode(self, h2: jax.Array, train: bool = False) -> jax.Array:
    h1, _ = self.conditional_prior(1, h2, train)
    return self.likelihood_logits(h1, train)

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """Every parameter's trace: both posteriors, the priors, p(x|h1)."""
    h2, _ = self.encode(images, train)
    self.log_prior(h2)
    return self.decode(h2, train)


def default_config() -> ml_collections.ConfigDict:
  """Burda et al.'s two-stochastic-layer model."""
  config = ml_collections.ConfigDict()
  config.name = "two_layer_vae"  # vae_jax/models/two_layer_vae.py.
  config.hidden_sizes = (200, 200)  # x -> h1; p(x | h1) mirrors them.
  config.bottom_latent_size = 100  # Dimensions of h1.
  config.upper_hidden_sizes = (100, 100)  # h1 -> h2; p(h1 | h2) mirrors.
  config.latent_size = 50  # Dimensions of h2, the top layer.
  config.activation = "tanh"  # Of the hidden layers: 'relu' or 'tanh'.
  config.prior = priors.default_config()  # p(h2): models/priors.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  errors.require_choice(
    model_config.activation, mlp_vae.ACTIVATIONS, "model.activation"
  )
  errors.require(
    model_config.bottom_latent_size > 0,
    "model.bottom_latent_size must be positive, got "
    f"{model_config.bottom_latent_size}.",
  )
  return TwoLayerVAE(
    hidden_sizes=tuple(model_config.hidden_sizes),
    upper_hidden_sizes=tuple(model_config.upper_hidden_sizes),
    bottom_latent_size=model_config.bottom_latent_size,
    latent_size=model_config.latent_size,
    image_shape=tuple(image_shape),
    activation=model_config.activation,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
  )


# Its bound has no closed-form KL: trained by the k-sample objectives.
FAMILIES = (
  family.Family(
    name="two_layer_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="vae_k",
    trainer="single_network",
  ),
)
