r"""One cell of Table 1 of Burda, Grosse & Salakhutdinov, "Importance Weighted
Autoencoders" (ICLR 2016): a VAE or an IWAE, trained with k samples, on
dynamically binarized MNIST.

    python -m vae_jax.main --config=configs/iwae_paper.py:iwae,k=5,layers=1 \
        --workdir=/tmp/iwae_k5
    python -m vae_jax.main --workdir=/tmp/vae_k1 \
        --config=configs/iwae_paper.py:vae,k=1,layers=1,schedule=cpu
    python -m vae_jax.analyze --workdir=/tmp/iwae_k5   # The k = 5000 test NLL.

The argument is comma-separated: the objective ('vae': the k-sample VAE,
the mean of k ELBO estimates; 'iwae': the importance-weighted bound), `k`
(1, 5 or 50 in the paper), `layers` (1 or 2 stochastic layers) and
`schedule`:

- 'paper': the paper's 3,280 epochs, 3**i epochs at 1e-3 * 10**(-i/7) for
  i = 0..7;
- 'cpu': the same eight stages in proportion, over 800 epochs, short
  enough for a CPU.

The paper's table (test NLL, k = 5000 estimate):

    trained as                 k=1    k=5    k=50
    VAE,  1 stochastic layer   86.76  86.47  86.35
    IWAE, 1 stochastic layer   86.76  85.54  84.78
    VAE,  2 stochastic layers  85.33  85.01  84.78
    IWAE, 2 stochastic layers  85.33  83.89  82.90
"""

import ml_collections

from vae_jax import errors
from vae_jax.trainers import run_config

OBJECTIVES = {"vae": "vae_k", "iwae": "iwae"}
FAMILIES = {1: "mlp_vae", 2: "two_layer_vae"}
SCHEDULES = {"paper": 3280, "cpu": 800}  # Epochs.


def parse(
  argument: str, first: str, defaults: dict[str, str], file_name: str
) -> dict[str, str]:
  """'value,key=value,...' as {first: value, key: value, ...}, the keys
  one of `defaults`' (which fill those not given)."""
  value, *pairs = argument.split(",")
  settings = {first: value, **defaults}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    errors.require(
      sep and key in defaults,
      f"{file_name}: {pair!r} is not one of "
      f"{', '.join(f'{name}=' for name in defaults)}.",
    )
    settings[key] = value
  return settings


def get_config(
  argument: str = "iwae,k=5,layers=1",
) -> ml_collections.ConfigDict:
  settings = parse(
    argument,
    "objective",
    {"k": "1", "layers": "1", "schedule": "paper"},
    "iwae_paper.py",
  )
  errors.require_choice(
    settings["objective"], OBJECTIVES, "iwae_paper.py's objective"
  )
  errors.require_choice(
    settings["schedule"], SCHEDULES, "iwae_paper.py's schedule"
  )
  errors.require(
    settings["k"].isdigit() and int(settings["k"]) >= 1,
    f"iwae_paper.py: k must be a positive integer, got {settings['k']!r}.",
  )
  errors.require_choice(
    settings["layers"], ("1", "2"), "iwae_paper.py's layers"
  )
  layers = int(settings["layers"])
  config = run_config.default_config(
    FAMILIES[layers], OBJECTIVES[settings["objective"]]
  )
  config.input.binarize = "dynamic"  # Bernoulli(grey level), every use.
  config.loss.num_samples = int(settings["k"])  # k.
  config.loss.likelihood = "bernoulli"  # Binary pixels.
  if layers == 1:  # 784-200-200-(50) and back, tanh.
    config.model.hidden_sizes = (200, 200)
    config.model.latent_size = 50
    config.model.activation = "tanh"
  config.batch_size = 20
  config.num_epochs = SCHEDULES[settings["schedule"]]
  config.optimizer.name = "adam"
  config.optimizer.eps = 1e-4
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "stages"  # 3**i epochs at 1e-3 * 10**(-i/7).
  config.log_every_steps = 1000  # 3,000 steps per epoch.
  config.checkpoint_every_steps = 30_000  # Every 10 epochs.
  return config
