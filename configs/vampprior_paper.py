r"""A row of the MNIST results of Tomczak & Welling, "VAE with a VampPrior"
(AISTATS 2018): a VAE with the standard prior or the VampPrior, on dynamically
binarized MNIST.

    python -m vae_jax.main --config=configs/vampprior_paper.py:vamp \
        --workdir=/tmp/vamp
    python -m vae_jax.main --workdir=/tmp/standard \
        --config=configs/vampprior_paper.py:standard,schedule=cpu
    python -m vae_jax.analyze --workdir=/tmp/vamp   # The k = 5000 test NLL.

The argument is comma-separated: the prior ('vamp': K = 500 pseudo-inputs;
'standard': N(0, I)), `layers` and `schedule`.

- layers=1: the paper's gated MLP VAE (models/gated_mlp_vae.py), latent 40,
  trained on the negative ELBO with the KL weight warmed up from 0 to 1.
- layers=2: Burda et al.'s two-stochastic-layer MLP (models/
  two_layer_vae.py), the prior over its top layer, trained on the one-sample
  ELBO (`vae_k`, k = 1), which has no KL weight and so no warm-up. It is
  not the paper's two-layer HVAE, whose q(z1 | x, z2) and p(x | z1, z2) are
  wired otherwise: its rows compare priors on one model, not the paper's
  figure.
- schedule 'paper': 2,000 epochs, the warm-up over the first 100. The
  paper stops early on a validation split (50 epochs' patience); this
  config trains them all.
- schedule 'cpu' (the default): 200 epochs, the warm-up over the first 10:
  a tenth of both. On 2 CPU cores an epoch of the VampPrior takes about
  25 s, five times the standard prior's: each step encodes the 500
  pseudo-inputs beside the batch of 100.

Batch 100 and Adam at 5e-4, as in the paper's code (which normalizes each
gradient before Adam; this config does not). The paper's test NLL (k =
5000) with the VampPrior (one layer): 85.57, as pythae quotes it; 88.56
with the standard prior is unconfirmed (docs/reproductions.md).
"""

import ml_collections

from configs import iwae_paper
from vae_jax import errors
from vae_jax.trainers import run_config

PRIORS = {"vamp": "vamp", "standard": "standard_normal"}
SCHEDULES = {"paper": (2000, 100), "cpu": (200, 10)}  # Epochs, warm-up's.
STEPS_PER_EPOCH = 600  # 60,000 training images in batches of 100.


def get_config(argument: str = "vamp") -> ml_collections.ConfigDict:
  settings = iwae_paper.parse(
    argument, "prior", {"layers": "1", "schedule": "cpu"}, "vampprior_paper.py"
  )
  errors.require_choice(settings["prior"], PRIORS, "vampprior_paper.py's prior")
  errors.require_choice(
    settings["schedule"], SCHEDULES, "vampprior_paper.py's schedule"
  )
  errors.require_choice(
    settings["layers"], ("1", "2"), "vampprior_paper.py's layers"
  )
  epochs, warmup_epochs = SCHEDULES[settings["schedule"]]
  if settings["layers"] == "1":
    config = run_config.default_config("gated_mlp_vae")
    # β rises from 0 to 1 over the warm-up, as in the paper.
    config.loss.kl_warmup_steps = warmup_epochs * STEPS_PER_EPOCH
  else:
    config = run_config.default_config("two_layer_vae", "vae_k")
    config.loss.num_samples = 1  # The ELBO, its KL sampled.
  config.model.prior.name = PRIORS[settings["prior"]]
  config.input.binarize = "dynamic"  # Bernoulli(grey level), every use.
  config.loss.likelihood = "bernoulli"  # Binary pixels.
  config.batch_size = 100
  config.num_epochs = epochs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 5e-4
  config.log_every_steps = STEPS_PER_EPOCH
  config.checkpoint_every_steps = 10 * STEPS_PER_EPOCH  # Every 10 epochs.
  # A test pass every 10 epochs: the k = 5000 estimate comes from analyze.
  config.eval_every_epochs = 10
  return config
