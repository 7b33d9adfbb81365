"""launch/: usage on --help, and the commands the cluster scripts would run.

tpu_pod.sh and slurm.sbatch need a cloud project or a cluster; their
--dry_run prints each command instead, which is what these tests read.
local_multiprocess.sh runs for real in test_multiprocess.py.
"""

import os
import shlex
import subprocess

import pytest

from conftest import REPO_ROOT

SCRIPTS = ("local_multiprocess.sh", "tpu_pod.sh", "slurm.sbatch")


def run_script(
  name: str, *args: str, **env: str
) -> subprocess.CompletedProcess:
  return subprocess.run(
    ["bash", os.path.join(REPO_ROOT, "launch", name), *args],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
    env={**os.environ, **env},
  )


def commands(output: str) -> list[list[str]]:
  """Each printed command as its argv; comments are skipped."""
  return [
    shlex.split(line)
    for line in output.splitlines()
    if line.strip() and not line.startswith("#")
  ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse_and_print_usage_on_help(name):
  syntax = subprocess.run(
    ["bash", "-n", os.path.join(REPO_ROOT, "launch", name)],
    capture_output=True,
    text=True,
    check=False,
  )
  assert syntax.returncode == 0, syntax.stderr
  result = run_script(name, "--help")
  assert result.returncode == 0, result.stderr
  assert "Usage:" in result.stdout and "set -euo" not in result.stdout


def test_tpu_pod_creates_installs_and_trains_on_all_workers():
  result = run_script(
    "tpu_pod.sh",
    "--dry_run",
    "--name=pod",
    "--zone=europe-west4-a",
    "--accelerator_type=v5litepod-16",
    "--project=proj",
    "--spot",
    "--workdir=gs://bucket/run 1",
    "--",
    "--config=configs/mnist_linear.py",
    "--config.num_epochs=3",
  )
  assert result.returncode == 0, result.stderr
  create, pack, copy, install, train = commands(result.stdout)
  assert create[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert {
    "pod",
    "--zone=europe-west4-a",
    "--project=proj",
    "--spot",
    "--accelerator-type=v5litepod-16",
  } <= set(create)
  assert "git" in pack and copy[4] == "scp" and "--worker=all" in copy
  assert "--worker=all" in install and "pip install" in install[-1]
  assert train[4] == "ssh" and "--worker=all" in train
  # The remote command, as the workers' shell will split it.
  remote = shlex.split(train[train.index("--command") + 1])
  assert remote[remote.index("python3") :] == [
    "python3",
    "-m",
    "vae_jax.main",
    "--distributed",
    "--workdir=gs://bucket/run 1",
    "--config=configs/mnist_linear.py",
    "--config.num_epochs=3",
  ]


def test_tpu_pod_can_reuse_an_installed_slice():
  result = run_script(
    "tpu_pod.sh",
    "--dry_run",
    "--skip_install",
    "--workdir=gs://b/r",
    "--",
    "--config=c.py",
    TPU_NAME="from-env",
  )
  assert result.returncode == 0, result.stderr
  create, train = commands(result.stdout)
  assert "from-env" in create and "from-env" in train


@pytest.mark.parametrize(
  "args,message",
  [
    (("--", "--config=c.py"), "--workdir=gs://BUCKET/PATH is required"),
    (("--workdir=/tmp/run", "--", "--config=c.py"), "must be on a bucket"),
    (("--workdir=gs://b/r",), "at least --config"),
    (("--bogus",), "unknown option --bogus"),
  ],
)
def test_tpu_pod_refuses_incomplete_commands(args, message):
  result = run_script("tpu_pod.sh", "--dry_run", *args)
  assert result.returncode == 2 and message in result.stderr


def test_slurm_runs_one_process_per_gpu_by_default():
  result = run_script(
    "slurm.sbatch",
    "--dry_run",
    "--config=configs/x.py",
    "--workdir=/shared/run",
  )
  assert result.returncode == 0, result.stderr
  [srun] = commands(result.stdout)
  assert srun[0] == "srun" and srun[srun.index("python") :] == [
    "python",
    "-m",
    "vae_jax.main",
    "--distributed",
    "--config=configs/x.py",
    "--workdir=/shared/run",
  ]


def test_slurm_per_node_processes_see_every_gpu_of_their_node():
  result = run_script(
    "slurm.sbatch",
    "--dry_run",
    "--config=c.py",
    "--workdir=/w",
    VAE_JAX_PROCESSES="per_node",
    SLURM_GPUS_ON_NODE="4",
  )
  assert result.returncode == 0, result.stderr
  assert "JAX_LOCAL_DEVICE_IDS=0,1,2,3" in result.stdout


def test_slurm_script_outside_a_job_says_to_submit_it():
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  result = subprocess.run(
    ["bash", "launch/slurm.sbatch", "--config=c.py", "--workdir=/w"],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  assert result.returncode == 2 and "sbatch" in result.stderr
