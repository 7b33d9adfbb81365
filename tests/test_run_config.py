"""Config and workdir checks name the field at fault.

Each piece checks its own section: the loop's fields are checked by
`run_config.check_config`, which calls the others: the data pipeline
`input`, the model registry `model`, the objective `loss`, the trainer its
optimizers. The workdir is `outputs.check_workdir`'s.
"""

import json

import jax
import pytest

import gan_runs
from vae_jax import errors
from vae_jax.core import optimizers
from vae_jax.core import outputs
from vae_jax.data import pipeline
from vae_jax.models import registry
from vae_jax.objectives import negative_elbo
from vae_jax.objectives import nonsaturating_gan
from vae_jax.trainers import adversarial
from vae_jax.trainers import run_config
from vae_jax.trainers import single_network


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("batch_size", 0, "batch_size must be positive"),
    ("num_epochs", -1, "num_epochs must be positive"),
    ("log_every_steps", 0, "log_every_steps must be positive"),
    ("model.latent_size", 0, "latent_size must be positive"),
    ("model.name", "resnet", "model.name 'resnet' is unknown"),
    ("loss.likelihood", "poisson", "loss.likelihood 'poisson' is unknown"),
    ("loss.kl_weight", -0.5, "kl_weight must be >= 0"),
    ("loss.gaussian_variance", 0.0, "gaussian_variance must be positive"),
    ("optimizer.learning_rate", 0.0, "learning_rate must be positive"),
    ("input.dataset", "imagenet_typo", "input.dataset 'imagenet_typo' is not"),
    ("input.mnist_source", "ftp", "input.mnist_source 'ftp'"),
    ("input.pixel_range", "0-255", "input.pixel_range '0-255' is unknown"),
    ("num_image_samples", 1, "num_image_samples must be >= 2"),
    ("optimizer.name", "adagrad", "optimizer.name 'adagrad' is unknown"),
    ("optimizer.schedule", "step", "optimizer.schedule 'step' is unknown"),
    (
      "loss.learned_variance",
      "diagonal",
      "loss.learned_variance 'diagonal' is unknown",
    ),
    (
      "loss.objective",
      "poisson_elbo",
      "loss.objective 'poisson_elbo' is unknown",
    ),
  ],
)
def test_bad_values_name_the_field(tiny_config, field, value, message):
  parent, _, name = field.rpartition(".")
  (tiny_config[parent] if parent else tiny_config)[name] = value
  with pytest.raises(errors.ConfigError, match=message):
    run_config.check_config(tiny_config)


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("n_critic", 0, "n_critic must be >= 1"),
    ("loss.aux_weight", -1.0, "loss.aux_weight must be >= 0"),
    (
      "optimizer.generator.learning_rate",
      0.0,
      "optimizer.generator.learning_rate must be positive",
    ),
    (
      "optimizer.discriminator.name",
      "adagrad",
      "optimizer.discriminator.name 'adagrad' is unknown",
    ),
    (
      "optimizer.discriminator.schedule",
      "step",
      "optimizer.discriminator.schedule 'step' is unknown",
    ),
  ],
)
def test_bad_gan_values_name_the_field(field, value, message):
  config = gan_runs.tiny_gan_config()
  run_config.check_config(config)
  parent, _, name = field.rpartition(".")
  (config[parent] if parent else config)[name] = value
  with pytest.raises(errors.ConfigError, match=message):
    run_config.check_config(config)


def test_each_section_is_checked_by_its_piece(tiny_config):
  tiny_config.input.pixel_range = "0-255"
  with pytest.raises(errors.ConfigError, match="input.pixel_range"):
    pipeline.check_config(tiny_config.input)
  tiny_config.model.latent_size = 0
  with pytest.raises(errors.ConfigError, match="model.latent_size"):
    registry.check_config(tiny_config.model)
  tiny_config.loss.kl_warmup_steps = -1
  with pytest.raises(
    errors.ConfigError, match="loss.kl_warmup_steps must be >= 0"
  ):
    negative_elbo.check_config(tiny_config.loss)
  tiny_config.optimizer.learning_rate = -1.0
  with pytest.raises(errors.ConfigError, match="optimizer.learning_rate"):
    single_network.check_config(tiny_config)
  with pytest.raises(
    errors.ConfigError,
    match=r"opt\.learning_rate must be "
    "positive, got -1.0",
  ):
    optimizers.check_config(tiny_config.optimizer, "opt")
  gan_config = gan_runs.tiny_gan_config()
  gan_config.loss.aux_weight = -1.0
  with pytest.raises(errors.ConfigError, match="aux_weight"):
    nonsaturating_gan.check_config(gan_config.loss)
  gan_config.n_critic = 0
  with pytest.raises(errors.ConfigError, match="n_critic"):
    adversarial.check_config(gan_config)


@pytest.mark.parametrize(
  "objective,message",
  [
    (
      "nonsaturating_gan",
      "loss.objective 'nonsaturating_gan' trains gan "
      "models; model 'mlp_vae' is a latent_variable model",
    ),
    (
      "autoencoder_mse",
      "loss.objective 'autoencoder_mse' trains autoencoder models",
    ),
  ],
)
def test_objective_must_train_the_model_family(tiny_config, objective, message):
  tiny_config.loss.objective = objective
  with pytest.raises(errors.ConfigError, match=message):
    run_config.check_config(tiny_config)


def test_batch_must_divide_over_devices(tiny_config, monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 3)
  with pytest.raises(
    errors.ConfigError, match="batch_size 8 is not divisible by the 3 devices"
  ):
    run_config.check_config(tiny_config)


def test_tiny_configs_are_valid(tiny_config):
  run_config.check_config(tiny_config)
  run_config.check_config(gan_runs.tiny_gan_config())


def test_workdir_that_is_a_file_is_rejected(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(errors.UserInputError, match="not a directory"):
    outputs.check_workdir(str(path))
  outputs.check_workdir(str(tmp_path))  # A directory is fine.
  outputs.check_workdir(str(tmp_path / "new"))  # So is a new path.


def test_a_model_section_missing_its_family_fields_is_refused(tiny_config):
  del tiny_config.model.hidden_sizes
  with pytest.raises(
    errors.ConfigError, match=r"model 'mlp_vae' reads model.hidden_sizes"
  ):
    run_config.check_config(tiny_config)


def test_a_saved_config_reads_back_with_todays_fields_only(
  tiny_config, tmp_path, caplog
):
  assert run_config.load_saved(str(tmp_path)) is None  # No config.json.
  written = tiny_config.to_dict()
  del written["input"]["pixel_range"], written["model"]["activation"]
  # Fields no code of today reads: a value, a section, and a value that
  # was a section.
  written["model"]["dropout_rate"] = 0.5
  written["old_section"] = {"size": 3}
  written["loss"]["kl_weight"] = {"start": 0.0}
  (tmp_path / "config.json").write_text(json.dumps(written))
  loaded = run_config.load_saved(str(tmp_path))
  # Today's fields, with the run's values and today's defaults for the rest.
  assert loaded.to_dict() == tiny_config.to_dict()
  assert caplog.messages == [
    f"{tmp_path / 'config.json'} holds fields this vae_jax no longer reads; "
    "ignoring loss.kl_weight, model.dropout_rate, old_section."
  ]
