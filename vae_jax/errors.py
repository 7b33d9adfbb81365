"""The errors a user can act on; every command prints them as one line.

A leaf: it imports nothing of vae_jax, so every module can raise them.
"""


class UserInputError(ValueError):
  """A problem with the config, the workdir or the data that users can fix."""


class ConfigError(UserInputError):
  """A config field has a value the run cannot use."""


class DataError(UserInputError):
  """The dataset is missing, corrupt or unusable."""


class WriteError(UserInputError):
  """A file could not be written: a full disk, a file-size limit, a
  read-only or forbidden folder. Users act on it by freeing space or fixing
  permissions, so it is reported in one line like their mistakes."""


def require(condition: bool, message: str) -> None:
  """Raises ConfigError(`message`) unless `condition`."""
  if not condition:
    raise ConfigError(message)


def require_fields(
  section, defaults, field: str, reader: str, hint: str = ""
) -> None:
  """Config section `field` ('loss') must hold every field of `defaults`,
  the section its `reader` ("model 'mlp_vae'") reads."""
  missing = sorted(set(defaults) - set(section))
  require(
    not missing,
    f"{reader} reads "
    f"{', '.join(f'{field}.{name}' for name in missing)}, which this "
    f"config lacks{hint}.",
  )


def require_choice(value, choices, field: str) -> None:
  """`value` of config field `field` must be one of `choices`."""
  require(
    value in choices,
    f"{field} {value!r} is unknown; choose one of {sorted(choices)}.",
  )
