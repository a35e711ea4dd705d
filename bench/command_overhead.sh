#!/usr/bin/env bash
# Per-step cost of a component file (a command: /bin/true) against the same
# DAG of the util.noop plugin, and make -j running `true`, in one run, under
# the process executor (docs/command-components.md). Prints seconds, ms per
# step and ratios.
# Usage: bench/command_overhead.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
build="${1:-$root/build}"
repeats="${2:-3}"
kiln="$build/bin/kiln"
jobs="$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

layers=5 width=19   # 5 × (19 parallel steps + 1 join) = 100 steps
steps=$((layers * (width + 1)))

cat > "$work/true.yaml" <<'YAML'
apiVersion: kiln/v1
kind: Component
metadata: {name: bench.true, version: 1.0.0}
implementation:
  command: [/bin/true]
YAML
kiln_dag_yaml "plugin$steps" "$layers" "$width" util.noop > "$work/plugin.yaml"
kiln_dag_yaml "command$steps" "$layers" "$width" ./true.yaml > "$work/command.yaml"
{
  for ((i = 0; i < steps; i++)); do printf 's%d:\n\t@true\n' "$i"; done
  printf '.PHONY: all\nall: %s\n' "$(seq -f 's%g' -s ' ' 0 $((steps - 1)))"
} > "$work/Makefile"

best_of() { kiln_best_of "$repeats" "$@"; }
report() { kiln_report "$steps" "$@"; }  # name microseconds

echo "DAG: $steps steps ($layers layers of $width parallel steps and a join), $jobs jobs, best of $repeats, load $(cut -d' ' -f1 /proc/loadavg)"
t_make=$(best_of make -s -j "$jobs" -C "$work" all)
report "make -j$jobs (true)" "$t_make"
t_plugin=$(best_of "$kiln" run "$work/plugin.yaml" --executor process --jobs "$jobs" --json --no-cache --workdir "$work/kiln")
report "kiln process, util.noop" "$t_plugin"
t_command=$(best_of "$kiln" run "$work/command.yaml" --executor process --jobs "$jobs" --json --no-cache --workdir "$work/kiln")
report "kiln process, /bin/true file" "$t_command"
kiln_ratio "command / plugin" "$t_command" "$t_plugin"
kiln_ratio "command / make" "$t_command" "$t_make"
