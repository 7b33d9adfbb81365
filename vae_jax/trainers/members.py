"""The runs that one training loop trains: a run alone, or a vectorized group.

The members of a group differ only in config fields that the compiled step
reads as numbers, never as shapes or Python branches (`traced_fields`: the
seed, β, a learning rate, ...). They train as one program: every array of
the train state gains a leading member axis, the trainer's steps are
`jax.vmap`ped over it, and each member's numbers enter its step as traced
arrays in a copy of its config (`member_config`). The matmuls of N small
models become N times larger, and the loop's per-step overhead is paid once.
Each member keeps its own workdir, checkpoints, event files and results, as
a run alone writes them (`loop.train_group`).

A run alone is a group without the axis (`Members.alone`): its arrays and
its compiled step are exactly those it always had.
"""

from collections.abc import Callable, Iterator, Sequence
import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import errors
from vae_jax.core import resume
from vae_jax.trainers import parts as parts_lib

# The loop's own number: it seeds parameters, noise and batch order.
LOOP_TRACED_FIELDS = ("seed",)


def traced_fields(objective, trainer) -> tuple[str, ...]:
  """The fields in which the members of a group may differ: the loop's, the
  trainer's (its optimizers') and the objective's (`loss.*`)."""
  return (
    *LOOP_TRACED_FIELDS,
    *trainer.traced_fields,
    *(f"loss.{name}" for name in objective.traced_fields),
  )


def group_key(config: ml_collections.ConfigDict) -> str:
  """Equal for configs that can train together: all their fields but the
  traced ones, as text."""
  _, objective, trainer = parts_lib.declared(config)
  traced = set(traced_fields(objective, trainer))
  return repr(
    sorted(
      (name, value)
      for name, value in resume.flatten(config.to_dict()).items()
      if name not in traced
    )
  )


def differing_fields(configs: Sequence[ml_collections.ConfigDict]) -> list[str]:
  """The dotted fields whose values are not the same in all `configs`."""
  flats = [resume.flatten(config.to_dict()) for config in configs]
  names = sorted(set().union(*flats))
  return [
    name
    for name in names
    if any(flat.get(name) != flats[0].get(name) for flat in flats[1:])
  ]


def member_config(
  config: ml_collections.ConfigDict, values: dict[str, jax.Array]
) -> ml_collections.ConfigDict:
  """A copy of `config` with `values` (dotted field -> traced scalar) in
  place of its numbers: what one member's steps are built from, inside the
  vmapped function. Not type-safe, so that arrays replace floats and ints."""
  member = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  for field, value in values.items():
    *sections, leaf = field.split(".")
    node = member
    for name in sections:
      node = node[name]
    node[leaf] = value
  return member


