r"""Training throughput of configs, as a fraction of this machine's matmul peak.

    python benchmarks/train_throughput.py \
        --output=benchmarks/results/train_throughput_cpu_2cores.json \
        --configs=configs/mnist_linear.py,configs/mnist_convvae.py:16,configs/mnist_conv.py

Measures, in one process:
  * the fp32 throughput of a large square matmul, the best of 10 (the
    machine's practical peak for dense math), before the configs and after
    each; fractions are of the best of these;
  * per config, the FLOPs of one compiled train step (XLA's cost analysis)
    and the steady-state time per step (compilation and warm-up excluded)
    of three ways to run it:
      - `device_loop`: the split held on the device, steps run as one
        compiled loop (`vae_jax.data.device_held`, what training uses for
        MNIST),
        compiled and called for the steps between the host's stops as
        training does (XLA compiles a step inside the loop differently from
        a lone step: XLA:CPU's strided-conv gradients were 20x slower there);
      - `host_loop`: one jitted step per batch from the host pipeline,
        prefetched to the device (the path of streamed datasets);
      - `step_only`: one jitted step per batch already on the device, so
        the difference to `host_loop` is the input pipeline's cost;
  * where an epoch's time goes: the steps, the host pipeline alone (one
    batch at a time, nothing else running), evaluation of the test split
    (held on the device as training does, and batch by batch from the
    host), the image grids and a checkpoint save.
  * a jax.profiler trace of the device loop, read back as milliseconds per
    step of each kind of work (matmuls, the optimizer update, the rest of
    the loss and its gradient, random numbers, ...) summed over the cores,
    and the cores' time in no XLA op (tracing adds a little to every op).
It prints the figures and writes them as JSON with --output. Not a test:
timings depend on the machine and on what else runs on it.
"""

import collections
import functools
import glob
import gzip
import json
import os
import platform
import re
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
from benchmarks.measure import load_config  # noqa: E402
from benchmarks.measure import matmul_flops_per_second  # noqa: E402
from benchmarks.measure import median_seconds  # noqa: E402
from benchmarks.measure import step_flops  # noqa: E402
from vae_jax.core import checkpoints  # noqa: E402
from vae_jax.core import sharding  # noqa: E402
from vae_jax.data import device_held  # noqa: E402
from vae_jax.data import pipeline  # noqa: E402
from vae_jax.trainers import loop  # noqa: E402
from vae_jax.trainers import parts  # noqa: E402

flags.DEFINE_list(
  "configs",
  ["configs/mnist_linear.py"],
  "Config files, each optionally followed by :ARG.",
)
flags.DEFINE_float(
  "seconds", 10.0, "Target time of each timed run; steps follow from it."
)
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_integer("matmul_size", 2048, "Side of the square peak matmul.")
flags.DEFINE_string(
  "compute_dtype", None, "Overrides each config's compute_dtype."
)
flags.DEFINE_string(
  "profile_dir",
  None,
  "Writes a jax.profiler trace of each config's device "
  "loop there (open with TensorBoard's profile plugin).",
)
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
FLAGS = flags.FLAGS


# Kinds of work in a profile, by the HLO op's `op_name` metadata, checked in
# this order; ops that are (or fuse) a dot or a convolution are 'matmuls',
# and those from outside the train step the loop's own.
OP_KINDS = (
  ("optimizer update", ("/cond/",)),
  ("random numbers", ("_normal", "threefry", "random_bits")),
  ("finite check", ("is_finite", "reduce_and")),
)
LOOP_KIND = "batch gather, loop bookkeeping"
OTHER_KIND = "loss, activations, their gradients"


