r"""Breaks the code on purpose, one way at a time, and checks the suite sees it.

    python tests/break_on_purpose.py [NAME ...]

Each mutation below is a bug the suite claims to catch, with the tests that
must catch it and why each must fail: a pattern its failure report must
match, so that a test failing for an unrelated reason (an import error, a
timeout) does not count. First the tests run on a copy of the checkout as it
is, and if any fails this stops there, naming it: a test that fails anyway
catches nothing. Then for each mutation the copy gets its one edit, its tests
run, and each must fail for its reason. It exits 1 if any mutation went
unnoticed, and 2 if a mutation no longer applies (the code moved) or a test
failed on the unmutated code. CI runs it after the suite (.ci/run).

All runs share one XLA compilation cache: its keys hold the whole program,
so a mutation compiles anew the programs it changes, and reuses the
baseline's executables of the others.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NoReturn
import xml.etree.ElementTree as ET

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where tests/conftest.py keeps its XLA compilation cache.
COMPILATION_CACHE_VARIABLE = "VAE_JAX_TESTS_COMPILATION_CACHE"


@dataclasses.dataclass(frozen=True)
class Catch:
  test: str  # A pytest node id, or a file: some test under it must fail,
  reason: str  # its failure report matching this regular expression.


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  path: str  # Relative to the repository root.
  old: str  # Replaced once; it must occur exactly once.
  new: str
  catches: tuple[Catch, ...]


def numbers_differ(what: str) -> str:
  """The reason of a failed np.testing.assert_allclose whose err_msg
  matches `what`."""
  return rf"Not equal to tolerance.*\n.*{what}"


MUTATIONS = (
  Mutation(
    "resume_replays_a_batch",
    "vae_jax/trainers/loop.py",
    "  step = start_step\n",
    # The step before the checkpoint is trained again on resume.
    "  step = max(start_step - 1, 0)\n",
    (
      Catch(
        "tests/test_exact_resume.py",
        # Its final step: one step trained twice ends a step late.
        r"assert 11 == 10",
      ),
      Catch(
        "tests/test_preemption.py::"
        "test_sigterm_saves_exits_75_and_resumes_identically",
        r"assert \{'test_\w+': .*\} == ",  # The test metrics.
      ),
    ),
  ),
  Mutation(
    "non_finite_check_skipped",
    "vae_jax/core/finite_guard.py",
    "  return jnp.isfinite(loss + total)",
    # Every step passes, whatever its loss and gradients.
    "  return jnp.isfinite(loss + total) | True",
    (
      Catch("tests/test_finite_guard.py", r"assert not True"),
      Catch(
        "tests/test_loop.py::test_non_finite_step_is_skipped_but_counted",
        r"assert not True",
      ),
      Catch(
        "tests/test_adversarial.py::"
        "test_non_finite_step_is_skipped_but_counted",
        r"assert not True",
      ),
    ),
  ),
  Mutation(
    "wrong_parameter_count",
    "vae_jax/models/dcgan_vae.py",
    "        features, use_bias=False, conv_impl=self.conv_impl\n",
    "        features, use_bias=True, conv_impl=self.conv_impl\n",
    (
      Catch(
        "tests/test_configs.py::test_config_model_has_the_listing_params",
        r"assert \d+ == \d+",
      ),
    ),
  ),
  Mutation(
    "checkpoint_committed_before_its_data",
    "vae_jax/core/checkpoints.py",
    "    create=True,\n",
    # Each step written in its final folder from the start, which exists
    # before its data does (Orbax's commit file, meant for buckets).
    "    create=True,\n"
    "    temporary_path_class=ocp.path.atomicity.CommitFileTemporaryPath,\n",
    (
      Catch(
        "tests/test_preemption.py::"
        "test_sigkill_inside_a_save_is_ignored_and_resumes_identically",
        # The killed save's step among the steps, under its final name.
        r"AssertionError: \[.*'6'\]",
      ),
    ),
  ),
  Mutation(
    # Other outputs are written under a temporary name, then renamed.
    "output_committed_before_its_data",
    "vae_jax/core/outputs.py",
    "      with tf.io.gfile.GFile(tmp_path, mode) as f:\n"
    "        yield f\n"
    "      tf.io.gfile.rename(tmp_path, path, overwrite=True)\n",
    # Written under its final name as it goes.
    "      with tf.io.gfile.GFile(path, mode) as f:\n        yield f\n",
    (
      Catch(
        "tests/test_outputs.py::"
        "test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary",
        r"JSONDecodeError",  # The old file, now half the new one.
      ),
    ),
  ),
  Mutation(
    "every_process_reads_the_first_share",
    "vae_jax/data/device_held.py",
    "jax.process_index() * num_local",
    # Each process gathers its batches from process 0's share.
    "0 * num_local",
    (
      Catch(
        "tests/test_multiprocess.py",
        numbers_differ("2 processes against 1"),
      ),
    ),
  ),
  Mutation(
    "skipped_step_takes_the_batchnorm_statistics",
    "vae_jax/trainers/single_network.py",
    "lambda s: s.replace(step=s.step + 1)",
    # The skipped update's statistics, computed from the non-finite batch.
    "lambda s: s.replace(step=s.step + 1, batch_stats=batch_stats)",
    (
      Catch(
        "tests/test_loop.py::"
        "test_non_finite_step_keeps_the_batchnorm_statistics",
        r"changed by a skipped step",
      ),
    ),
  ),
  Mutation(
    "k_sample_kl_summed",
    "vae_jax/objectives/iwae.py",
    "kl = -jnp.mean(log_latent_ratio, axis=0)",
    # The KL of k draws added up instead of averaged.
    "kl = -jnp.sum(log_latent_ratio, axis=0)",
    (
      Catch(
        "tests/test_iwae.py::test_reported_terms_are_means_over_the_k_draws",
        numbers_differ("kl$"),
      ),
    ),
  ),
  Mutation(
    "non_finite_streak_limit_off_by_one",
    "vae_jax/trainers/loop.py",
    "run.nonfinite_streak >= run.config.max_consecutive_nonfinite",
    # One skipped step more than the limit before the run stops.
    "run.nonfinite_streak > run.config.max_consecutive_nonfinite",
    (
      Catch(
        "tests/test_loop.py::"
        "test_exactly_max_consecutive_nonfinite_skipped_steps_stop_the_run",
        r"DID NOT RAISE.*FloatingPointError",
      ),
    ),
  ),
  Mutation(
    "non_finite_stop_printed_as_a_traceback",
    "vae_jax/cli.py",
    "    FloatingPointError,\n",
    # Not among the errors reported in one line.
    "",
    (
      Catch(
        "tests/test_cli.py::"
        "test_a_run_stopped_by_non_finite_steps_ends_in_one_line",
        r"FloatingPointError: the last 2 steps",
      ),
    ),
  ),
)


def tracked_files() -> list[str]:
  listed = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  return [
    p for p in listed.splitlines() if os.path.isfile(os.path.join(REPO_ROOT, p))
  ]


def copy_checkout(destination: str) -> None:
  for path in tracked_files():
    os.makedirs(os.path.join(destination, os.path.dirname(path)), exist_ok=True)
    shutil.copy2(os.path.join(REPO_ROOT, path), os.path.join(destination, path))


def stop(message: str) -> NoReturn:
  print(message, file=sys.stderr)
  raise SystemExit(2)


def mutated_source(mutation: Mutation, root: str) -> str:
  """The mutated text of `mutation.path` under `root`; exits (2) if its old
  text does not occur exactly once there."""
  with open(os.path.join(root, mutation.path), encoding="utf-8") as f:
    source = f.read()
  if source.count(mutation.old) != 1:
    stop(
      f"{mutation.name}: {mutation.path} no longer contains its text "
      f"once: {mutation.old.strip()!r}"
    )
  return source.replace(mutation.old, mutation.new)


@dataclasses.dataclass(frozen=True)
class Outcome:
  returncode: int
  failures: dict[str, str]  # Node id -> report of each failed test.
  passed: list[str]  # Node ids.
  summary: str  # pytest's last line.
  errors: list[str]  # pytest's own, as "ERROR: not found: <test>".


def node_id(case: ET.Element) -> str:
  """A pytest node id from a JUnit XML testcase (xunit1: with its file)."""
  path = case.get("file", "")
  module = path.removesuffix(".py").replace("/", ".")
  classes = case.get("classname", "").removeprefix(module).strip(".")
  return "::".join([path, *filter(None, classes.split(".")), case.get("name")])


def run_tests(root: str, tests: list[str], env: dict[str, str]) -> Outcome:
  """`tests` run under `root` by pytest: two workers when they span files."""
  files = {test.split("::")[0] for test in tests}
  report = os.path.join(root, "break_on_purpose.xml")
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "pytest",
      "-q",
      "-p",
      "no:cacheprovider",
      "-n",
      "2" if len(files) > 1 else "0",
      "--tb=short",
      f"--junitxml={report}",
      "-o",
      "junit_family=xunit1",
      *tests,
    ],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    check=False,
  )
  failures, passed = {}, []
  if os.path.exists(report):
    for case in ET.parse(report).iter("testcase"):
      reports = [
        f"{element.get('message', '')}\n{element.text or ''}"
        for element in case
        if element.tag in ("failure", "error")
      ]
      if reports:
        failures[node_id(case)] = "\n".join(reports)
      elif not any(element.tag == "skipped" for element in case):
        passed.append(node_id(case))
    os.remove(report)
  lines = (result.stdout + result.stderr).strip().splitlines()
  return Outcome(
    result.returncode,
    failures,
    passed,
    (lines or ["no output"])[-1],
    [line for line in lines if line.startswith("ERROR:")],
  )


def under(node: str, test: str) -> bool:
  return node == test or node.startswith((f"{test}::", f"{test}["))


def first_line(report: str) -> str:
  return next((line for line in report.splitlines() if line.strip()), "")


def check_baseline(
  root: str, mutations: list[Mutation], env: dict[str, str]
) -> None:
  """Runs every mutation's tests on the unmutated copy; exits (2), naming
  them, if any fails."""
  tests = sorted({c.test for m in mutations for c in m.catches})
  # A node inside a file already listed would run twice.
  tests = [t for t in tests if not any(under(t, o) for o in tests if o != t)]
  start = time.perf_counter()
  outcome = run_tests(root, tests, env)
  print(
    f"unmutated code ({time.perf_counter() - start:.0f} s): {outcome.summary}"
  )
  ran = [*outcome.passed, *outcome.failures]
  missing = [t for t in tests if not any(under(n, t) for n in ran)]
  if outcome.returncode == 0 and not outcome.failures and not missing:
    return
  if outcome.returncode > 1:  # Not a test's failure: pytest's own.
    print(f"  pytest exited {outcome.returncode}: a test renamed or gone?")
  for line in outcome.errors:
    print(f"  {line}")
  for node, report in outcome.failures.items():
    print(f"  FAILS UNMUTATED: {node}: {first_line(report)}")
  for test in missing:
    print(f"  RAN NO TEST: {test}")
  stop(
    "not every test passed on the unmutated code: one that fails anyway "
    "catches nothing"
  )


def caught(mutation: Mutation, root: str, env: dict[str, str]) -> bool:
  """Whether each of the mutation's catches failed for its reason."""
  path = os.path.join(root, mutation.path)
  with open(path, encoding="utf-8") as f:
    original = f.read()
  mutated = mutated_source(mutation, root)
  with open(path, "w", encoding="utf-8") as f:
    f.write(mutated)
  try:
    outcome = run_tests(root, [c.test for c in mutation.catches], env)
  finally:
    with open(path, "w", encoding="utf-8") as f:
      f.write(original)
  every = True
  for catch in mutation.catches:
    reports = [r for n, r in outcome.failures.items() if under(n, catch.test)]
    matched = [
      m.group(0)
      for r in reports
      if (m := re.search(catch.reason, r, re.MULTILINE))
    ]
    if outcome.returncode == 1 and matched:
      print(f"  caught by {catch.test}: {' '.join(matched[0].split())}")
      continue
    every = False
    why = (
      f"failed otherwise: {first_line(reports[0])}"
      if reports
      else f"no failure (pytest: {outcome.summary})"
    )
    print(f"  NOT CAUGHT by {catch.test}: {why}")
  return every


