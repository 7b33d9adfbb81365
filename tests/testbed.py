"""What the tests share: cheap compilation, strict shapes, tiny configs,
their models and states, and checkpoints read back.

A pytest plugin (conftest loads it in the processes that run tests), and a
module the tests and the scripts they start import from.
"""

from collections.abc import Mapping
import functools
import os
import types
from typing import Any

import jax
from jax._src import compiler as jax_compiler
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import mnist_linear
from vae_jax.core import checkpoints
from vae_jax.models import registry
from vae_jax.trainers import parts as parts_lib

# Compile time dominates tiny models; silent broadcasting hides shape bugs.
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Set here too: JAX reads the environment only when it is first imported.
jax.config.update(
  "jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"]
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

# XLA:CPU's previous fusion emitters compile the tests' tiny programs 2-3x
# faster. They are not what runs compile with, and two different programs
# that agree bit for bit under the default emitters need not agree under
# them (a GAN's step inside the device loop and alone did not): the tests of
# such agreement take `production_codegen`. The processes the tests start
# get them through XLA_FLAGS (`mock_runs.subprocess_env`).
#
# The suite's one use of a private JAX API. Nothing public switches an
# option for every compilation and back within a process: XLA_FLAGS is read
# once, when the backend starts, and `jax.jit(..., compiler_options=...)`
# reaches only the jits a test makes itself, not those inside the trainers.
# So this wraps `jax._src.compiler.get_compile_options`, which every jit's
# compilation calls. If JAX changes it, the suite fails loudly: a rename
# fails this import (AttributeError), a dropped `env_options_overrides`
# every compilation (TypeError), an option XLA no longer knows every
# compilation ("No such compile option"), and compilations that no longer
# call it the session's start (`pytest_sessionstart`).
_FAST_CODEGEN = {"xla_cpu_use_fusion_emitters": False}
FAST_CODEGEN_XLA_FLAG = " ".join(
  f"--{name}={str(value).lower()}" for name, value in _FAST_CODEGEN.items()
)
_default_compile_options = jax_compiler.get_compile_options
# `fast` is set by use_fast_codegen; `calls` is read by pytest_sessionstart.
_codegen = types.SimpleNamespace(fast=True, calls=0)


def _compile_options(*args, env_options_overrides=None, **kwargs):
  _codegen.calls += 1
  if _codegen.fast:
    env_options_overrides = {**_FAST_CODEGEN, **(env_options_overrides or {})}
  return _default_compile_options(
    *args, env_options_overrides=env_options_overrides, **kwargs
  )


jax_compiler.get_compile_options = _compile_options


def pytest_sessionstart(session):
  """Stops the tests if a compilation no longer goes through the switch: they
  would pass, each compiled slower, and `production_codegen` would compare
  nothing different."""
  del session
  calls = _codegen.calls
  jax.jit(lambda x: x + 1).lower(np.float32(0)).compile()
  if _codegen.calls == calls:
    raise RuntimeError(
      "jax.jit no longer calls jax._src.compiler.get_compile_options: "
      "update testbed's compile switch to this JAX."
    )


def use_fast_codegen(fast: bool) -> None:
  """XLA:CPU's previous fusion emitters from now on, or its default ones.

  Clears JAX's in-memory caches, whose executables do not record which
  emitters compiled them (the persistent cache's keys do).
  """
  _codegen.fast = fast
  jax.clear_caches()


# A run of seconds on mock MNIST: 5 steps of 8 per epoch on 40 mock examples.
SHORT_RUN = {
  "num_epochs": 2,
  "batch_size": 8,
  "log_every_steps": 2,
  "checkpoint_every_steps": 3,
  "num_image_samples": 8,
  # Under tfds.testing.mock_data, TFDS's (mocked) download is the source;
  # 'auto' would look for the network and the registry mirror instead.
  "input.mnist_source": "tfds",
}
# mnist_linear's MLP VAE, narrowed.
TINY_MLP = {"model.hidden_sizes": (32, 16), "model.latent_size": 4}
# The plain fc_autoencoder, narrowed to a 3-wide code.
TINY_AUTOENCODER = {
  "model.encoder_sizes": (16, 3),
  "model.decoder_sizes": (16,),
}


