#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, docs/fuzzing.md) in build-fuzz/ with
# clang, ASan and UBSan, and runs each one for a bounded time on a scratch
# copy of its seed corpus (the tree stays clean). A crash, leak, timeout or
# out-of-memory fails the script and prints the reproducer's path.
#
#   scripts/fuzz.sh                 every harness, FUZZ_SECONDS each (default 25), FUZZ_JOBS at once (default 2)
#   scripts/fuzz.sh NAME [SECONDS]  one harness (e.g. spec), SECONDS long (default 300)
#
# Reproduce a finding: build-fuzz/bin/fuzz_NAME PATH-TO-REPRODUCER
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

FUZZ_DIR="$KILN_ROOT/fuzz"
BUILD_DIR="${FUZZ_BUILD_DIR:-$KILN_ROOT/build-fuzz}"
ALL=(spec profile component_file expression placeholders runner_event tuner_log pod_request kiln_image infer_json http_request package package_manifest jwt safetensors csv idx ui_target ui_run_body ui_headers http_range)

# The largest input each harness is given: enough for its seeds, small enough
# to keep executions fast (the parsers' own limits are far above these).
max_len() {
  case "$1" in
    package) echo 65536 ;;
    spec | infer_json | http_request | safetensors) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

if [ $# -ge 1 ]; then
  names=("$1")
  seconds="${2:-300}"
  jobs=1
  case " ${ALL[*]} " in *" $1 "*) ;; *) echo "unknown harness '$1'; one of: ${ALL[*]}" >&2; exit 2 ;; esac
else
  names=("${ALL[@]}")
  seconds="${FUZZ_SECONDS:-25}"
  jobs="${FUZZ_JOBS:-2}"
fi

CC=clang CXX=clang++ kiln_build "$BUILD_DIR" -DKILN_FUZZ=ON -DKILN_UNITY=ON -DKILN_BUILD_TESTS=OFF -DKILN_WERROR=OFF \
  -- "${names[@]/#/fuzz_}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
artifacts="$BUILD_DIR/fuzz-findings"
mkdir -p "$artifacts"

# run_one NAME: fuzzes NAME for $seconds; its log is $scratch/NAME.log, its status $scratch/NAME.rc.
run_one() {
  local name="$1" corpus="$scratch/$1/corpus" options=()
  rm -rf "${artifacts:?}/$name"
  mkdir -p "$corpus" "$artifacts/$name" "$scratch/$name/tmp"
  cp -r "$FUZZ_DIR/corpus/$name/." "$corpus/"
  [ -f "$FUZZ_DIR/dict/$name.dict" ] && options+=("-dict=$FUZZ_DIR/dict/$name.dict")
  local rc=0
  (cd "$scratch/$name" && TMPDIR="$scratch/$name/tmp" "$BUILD_DIR/bin/fuzz_$name" "${options[@]}" \
    -max_total_time="$seconds" -max_len="$(max_len "$name")" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name/" "$corpus") >"$scratch/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$scratch/$name.rc"
}

# One line per harness: executions, their rate, coverage, corpus.
summary() {
  local name="$1" log="$scratch/$1.log" runs rate cov
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1 || true)"
  printf '  %-17s %10s runs %8s exec/s  %s\n' "$name" "${runs:-?}" "${rate:-?}" "${cov:-?}"
}

kiln_log "fuzzing ${#names[@]} harness(es), ${seconds} s each, ${jobs} at a time"
running=0
for name in "${names[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$name" &
  running=$((running + 1))
done
wait

failed=0
for name in "${names[@]}"; do
  summary "$name"
  if [ "$(cat "$scratch/$name.rc")" != "0" ]; then
    failed=1
    echo "==> fuzz_$name FAILED; its log ends:" >&2
    tail -n 60 "$scratch/$name.log" >&2
    for found in "$artifacts/$name"/*; do
      [ -e "$found" ] && echo "==> reproducer: $found (run: $BUILD_DIR/bin/fuzz_$name $found)" >&2
    done
  fi
done
[ "$failed" -eq 0 ] && kiln_log "no findings"
exit "$failed"
