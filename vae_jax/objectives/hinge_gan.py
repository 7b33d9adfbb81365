"""The hinge adversarial loss (Lim & Ye 2017; Miyato et al. 2018).

The discriminator minimizes relu(1 - D(x)) + relu(1 + D(G(z))) on its raw
logits, so it stops pushing on images it already scores beyond the margin;
the generator minimizes -D(G(z)). An ACGAN's class terms are
`nonsaturating_gan`'s, unchanged.
"""

import functools

import jax

from vae_jax.models import family
from vae_jax.objectives import nonsaturating_gan
from vae_jax.objectives import objective

HINGE = nonsaturating_gan.Losses(
  generator=lambda fake: -fake,
  discriminator=lambda real, fake: (
    jax.nn.relu(1 - real) + jax.nn.relu(1 + fake)
  ),
)

OBJECTIVES = (
  objective.Objective(
    name="hinge_gan",
    kinds=(family.Kind.GAN,),
    trainer="adversarial",
    # Same fields as nonsaturating_gan's (aux_weight), its name in
    # `objective`.
    default_config=functools.partial(
      nonsaturating_gan.default_config, "hinge_gan"
    ),
    check_config=nonsaturating_gan.check_config,
    terms=nonsaturating_gan.terms_of(HINGE),
  ),
)
