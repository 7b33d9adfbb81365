r"""Sweeps trained as one vmapped program against one run after another.

    python benchmarks/vectorized_sweeps.py --num_epochs=1 \
        --output=benchmarks/results/vectorized_sweeps_cpu_2cores.json

For each study, in one process, on the same data: the grid of
`vae_jax.sweep` trained run after run, then the same grid with
`--vectorize` (`trainers.members`), each in a fresh workdir, then (with
--analyze) each run analyzed as the sweep analyzes it. It reports
  * train seconds: sequential, the sum of its runs' `train_seconds`;
    vectorized, the loop that its members share (each member's
    `train_seconds`), and their ratio;
  * the wall time of each whole sweep: building, compiling and training
    every run, and with --analyze analyzing each;
  * the FLOP rate of the training loops, as a fraction of the best fp32
    matmul rate of this process: XLA's cost analysis of one member's step,
    times the steps and the members, over the train seconds.
Not a test: timings depend on the machine and on what else runs on it.
"""

import json
import os
import platform
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# The repository's own modules, importable when run as a script.
from benchmarks import measure  # noqa: E402
from vae_jax.data import pipeline  # noqa: E402
from vae_jax.sweeps import runner  # noqa: E402
from vae_jax.trainers import loop  # noqa: E402
from vae_jax.trainers import parts as parts_lib  # noqa: E402

# {name: (config, --sweep flags)}: the three studies.
STUDIES = {
  # Seed 002's KL study: six β of the seed's conv VAE, batch 16, augmented.
  "seed002_kl": (
    "configs/mnist_convvae_seed.py:16",
    ["loss.kl_weight=5e-1,5e-2,5e-3,5e-4,5e-5,5e-6"],
  ),
  "mnist_linear_8_seeds": ("configs/mnist_linear.py", ["seed=0,1,2,3,4,5,6,7"]),
  # Burda et al.'s one-layer VAE (k = 1), batch 20.
  "iwae_vae_4_seeds": (
    "configs/iwae_paper.py:vae,k=1,layers=1",
    ["seed=0,1,2,3"],
  ),
}

flags.DEFINE_list("studies", list(STUDIES), "Which of STUDIES to run.")
flags.DEFINE_integer("num_epochs", 1, "Epochs of every run.")
flags.DEFINE_bool("analyze", False, "Also analyze every run, and time it.")
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
FLAGS = flags.FLAGS


def _results(run_dirs: list[str]) -> list[dict]:
  results = []
  for run_dir in run_dirs:
    with open(os.path.join(run_dir, "results.json")) as f:
      results.append(json.load(f))
  return results


def _step_flops(config) -> float:
  """FLOPs of one member's train step, from XLA's cost analysis."""
  data = pipeline.prepare(config.input)
  parts = parts_lib.assemble(config, data.image_shape)
  # Shapes suffice: the step is lowered and costed, never run.
  state = loop.abstract_train_state(config, data.image_shape)
  batch = next(iter(data.train_batches(config.batch_size, config.seed)))
  train_step = jax.jit(parts.trainer.make_steps(config, parts)[0])
  return measure.step_flops(train_step, state, batch, jax.random.PRNGKey(1))


def _sweep(configs, run_dirs, vectorize: bool, analyze: bool) -> dict:
  start = time.perf_counter()
  failures = runner.train_runs(configs, run_dirs, vectorize, analyze=False)
  if failures:
    raise SystemExit(f"runs stopped early: {failures}")
  trained = time.perf_counter()
  if analyze:
    runner.analyze_runs(run_dirs)
  results = _results(run_dirs)
  train_seconds = [r["train_seconds"] for r in results]
  return {
    # A group's members share one loop, and its time.
    "train_seconds": (
      float(np.max(train_seconds))
      if vectorize
      else float(np.sum(train_seconds))
    ),
    "wall_seconds_training": trained - start,
    "wall_seconds_analysis": time.perf_counter() - trained if analyze else None,
    "steps": results[0]["steps"],
    "trained_together": [r["trained_together"] for r in results],
    "test_loss": [r["test_loss"] for r in results],
  }


def benchmark_study(name: str, work: str, peak: float) -> dict:
  spec, sweep_flags = STUDIES[name]
  config = measure.load_config(spec)
  config.num_epochs = FLAGS.num_epochs
  runs = runner.make_runs(config, sweep_flags)
  configs = [runner.run_config(config, run.overrides) for run in runs]
  figures = {"config": spec, "sweep": sweep_flags, "members": len(runs)}
  for mode, vectorize in (("sequential", False), ("vectorized", True)):
    run_dirs = [os.path.join(work, name, mode, run.name) for run in runs]
    logging.info("%s, %s: %d runs.", name, mode, len(runs))
    figures[mode] = _sweep(configs, run_dirs, vectorize, FLAGS.analyze)
  flops = _step_flops(configs[0]) * figures["sequential"]["steps"] * len(runs)
  for mode in ("sequential", "vectorized"):
    rate = flops / figures[mode]["train_seconds"]
    figures[mode]["gflop_per_second"] = rate / 1e9
    figures[mode]["fraction_of_matmul_peak"] = rate / peak
  figures["train_speedup"] = (
    figures["sequential"]["train_seconds"]
    / figures["vectorized"]["train_seconds"]
  )
  figures["wall_speedup"] = (
    figures["sequential"]["wall_seconds_training"]
    / figures["vectorized"]["wall_seconds_training"]
  )
  return figures


def main(argv):
  del argv
  peaks = [measure.matmul_flops_per_second(2048)]
  figures = {
    "machine": {
      "platform": jax.default_backend(),
      "devices": jax.device_count(),
      "cpu_count": os.cpu_count(),
      "processor": platform.machine(),
      "jax": jax.__version__,
    },
    "num_epochs": FLAGS.num_epochs,
    "studies": {},
  }
  work = tempfile.mkdtemp(prefix="vectorized_sweeps_")
  try:
    for name in FLAGS.studies:
      figures["studies"][name] = benchmark_study(name, work, max(peaks))
      peaks.append(measure.matmul_flops_per_second(2048))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  figures["matmul_gflop_per_second"] = [p / 1e9 for p in peaks]
  print(json.dumps(figures, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(figures, f, indent=2)


if __name__ == "__main__":
  app.run(main)
