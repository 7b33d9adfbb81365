"""Config and workdir checks name the field at fault."""

import jax
import pytest

from vae_jax import errors


@pytest.mark.parametrize("field,value,message", [
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
    ("input.pixel_range", "0-255", "input.pixel_range must be"),
    ("num_image_samples", 1, "num_image_samples must be >= 2"),
    ("optimizer.name", "adagrad", "optimizer.name 'adagrad' is unknown"),
    ("optimizer.schedule", "step", "optimizer.schedule 'step' is unknown"),
    ("loss.learned_variance", "diagonal", "loss.learned_variance must be"),
])
def test_bad_values_name_the_field(tiny_config, field, value, message):
  parent, _, name = field.rpartition(".")
  (tiny_config[parent] if parent else tiny_config)[name] = value
  with pytest.raises(errors.ConfigError, match=message):
    errors.validate_config(tiny_config)


def test_batch_must_divide_over_devices(tiny_config, monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 3)
  with pytest.raises(errors.ConfigError,
                     match="batch_size 8 is not divisible by the 3 devices"):
    errors.validate_config(tiny_config)


def test_tiny_config_is_valid(tiny_config):
  errors.validate_config(tiny_config)


def test_workdir_that_is_a_file_is_rejected(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(errors.UserInputError, match="not a directory"):
    errors.validate_workdir(str(path))
  errors.validate_workdir(str(tmp_path))  # A directory is fine.
  errors.validate_workdir(str(tmp_path / "new"))  # So is a new path.
