r"""Prints a stored benchmark result as the Markdown table
benchmarks/README.md shows, so that no figure there is typed by hand.

    python benchmarks/tables.py benchmarks/results/vs_pytorch_cpu_2cores.json

A results file is named `<benchmark>_<machine>.json`; the benchmark, the
longest name in `TABLES` that the file name starts with, picks the table.
Reads JSON only: no JAX, no PyTorch.
"""

from collections.abc import Callable
import json
import os
import sys


def number(value: float) -> str:
  """Three significant figures at most, thousands separated."""
  if abs(value) >= 100:
    return f"{value:,.0f}"
  if abs(value) >= 10:
    return f"{value:.1f}"
  return f"{value:.2f}"


def machine_line(machine: dict) -> str:
  return "Machine: " + ", ".join(
    f"{key} {value}" for key, value in sorted(machine.items())
  )


def vs_pytorch(figures: dict) -> str:
  """One training step of each config (`vs_pytorch.py`), and with
  --whole_job the whole 30-epoch mnist_linear processes."""
  lines = [
    machine_line(figures["machine"]) + f"; medians of {figures['rounds']} "
    "alternating rounds.",
    "",
    "| config | vae_jax ms/step | PyTorch ms/step, all cores / 1 thread "
    "| ratio | load |",
    "| --- | ---: | ---: | ---: | ---: |",
  ]
  for result in figures["configs"]:
    ms = result["ms_per_step"]
    lines.append(
      f"| `{result['config']}` | {number(ms['vae_jax'])} | "
      f"{number(ms['pytorch'])} / {number(ms['pytorch_1_thread'])} | "
      f"{result['ratio']:.2f} | {result['load_average'][0]:.1f} |"
    )
  if "whole_job_seconds" in figures:
    lines += [
      "",
      "| the 30-epoch mnist_linear job, as a process | seconds (median) |",
      "| --- | ---: |",
    ]
    lines += [
      f"| `{name}` | {seconds:.0f} |"
      for name, seconds in figures["whole_job_seconds"].items()
    ]
  return "\n".join(lines)


def iwae_estimator(figures: dict) -> str:
  """The k-sample estimator against the matmul peak (`iwae_estimator.py`)."""
  return "\n".join(
    [
      f"Machine: {figures['backend']}, {figures['devices']} device(s).",
      "",
      "| model | k | test images | seconds | decoder GFLOP/s "
      "| fp32 matmul peak GFLOP/s | share of peak |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      f"| `{figures['model']}` | {figures['num_samples']} | "
      f"{figures['num_images']:,} | {number(figures['seconds'])} | "
      f"{number(figures['decoder_gflops_per_second'])} | "
      f"{number(figures['matmul_peak_gflops_per_second'])} | "
      f"{figures['share_of_peak']:.0%} |",
    ]
  )


