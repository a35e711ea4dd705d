#!/usr/bin/env bash
# Per-step overhead of the Slurm executor beside Slurm's own, in one run, on
# the one-node cluster of scripts/slurm-local.sh (started here when not
# running, and stopped again at the end; needs root): N steps one after another (a chain of util.noop,
# --jobs 1, --no-cache) in allocation mode (srun steps in one allocation, the
# default) and in batch mode (a job per attempt), against N `srun true` and N
# `sbatch --wrap true` each waited for (squeue every 20 ms): the floor of any
# sbatch-based launch.
# Usage: bench/slurm_overhead.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
steps="${2:-20}"
kiln="$build/bin/kiln"
work="$(mktemp -d)"
started_cluster=""
# A cluster this script started is stopped again: left running, it would hold
# the ports the test suite's own Slurm fixture needs.
trap '[ -n "$started_cluster" ] && "$root/scripts/slurm-local.sh" stop >/dev/null 2>&1; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

"$root/scripts/slurm-local.sh" status >/dev/null 2>&1 || { "$root/scripts/slurm-local.sh" start >/dev/null; started_cluster=1; }
eval "$("$root/scripts/slurm-local.sh" env)"
export KILN_PLUGIN_PATH="${KILN_PLUGIN_PATH:-$build/lib/kiln/plugins}"

{
  printf 'apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: chain%s}\nsteps:\n' "$steps"
  printf '  - {name: s1, component: util.noop}\n'
  for i in $(seq 2 "$steps"); do printf '  - {name: s%s, component: util.noop, after: s%s}\n' "$i" $((i - 1)); done
} > "$work/chain.yaml"

now_us() { echo $(($(date +%s%N) / 1000)); }
report() {  # name total_us
  awk -v n="$1" -v us="$2" -v k="$steps" 'BEGIN { printf "%-28s %8.3f s total  %7.1f ms/step\n", n, us / 1e6, us / 1e3 / k }'
}

cd "$work"
start=$(now_us)
for _ in $(seq 1 "$steps"); do srun --quiet true; done
report "srun true" $(($(now_us) - start))

start=$(now_us)
for _ in $(seq 1 "$steps"); do
  id=$(sbatch --parsable -o /dev/null --wrap true) && [ -n "$id" ] || { echo "sbatch failed"; exit 1; }
  until squeue -h --states=all -j "$id" -o %T | grep -Eq '^(COMPLETED|FAILED|CANCELLED)$'; do sleep 0.02; done
done
report "sbatch --wrap true, waited" $(($(now_us) - start))

printf 'apiVersion: kiln/v1\nkind: Workspace\nprofiles:\n  allocation: {slurm: {mode: allocation}}\n  batch: {slurm: {mode: batch}}\n' \
  > "$work/kiln.yaml"
for run in slurm:allocation slurm:batch process:-; do
  executor=${run%%:*} mode=${run#*:} name=${run/:/-}; name=${name%-\-}
  profile=()
  [ "$mode" = - ] || profile=(--config "$work/kiln.yaml" --profile "$mode")
  start=$(now_us)
  "$kiln" run "$work/chain.yaml" --executor "$executor" "${profile[@]}" --jobs 1 --no-cache --json \
    --workdir "$work/$name" > "$work/$name.json" 2>/dev/null || { echo "$name: run failed (see $work/$name.json)"; continue; }
  report "kiln, $executor ${mode/-/executor}" $(($(now_us) - start))
done
python3 - "$work" <<'PY'
import glob, json, statistics, sys
for mode in ("allocation", "batch"):
    record = json.load(open(glob.glob(f"{sys.argv[1]}/slurm-{mode}/runs/*/run.json")[0]))
    d = sorted(a["duration_seconds"] for s in record["steps"].values() for a in s["attempts"])
    print(f"kiln slurm {mode} attempts: median {statistics.median(d) * 1e3:.0f} ms, min {d[0] * 1e3:.0f} ms, max {d[-1] * 1e3:.0f} ms")
PY
