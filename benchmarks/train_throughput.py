r"""Training throughput of a config, as a fraction of this machine's matmul peak.

    python benchmarks/train_throughput.py --config=configs/mnist_linear.py

Measures, in one process:
  * the fp32 throughput of a large square matmul (the machine's practical
    peak for dense math);
  * the FLOPs of one compiled train step, from XLA's cost analysis;
  * the steady-state time of the train step on real batches from the
    config's input pipeline (compilation and warm-up excluded).
It prints images/s and achieved/peak FLOP/s, and writes them as JSON when
--output is given. Not a test: timings depend on the machine.
"""

import functools
import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from vae_jax import input_pipeline
from vae_jax import sharding
from vae_jax import train

config_flags.DEFINE_config_file("config", "configs/mnist_linear.py",
                                "Config to benchmark.", lock_config=True)
flags.DEFINE_integer("steps", 400, "Timed train steps per repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_integer("matmul_size", 2048, "Side of the square peak matmul.")
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
FLAGS = flags.FLAGS


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def matmul_flops_per_second(size: int, repeats: int = 5) -> float:
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  return 2 * size**3 / _median_seconds(lambda: matmul(a), repeats)


def main(argv):
  del argv
  config = FLAGS.config
  input_pipeline.prepare(config.input)
  image_shape = input_pipeline.image_shape(config.input)
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  data_sharding = sharding.batch_sharded(mesh)
  model = train.build_model(config, image_shape)
  state = jax.jit(functools.partial(train.create_train_state, config, model,
                                    image_shape, total_steps=10**6),
                  out_shardings=replicated)(jax.random.PRNGKey(0))
  rng = jax.device_put(jax.random.PRNGKey(1), replicated)
  step, _ = train.make_jitted_steps(config, model, mesh)

  local_batches = input_pipeline.train_batches(
      config.input, sharding.local_batch_size(config.batch_size), seed=0)
  batches = [sharding.to_global(next(local_batches), data_sharding)
             for _ in range(50)]
  step_flops = step.lower(state, batches[0], rng).compile().cost_analysis()
  if isinstance(step_flops, list):  # Older JAX returns one dict per device.
    step_flops = step_flops[0]
  step_flops = step_flops["flops"]

  for i in range(20):  # Warm-up: compile and settle the thread pools.
    state, metrics = step(state, batches[i % len(batches)], rng)
  jax.block_until_ready(metrics)

  def run_steps():
    nonlocal state
    for i in range(FLAGS.steps):
      state, metrics = step(state, batches[i % len(batches)], rng)
    return metrics

  step_seconds = _median_seconds(run_steps, FLAGS.repeats) / FLAGS.steps
  peak = matmul_flops_per_second(FLAGS.matmul_size)
  figures = {
      "config_model": config.model.name,
      "batch_size": config.batch_size,
      "devices": jax.device_count(),
      "platform": jax.devices()[0].platform,
      "step_ms": step_seconds * 1e3,
      "images_per_second": config.batch_size / step_seconds,
      "step_gflop": step_flops / 1e9,
      "achieved_gflop_per_second": step_flops / step_seconds / 1e9,
      "matmul_gflop_per_second": peak / 1e9,
      "fraction_of_matmul_peak": step_flops / step_seconds / peak,
  }
  print(json.dumps(figures, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(figures, f, indent=2)


if __name__ == "__main__":
  app.run(main)
