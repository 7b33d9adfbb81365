"""Measurements the benchmarks share: configs by path, timings, FLOPs and
the machine's matmul peak. No flags, so that every benchmark can import it."""

import importlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(spec: str):
  """'configs/name.py[:arg]' -> that module's get_config([arg])."""
  path, _, arg = spec.partition(":")
  module_name = os.path.splitext(
    os.path.relpath(path, REPO_ROOT) if os.path.isabs(path) else path
  )[0]
  module = importlib.import_module(module_name.replace(os.sep, "."))
  return module.get_config(arg) if arg else module.get_config()


def median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def matmul_flops_per_second(size: int, repeats: int = 10) -> float:
  """The best of `repeats` fp32 square matmuls: what the machine can do."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    seconds.append(time.perf_counter() - start)
  return 2 * size**3 / min(seconds)


def step_flops(jitted_step, *args) -> float:
  analysis = jitted_step.lower(*args).compile().cost_analysis()
  if isinstance(analysis, list):  # Older JAX returns one dict per device.
    analysis = analysis[0]
  return float(analysis["flops"])
