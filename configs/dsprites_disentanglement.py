r"""One model of the disentanglement study of Locatello et al. (ICML 2019) on
dSprites, as disentanglement_lib trains it: its conv VAE (10 latents), a
Bernoulli likelihood, Adam at 1e-4, batch 64.

    python -m vae_jax.main \
        --config=configs/dsprites_disentanglement.py:beta_tcvae \
        --workdir=/tmp/dsprites_beta_tcvae
    python -m vae_jax.analyze --workdir=/tmp/dsprites_beta_tcvae

The whole study, every model with 3 seeds, is one sweep over this file's
argument (docs/disentanglement.md):

    python -m vae_jax.sweep --config=configs/dsprites_disentanglement.py \
        --workdir=/tmp/dsprites_study --vectorize \
        --sweep=config=vae,beta_vae,beta_tcvae,factor_vae,dip_vae \
        --sweep=seed=0,1,2

The argument names the model, each at one of disentanglement_lib's
regularization strengths (its unsupervised_study_v1 sweeps six per model):

- 'vae': the plain ELBO (β = 1);
- 'beta_vae': β = 4 on the KL (of 1, 2, 4, 6, 8, 16);
- 'beta_tcvae': β = 6 on the total correlation (of 1, 2, 4, 6, 8, 10);
- 'factor_vae': γ = 30 on the discriminator's TC (of 10, 20, 30, 40, 50,
  100);
- 'dip_vae': DIP-VAE-I, λ_od = 5 and λ_d = 50 (λ_od of 1, 2, 5, 10, 20,
  50).

disentanglement_lib trains 300,000 steps; `num_steps` here is what the
study's budget of about four hours on a 2-core CPU allows (docs).
"""

import ml_collections

from vae_jax import errors
from vae_jax.data import dsprites
from vae_jax.trainers import run_config

# The argument: (objective, loss fields set to the study's strength).
MODELS = {
  "vae": ("negative_elbo", {}),
  "beta_vae": ("negative_elbo", {"kl_weight": 4.0}),
  # N of minibatch-weighted sampling: the whole grid.
  "beta_tcvae": (
    "beta_tcvae",
    {"tc_weight": 6.0, "dataset_size": dsprites.NUM_IMAGES},
  ),
  "factor_vae": ("factor_vae", {"tc_weight": 30.0}),
  "dip_vae": (
    "dip_vae",
    {"lambda_off_diagonal": 5.0, "lambda_diagonal": 50.0},
  ),
}


def get_config(argument: str = "beta_vae") -> ml_collections.ConfigDict:
  errors.require_choice(argument, MODELS, "dsprites_disentanglement.py's model")
  objective, strengths = MODELS[argument]
  config = run_config.default_config("disentanglement_conv_vae", objective)
  config.input.dataset = dsprites.NAME  # Generated on first use (~4 min).
  # 'test': 10,000 grid points, also in 'train' (docs/data.md).
  config.input.test_split = "test"
  config.loss.likelihood = "bernoulli"  # Binary pixels.
  config.loss.update(strengths)
  config.batch_size = 64  # disentanglement_lib's.
  config.optimizer.learning_rate = 1e-4  # Adam, b1 0.9, b2 0.999, eps 1e-8.
  # disentanglement_lib: 300,000 steps. Here the study's budget: 15 runs in
  # about four hours on 2 cores (docs/disentanglement.md).
  config.num_steps = 8_000
  config.log_every_steps = 500
  config.checkpoint_every_steps = 2_000
  return config
