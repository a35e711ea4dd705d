#!/usr/bin/env bash
# Exact caching on a 500-step fan-out/fan-in DAG of util.echo (each step writes
# a small Text artifact): the first run in a fresh workspace (every step runs
# and is committed to the store and recorded), then the second, unchanged run
# (every step a cache hit: key lookup, re-hash of the cached artifact, record),
# printed side by side. Best of REPEATS, each repeat in a fresh workspace.
# Usage: bench/cache_overhead.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
build="${1:-$root/build}"
repeats="${2:-3}"
kiln="$build/bin/kiln"
jobs="$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

layers=10 width=49   # 10 × (49 parallel steps + 1 join) = 500 steps
steps=$((layers * (width + 1)))
kiln_dag_yaml "cache$steps" "$layers" "$width" util.echo echo > "$work/dag.yaml"

micros() {  # wall time of "$@" in microseconds; fails on a failed run
  local start end
  start=$(date +%s%N)
  "$@" >"$work/out.json" 2>/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000 ))
}

best_first="" best_second=""
for ((r = 0; r < repeats; r++)); do
  rm -rf "$work/ws"
  first=$(micros "$kiln" run "$work/dag.yaml" --jobs "$jobs" --json --workdir "$work/ws")
  second=$(micros "$kiln" run "$work/dag.yaml" --jobs "$jobs" --json --workdir "$work/ws")
  cached=$(grep -c '"status": "cached"' "$work/out.json" || true)
  [ "$cached" -eq "$steps" ] || { echo "expected $steps cached steps, got $cached" >&2; exit 1; }
  if [ -z "$best_first" ] || [ "$first" -lt "$best_first" ]; then best_first=$first; fi
  if [ -z "$best_second" ] || [ "$second" -lt "$best_second" ]; then best_second=$second; fi
done

echo "DAG: $steps util.echo steps ($layers layers of $width parallel steps and a join), $jobs jobs, best of $repeats"
awk -v a="$best_first" -v b="$best_second" -v n="$steps" 'BEGIN {
  printf "%-36s %8.3f s  %6.2f ms/step\n", "first run (all run, committed)", a / 1e6, a / 1e3 / n
  printf "%-36s %8.3f s  %6.2f ms/step\n", "second run (all cache hits)", b / 1e6, b / 1e3 / n
  printf "%-36s %8.2f\n", "first / second", a / b
}'