def make_tiny_config(
  overrides: Mapping[str, Any] | None = None,
  *,
  base: ml_collections.ConfigDict | None = None,
  model: Mapping[str, Any] = TINY_MLP,
  run: Mapping[str, Any] = SHORT_RUN,
) -> ml_collections.ConfigDict:
  """`base` shrunk so a whole run takes seconds on mock data: every tiny
  config of the tests comes from here.

  Each mapping is {dotted name: value}, set as the flag
  `--config.<name>=<value>` sets it, but for a tuple, which replaces the
  field's value: a repeated flag of a tuple field appends to the first
  (`mock_runs.start_run` replaces its flags for that reason).

  Args:
    overrides: set last, over `run` and `model`.
    base: the config to shrink, changed in place; mnist_linear's by default.
    model: the model's narrower fields; `{}` keeps `base`'s model.
    run: the loop's and the input's fields that shorten the run.
  """
  config = mnist_linear.get_config() if base is None else base
  config.update_from_flattened_dict({**run, **model, **(overrides or {})})
  return config


def batchnorm_config(config):
  """`config` with a tiny DCGAN-style VAE (16x16 images), which has BatchNorm
  statistics."""
  config.model = registry.get("dcgan_vae").default_config()
  config.model.update(latent_size=4, channels=(4, 8), dense_size=16)
  return config


@pytest.fixture
def tiny_config():
  return make_tiny_config()


@pytest.fixture
def production_codegen():
  """XLA:CPU's default fusion emitters, as runs compile, for the test."""
  use_fast_codegen(False)
  yield
  use_fast_codegen(True)


@pytest.fixture
def optimized_xla(production_codegen):  # pylint: disable=unused-argument
  """XLA's full optimizations and emitters, as production compiles, for the
  test: the bit-identity checks must hold for the executables runs use."""
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", True)


def initial_state(config, parts, image_shape, total_steps):
  """The initial train state of `parts` (`trainers.parts.assemble`) from
  PRNGKey(0), compiled whole: op by op, Flax's init compiles each of its
  small ops apart (seconds)."""
  return jax.jit(
    functools.partial(
      parts.trainer.create_train_state,
      config,
      parts,
      image_shape,
      total_steps=total_steps,
    )
  )(jax.random.PRNGKey(0))


def assemble(config, image_shape=(28, 28, 1)):
  """`config`'s model, family, objective and trainer."""
  return parts_lib.assemble(config, image_shape)


def checkpoint_arrays(workdir, step):
  """{path: array} of the state and RNG in `workdir`'s checkpoint `step`,
  read onto this process's first device, whatever devices saved it."""
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  checkpointer = ocp.StandardCheckpointer()
  on_one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
    lambda array: jax.ShapeDtypeStruct(
      array.shape, array.dtype, sharding=on_one_device
    ),
    checkpointer.metadata(path).item_metadata,
  )
  restored = checkpointer.restore(path, target)
  return {
    jax.tree_util.keystr(p): np.asarray(x)
    for p, x in jax.tree_util.tree_flatten_with_path(restored)[0]
  }


def save_untrained_run(config, workdir):
  """A workdir as training leaves it, minus the training: saves seconds."""
  image_shape = (28, 28, 1)
  state = initial_state(
    config, assemble(config, image_shape), image_shape, total_steps=1
  )
  manager = checkpoints.make_manager(str(workdir), config)
  checkpoints.save(manager, state, jax.random.PRNGKey(1))
  checkpoints.close(manager)
  (workdir / "config.json").write_text(config.to_json())
