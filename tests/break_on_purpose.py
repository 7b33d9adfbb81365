r"""Breaks the code on purpose, one way at a time, and checks the suite sees it.

    python tests/break_on_purpose.py [NAME ...]

Each mutation below is a bug the suite claims to catch. For each, this copies
the checkout to a temporary directory, applies the one edit there, runs the
tests that should catch it, and reports whether they failed. It exits 1 if
any mutation went unnoticed (or no longer applies: the code moved). It is a
check of the tests, run by hand; the suite does not run it.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  path: str  # Relative to the repository root.
  old: str  # Replaced once; it must occur exactly once.
  new: str
  tests: tuple[str, ...]  # pytest node ids that must fail.


MUTATIONS = (
  Mutation(
    "resume_replays_a_batch",
    "vae_jax/trainers/loop.py",
    "  step = start_step\n",
    # The step before the checkpoint is trained again on resume.
    "  step = max(start_step - 1, 0)\n",
    (
      "tests/test_device_held.py::"
      "test_run_stopped_mid_epoch_between_checkpoints_resumes_exactly",
      "tests/test_preemption.py::"
      "test_sigterm_saves_exits_75_and_resumes_identically",
    ),
  ),
  Mutation(
    "non_finite_check_skipped",
    "vae_jax/core/finite_guard.py",
    "  return jnp.isfinite(loss + total)",
    # Every step passes, whatever its loss and gradients.
    "  return jnp.isfinite(loss + total) | True",
    (
      "tests/test_finite_guard.py",
      "tests/test_loop.py::test_non_finite_step_is_skipped_but_counted",
      "tests/test_adversarial.py::test_non_finite_step_is_skipped_but_counted",
    ),
  ),
  Mutation(
    "wrong_parameter_count",
    "vae_jax/models/dcgan_vae.py",
    "        features, use_bias=False, conv_impl=self.conv_impl\n",
    "        features, use_bias=True, conv_impl=self.conv_impl\n",
    ("tests/test_configs.py::test_config_model_has_the_listing_params",),
  ),
  Mutation(
    "checkpoint_committed_before_its_data",
    "vae_jax/core/checkpoints.py",
    "    create=True,\n  )\n",
    # Each step written in its final folder from the start, which exists
    # before its data does (Orbax's commit file, meant for buckets).
    "    create=True,\n"
    "    temporary_path_class=ocp.path.atomicity.CommitFileTemporaryPath,\n"
    "  )\n",
    (
      "tests/test_preemption.py::"
      "test_sigkill_inside_a_save_is_ignored_and_resumes_identically",
    ),
  ),
  Mutation(
    # Other outputs are written under a temporary name, then renamed.
    "output_committed_before_its_data",
    "vae_jax/core/outputs.py",
    "    with tf.io.gfile.GFile(tmp_path, mode) as f:\n"
    "      yield f\n"
    "    tf.io.gfile.rename(tmp_path, path, overwrite=True)\n",
    # Written under its final name as it goes.
    "    with tf.io.gfile.GFile(path, mode) as f:\n      yield f\n",
    (
      "tests/test_outputs.py::"
      "test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary",
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


def apply(mutation: Mutation, root: str) -> None:
  path = os.path.join(root, mutation.path)
  with open(path, encoding="utf-8") as f:
    source = f.read()
  if source.count(mutation.old) != 1:
    raise SystemExit(
      f"{mutation.name}: {mutation.path} no longer contains "
      f"its line once: {mutation.old.strip()!r}"
    )
  with open(path, "w", encoding="utf-8") as f:
    f.write(source.replace(mutation.old, mutation.new))


def caught(mutation: Mutation) -> bool:
  """Whether every one of the mutation's tests fails on the mutated copy."""
  with tempfile.TemporaryDirectory(prefix=f"mutant_{mutation.name}_") as root:
    copy_checkout(root)
    apply(mutation, root)
    # The copy's vae_jax, not an installed one, for the tests and the
    # processes they start.
    env = {**os.environ, "PYTHONPATH": root}
    failed = []
    for test in mutation.tests:
      result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", test],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
      )
      summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
      print(f"  {test}: {summary}")
      # 1: tests ran and failed (not an error in the harness or collection).
      failed.append(result.returncode == 1)
    return all(failed)


def main(names: list[str]) -> int:
  chosen = [m for m in MUTATIONS if not names or m.name in names]
  unnoticed = []
  for mutation in chosen:
    print(f"{mutation.name} ({mutation.path}):")
    if caught(mutation):
      print("  caught")
    else:
      print("  NOT CAUGHT")
      unnoticed.append(mutation.name)
  print(
    f"{len(chosen) - len(unnoticed)} of {len(chosen)} mutations caught"
    + (f"; not caught: {', '.join(unnoticed)}" if unnoticed else "")
  )
  return 1 if unnoticed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
