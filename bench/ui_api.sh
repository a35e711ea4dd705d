#!/usr/bin/env bash
# kiln ui's API latency (docs/benchmarks.md, issue 18's targets):
#  1. the runs list with 10,000 runs in the workspace (p95 ≤ 50 ms): tests/ui_runs_bench.cpp
#     writes 10,000 synthetic runs through the store's own database API and times each
#     query shape over keep-alive HTTP;
#  2. a 500-step run's detail (≤ 100 ms), its lineage graph, its metrics route, and
#     the runs list, in a workspace holding that real run: curl, a new connection
#     each, REQUESTS times; p50 / p95 / max in ms.
# Usage: bench/ui_api.sh [BUILD_DIR] [REQUESTS=40] [RUNS=10000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
build="${1:-$root/build}"
requests="${2:-40}"
runs="${3:-10000}"
kiln="$build/bin/kiln"
work="$(mktemp -d)"
ui_pid=""
cleanup() {
  [ -n "$ui_pid" ] && kill "$ui_pid" 2>/dev/null && wait "$ui_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export KILN_CACHE_DIR="$work/cache" KILN_HOME="$work/home"

echo "== runs list, $runs runs (ui_runs_bench $runs 200)"
"$build/bin/ui_runs_bench" "$runs" 200

echo "== a 500-step run (10 layers of 49 util.noop steps and a join), --executor inprocess --no-cache"
kiln_dag_yaml dag500 10 49 util.noop > "$work/dag.yaml"
mkdir -p "$work/ws"
"$kiln" run "$work/dag.yaml" --workdir "$work/ws" --executor inprocess --no-cache --json > "$work/run.json" 2>/dev/null
id=$(sed -n 's/.*"run_id": "\([^"]*\)".*/\1/p' "$work/run.json" | head -1)
"$kiln" ui --workdir "$work/ws" --port 0 --port-file "$work/port" > "$work/ui.log" 2>&1 &
ui_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# time_route NAME TARGET: REQUESTS curls (new connection each), p50/p95/max ms and the answer's size.
time_route() {
  local name=$1 target=$2 i
  for ((i = 0; i < requests; i++)); do
    curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}\n' "http://127.0.0.1:$port$target"
  done | sort -n | awk -v name="$name" '
    { t[NR] = $1 * 1000; size = $2; if ($3 != 200) bad++ }
    END {
      p50 = t[int(NR * 0.50) + 1]; p95 = t[int(NR * 0.95) + (NR * 0.95 == int(NR * 0.95) ? 0 : 1)]
      if (p95 == "") p95 = t[NR]
      printf "%-28s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms  %8d bytes%s\n", name, p50, p95, t[NR], size,
             bad ? "  (" bad " not 200)" : ""
    }'
}
time_route "run detail (500 steps)" "/api/v1/runs/$id"
time_route "run lineage (500 steps)" "/api/v1/runs/$id/lineage"
time_route "step metrics" "/api/v1/runs/$id/steps/join9/metrics"
time_route "runs list" "/api/v1/runs"
