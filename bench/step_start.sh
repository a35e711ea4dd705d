#!/usr/bin/env bash
# Start latency of a step whose plugin links LibTorch: cold (a fresh `kiln
# step` process that loads LibTorch, what a runner without a warm server pays
# on every step) and warm (steps forked by the step server, which loaded
# LibTorch once). Also the same for util.noop, beside starting `true`.
# Usage: bench/step_start.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
steps="${2:-20}"
kiln="$build/bin/kiln"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -f "$build/bench/plugins/kiln_bench_torch_probe.so" ]; then
  echo "building the LibTorch probe (needs libtorch-dev)"
  cmake -S "$root" -B "$build" -DKILN_BUILD_BENCH=ON >/dev/null
  cmake --build "$build" --target kiln_bench_torch_probe kiln
fi
export KILN_PLUGIN_PATH="$build/bench/plugins" KILN_HOME="$work/home"

chain() {  # component count: a pipeline of `count` steps, each after the previous
  echo "apiVersion: kiln/v1"; echo "kind: Pipeline"; echo "metadata: {name: chain}"; echo "steps:"
  echo "  - {name: s0, component: $1}"
  for ((i = 1; i < $2; i++)); do echo "  - {name: s$i, component: $1, after: [s$((i - 1))]}"; done
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Durations (ms) of each step of a chain run: launch to end, from run.json.
step_ms() {  # component
  chain "$1" "$steps" > "$work/chain.yaml"
  "$kiln" run "$work/chain.yaml" --executor process --jobs 1 --json > "$work/summary.json" 2>"$work/run.log" ||
    { cat "$work/run.log" >&2; exit 1; }
  /usr/bin/python3 - "$work/summary.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
for name in sorted(summary["steps"], key=lambda n: int(n[1:])):
    print(round(summary["steps"][name]["duration_seconds"] * 1000, 2))
PY
}

# Median wall time (ms) of `count` runs of a command, timed from Python so
# the timer's own process start is not counted; fd 3 is open on /dev/null.
time_ms() {  # count command...
  /usr/bin/python3 - "$@" <<'PY'
import os, statistics, subprocess, sys, time
count, command = int(sys.argv[1]), sys.argv[2:]
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 3)
times = []
for _ in range(count):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3,), check=False)
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.2f}")
PY
}

for component in bench.torch-probe util.noop; do
  mapfile -t durations < <(step_ms "$component")
  run_dir=$(ls -d "$work"/home/runs/*/ | tail -1)
  warm=$(printf '%s\n' "${durations[@]:1}" | median)
  printf '%-18s cold (fresh kiln step process): %8.2f ms   first step via step server: %8.2f ms   warm (median of %d): %6.2f ms\n' \
    "$component" "$(time_ms 5 "$kiln" step --request "$run_dir/steps/s0/attempt-1/request.json")" "${durations[0]}" \
    $((steps - 1)) "$warm"
done
printf '%-18s %.2f ms (start and wait for /bin/true, median of 20)\n' "true" "$(time_ms 20 /bin/true)"