def train_throughput(figures: dict) -> str:
  """Steps per second against the matmul peak (`train_throughput.py`)."""
  lines = [
    machine_line(figures["machine"]) + "; fp32 matmul peak "
    f"{number(max(figures['matmul_gflop_per_second']))} GFLOP/s.",
    "",
    "| config | ms/step | images/s | GFLOP/step | of the peak "
    "| host loop | step only |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for result in figures["configs"]:
    fraction = result["fraction_of_matmul_peak"]
    lines.append(
      f"| `{result['config']}` | "
      f"{number(result['ms_per_step']['device_loop'])} | "
      f"{result['images_per_second']:,.0f} | "
      f"{number(result['step_gflop'])} | {fraction['device_loop']:.0%} | "
      f"{fraction['host_loop']:.0%} | {fraction['step_only']:.0%} |"
    )
  return "\n".join(lines)


def vectorized_sweeps(figures: dict) -> str:
  """Studies trained vectorized against sequentially
  (`vectorized_sweeps.py`)."""
  lines = [
    machine_line(figures["machine"]) + "; fp32 matmul peak "
    f"{number(max(figures['matmul_gflop_per_second']))} GFLOP/s; "
    f"{figures['num_epochs']} epoch(s) per run.",
    "",
    "| study | runs | train s, sequential | train s, vectorized | speed-up "
    "| of the peak, sequential / vectorized | sweep wall s, sequential "
    "/ vectorized |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for name, study in figures["studies"].items():
    sequential, vectorized = study["sequential"], study["vectorized"]
    lines.append(
      f"| {name} (`{study['config']}`) | {study['members']} | "
      f"{number(sequential['train_seconds'])} | "
      f"{number(vectorized['train_seconds'])} | "
      f"**{study['train_speedup']:.2f}x** | "
      f"{sequential['fraction_of_matmul_peak']:.0%} / "
      f"{vectorized['fraction_of_matmul_peak']:.0%} | "
      f"{number(sequential['wall_seconds_training'])} / "
      f"{number(vectorized['wall_seconds_training'])} |"
    )
  return "\n".join(lines)


def _duration(seconds: float) -> str:
  minutes = round(seconds / 60)
  return f"{minutes // 60} h {minutes % 60:02d} min"


def reproductions(figures: dict) -> str:
  """Published test NLLs against this project's runs
  (`reproductions.py`)."""
  lines = [
    machine_line(figures["machine"]) + "; dynamically binarized MNIST, "
    "test NLL in nats (lower is better).",
    "",
    "| model | trained on | obtained | published | epochs here / paper "
    "| wall time | pretrained | command |",
    "| --- | --- | ---: | ---: | --- | ---: | --- | --- |",
  ]
  for row in figures["rows"]:
    published = (
      f"{row['published']:.2f} ({row['source']})"
      if row["published"] is not None
      else row["source"]
    )
    run = row["measured"]
    if run is None:
      obtained, epochs, wall = "not measured yet", "—", "—"
    elif "test_nll_bound" in run:  # A VQ-VAE and its prior: two runs.
      terms = run["bound_terms"]
      obtained = (
        f"≤ **{run['test_nll_bound']:.2f}** (a bound: reconstruction "
        f"{terms['reconstruction']:.2f} + codes {terms['code_log_loss']:.2f})"
      )
      epochs = f"{run['vq_vae_epochs']:,} + {run['epochs']:,}"
      wall = _duration(run["vq_vae_train_seconds"] + run["train_seconds"])
      if run["resumed_at_step"] or run["vq_vae_resumed_at_step"]:
        wall += " (their last parts)"
    else:
      obtained = (
        f"**{run['test_nll']:.2f}** (k = {run['importance_samples']:,}; "
        f"−ELBO {run['test_nelbo']:.2f})"
      )
      epochs = f"{run['epochs']:,}"
      wall = _duration(run["train_seconds"])
      if run["resumed_at_step"]:
        wall += f" (its last part, from step {run['resumed_at_step']:,})"
    # docs/reproductions.md shows the table: its links start in docs/.
    pretrained = (
      f"[card](../pretrained/{row['pretrained']}/README.md)"
      if row.get("pretrained")
      else "—"
    )
    lines.append(
      f"| {row['model']} | {row['objective']} | {obtained} | {published} | "
      f"{epochs} / {row['paper_epochs']} | {wall} | {pretrained} | "
      f"`{row['command']}` |"
    )
  return "\n".join(lines)


def _optional(value: float | None, form: str) -> str:
  return "—" if value is None else form.format(value)


def vq_vae_comparison(figures: dict) -> str:
  """The VQ-VAE and its prior against VAEs (`vq_vae_comparison.py`)."""
  lines = [
    machine_line(figures["machine"]) + "; MNIST test split; samples: "
    "10,000 judged by the project's classifier.",
    "",
    "| model | trained on | test MSE | test NLL, nats | Fréchet distance "
    "| precision | recall | sharpness/test | epochs | training |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for run in figures["rows"]:
    nll = f"{run['nll']:.2f} ({run['nll_kind']})" if "nll" in run else "—"
    wall = _duration(run["train_seconds"])
    if run["resumed"]:
      wall += " (last parts)"
    lines.append(
      f"| {run['model']} | "
      f"{'binarized' if run['binarized'] else 'grey levels'} | "
      f"{_optional(run['test_mse'], '{:.5f}')} | {nll} | "
      f"{_optional(run['frechet_distance_classifier_features'], '{:.1f}')} | "
      f"{_optional(run['precision_classifier_features'], '{:.3f}')} | "
      f"{_optional(run['recall_classifier_features'], '{:.3f}')} | "
      f"{_optional(run['relative_sharpness'], '{:.2f}')} | "
      f"{' + '.join(map(str, run['epochs']))} | {wall} |"
    )
  return "\n".join(lines)


TABLES: dict[str, Callable[[dict], str]] = {
  "vs_pytorch": vs_pytorch,
  "vs_pytorch_whole_job": vs_pytorch,
  "iwae_estimator": iwae_estimator,
  "train_throughput": train_throughput,
  "vectorized_sweeps": vectorized_sweeps,
  "reproductions": reproductions,
  "vq_vae_comparison": vq_vae_comparison,
}


def table(path: str) -> str:
  """The Markdown table of the results file at `path`."""
  name = os.path.basename(path)
  benchmarks = [b for b in TABLES if name.startswith(b + "_")]
  if not benchmarks:
    raise SystemExit(
      f"tables: {name} is not named <benchmark>_<machine>.json for a "
      f"benchmark of {sorted(TABLES)}."
    )
  with open(path) as f:
    return TABLES[max(benchmarks, key=len)](json.load(f))


if __name__ == "__main__":
  if len(sys.argv) < 2:
    raise SystemExit("usage: python benchmarks/tables.py RESULTS.json ...")
  print("\n\n".join(table(path) for path in sys.argv[1:]))