def available_device_bytes() -> int:
  """What one device can still allocate: its allocator's limit less what it
  holds on accelerators; the host's free memory on CPU, whose devices report
  no limit."""
  stats = jax.local_devices()[0].memory_stats()
  if stats is not None and "bytes_limit" in stats:
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _stacked_value(values: list[Any]) -> np.ndarray:
  """[N] float32 or int32: the traced dtypes of config floats and ints."""
  array = np.asarray(values)
  if np.issubdtype(array.dtype, np.integer):
    return array.astype(np.int32)
  return array.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Members:
  """The runs of one loop: their configs and workdirs, in order."""

  configs: tuple[ml_collections.ConfigDict, ...]
  workdirs: tuple[str, ...]
  # False for a run alone: no member axis anywhere.
  vectorized: bool
  # The fields whose values differ between members; each enters the steps
  # as a traced array.
  traced: tuple[str, ...] = ()

  @classmethod
  def alone(cls, config: ml_collections.ConfigDict, workdir: str) -> "Members":
    return cls((config,), (workdir,), vectorized=False)

  @classmethod
  def group(
    cls,
    configs: Sequence[ml_collections.ConfigDict],
    workdirs: Sequence[str],
  ) -> "Members":
    """Members to train together; `checked` must accept them once their
    parts are known."""
    errors.require(
      len(configs) == len(workdirs) and configs,
      "a vectorized group needs one workdir per config, and a config.",
    )
    return cls(
      tuple(configs),
      tuple(workdirs),
      vectorized=True,
      traced=tuple(differing_fields(configs)),
    )

  def checked(self, parts) -> "Members":
    """Itself, or a ConfigError naming a field that differs between members
    but that the compiled step cannot take as a traced number."""
    allowed = traced_fields(parts.objective, parts.trainer)
    for field in self.traced:
      errors.require(
        field in allowed,
        f"members trained together may differ only in {', '.join(allowed)}"
        f"; they differ in {field}: train them in separate groups.",
      )
    return self

  @property
  def config(self) -> ml_collections.ConfigDict:
    """The fields all members share (and the first member's traced ones)."""
    return self.configs[0]

  @property
  def leading_axes(self) -> int:
    """Axes before a batch's own: the member axis, where there is one."""
    return int(self.vectorized)

  def __len__(self) -> int:
    return len(self.configs)

  def names(self) -> list[str]:
    """Each member's name in logs: its workdir's last folder."""
    return [os.path.basename(os.path.normpath(w)) for w in self.workdirs]

  def take(self, tree: Any, i: int) -> Any:
    """Member `i`'s part of a tree with the member axis."""
    if not self.vectorized:
      return tree
    return jax.tree.map(lambda x: x[i], tree)

  def stack(self, trees: Sequence[Any]) -> Any:
    """The members' trees as one, along a new member axis, in the first
    tree's structure: the static parts of train states (their optimizer
    objects) are equal only in what they compute, and the group keeps
    one."""
    if not self.vectorized:
      (tree,) = trees
      return tree
    leaves = zip(*(jax.tree.leaves(tree) for tree in trees), strict=True)
    return jax.tree.unflatten(
      jax.tree.structure(trees[0]), [jnp.stack(xs) for xs in leaves]
    )

  def over_members(self, fn: Callable[..., Any], in_axes: Any = 0):
    """`fn` of one member, as a function of all of them."""
    if not self.vectorized:
      return fn
    return jax.vmap(fn, in_axes=in_axes)

  def fold_in(self, keys: jax.Array, data: Any) -> jax.Array:
    """`jax.random.fold_in` of each member's key."""
    return self.over_members(jax.random.fold_in, in_axes=(0, None))(keys, data)

  def check_memory(
    self, lower: Callable[[], Any], available: int | None = None
  ) -> None:
    """Refuses, in one line with the figures, a group whose compiled loop
    (`lower()`: its `jax.stages.Lowered`) needs more memory on each device
    than is `available` there (by default `available_device_bytes()`),
    naming how many members would fit. XLA's own count: arguments (the
    stacked state, a split held on the devices), outputs and temporaries.
    A run alone is not checked: it compiles nothing more."""
    if not self.vectorized:
      return
    stats = lower().compile().memory_analysis()
    needed = (
      stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      - stats.alias_size_in_bytes
      + stats.temp_size_in_bytes
    )
    available = available_device_bytes() if available is None else available
    if needed > available:
      fitting = max(1, int(available / (needed / len(self))))
      raise errors.UserInputError(
        f"{len(self)} members trained together need {needed / 2**20:,.1f} "
        f"MiB on each device, more than the {available / 2**20:,.1f} MiB free "
        f"there; train at most {fitting} together (--max_members={fitting})."
      )

  def from_seeds(self, fn: Callable[[Any], Any]) -> Callable[[], Any]:
    """A function of no arguments: `fn` of each member's seed, stacked.

    A run alone's seed stays a Python constant (any int); a group's are
    int32, which `jax.random.PRNGKey` reads as it reads the constant.
    """
    if not self.vectorized:
      return lambda: fn(self.config.seed)
    for config in self.configs:
      errors.require(
        0 <= config.seed < 2**31,
        "members trained together need seeds in [0, 2**31); got "
        f"{config.seed}.",
      )
    seeds = np.asarray([config.seed for config in self.configs], np.int32)
    return lambda: jax.vmap(fn)(seeds)

  def steps(
    self, parts, on_device_input, total_steps: int
  ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The trainer's (train_step, eval_step) for the whole group,
    uncompiled.

    `on_device_input(train_step, seed)` finishes each member's batches on
    the devices (`pipeline.PreparedData.on_device_input`). A member's step
    is built from its own config, its traced fields arrays, and updates with
    its own optimizers (`Trainer.with_optimizers`); the state it returns
    keeps the group's optimizer objects (the first member's), as the
    stacked state must carry one. Train
    batches have the member axis (each member its own batch order); eval
    batches are shared.
    """
    trainer = parts.trainer

    def member_steps(config):
      train_step, eval_step = trainer.make_steps(config, parts)
      return on_device_input(train_step, config.seed), eval_step

    if not self.vectorized:
      return member_steps(self.config)
    flats = [resume.flatten(config.to_dict()) for config in self.configs]
    values = {
      field: _stacked_value([flat[field] for flat in flats])
      for field in self.traced
    }

    def train_step(state, batch, rng, value):
      config = member_config(self.config, value)
      step, _ = member_steps(config)
      updated, metrics = step(
        trainer.with_optimizers(state, config, total_steps), batch, rng
      )
      # Its arrays in the group's tree: the optimizers built above hold this
      # member's traced numbers, and must not leave the step.
      return jax.tree.unflatten(
        jax.tree.structure(state), jax.tree.leaves(updated)
      ), metrics

    def eval_step(state, batch, rng, value):
      _, step = member_steps(member_config(self.config, value))
      return step(state, batch, rng)

    return (
      lambda state, batch, rng: jax.vmap(train_step)(state, batch, rng, values),
      lambda state, batch, rng: jax.vmap(eval_step, in_axes=(0, None, 0, 0))(
        state, batch, rng, values
      ),
    )

  def train_batches(
    self, data, local_batch_size: int, start_step: int
  ) -> Iterator[dict[str, np.ndarray]]:
    """Host batches from `start_step` on, each member's in its own seed's
    order (and augmentation), stacked along the member axis: one stream per
    seed, which the members of that seed share."""
    seeds = sorted({config.seed for config in self.configs})
    streams = [
      data.train_batches(local_batch_size, seed, start_step) for seed in seeds
    ]
    for batches in zip(*streams):
      if not self.vectorized:
        yield batches[0]
        continue
      by_seed = dict(zip(seeds, batches))
      # NumPy, for `sharding.to_global`.
      yield jax.tree.map(
        lambda *xs: np.stack(xs),
        *(by_seed[config.seed] for config in self.configs),
      )
