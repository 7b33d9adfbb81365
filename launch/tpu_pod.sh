#!/usr/bin/env bash
# Trains vae_jax on every worker of a Cloud TPU VM slice (a pod slice).
#
# Usage: launch/tpu_pod.sh [options] -- --config=configs/X.py [--config.F=V ...]
#
#   --name=NAME             TPU VM name ($TPU_NAME; default vae-jax)
#   --zone=ZONE             zone ($TPU_ZONE; default us-central2-b)
#   --accelerator_type=T    slice to create if NAME is missing
#                           ($TPU_ACCELERATOR_TYPE; default v4-32: 4 workers)
#   --runtime_version=V     TPU VM image ($TPU_RUNTIME_VERSION;
#                           default tpu-ubuntu2204-base)
#   --project=P             GCP project ($TPU_PROJECT; default gcloud's)
#   --workdir=gs://B/PATH   run directory on a bucket every worker can write
#                           ($VAE_JAX_WORKDIR; required)
#   --data_dir=gs://B/PATH  TFDS data dir shared by the workers
#                           ($TPU_DATA_DIR; default each worker's own)
#   --spot                  create the slice as Spot capacity (preemptible)
#   --skip_install          reuse the code already installed on the workers
#   --dry_run               print the gcloud commands instead of running them
#
# Steps: create the slice unless it exists; copy this checkout's files
# (git ls-files) to every worker and `pip install` it with jax[tpu]; then run
# `python3 -m vae_jax.main --distributed` on all workers at once
# (gcloud ... tpu-vm ssh --worker=all), so JAX finds the slice's processes
# itself. Process 0 writes logs, images and results.json to the workdir; all
# take part in the checkpoints there. Exit status 75 means preempted after a
# checkpoint: rerun the same command to resume. The slice is left running;
# delete it with `gcloud compute tpus tpu-vm delete NAME --zone=ZONE`.
set -euo pipefail

# The comment block at the top, without "#" and the #SBATCH lines.
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 && !/^#SBATCH/ {sub(/^# ?/, ""); print}' "$0"; }

name="${TPU_NAME:-vae-jax}"
zone="${TPU_ZONE:-us-central2-b}"
accelerator_type="${TPU_ACCELERATOR_TYPE:-v4-32}"
runtime_version="${TPU_RUNTIME_VERSION:-tpu-ubuntu2204-base}"
project="${TPU_PROJECT:-}"
workdir="${VAE_JAX_WORKDIR:-}"
data_dir="${TPU_DATA_DIR:-}"
spot=false
install=true
dry_run=false
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --name=*) name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --accelerator_type=*) accelerator_type="${1#*=}" ;;
    --runtime_version=*) runtime_version="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --data_dir=*) data_dir="${1#*=}" ;;
    --spot) spot=true ;;
    --skip_install) install=false ;;
    --dry_run) dry_run=true ;;
    *) echo "tpu_pod.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $# -gt 0 ]] && shift  # The "--".
train_flags=("$@")

fail() { echo "tpu_pod.sh: $*" >&2; exit 2; }
[[ -n "$workdir" ]] || fail "--workdir=gs://BUCKET/PATH is required."
# Each worker has its own disk: only a bucket is one directory for all.
[[ "$workdir" == gs://* ]] || fail "--workdir must be on a bucket (gs://...), got $workdir."
[[ ${#train_flags[@]} -gt 0 && "${train_flags[*]}" == *--config=* ]] \
  || fail "give the training flags after --, at least --config=configs/X.py."
for flag in "${train_flags[@]}"; do
  [[ "$flag" != --workdir=* ]] || fail "give --workdir before the --, not after it."
done

# Runs a command, or with --dry_run prints it in a form a shell can reuse.
run() {
  if $dry_run; then printf '%q ' "$@"; echo; else "$@"; fi
}

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[[ -n "$project" ]] && where+=(--project="$project")

if $dry_run; then
  echo "# Created only if 'describe' finds no TPU VM named $name:"
fi
if $dry_run || ! "${gcloud_tpu[@]}" describe "$name" "${where[@]}" \
    --format='value(state)' > /dev/null 2>&1; then
  create=("${gcloud_tpu[@]}" create "$name" "${where[@]}"
          --accelerator-type="$accelerator_type" --version="$runtime_version")
  $spot && create+=(--spot)
  run "${create[@]}"
fi

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
if $install; then
  archive="${TMPDIR:-/tmp}/vae_jax-$$.tar.gz"
  if $dry_run; then
    echo "# The checkout's tracked and new files, packed into $archive:"
    echo "git -C $repo_root ls-files -z --cached --others --exclude-standard | tar -C $repo_root -czf $archive --null -T -"
  else
    trap 'rm -f "$archive"' EXIT
    git -C "$repo_root" ls-files -z --cached --others --exclude-standard \
      | tar -C "$repo_root" -czf "$archive" --null -T -
  fi
  run "${gcloud_tpu[@]}" scp "$archive" "$name":vae_jax.tar.gz \
    "${where[@]}" --worker=all
  run "${gcloud_tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command \
    "rm -rf ~/vae_jax && mkdir ~/vae_jax && tar -xzf ~/vae_jax.tar.gz -C ~/vae_jax && python3 -m pip install -q -U 'jax[tpu]' -e ~/vae_jax"
fi

printf -v quoted_flags '%q ' "${train_flags[@]}"
train="cd ~/vae_jax && python3 -m vae_jax.main --distributed --workdir=$(printf '%q' "$workdir") $quoted_flags"
[[ -n "$data_dir" ]] && train+=" --config.input.data_dir=$(printf '%q' "$data_dir")"
run "${gcloud_tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command "$train"
