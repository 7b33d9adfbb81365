r"""Trains one config over a grid of field values, then compares the runs.

The library of the command

    python -m vae_jax.sweep --config=configs/mnist_convvae.py:16 \
        --workdir=/tmp/sweep_kl --sweep='loss.kl_weight=5e-1,5e-2,5e-3'

`--sweep=FIELD=V1,V2,...` names any config field and its values, parsed to
the field's type (tuples in parentheses: `model.hidden_sizes=(400,200),(64,)`);
several `--sweep` flags form a grid, the first varying slowest. The field
`config` sweeps the config file's argument instead (`--sweep=config=vae,
beta_vae` runs `configs/dsprites_disentanglement.py:vae` and `:beta_vae`):
for files that build a variant per argument, such as another objective.
Other config fields are overridden as in `vae_jax.main`
(`--config.num_epochs=3`).

Each run trains in `<workdir>/<field>=<value>/`; with several fields, the
pairs are joined by commas (`loss.kl_weight=0.5,model.latent_size=16`). In
values, characters other than letters, digits and `._+-` become `_`, and
tuples are joined by `-`. Runs train one after another, or with
`--vectorize` in groups of one compiled program each (`trainers.members`:
runs that differ only in numbers such as β, the seed or the learning rate),
and are then analyzed by `vae_jax.analyze`. Rerunning the same command
resumes: finished runs are not retrained, an interrupted one continues from
its newest checkpoint, and analyses newer than their run's results.json are
kept. The comparison goes to
`<workdir>/sweep_summary.json` and `sweep_summary.png`. `--dry_run` lists the
runs and what is left of each, and trains nothing.
"""

import ast
from collections.abc import Callable
import copy
import itertools
import os
import re
from typing import Any

from absl import logging
import jax
import ml_collections
import tensorflow as tf

from vae_jax import errors
from vae_jax.analysis import report
from vae_jax.analysis import sweep_report
from vae_jax.core import outputs
from vae_jax.core import sharding
from vae_jax.trainers import code_grids
from vae_jax.trainers import loop
from vae_jax.trainers import members as members_lib
from vae_jax.trainers import run_config as run_config_lib

# Splits values at commas outside parentheses, which hold tuples.
_VALUE_SEPARATOR = re.compile(r",(?![^(]*\))")
# The sweep field that names the config file's argument, not a config field.
CONFIG_ARGUMENT = "config"
# argument -> the config file's config for that argument, with the command
# line's field overrides (`cli.config_with_argument`).
ConfigForArgument = Callable[[str], ml_collections.ConfigDict]


def _parent_and_leaf(
  config: ml_collections.ConfigDict, field: str
) -> tuple[ml_collections.ConfigDict, str]:
  *parents, leaf = field.split(".")
  node = config
  for name in [*parents, leaf]:
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise errors.ConfigError(f"unknown config field {field!r} in --sweep.")
    parent, node = node, node[name]
  return parent, leaf


def _parse_value(text: str, field_type: type, field: str) -> Any:
  if field_type not in (bool, int, float, str, tuple):
    raise errors.ConfigError(
      f"{field} holds a {field_type.__name__}; only bool, int, float, str "
      "and tuple fields can be swept."
    )
  try:
    if field_type is bool:
      if text.lower() not in ("true", "false"):
        raise ValueError(text)
      return text.lower() == "true"
    if field_type is tuple:
      value = ast.literal_eval(text)
      return value if isinstance(value, tuple) else (value,)
    return field_type(text)
  except (ValueError, SyntaxError, TypeError):
    raise errors.ConfigError(
      f"--sweep value {text!r} of {field} cannot be read as "
      f"{field_type.__name__}."
    ) from None


def parse_sweep_flag(
  config: ml_collections.ConfigDict, text: str
) -> tuple[str, list[Any]]:
  """'FIELD=V1,V2' -> (FIELD, values parsed to the field's type)."""
  field, _, values_text = text.partition("=")
  field = field.strip()
  if not field or not values_text.strip():
    raise errors.ConfigError(f"--sweep={text!r} is not FIELD=VALUE,VALUE,...")
  if field == CONFIG_ARGUMENT:
    return field, [value.strip() for value in values_text.split(",")]
  parent, leaf = _parent_and_leaf(config, field)
  field_type = parent.get_type(leaf)  # Also a placeholder's (None) type.
  return field, [
    _parse_value(value.strip(), field_type, field)
    for value in _VALUE_SEPARATOR.split(values_text)
  ]


