#!/usr/bin/env bash
# Per-step overhead of kiln's executors on a 500-step fan-out/fan-in DAG of
# util.noop, beside make -j running the same DAG of `true` commands (and
# Snakemake, when installed), in one run. Prints seconds, ms per step and ratios.
# Usage: bench/dag_overhead.sh [BUILD_DIR] [REPEATS]
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

# The same graph three ways.
kiln_dag_yaml "dag$steps" "$layers" "$width" util.noop > "$work/dag.yaml"
{
  prev=""
  all=()
  for ((l = 0; l < layers; l++)); do
    names=()
    for ((i = 0; i < width; i++)); do
      printf 'l%ds%d:%s\n\t@true\n' "$l" "$i" "${prev:+ $prev}"
      names+=("l${l}s${i}")
    done
    printf 'join%d: %s\n\t@true\n' "$l" "${names[*]}"
    prev="join$l"
  done
  printf '.PHONY: all %s\nall: %s\n' "$(seq -f 'join%g' -s ' ' 0 $((layers - 1)))" "$prev"
} > "$work/Makefile"
# make treats the targets as files that never appear, so every rule runs.

best_of() { kiln_best_of "$repeats" "$@"; }  # best wall time in microseconds

report() { kiln_report "$steps" "$@"; }  # name microseconds


echo "DAG: $steps steps ($layers layers of $width parallel steps and a join), $jobs jobs, best of $repeats"
t_make=$(best_of make -s -j "$jobs" -C "$work" all)
report "make -j$jobs (true)" "$t_make"
# --no-cache: every repeat runs every step (util.noop would be a cache hit after the first).
t_in=$(best_of "$kiln" run "$work/dag.yaml" --executor inprocess --jobs "$jobs" --json --no-cache --workdir "$work/kiln")
report "kiln inprocess" "$t_in"
t_proc=$(best_of "$kiln" run "$work/dag.yaml" --executor process --jobs "$jobs" --json --no-cache --workdir "$work/kiln")
report "kiln process (step server)" "$t_proc"
if command -v snakemake >/dev/null 2>&1; then
  python3 - "$work" "$layers" "$width" <<'PY'
import sys
work, layers, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{work}/Snakefile", "w") as f:
    f.write(f"rule all:\n    input: 'join{layers-1}'\n")
    prev = None
    for l in range(layers):
        names = [f"l{l}s{i}" for i in range(width)]
        for n in names:
            f.write(f"rule {n}:\n" + (f"    input: '{prev}'\n" if prev else "") + f"    output: '{n}'\n    shell: 'touch {{output}}'\n")
        f.write(f"rule join{l}:\n    input: {names!r}\n    output: 'join{l}'\n    shell: 'touch {{output}}'\n")
        prev = f"join{l}"
PY
  t_snake=$(best_of bash -c "cd '$work' && rm -f l*s* join* && snakemake -q -j $jobs")
  report "snakemake -j$jobs (touch)" "$t_snake"
else
  echo "snakemake: not installed (apt-get install snakemake to compare)"
fi
kiln_ratio "kiln process / make" "$t_proc" "$t_make"
kiln_ratio "kiln inprocess / make" "$t_in" "$t_make"
