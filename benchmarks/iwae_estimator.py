r"""The k = 5000 test-NLL estimator against this machine's fp32 matmul peak.

    python benchmarks/iwae_estimator.py --workdir=/tmp/iwae_k5 \
        --num_images=1000 \
        --output=benchmarks/results/iwae_estimator_cpu_2cores.json

Times `analysis.runs.iwae_nll` (the compiled loop `vae_jax.analyze` runs) on
a trained run's first `--num_images` test images, and, in the same process,
a large fp32 matmul: the ratio is the share of the machine's peak the
estimator reaches. Its FLOPs are counted from the run's decoder alone (two
per weight per draw: the matmuls that dominate an MLP decoder at k = 5000;
the encoder runs once per chunk of draws and is not counted).
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from vae_jax import cli
from vae_jax.analysis import runs

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A trained latent-variable run.")
flags.DEFINE_integer("num_images", 1000, "Test images estimated.")
flags.DEFINE_integer("num_samples", 5000, "k.")
flags.DEFINE_string("output", None, "Also write the figures as JSON here.")
flags.mark_flag_as_required("workdir")

MATMUL_SIZE = 2048


def matmul_gflops(repeats: int = 20) -> float:
  """fp32 GFLOP/s of a jitted MATMUL_SIZE² matmul, the best of `repeats`."""
  a = jnp.ones((MATMUL_SIZE, MATMUL_SIZE), jnp.float32)
  matmul = jax.jit(jnp.dot)
  matmul(a, a).block_until_ready()
  best = min(
    _timed(lambda: matmul(a, a).block_until_ready()) for _ in range(repeats)
  )
  return 2 * MATMUL_SIZE**3 / best / 1e9


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def decoder_weights(params) -> int:
  """Weights of the decoder's dense kernels (the p(x|h1) network's)."""
  decoder = params.get("decoder", params.get("p_x"))
  return sum(
    leaf.size
    for path, leaf in jax.tree_util.tree_leaves_with_path(decoder)
    if path[-1].key == "kernel"
  )


def main(argv):
  del argv
  cli.quiet_libraries()
  run = runs.load(FLAGS.workdir)
  eval_ds = runs.test_batches(run)
  rng = jax.random.PRNGKey(0)
  peak = matmul_gflops()
  # The first call compiles; the second is timed.
  runs.iwae_nll(run, eval_ds, FLAGS.num_samples, FLAGS.num_images, rng)
  seconds = _timed(
    lambda: runs.iwae_nll(
      run, eval_ds, FLAGS.num_samples, FLAGS.num_images, rng
    )
  )
  flops = (
    2
    * decoder_weights(run.state.params)
    * FLAGS.num_samples
    * (FLAGS.num_images)
  )
  figures = {
    "model": run.config.model.name,
    "num_images": FLAGS.num_images,
    "num_samples": FLAGS.num_samples,
    "seconds": seconds,
    "decoder_gflops_per_second": flops / seconds / 1e9,
    "matmul_peak_gflops_per_second": peak,
    "share_of_peak": flops / seconds / 1e9 / peak,
    "seconds_per_10000_images": seconds * 10_000 / FLAGS.num_images,
    "devices": jax.device_count(),
    "backend": jax.default_backend(),
  }
  print(json.dumps(figures, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(figures, f, indent=2)
  return 0


if __name__ == "__main__":
  app.run(main)
