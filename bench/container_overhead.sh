#!/usr/bin/env bash
# Per-step launch overhead of the inprocess, process and container executors
# on the same 200-step DAG of util.noop, in one run: total wall time, ms per
# step of it, and the median attempt duration from run.json (launch to end of
# one step, what a step pays). --no-cache: the 200 identical util.noop steps
# share one cache key, so all but the first would otherwise be cache hits.
# Needs runc and root for the container row.
# Usage: bench/container_overhead.sh [BUILD_DIR] [JOBS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
build="${1:-$root/build}"
jobs="${2:-$(nproc)}"
kiln="$build/bin/kiln"
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

layers=4 width=49   # 4 × (49 parallel steps + 1 join) = 200 steps
steps=$((layers * (width + 1)))
kiln_dag_yaml "dag$steps" "$layers" "$width" util.noop > "$work/dag.yaml"

measure() {  # executor
  local start end
  start=$(date +%s%N)
  "$kiln" run "$work/dag.yaml" --executor "$1" --jobs "$jobs" --no-cache --json --workdir "$work/$1" > "$work/$1.json" 2>/dev/null ||
    { echo "$1: run failed (see $work/$1.json)"; return; }
  end=$(date +%s%N)
  python3 - "$1" "$work/$1" $(( (end - start) / 1000 )) "$steps" <<'PY'
import glob, json, statistics, sys
name, workdir, us, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
record = json.load(open(glob.glob(f"{workdir}/runs/*/run.json")[0]))
durations = [a["duration_seconds"] for s in record["steps"].values() for a in s["attempts"]]
print(f"{name:10s} {us / 1e6:8.3f} s total  {us / 1e3 / steps:7.2f} ms/step  "
      f"median step {statistics.median(durations) * 1e3:7.2f} ms  p90 {sorted(durations)[int(len(durations) * 0.9)] * 1e3:7.2f} ms")
PY
}

echo "DAG: $steps util.noop steps ($layers layers of $width parallel steps and a join), $jobs jobs"
for executor in inprocess process container; do measure "$executor"; done
