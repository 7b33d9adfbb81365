"""Shared test setup: cheap compilation, strict shapes, tiny configs."""

import atexit
import functools
import os
import shutil
import sys
import tempfile

# Must be set before TensorFlow or JAX start threads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The tests compile the same tiny models again and again: in both xdist
# workers, in the runs they start as subprocesses and in notebook kernels.
# One XLA compilation cache shared by all of them compiles each model once.
# The first process to import this file makes it and removes it at exit; the
# others inherit it through the environment. It is new for every session, so
# no executable outlives the code it was compiled from.
_SESSION_CACHE = "VAE_JAX_TESTS_COMPILATION_CACHE"
if _SESSION_CACHE not in os.environ:
  os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="vae_jax_tests_xla_")
  atexit.register(shutil.rmtree, os.environ[_SESSION_CACHE],
                  ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_SESSION_CACHE]
# Even compilations of a tenth of a second add up over the suite.
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# Cheap compilation (below) for every process the tests start, too.
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# Compile time dominates tiny models; silent broadcasting hides shape bugs.
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Set here too in case JAX was imported before the environment was.
jax.config.update("jax_compilation_cache_dir", os.environ[_SESSION_CACHE])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import mnist_linear
from vae_jax.core import checkpoints
from vae_jax.models import registry
from vae_jax.trainers import parts as parts_lib
# pylint: enable=g-import-not-at-top,wrong-import-position


def shrink_run(config):
  """`config`'s run shortened to seconds on mock MNIST; the model is kept."""
  config.num_epochs = 2
  config.batch_size = 8
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.num_image_samples = 8
  # Under tfds.testing.mock_data, TFDS's (mocked) download is the source;
  # 'auto' would look for the network and the registry mirror instead.
  config.input.mnist_source = "tfds"
  return config


def make_tiny_config():
  """mnist_linear shrunk so a whole run takes seconds on mock data."""
  config = shrink_run(mnist_linear.get_config())
  config.model.hidden_sizes = (32, 16)
  config.model.latent_size = 4
  return config


def batchnorm_config(config):
  """`config` with a tiny DCGAN-style VAE (16x16 images), which has BatchNorm
  statistics."""
  config.model = registry.get("dcgan_vae").default_config()
  config.model.update(latent_size=4, channels=(4, 8), dense_size=16)
  return config


# Modules whose every test starts processes, notebook kernels or 8 devices.
SLOW_MODULES = ("test_colabs", "test_explore", "test_launch", "test_main",
                "test_multidevice", "test_multiprocess", "test_preemption",
                "test_sample", "test_sweep")


def pytest_collection_modifyitems(config, items):
  """Marks the slow tests (10-40 s each) and runs them first: a suite that
  ended on one of them would leave the other core idle meanwhile. `-m "not
  slow"` leaves them out of a quick edit-test loop."""
  del config
  for item in items:
    if item.module.__name__ in SLOW_MODULES:
      item.add_marker(pytest.mark.slow)
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def tiny_config():
  return make_tiny_config()


@pytest.fixture
def optimized_xla():
  """XLA's full optimizations, as production compiles, for the test: the
  bit-identity checks must hold for the executables runs really use."""
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", True)


def initial_state(config, parts, image_shape, total_steps):
  """The initial train state of `parts` (`trainers.parts.assemble`) from
  PRNGKey(0), compiled whole: op by op, Flax's init compiles each of its
  small ops apart (seconds)."""
  return jax.jit(functools.partial(parts.trainer.create_train_state, config,
                                   parts, image_shape,
                                   total_steps=total_steps))(
                                       jax.random.PRNGKey(0))


def assemble(config, image_shape=(28, 28, 1)):
  """`config`'s model, family, objective and trainer."""
  return parts_lib.assemble(config, image_shape)


def save_untrained_run(config, workdir):
  """A workdir as training leaves it, minus the training: saves seconds."""
  image_shape = (28, 28, 1)
  state = initial_state(config, assemble(config, image_shape), image_shape,
                        total_steps=1)
  manager = checkpoints.make_manager(str(workdir), config)
  checkpoints.save(manager, state, jax.random.PRNGKey(1))
  checkpoints.close(manager)
  (workdir / "config.json").write_text(config.to_json())