def make_runs(
  config: ml_collections.ConfigDict, sweep_flags: list[str]
) -> list[sweep_report.Run]:
  """The grid of `sweep_flags` over `config`; ConfigError for mistakes."""
  axes = [parse_sweep_flag(config, text) for text in sweep_flags]
  fields = [field for field, _ in axes]
  for field in fields:
    if fields.count(field) > 1:
      raise errors.ConfigError(f"{field} is in more than one --sweep.")
  runs = []
  for values in itertools.product(*(values for _, values in axes)):
    name = ",".join(
      f"{field}={sweep_report.value_text(value)}"
      for field, value in zip(fields, values)
    )
    if any(run.name == name for run in runs):
      raise errors.ConfigError(
        f"two runs of the sweep would share the directory {name!r}; give "
        "each value once."
      )
    runs.append(sweep_report.Run(name, dict(zip(fields, values))))
  return runs


def run_config(
  config: ml_collections.ConfigDict,
  overrides: dict[str, Any],
  config_for_argument: ConfigForArgument | None = None,
) -> ml_collections.ConfigDict:
  """A copy of `config` with `overrides` (dotted fields) applied; an
  override of CONFIG_ARGUMENT starts from `config_for_argument`'s config
  instead."""
  overrides = dict(overrides)
  if CONFIG_ARGUMENT in overrides:
    errors.require(
      config_for_argument is not None,
      "--sweep=config=... needs the config file to read again.",
    )
    config = config_for_argument(overrides.pop(CONFIG_ARGUMENT))
  config = copy.deepcopy(config)
  for field, value in overrides.items():
    parent, leaf = _parent_and_leaf(config, field)
    parent[leaf] = value
  return config


def _total_steps(config: ml_collections.ConfigDict) -> int:
  return run_config_lib.total_steps(
    config,
    code_grids.prepare_data(config).steps_per_epoch(
      sharding.local_batch_size(sharding.global_batch_size(config))
    ),
  )


def _checkpoint_steps(run_dir: str) -> list[int]:
  path = os.path.join(run_dir, "checkpoints")
  if not tf.io.gfile.isdir(path):
    return []
  # Orbax names a finished save by its step; unfinished ones carry a suffix.
  return sorted(
    int(name.strip("/"))
    for name in tf.io.gfile.listdir(path)
    if name.strip("/").isdigit()
  )


def run_status(run_dir: str, config: ml_collections.ConfigDict) -> str:
  """'done' (results.json for all its steps), 'partial (...)' or 'new'."""
  results = sweep_report.read_json(os.path.join(run_dir, "results.json"))
  if results is not None and results.get("steps") == _total_steps(config):
    return "done"
  steps = _checkpoint_steps(run_dir)
  return f"partial (checkpoint at step {steps[-1]})" if steps else "new"


def _analysis_is_current(run_dir: str) -> bool:
  """Whether analysis.json was written after results.json (or with it)."""
  analysis = os.path.join(run_dir, "analysis", "analysis.json")
  results = os.path.join(run_dir, "results.json")
  # >=: file times are coarse (a few ms), and training takes far longer.
  return (
    tf.io.gfile.exists(analysis)
    and tf.io.gfile.stat(analysis).mtime_nsec
    >= tf.io.gfile.stat(results).mtime_nsec
  )


def training_groups(
  configs: list[ml_collections.ConfigDict],
  run_dirs: list[str],
  statuses: list[str],
  vectorize: bool,
  max_members: int = 0,
) -> list[list[int]]:
  """The runs left to train, as groups of indices that train in one loop.

  One run per group, or with `vectorize` every run whose config differs
  from the others' only in traced fields (`trainers.members`) and that
  resumes from the same checkpoint step, `max_members` at most per group
  (0: no limit); groups and their runs in grid order.
  """
  groups = {}
  for i, (run_cfg, run_dir, status) in enumerate(
    zip(configs, run_dirs, statuses)
  ):
    if status == "done":
      continue
    key = (
      (members_lib.group_key(run_cfg), tuple(_checkpoint_steps(run_dir)[-1:]))
      if vectorize
      else i
    )
    groups.setdefault(key, []).append(i)
  size = max_members or len(configs)
  return [
    group[start : start + size]
    for group in groups.values()
    for start in range(0, len(group), size)
  ]


