#!/usr/bin/env bash
# Checks that two builds of kiln publish the same events for the same run:
# runs samples/hello (a loop, conditions, retries, a finally step) with
# --jobs 1 (one order of events) under each build and each local executor, and
# compares their events.jsonl (both runs have the same run id, each in a
# workspace of its own) with what differs between any two runs masked
# (timestamps, durations, the workspace's path, cache keys: they hash the
# plugin's digest) and log_grew hints left out (they follow the clock).
# For an engine change that must not change behaviour: run it with the build
# before and after.
# Usage: bench/compare_events.sh BASE_BUILD_DIR [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${1:?usage: bench/compare_events.sh BASE_BUILD_DIR [BUILD_DIR]}"
build="${2:-$root/build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

normalized() {  # build executor: the run's events, masked, one per line
  local ws
  ws="$(mktemp -d "$work/ws.XXXXXX")"
  "$1/bin/kiln" run "$root/samples/hello/pipeline.yaml" --executor "$2" --jobs 1 --no-cache --json --run-id compared \
    --workdir "$ws" >/dev/null 2>&1 || true  # a failed run still has events to compare
  python3 - "$ws" "$ws"/runs/*/events.jsonl <<'PY'
import json, sys
workspace = sys.argv[1]
masked = {"ts", "time", "duration_seconds"}
def mask(value):
    if isinstance(value, dict):
        return {k: ("*" if k in masked else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return value.replace(workspace, "WS")
    return value
for line in open(sys.argv[2]):
    event = json.loads(line)
    if event.get("type") == "log_grew":
        continue
    if event.get("type") == "cache_decided":
        event["key"] = "*"
    print(json.dumps(mask(event), sort_keys=True))
PY
}

status=0
for executor in inprocess process; do
  normalized "$base" "$executor" > "$work/before.$executor"
  normalized "$build" "$executor" > "$work/after.$executor"
  if diff -u "$work/before.$executor" "$work/after.$executor" > "$work/diff.$executor"; then
    echo "$executor: the same $(wc -l < "$work/after.$executor") events"
  else
    echo "$executor: the events differ:"
    head -40 "$work/diff.$executor"
    status=1
  fi
done
exit $status
