#!/usr/bin/env bash
# Runs N vae_jax processes on this machine as one multi-process JAX job.
#
# Usage: launch/local_multiprocess.sh N [--devices_per_process=D] \
#          [--port=P] -- python -m vae_jax.main --config=... --workdir=...
#
# Each process gets D CPU devices (default 1), so the run has N*D devices in
# one mesh, with cross-process collectives through gloo. This is how the
# tests exercise multi-host code, and how to try a pod-sized mesh on a
# laptop. Output lines are prefixed with "[i] ", the process index. If any
# process fails, the others are stopped and the script exits with the first
# failure's status (75: preempted; rerun the same command to resume).
set -euo pipefail

# The comment block at the top, without "#".
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; }
if [[ $# -lt 1 || "$1" == "--help" || "$1" == "-h" ]]; then usage; exit 0; fi

num_processes="$1"; shift
devices_per_process=1
port=$((20000 + RANDOM % 20000))
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --devices_per_process=*) devices_per_process="${1#*=}" ;;
    --port=*) port="${1#*=}" ;;
    *) echo "local_multiprocess.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $# -gt 0 ]] && shift  # The "--".
if [[ $# -eq 0 ]]; then echo "local_multiprocess.sh: no command" >&2; exit 2; fi

pids=()
for ((i = 0; i < num_processes; i++)); do
  JAX_PLATFORMS=cpu \
  XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${devices_per_process}" \
    "$@" --coordinator_address="localhost:${port}" \
         --num_processes="${num_processes}" --process_id="${i}" \
    > >(sed -u "s/^/[$i] /") 2> >(sed -u "s/^/[$i] /" >&2) &
  pids+=($!)
done

status=0
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for pid in "${pids[@]}"; do
  wait "$pid" && code=0 || code=$?
  if [[ $code -ne 0 && $status -eq 0 ]]; then
    status=$code
    kill "${pids[@]}" 2>/dev/null || true
  fi
done
wait
exit "$status"
