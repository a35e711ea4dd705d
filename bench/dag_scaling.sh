#!/usr/bin/env bash
# How kiln's cost grows with the size of a DAG: the fan-out/fan-in DAG of
# dag_overhead.sh (layers of 49 parallel util.noop steps and a join) at 500,
# 2,000 and 10,000 steps. For each size: planning alone (`kiln validate`:
# parse, bind, plan) and a whole run (inprocess executor, store on,
# --no-cache, --jobs 2: planning + scheduling + recording), in seconds and
# ms per step. Linear growth shows as a flat ms/step column.
# Usage: bench/dag_scaling.sh [BUILD_DIR] [REPEATS] [SIZES...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
build="${1:-$root/build}"
repeats="${2:-3}"
shift $(($# > 2 ? 2 : $#))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(500 2000 10000)
kiln="$build/bin/kiln"
jobs=2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export KILN_BEST_OF_RESET="rm -rf '$work/ws'"  # every run in a fresh workspace
best_of() { kiln_best_of "$repeats" "$@"; }  # best wall time in microseconds

echo "fan-out/fan-in DAGs of util.noop (layers of 49 steps and a join), $jobs jobs, best of $repeats"
printf '%-8s %12s %12s %12s %12s\n' steps "plan s" "plan ms/step" "run s" "run ms/step"
for steps in "${sizes[@]}"; do
  layers=$((steps / 50))
  kiln_dag_yaml "dag$steps" "$layers" 49 util.noop > "$work/dag.yaml"
  t_plan=$(best_of "$kiln" validate "$work/dag.yaml")
  t_run=$(best_of "$kiln" run "$work/dag.yaml" --executor inprocess --jobs "$jobs" --json --no-cache --workdir "$work/ws")
  awk -v n="$steps" -v p="$t_plan" -v r="$t_run" \
    'BEGIN { printf "%-8d %12.3f %12.3f %12.3f %12.3f\n", n, p / 1e6, p / 1e3 / n, r / 1e6, r / 1e3 / n }'
done
