"""configs/dsprites_disentanglement.py: each of the study's models is its
objective at the strength the docs state, on disentanglement_lib's network.
(FactorVAE trains through the loop in test_factor_vae, runs read dSprites
in test_dsprites.)"""

import importlib

import pytest

from test_models import DISENTANGLEMENT_CONV_PARAMS
from test_models import linear_params
from vae_jax.data import dsprites
from vae_jax.models import registry
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

study = importlib.import_module("configs.dsprites_disentanglement")

# fc_discriminator: 10 -> 1000 (x6) -> 2.
DISCRIMINATOR_PARAMS = linear_params([10] + [1000] * 6 + [2])

# argument -> (objective, {loss field: the strength docs/disentanglement.md
# states}).
EXPECTED = {
  "vae": ("negative_elbo", {"kl_weight": 1.0}),
  "beta_vae": ("negative_elbo", {"kl_weight": 4.0}),
  "beta_tcvae": (
    "beta_tcvae",
    {"tc_weight": 6.0, "dataset_size": dsprites.NUM_IMAGES},
  ),
  "factor_vae": ("factor_vae", {"tc_weight": 30.0, "kl_weight": 1.0}),
  "dip_vae": (
    "dip_vae",
    {"lambda_off_diagonal": 5.0, "lambda_diagonal": 50.0, "kl_weight": 1.0},
  ),
}


@pytest.mark.parametrize("argument", sorted(EXPECTED))
def test_each_model_is_its_objective_at_the_studys_strength(argument):
  config = study.get_config(argument)
  run_config.check_config(config)
  objective, strengths = EXPECTED[argument]
  assert config.loss.objective == objective
  assert {field: config.loss[field] for field in strengths} == strengths
  assert config.model.name == "disentanglement_conv_vae"
  assert config.input.dataset == dsprites.NAME
  assert (config.batch_size, config.optimizer.learning_rate) == (64, 1e-4)
  assert config.loss.likelihood == "bernoulli"
  state = loop.abstract_train_state(config, (64, 64, 1))
  extra = DISCRIMINATOR_PARAMS if objective == "factor_vae" else 0
  assert (
    registry.count_params(state.params) == DISENTANGLEMENT_CONV_PARAMS + extra
  )


def test_an_unknown_model_is_refused():
  with pytest.raises(Exception, match="dsprites_disentanglement.py's model"):
    study.get_config("beta_vea")