def train_runs(
  configs: list[ml_collections.ConfigDict],
  run_dirs: list[str],
  vectorize: bool,
  analyze: bool = True,
  max_members: int = 0,
) -> dict[int, str]:
  """Trains every run that is not done, in `training_groups`, and with
  `analyze` analyzes each group's runs as soon as it has trained (and the
  finished runs whose analysis is older than their results). Returns why
  each run that stopped early stopped, by index."""
  statuses = [
    run_status(run_dir, run_cfg) for run_dir, run_cfg in zip(run_dirs, configs)
  ]
  for run_dir, status in zip(run_dirs, statuses):
    logging.info("Sweep run %s: %s.", run_dir, status)
  if analyze:
    analyze_runs([d for d, s in zip(run_dirs, statuses) if s == "done"])
  failures = {}
  for group in training_groups(
    configs, run_dirs, statuses, vectorize, max_members
  ):
    members = (
      members_lib.Members.alone(configs[group[0]], run_dirs[group[0]])
      if len(group) == 1
      else members_lib.Members.group(
        [configs[i] for i in group], [run_dirs[i] for i in group]
      )
    )
    for i, outcome in zip(group, loop.train_group(members)):
      if outcome.error is not None:  # An outcome of the sweep, not a bug.
        failures[i] = outcome.error
    if analyze:
      analyze_runs([run_dirs[i] for i in group if i not in failures])
  return failures


def analyze_runs(run_dirs: list[str]) -> None:
  """`vae_jax.analyze` of each of `run_dirs` whose analysis is not current."""
  for run_dir in run_dirs:
    if not _analysis_is_current(run_dir):
      report.analyze(run_dir)


def run_sweep(
  config: ml_collections.ConfigDict,
  workdir: str,
  sweep_flags: list[str],
  dry_run: bool = False,
  vectorize: bool = False,
  max_members: int = 0,
  config_for_argument: ConfigForArgument | None = None,
) -> dict[str, Any] | None:
  """Trains and analyzes every run of the grid, then writes the summary.

  With `vectorize`, runs that can train together do, `max_members` at most
  in one group (`training_groups`). `config_for_argument` reads the config
  file for another argument, for a sweep of CONFIG_ARGUMENT.

  Every run's config is checked before the first one trains. Returns the
  summary (None for a dry run).
  """
  outputs.check_workdir(workdir)
  runs = make_runs(config, sweep_flags)
  configs = [
    run_config(config, run.overrides, config_for_argument) for run in runs
  ]
  for run_cfg in configs:
    run_config_lib.check_config(run_cfg)
  run_dirs = [os.path.join(workdir, run.name) for run in runs]
  if dry_run:
    for run, run_dir, run_cfg in zip(runs, run_dirs, configs):
      overrides = " ".join(f"{k}={v!r}" for k, v in run.overrides.items())
      print(f"{run_status(run_dir, run_cfg):<36} {run_dir}  {overrides}")
    return None
  stopped = train_runs(configs, run_dirs, vectorize, max_members=max_members)
  # Run name: why its training stopped.
  failures = {runs[i].name: error for i, error in stopped.items()}
  summary = sweep_report.summarize(workdir, runs, failures)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, "sweep_summary.json"), summary)
    outputs.save_figure(
      os.path.join(workdir, "sweep_summary.png"),
      sweep_report.summary_figure(
        workdir,
        runs,
        failures,
        sweep_report.figure_title(config, summary["fields"]),
      ),
    )
    if "across_seeds" in summary:
      outputs.save_figure(
        os.path.join(workdir, "sweep_seeds.png"),
        sweep_report.seed_spread_figure(
          summary,
          "Across seeds: "
          + sweep_report.figure_title(config, summary["fields"]),
        ),
      )
  table = sweep_report.format_table(summary["table"])
  if "across_seeds" in summary:
    table += "\n\nAcross seeds (mean ± standard deviation):\n"
    table += sweep_report.format_across_seeds(summary["across_seeds"])
  logging.info("Sweep summary:\n%s", table)
  print(table)
  return summary