def op_kinds(hlo_text: str) -> dict[str, str]:
  """Each HLO op of a compiled module's text -> its kind of work."""
  bodies, current = {}, None
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if header:
      current = bodies.setdefault(header.group(1), [])
    elif current is not None:
      current.append(line)
  kinds = {}
  for lines in bodies.values():
    for line in lines:
      match = re.match(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", line)
      if not match:
        continue
      called = re.search(r"calls=%?([\w.\-]+)", line)
      text = line + "".join(bodies.get(called.group(1), [])) if called else line
      op_name = (re.search(r'op_name="([^"]*)"', line) or [None, ""])[1]
      if re.search(r" (dot|convolution)\(", text):
        kinds[match.group(1)] = "matmuls"
      elif op_name and "/train_step/" not in op_name:
        kinds[match.group(1)] = LOOP_KIND
      else:
        kinds[match.group(1)] = next(
          (
            kind
            for kind, keys in OP_KINDS
            if any(key in op_name for key in keys)
          ),
          OTHER_KIND,
        )
  return kinds


def self_seconds(events: list[dict]) -> dict[str, float]:
  """Seconds each HLO op ran, less the ops nested in it, over all threads."""
  by_thread = collections.defaultdict(list)
  for event in events:
    if event.get("ph") == "X" and "hlo_op" in event.get("args", {}):
      by_thread[event["tid"]].append(event)
  totals = collections.Counter()
  for thread_events in by_thread.values():
    stack = []
    for event in sorted(thread_events, key=lambda e: (e["ts"], -e["dur"])):
      while stack and stack[-1]["ts"] + stack[-1]["dur"] <= event["ts"]:
        stack.pop()
      if stack:
        totals[stack[-1]["name"]] -= event["dur"] / 1e6
      totals[event["name"]] += event["dur"] / 1e6
      stack.append(event)
  return totals


def profile_by_kind(runner, state, num_steps: int, trace_dir: str):
  """ms per step of each kind of work in the device loop, from a
  jax.profiler trace, and the cores' time spent in no XLA op."""
  kinds = op_kinds(runner.lower(state, 0, num_steps).compile().as_text())
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    start = time.perf_counter()
    state, (metrics, _) = runner(state, 0, num_steps)
    jax.block_until_ready(metrics)
    wall = time.perf_counter() - start
  trace = max(
    glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
    key=os.path.getmtime,
  )
  with gzip.open(trace) as f:
    events = json.load(f)["traceEvents"]
  per_kind = collections.Counter()
  for name, seconds in self_seconds(events).items():
    per_kind[kinds.get(name, OTHER_KIND)] += seconds
  busy = sum(per_kind.values())
  per_step = {
    kind: seconds / num_steps * 1e3 for kind, seconds in per_kind.most_common()
  }
  # Both cores' time, minus the ops': waiting, runtime overhead, or
  # another process.
  per_step["no XLA op running (core-ms)"] = (
    (wall * os.cpu_count() - busy) / num_steps * 1e3
  )
  return state, {
    "wall_ms_per_step": wall / num_steps * 1e3,
    "core_ms_per_step": per_step,
  }


class Setup:
  """A config's model, fresh state, jitted steps and host batches."""

  def __init__(self, config):
    self.config = config
    self.data = pipeline.prepare(config.input)
    self.image_shape = self.data.image_shape
    self.mesh = sharding.make_mesh()
    self.replicated = sharding.replicated(self.mesh)
    self.data_sharding = sharding.batch_sharded(self.mesh)
    self.parts = parts.assemble(config, self.image_shape)
    self.trainer = self.parts.trainer
    self.local_batch_size = sharding.local_batch_size(config.batch_size)
    self.steps_per_epoch = self.data.steps_per_epoch(self.local_batch_size)
    # Uncompiled, for the device loops; compiled, for one step at a time.
    self.steps = self.trainer.make_steps(config, self.parts)
    self.train_step = sharding.jit_train_step(self.steps[0], self.mesh)
    self.eval_step = sharding.jit_eval_step(self.steps[1], self.mesh)
    self.rng = jax.device_put(jax.random.PRNGKey(1), self.replicated)

  def fresh_state(self):
    return jax.jit(
      functools.partial(
        self.trainer.create_train_state,
        self.config,
        self.parts,
        self.image_shape,
        total_steps=10**6,
      ),
      out_shardings=self.replicated,
    )(jax.random.PRNGKey(0))

  def host_batches(self):
    return self.data.train_batches(self.local_batch_size, seed=0)


def time_steps(run, num_steps: int, repeats: int) -> float:
  """Median seconds per step of `run(num_steps)`, after one warm-up call."""
  run(num_steps)
  return median_seconds(lambda: run(num_steps), repeats) / num_steps


def benchmark_config(spec: str) -> dict:
  config = load_config(spec)
  if FLAGS.compute_dtype:
    config.compute_dtype = FLAGS.compute_dtype
  setup = Setup(config)
  batches = [
    sharding.to_global(b, setup.data_sharding)
    for _, b in zip(range(20), setup.host_batches())
  ]
  state = setup.fresh_state()
  flops = step_flops(setup.train_step, state, batches[0], setup.rng)

  # A first estimate of the step time sizes the timed runs.
  start = time.perf_counter()
  for batch in batches[:3]:
    state, metrics = setup.train_step(state, batch, setup.rng)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in batches[:3]:
    state, metrics = setup.train_step(state, batch, setup.rng)
  jax.block_until_ready(metrics)
  estimate = (time.perf_counter() - start) / 3
  num_steps = int(np.clip(FLAGS.seconds / estimate, 5, setup.steps_per_epoch))

  def step_only(n):
    nonlocal state
    for i in range(n):
      state, metrics = setup.train_step(
        state, batches[i % len(batches)], setup.rng
      )
    return metrics

  host_runner = device_held.HostSteps(
    sharding.prefetch_to_mesh(setup.host_batches(), setup.data_sharding),
    setup.train_step,
    setup.rng,
  )

  def host_loop(n):
    nonlocal state
    for i in range(n):
      state, metrics = host_runner(state, i, i + 1)
    return metrics

  # As train_and_evaluate runs it: compiled for the steps between the
  # host's stops (log, checkpoint, epoch end), called once per stretch.
  loop_steps = min(
    config.log_every_steps, config.checkpoint_every_steps, setup.steps_per_epoch
  )
  device_runner = device_held.DeviceSteps(
    setup.data.device_split(),
    setup.steps[0],
    setup.mesh,
    setup.local_batch_size,
    seeds=[0],
    rng=setup.rng,
    max_steps=loop_steps,
  )

  def device_loop(n):
    nonlocal state
    for first in range(0, n, loop_steps):
      state, metrics = device_runner(state, first, min(first + loop_steps, n))
    return metrics

  host_batches = setup.host_batches()

  def input_only(n):
    for _ in range(n):
      batch = next(host_batches)
    return batch

  seconds = {
    name: time_steps(fn, num_steps, FLAGS.repeats)
    for name, fn in [
      ("device_loop", device_loop),
      ("host_loop", host_loop),
      ("step_only", step_only),
      ("input_pipeline_only", input_only),
    ]
  }
  trace_dir = os.path.join(
    FLAGS.profile_dir or tempfile.mkdtemp(), os.path.basename(spec)
  )
  state, profile = profile_by_kind(
    device_runner, state, min(num_steps, loop_steps), trace_dir
  )

  # Once per epoch, besides the steps.
  eval_ds = setup.data.eval_dataset(setup.local_batch_size)
  evaluate = functools.partial(
    loop.evaluate,
    setup.eval_step,
    state,
    eval_ds,
    setup.rng,
    setup.data_sharding,
  )
  evaluate()  # Compiles, and fills the eval dataset's cache.
  grids = setup.trainer.make_image_grids(
    config,
    setup.parts,
    next(eval_ds.as_numpy_iterator())["image"][: config.num_image_samples // 2],
    setup.rng,
  )
  grids(state)
  eval_sums = device_held.device_evaluator(
    eval_ds, setup.steps[1], setup.mesh, setup.rng
  )

  def evaluate_on_device():
    return loop.per_image_means(eval_sums(state))

  evaluate_on_device()
  # One timed evaluation each: a conv model's takes tens of seconds.
  per_epoch = {
    "evaluation_host": median_seconds(evaluate, 1),
    "evaluation_device": median_seconds(evaluate_on_device, 1),
    "image_grids": median_seconds(lambda: grids(state), FLAGS.repeats),
  }
  with tempfile.TemporaryDirectory() as workdir:
    manager = checkpoints.make_manager(workdir, config)

    saved_steps = iter(range(int(state.step) + 1, 10**9))

    def save():
      checkpoints.save(
        manager, state.replace(step=next(saved_steps)), setup.rng
      )
      manager.wait_until_finished()

    per_epoch["checkpoint_save"] = median_seconds(save, FLAGS.repeats)
    checkpoints.close(manager)

  step_seconds = seconds["device_loop"]
  epoch_steps = setup.steps_per_epoch * step_seconds
  return {
    "config": spec,
    "compute_dtype": config.compute_dtype,
    "batch_size": config.batch_size,
    "steps_timed": num_steps,
    "step_gflop": flops / 1e9,
    "ms_per_step": {k: v * 1e3 for k, v in seconds.items()},
    "images_per_second": config.batch_size / step_seconds,
    "achieved_gflop_per_second": flops / step_seconds / 1e9,
    "fraction_of_matmul_peak": {},  # Filled in by main.
    "profile_of_device_loop": profile,
    "epoch_seconds": {
      "steps_device_loop": epoch_steps,
      "steps_host_loop": setup.steps_per_epoch * seconds["host_loop"],
      **per_epoch,
    },
  }


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save.
  # The peak drifts with the machine's load and clock: fractions use the
  # best seen, before the configs and after each.
  peaks = [matmul_flops_per_second(FLAGS.matmul_size)]
  results = []
  for spec in FLAGS.configs:
    results.append(benchmark_config(spec))
    peaks.append(matmul_flops_per_second(FLAGS.matmul_size))
  peak = max(peaks)
  for figures in results:
    flops_per_step = figures["step_gflop"] * 1e9
    for path, ms in figures["ms_per_step"].items():
      if path != "input_pipeline_only":
        figures["fraction_of_matmul_peak"][path] = (
          flops_per_step / (ms / 1e3) / peak
        )
  figures = {
    "machine": {
      "platform": jax.devices()[0].platform,
      "device_kind": jax.devices()[0].device_kind,
      "devices": jax.device_count(),
      "cpu_count": os.cpu_count(),
      "processor": platform.processor() or platform.machine(),
      "jax": jax.__version__,
    },
    # Before the configs, then after each.
    "matmul_gflop_per_second": [p / 1e9 for p in peaks],
    "configs": results,
  }
  print(json.dumps(figures, indent=2))
  print(
    "| config | ms/step | images/s | GFLOP/step | GFLOP/s | fraction of "
    f"{peak / 1e9:.0f} GFLOP/s |"
  )
  for result in results:
    print(
      f"| {result['config']} | {result['ms_per_step']['device_loop']:.1f} "
      f"| {result['images_per_second']:,.0f} | {result['step_gflop']:.2f} "
      f"| {result['achieved_gflop_per_second']:.0f} "
      f"| {result['fraction_of_matmul_peak']['device_loop']:.0%} |"
    )
  if FLAGS.output:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
      json.dump(figures, f, indent=2)


if __name__ == "__main__":
  app.run(main)
