"""Data parallelism through one `jax.sharding.Mesh` with a 'data' axis.

Parameters and optimizer state are replicated; batches are split along their
leading axis over every device of every process. The same jitted step then
runs on one CPU, a GPU box or a TPU slice, and on many processes: each reads
its own share of the data, and `to_global` joins the shares into one array.
"""

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import ml_collections
import numpy as np

from vae_jax import errors

DATA_AXIS = "data"


def initialize_distributed(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Joins this process to a multi-process run through JAX's own runtime.

  With no arguments JAX finds the cluster itself (Cloud TPU, SLURM,
  Kubernetes); a hand-made cluster, or N processes on one machine
  (launch/local_multiprocess.sh), gives all three. Must run before anything
  touches a device. CPU processes exchange data through gloo, JAX's default
  `jax_cpu_collectives_implementation`.
  """
  given = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in given) and None in given:
    raise errors.UserInputError(
      "a hand-made cluster needs all of --coordinator_address, "
      "--num_processes and --process_id; got "
      f"{coordinator_address!r}, {num_processes!r}, {process_id!r}."
    )
  jax.distributed.initialize(
    coordinator_address=coordinator_address,
    num_processes=num_processes,
    process_id=process_id,
  )
  logging.info(
    "Process %d of %d; %d local of %d devices.",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices`, by default every device of every process."""
  return Mesh(np.asarray(devices or jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
  """Batches split over the data axis, after `leading_axes` unsplit ones
  (a vectorized group's member axis: `trainers.members`)."""
  return NamedSharding(mesh, PartitionSpec(*[None] * leading_axes, DATA_AXIS))


def global_batch_size(config: ml_collections.ConfigDict) -> int:
  """Images per train step over all devices.

  `config.batch_size` is that number, or, with `batch_size_per_device`, each
  device's share of it, so the global batch grows with the device count.
  Raises ConfigError when it cannot be split evenly over devices and
  processes.
  """
  devices, processes = jax.device_count(), jax.process_count()
  batch = config.batch_size * (devices if config.batch_size_per_device else 1)
  if batch % devices or batch % processes:
    raise errors.ConfigError(
      f"the global batch_size {batch} is not divisible by the {devices} "
      f"devices of the {processes} process(es) that share it; choose a "
      f"multiple of {np.lcm(devices, processes)}, or set "
      "batch_size_per_device=True."
    )
  return batch


def local_batch_size(global_batch_size: int) -> int:
  """This process's share of a global batch."""
  return global_batch_size // jax.process_count()


def each_process(value: int) -> np.ndarray:
  """Every process's `value`, by process index; all must call it together.

  For counts the processes must agree on (steps per epoch, eval batches)
  when their shares of the data differ in size.
  """
  if jax.process_count() == 1:
    return np.asarray([value])
  return np.asarray(multihost_utils.process_allgather(np.int32(value)))


def to_global(local_batch: Any, sharding: NamedSharding) -> Any:
  """Assembles each process's slice of the batch into one global array."""
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch
  )


def to_host(tree: Any) -> Any:
  """NumPy copies of (global) arrays, on every process.

  A replicated array is read from a local device; any other is gathered from
  every process, so all processes must call this together.
  """

  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(fetch, tree)


def prefetch_to_mesh(
  local_batches: Iterable[Any], sharding: NamedSharding, size: int = 2
) -> Iterator[Any]:
  """Keeps `size` batches in flight to the devices while the step runs."""
  queue = collections.deque()
  for batch in local_batches:
    queue.append(to_global(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  yield from queue


def _step_shardings(
  mesh: Mesh, leading_axes: int = 0
) -> tuple[NamedSharding, ...]:
  """A step's (state, batch, rng) shardings: the state and key replicated,
  batches split over the data axis (after `leading_axes`)."""
  return replicated(mesh), batch_sharded(mesh, leading_axes), replicated(mesh)


def jit_train_step(
  train_step: Callable[..., Any], mesh: Mesh, leading_axes: int = 0
) -> Any:
  """A trainer's `(state, batch, rng) -> (state, metrics)` compiled for
  `mesh`, the state donated (updated in place); batches have
  `leading_axes` before their own."""
  state_sharding = replicated(mesh)
  return jax.jit(
    train_step,
    in_shardings=_step_shardings(mesh, leading_axes),
    out_shardings=(state_sharding, state_sharding),
    donate_argnums=0,
  )


def jit_eval_step(eval_step: Callable[..., Any], mesh: Mesh) -> Any:
  """A trainer's `(state, batch, rng) -> sums` compiled for `mesh`."""
  return jax.jit(
    eval_step,
    in_shardings=_step_shardings(mesh),
    out_shardings=replicated(mesh),
  )


def on_mesh(
  step: Callable[..., Any], mesh: Mesh, leading_axes: int = 0
) -> Callable[..., Any]:
  """A `(state, batch, rng)` step placed as `jit_train_step` places it, for
  tracing into a larger compiled function (a loop over steps)."""

  def placed(state, batch, rng):
    state, batch, rng = jax.lax.with_sharding_constraint(
      (state, batch, rng), _step_shardings(mesh, leading_axes)
    )
    return jax.lax.with_sharding_constraint(
      step(state, batch, rng), replicated(mesh)
    )

  return placed
