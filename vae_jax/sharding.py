"""Data parallelism through one `jax.sharding.Mesh` with a 'data' axis.

Parameters and optimizer state are replicated; batches are split along their
leading axis over every device of every process. The same jitted step then
runs on one CPU, a GPU box or a TPU slice.
"""

import collections
from typing import Any, Iterable, Iterator

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process run through JAX's own runtime.

  With no arguments JAX finds the cluster itself (Cloud TPU, SLURM,
  Kubernetes); a hand-made cluster, or N processes on one machine
  (launch/local_multiprocess.sh), gives all three. Must run before anything
  touches a device.
  """
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)
  logging.info("Process %d of %d; %d local of %d devices.",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def local_batch_size(global_batch_size: int) -> int:
  """This process's share of a global batch."""
  return global_batch_size // jax.process_count()


def to_global(local_batch: Any, sharding: NamedSharding) -> Any:
  """Assembles each process's slice of the batch into one global array."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x),
      local_batch)


def prefetch_to_mesh(local_batches: Iterable[Any], sharding: NamedSharding,
                     size: int = 2) -> Iterator[Any]:
  """Keeps `size` batches in flight to the devices while the step runs."""
  queue = collections.deque()
  for batch in local_batches:
    queue.append(to_global(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  yield from queue
