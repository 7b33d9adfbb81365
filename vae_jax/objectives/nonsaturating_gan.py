"""Non-saturating GAN losses and ACGAN's auxiliary classification, per image.

With D(x) = sigmoid(logit), the discriminator minimizes
    -log D(x) - log(1 - D(G(z)))  =  softplus(-real) + softplus(fake)
and the generator the non-saturating -log D(G(z)) = softplus(-fake), which
keeps its gradient large while D still rejects its samples (the minimax
log(1 - D(G(z))) saturates there). An ACGAN adds `aux_weight` times the
class cross-entropy: on real and fake images for the discriminator, on fakes
for the generator, which is rewarded for images recognizably of their class.
Other adversarial losses (`hinge_gan`) reuse these terms with their own
`Losses`.
"""

from collections.abc import Callable
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vae_jax import errors
from vae_jax.models import family
from vae_jax.objectives import objective


class Losses(NamedTuple):
  """An adversarial loss, per image, of the discriminator's logits."""

  generator: Callable[[jax.Array], jax.Array]  # Of the fakes' logits.
  # Of the real images' logits and the fakes'.
  discriminator: Callable[[jax.Array, jax.Array], jax.Array]


NONSATURATING = Losses(
  generator=lambda fake: jax.nn.softplus(-fake),
  discriminator=lambda real, fake: (
    jax.nn.softplus(-real) + jax.nn.softplus(fake)
  ),
)


def default_config(
  name: str = "nonsaturating_gan",
) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # vae_jax/objectives/<objective>.py.
  config.objective = name
  # ACGAN: weight of the class cross-entropy (real and fake for the
  # discriminator, fake for the generator); unused without classes.
  config.aux_weight = 1.0
  return config


def check_config(loss_config: ml_collections.ConfigDict) -> None:
  errors.require(
    loss_config.aux_weight >= 0,
    f"loss.aux_weight must be >= 0, got {loss_config.aux_weight}.",
  )


def _class_terms(
  class_logits: jax.Array, labels: jax.Array, name: str
) -> dict[str, jax.Array]:
  return {
    f"aux_{name}_loss": optax.softmax_cross_entropy_with_integer_labels(
      class_logits, labels
    ),
    f"aux_{name}_accuracy": (jnp.argmax(class_logits, -1) == labels).astype(
      jnp.float32
    ),
  }


def generator_terms(
  fake: tuple[jax.Array, jax.Array | None],
  labels: jax.Array,
  loss_config: ml_collections.ConfigDict,
  losses: Losses = NONSATURATING,
) -> dict[str, jax.Array]:
  """Per-image 'g_loss' of the fakes generated for `labels`; `fake` is the
  discriminator's (logits, class logits or None) of them."""
  fake_logits, fake_class_logits = fake
  aux_weight = loss_config.aux_weight
  g_loss = losses.generator(fake_logits)
  if fake_class_logits is None:
    return {"g_loss": g_loss}
  terms = _class_terms(fake_class_logits, labels, "fake")
  return {**terms, "g_loss": g_loss + aux_weight * terms["aux_fake_loss"]}


def discriminator_terms(
  real: tuple[jax.Array, jax.Array | None],
  fake: tuple[jax.Array, jax.Array | None],
  labels: jax.Array,
  loss_config: ml_collections.ConfigDict,
  losses: Losses = NONSATURATING,
) -> dict[str, jax.Array]:
  """Per-image 'd_loss' and accuracies; `real` and `fake` are the
  discriminator's (logits, class logits) of real images and of fakes
  generated for the real images' `labels`.

  'g_loss' is the generator's loss on the same fakes: it costs nothing here,
  so it is measured at every step whatever the generator's update schedule.
  """
  real_logits, real_class_logits = real
  fake_logits, _ = fake
  aux_weight = loss_config.aux_weight
  terms = generator_terms(fake, labels, loss_config, losses)
  d_loss = losses.discriminator(real_logits, fake_logits)
  if real_class_logits is not None:
    terms.update(_class_terms(real_class_logits, labels, "real"))
    d_loss += aux_weight * (terms["aux_real_loss"] + terms["aux_fake_loss"])
  # The fraction of each kind the discriminator labels correctly: both near
  # 1 for long is a generator that has lost the game (collapse, or noise).
  terms["d_real_accuracy"] = (real_logits > 0).astype(jnp.float32)
  terms["d_fake_accuracy"] = (fake_logits < 0).astype(jnp.float32)
  terms["d_loss"] = d_loss
  return terms


def terms_of(losses: Losses) -> objective.AdversarialTerms:
  """The terms above with `losses`; made once per objective, so that the
  trainer's settings, which hold them, hash alike on every call."""
  return objective.AdversarialTerms(
    discriminator=functools.partial(discriminator_terms, losses=losses),
    generator=functools.partial(generator_terms, losses=losses),
  )


OBJECTIVES = (
  objective.Objective(
    name="nonsaturating_gan",
    kinds=(family.Kind.GAN,),
    trainer="adversarial",
    default_config=default_config,
    check_config=check_config,
    terms=terms_of(NONSATURATING),
  ),
)
