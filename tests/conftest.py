"""The environment every test process shares, and the suite's order.

Light on purpose: pytest-xdist's controller, which only schedules, loads
this file too, and importing TensorFlow and JAX there would delay the
workers' start by seconds. The workers, and plain runs, load `testbed`
(cheap compilation, strict shapes, tiny configs) as a plugin.
"""

import atexit
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
  atexit.register(shutil.rmtree, os.environ[_SESSION_CACHE], ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_SESSION_CACHE]
# Even compilations of a tenth of a second add up over the suite.
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# Cheap compilation (testbed) for every process the tests start, too.
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"

import pytest  # noqa: E402  (after the environment it reads)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def pytest_configure(config):
  """Loads `testbed` where tests run: not in xdist's controller."""
  schedules_only = not hasattr(config, "workerinput") and config.getoption(
    "numprocesses", default=0
  )
  if not schedules_only:
    config.pluginmanager.import_plugin("testbed")


# Modules whose every test starts processes, notebook kernels or 8 devices.
SLOW_MODULES = (
  "test_colabs",
  "test_explore",
  "test_launch",
  "test_main",
  "test_multidevice",
  "test_multiprocess",
  "test_preemption",
  "test_sample",
  "test_sweep",
)


def pytest_collection_modifyitems(config, items):
  """Marks the slow tests (10-40 s each) and runs them first: a suite that
  ended on one of them would leave the other core idle meanwhile. `-m "not
  slow"` leaves them out of a quick edit-test loop."""
  del config
  for item in items:
    if item.module.__name__ in SLOW_MODULES:
      item.add_marker(pytest.mark.slow)
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