def main(names: list[str]) -> int:
  sys.stdout.reconfigure(line_buffering=True)  # Progress, when logged.
  unknown = set(names) - {m.name for m in MUTATIONS}
  if unknown:
    stop(f"no mutation named {', '.join(sorted(unknown))}")
  chosen = [m for m in MUTATIONS if not names or m.name in names]
  for mutation in chosen:  # Before minutes of tests: each still applies.
    mutated_source(mutation, REPO_ROOT)
  started = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="break_on_purpose_") as work:
    root = os.path.join(work, "checkout")
    copy_checkout(root)
    cache = os.path.join(work, "xla_cache")
    os.makedirs(cache)
    env = {
      **os.environ,
      # The copy's vae_jax, not an installed one, for the tests and the
      # processes they start.
      "PYTHONPATH": root,
      COMPILATION_CACHE_VARIABLE: cache,
      # Bytecode is matched to its source by size and mtime in whole
      # seconds: a file mutated and restored at the same size within a
      # second would run the mutant's.
      "PYTHONDONTWRITEBYTECODE": "1",
    }
    check_baseline(root, chosen, env)
    unnoticed = []
    for mutation in chosen:
      print(f"{mutation.name} ({mutation.path}):")
      start = time.perf_counter()
      if not caught(mutation, root, env):
        unnoticed.append(mutation.name)
      print(f"  {time.perf_counter() - start:.0f} s")
  print(
    f"{len(chosen) - len(unnoticed)} of {len(chosen)} mutations caught in "
    f"{time.perf_counter() - started:.0f} s"
    + (f"; not caught: {', '.join(unnoticed)}" if unnoticed else "")
  )
  return 1 if unnoticed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
