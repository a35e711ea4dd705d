# Shared by the DAG benchmarks: source it, then call kiln_dag_yaml, kiln_best_of, kiln_report, kiln_ratio.

# kiln_dag_yaml NAME LAYERS WIDTH COMPONENT [echo]: prints a pipeline of
# LAYERS layers, each WIDTH parallel steps of COMPONENT and a join step after
# them (every layer after the previous join). With "echo", each step passes its
# own name as util.echo's message, so no two steps share a cache key.
kiln_dag_yaml() {
  local name=$1 layers=$2 width=$3 component=$4 echo=${5:-}
  local prev="" l i step names
  params() { [ -n "$echo" ] && printf ', parameters: {message: %s}' "$1"; return 0; }
  echo "apiVersion: kiln/v1"; echo "kind: Pipeline"; echo "metadata: {name: $name}"; echo "steps:"
  for ((l = 0; l < layers; l++)); do
    names=()
    for ((i = 0; i < width; i++)); do
      step="l${l}s${i}"
      echo "  - {name: $step, component: $component$(params "$step")${prev:+, after: [$prev]}}"
      names+=("$step")
    done
    echo "  - {name: join$l, component: $component$(params "join$l"), after: [$(IFS=,; echo "${names[*]}")]}"
    prev="join$l"
  done
}

# kiln_best_of REPEATS CMD...: the best wall time, in microseconds, of REPEATS
# runs of CMD (its output discarded). With KILN_BEST_OF_RESET set, that
# command runs (untimed) before each repeat, e.g. to remove a workspace.
kiln_best_of() {
  local repeats=$1 best="" r start end t
  shift
  for ((r = 0; r < repeats; r++)); do
    [ -n "${KILN_BEST_OF_RESET:-}" ] && eval "$KILN_BEST_OF_RESET"
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    t=$(( (end - start) / 1000 ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  echo "$best"
}

# kiln_report STEPS NAME MICROSECONDS: one line, the total and per step.
kiln_report() {
  awk -v n="$1" -v name="$2" -v us="$3" 'BEGIN { printf "%-30s %8.3f s  %6.2f ms/step\n", name, us / 1e6, us / 1e3 / n }'
}

# kiln_ratio LABEL NUMERATOR DENOMINATOR: one line, their ratio.
kiln_ratio() {
  awk -v label="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%-30s %8.2f\n", label, a / b }'
}
