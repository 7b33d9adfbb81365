"""Train steps on 1 and on 8 CPU devices, run in a subprocess of the tests.

    python tests/multidevice_steps.py WORKDIR

JAX fixes its device count when it starts, so tests/test_multidevice.py runs
this file with 8 host-platform devices (`eight_device_env`), once for all
its tests: a process with 8 devices takes seconds to start. It runs each
trainer's train step (`Trainer.make_steps`), compiled, on a 1-device mesh
and on the 8-device mesh, from the same state, global batch and RNG, and
saves both results to WORKDIR/<model>.npz (`run_steps`). Then it continues
the checkpoint in WORKDIR/one_device on 8 devices (`restore_on_eight_devices`),
and trains a tiny run on the 8 devices, its batches held on them and fed from
the host (`train_on_either_path`).
"""

import functools
import os
import sys

import jax
import numpy as np
import tensorflow_datasets as tfds

from gan_runs import tiny_gan_config
import mock_runs
import testbed
from testbed import assemble
from testbed import batchnorm_config
from testbed import make_tiny_config
from vae_jax.core import checkpoints
from vae_jax.core import sharding
from vae_jax.trainers import loop

NUM_DEVICES = 8
GLOBAL_BATCH = 16  # Two images per device.
# Tiny models, each a different kind of step: a VAE, BatchNorm statistics
# (which must be over the global batch), and a GAN's two updates.
MODELS = {
  "vae": (make_tiny_config, (28, 28, 1)),
  "batchnorm_vae": (lambda: batchnorm_config(make_tiny_config()), (16, 16, 1)),
  "acgan": (tiny_gan_config, (28, 28, 1)),
}
RESTORE_MODEL = "batchnorm_vae"
DATA_PATHS = ("always", "never")  # input.device_resident: held, host-fed.
MOCK_EXAMPLES = 64  # Per split: 8 global batches of 8 per epoch.
# The tiny run (`testbed.make_tiny_config`), saved once per epoch.
RUN_OVERRIDES = {"checkpoint_every_steps": 8}


def eight_device_env() -> dict[str, str]:
  return mock_runs.subprocess_env(
    XLA_FLAGS=f"--xla_force_host_platform_device_count={NUM_DEVICES}",
    JAX_NUMPY_RANK_PROMOTION="raise",
  )


def make_batch(config, image_shape, seed=0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  low = -1.0 if config.input.pixel_range == "symmetric" else 0.0
  return {
    "image": rng.uniform(low, 1.0, (GLOBAL_BATCH, *image_shape)).astype(
      np.float32
    ),
    "label": rng.integers(0, 10, GLOBAL_BATCH).astype(np.int32),
  }


@functools.cache
def trainer_parts(name: str, mesh):
  """`name`'s config, parts (`trainers.parts.assemble`) and jitted train
  step on `mesh`, built once: a new jit of the same step would compile
  again."""
  make_config, image_shape = MODELS[name]
  config = make_config()
  parts = assemble(config, image_shape)
  train_step, _ = parts.trainer.make_steps(config, parts)
  return config, parts, sharding.jit_train_step(train_step, mesh)


def initial_state(name: str, mesh):
  """`name`'s config and a fresh state, replicated over `mesh`.

  The state is initialized on one device whatever the mesh, and then copied:
  initialization compiled for 8 devices would cost seconds and is not what
  these tests compare.
  """
  config, parts, _ = trainer_parts(name, mesh)
  state = jax.jit(
    functools.partial(
      parts.trainer.create_train_state,
      config,
      parts,
      MODELS[name][1],
      total_steps=10,
    )
  )(jax.random.PRNGKey(0))
  return config, jax.device_put(state, sharding.replicated(mesh))


def step_on(mesh, name: str, state, seed: int = 0):
  """`name`'s train step on `mesh` from `state`: the new state and metrics
  as flat {path: array}, and the new state."""
  config, _, train_step = trainer_parts(name, mesh)
  batch = sharding.to_global(
    make_batch(config, MODELS[name][1], seed), sharding.batch_sharded(mesh)
  )
  state, metrics = train_step(state, batch, jax.random.PRNGKey(1))
  return flatten({"state": state, "metrics": metrics}), state


def flatten(tree) -> dict[str, np.ndarray]:
  return {
    jax.tree_util.keystr(path): np.asarray(x)
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def one_device_mesh():
  return sharding.make_mesh(jax.devices()[:1])


def run_steps(output_dir: str) -> None:
  """Each model's step on 1 and on 8 devices, to OUTPUT_DIR/<model>.npz."""
  for name in MODELS:
    one, _ = step_on(
      one_device_mesh(), name, initial_state(name, one_device_mesh())[1]
    )
    eight, _ = step_on(
      sharding.make_mesh(), name, initial_state(name, sharding.make_mesh())[1]
    )
    np.savez(
      os.path.join(output_dir, f"{name}.npz"),
      **{f"one{k}": v for k, v in one.items()},
      **{f"eight{k}": v for k, v in eight.items()},
    )


def restore_on_eight_devices(workdir: str) -> None:
  """WORKDIR/one_device (saved on 1 device) restored onto 8: one step from it
  to WORKDIR/after_restore.npz, that state saved in WORKDIR/eight_devices,
  and one more step to WORKDIR/after_second_step.npz."""
  mesh = sharding.make_mesh()
  config, target = initial_state(RESTORE_MODEL, mesh)
  rng = jax.jit(
    lambda: jax.random.PRNGKey(9), out_shardings=sharding.replicated(mesh)
  )()
  manager = checkpoints.make_manager(
    os.path.join(workdir, "one_device"), config
  )
  state, rng = checkpoints.restore(manager, target, rng)
  checkpoints.close(manager)
  for x in jax.tree.leaves((state, rng)):
    assert x.sharding == sharding.replicated(mesh), x.sharding
  after_restore, state = step_on(mesh, RESTORE_MODEL, state)
  np.savez(os.path.join(workdir, "after_restore.npz"), **after_restore)
  manager = checkpoints.make_manager(
    os.path.join(workdir, "eight_devices"), config
  )
  checkpoints.save(manager, state, rng)
  checkpoints.close(manager)
  after_second_step, _ = step_on(mesh, RESTORE_MODEL, state, seed=1)
  np.savez(os.path.join(workdir, "after_second_step.npz"), **after_second_step)


def train_on_either_path(workdir: str) -> None:
  """The tiny run on mock MNIST, trained on the 8 devices once per data path,
  in WORKDIR/<input.device_resident>."""
  config = make_tiny_config(RUN_OVERRIDES)
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    for mode in DATA_PATHS:
      config.input.device_resident = mode
      loop.train_and_evaluate(config, os.path.join(workdir, mode))


if __name__ == "__main__":
  assert jax.device_count() == NUM_DEVICES, jax.devices()
  (workdir,) = sys.argv[1:]
  run_steps(workdir)
  restore_on_eight_devices(workdir)
  # Two programs that must agree bit for bit: as runs compile them.
  testbed.use_fast_codegen(False)
  train_on_either_path(workdir)
