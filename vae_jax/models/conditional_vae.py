"""The conditional VAE (Sohn et al. 2015; Kingma et al. 2014's M2 with the
labels observed): an MLP VAE whose encoder and decoder both read the class.

    q(z | x, y): [x, onehot(y)] -> MLP -> (mu, logvar)
    p(x | z, y): [z, onehot(y)] -> MLP -> logits,      p(z) = N(0, I)

The class comes from the data (the digit; CelebA's attributes as bits, as
for the ACGAN), through the `vae.CONDITION` variable collection that the
trainer and the analysis fill from each batch, so the objectives train it
as any VAE: the negative ELBO is -log p(x | z, y) + KL(q(z | x, y) || p(z)),
and the k = 5,000 estimate is the conditional -log p(x | y).
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


class ConditionalMlpEncoder(nn.Module):
  hidden_sizes: Sequence[int]
  latent_size: int
  activation: str  # A key of mlp_vae.ACTIVATIONS.

  @nn.compact
  def __call__(
    self, images: jax.Array, classes: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    h = jnp.concatenate([images.reshape(images.shape[0], -1), classes], -1)
    return mlp_vae.MlpEncoder(
      self.hidden_sizes, self.latent_size, self.activation, name="mlp"
    )(h, train)


class ConditionalMlpDecoder(nn.Module):
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]
  activation: str

  @nn.compact
  def __call__(
    self, z: jax.Array, classes: jax.Array, train: bool = False
  ) -> jax.Array:
    return mlp_vae.MlpDecoder(
      self.hidden_sizes, self.image_shape, self.activation, name="mlp"
    )(jnp.concatenate([z, classes], -1), train)


class ConditionalVAE(vae.VAE):
  """A `vae.VAE` whose encoder and decoder also take the one-hot class."""

  num_classes: int = 0  # Set from the data by the registry.

  def _classes(self, rows: int) -> jax.Array:
    """One-hot classes [rows, num_classes] of the condition's labels [B].

    The k-sample bounds decode k draws per image, sample-major ([k * B]
    rows): the labels repeat for each draw.
    """
    if self.is_initializing():  # Shapes alone: any class will do.
      labels = jnp.zeros((rows,), jnp.int32)
    else:
      errors.require(
        self.has_variable(vae.CONDITION, "labels"),
        "conditional_vae needs the classes of its inputs "
        f"(the '{vae.CONDITION}' collection, `vae.conditioned`).",
      )
      labels = self.get_variable(vae.CONDITION, "labels")
    labels = jnp.tile(labels, rows // labels.shape[0])
    return jax.nn.one_hot(labels, self.num_classes)

  def encode(
    self, images: jax.Array, train: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    mu, logvar = self.encoder(
      images, self._classes(images.shape[0]), train=train
    )
    return mu, jnp.clip(logvar, *vae.POSTERIOR_LOGVAR_RANGE)

  def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
    return self.decoder(z, self._classes(z.shape[0]), train=train)


def default_config() -> ml_collections.ConfigDict:
  """The seed's MNIST MLP VAE, conditioned on the digit."""
  config = mlp_vae.default_config()  # Its fields, each commented there.
  config.name = "conditional_vae"  # vae_jax/models/conditional_vae.py.
  return config


def build(
  model_config: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> nn.Module:
  errors.require_choice(
    model_config.activation, mlp_vae.ACTIVATIONS, "model.activation"
  )
  errors.require(
    model_config.prior.name == "standard_normal",
    "conditional_vae takes model.prior.name='standard_normal': a "
    "VampPrior's pseudo-inputs have no class.",
  )
  hidden_sizes = tuple(model_config.hidden_sizes)
  return ConditionalVAE(
    encoder=ConditionalMlpEncoder(
      hidden_sizes, model_config.latent_size, model_config.activation
    ),
    decoder=ConditionalMlpDecoder(
      hidden_sizes[::-1], tuple(image_shape), model_config.activation
    ),
    latent_size=model_config.latent_size,
    prior=priors.build(
      model_config.prior, model_config.latent_size, image_shape
    ),
    num_classes=model_config.num_classes,
  )


FAMILIES = (
  family.Family(
    name="conditional_vae",
    kind=family.Kind.LATENT_VARIABLE,
    build=build,
    default_config=default_config,
    pixel_range=family.reads("unit"),
    objective="negative_elbo",
    trainer="single_network",
    conditional=True,
  ),
)
