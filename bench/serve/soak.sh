#!/usr/bin/env bash
# Soak of kiln serve on the digits model, 127.0.0.1 only: wrk for SECONDS
# (keep-alive, 64 connections) while a new model version is dropped into the
# repository every RELOAD_S seconds (hot reload) and hostile.py sends hostile
# requests in rounds (deep nesting, large declared bodies held open, an idle
# connection flood past --max-connections, unknown model names, names that are
# not UTF-8). Prints wrk's summary, the hostile counts, the server's peak RSS
# (VmHWM) and whether it still answers at the end.
# Usage: bench/serve/soak.sh [BUILD_DIR] [MODEL_VERSION_DIR] [SECONDS] [RELOAD_S]
# (HOSTILE_KINDS=deep,held,unknown,utf8,flood picks hostile.py's kinds; KILN another binary.)
# soak.lua counts wrk's answers by status. Needs wrk (apt-get install wrk) and python3. Without MODEL_VERSION_DIR it
# trains one with samples/digits (5 epochs; needs the torch plugin built).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
model="${2:-}"
seconds="${3:-60}"
reload_s="${4:-3}"
kiln="${KILN:-$build/bin/kiln}"  # KILN: another build's binary (beside its plugins), e.g. for a before/after
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }

if [ -z "$model" ]; then
  echo "training digits (5 epochs) to publish a model"
  "$kiln" run "$root/samples/digits/pipeline.yaml" --workdir "$work/ws" --param epochs=5 \
    --param model_repo="$work/trained" >/dev/null
  model="$work/trained/digits/1"
fi
mkdir -p "$work/models/digits"
cp -r "$model" "$work/models/digits/1"
echo '{"max_batch_size": 32, "max_queue_delay_us": 0}' >"$work/models/digits/config.json"

# 512 connections at most, so that the flood passes the limit (builds before issue 17 have no such flag).
limits=(--max-connections 512)
"$kiln" serve --help 2>/dev/null | grep -q -- --max-connections || limits=()
"$kiln" serve --model-repo "$work/models" --port 0 --port-file "$work/port" --access-log off \
  --runtime-threads 1 --poll-ms 500 "${limits[@]}" >"$work/serve.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 1 300); do [ -s "$work/port" ] && break; sleep 0.1; done
port="$(cat "$work/port")"
url="http://127.0.0.1:$port"
for _ in $(seq 1 300); do curl -sf "$url/v2/health/ready" >/dev/null && break; sleep 0.1; done

row="$(zcat "$root/samples/data/digits.csv.gz" | sed -n 1p)"
printf '{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [%s]}]}' "${row%,*}" >"$work/body.json"
curl -sSf -X POST -d @"$work/body.json" "$url/v2/models/digits/infer" >/dev/null

# Hot reloads: version N+1 every RELOAD_S seconds, written beside and renamed in (as serve.publish does).
(
  for v in $(seq 2 $((seconds / reload_s))); do
    sleep "$reload_s"
    cp -r "$model" "$work/models/digits/.staging$v"
    mv "$work/models/digits/.staging$v" "$work/models/digits/$v"
    echo "$((v - 1))" >"$work/reloads"
  done
) &
pids+=($!)

# Peak memory, sampled each second besides the kernel's high-water mark.
(
  for _ in $(seq 1 $((seconds + 10))); do
    awk '/VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null >>"$work/rss" || true
    sleep 1
  done
) &
pids+=($!)

python3 "$root/bench/serve/hostile.py" "$port" --seconds "$((seconds - 5))" ${HOSTILE_KINDS:+--kinds "$HOSTILE_KINDS"} \
  >"$work/hostile.txt" 2>&1 &
hostile=$!
pids+=("$hostile")

echo "wrk -t2 -c64 -d${seconds}s --latency, keep-alive, 127.0.0.1; hot reload every ${reload_s}s; hostile.py alongside"
BODY_FILE="$work/body.json" wrk -t2 -c64 -d"${seconds}s" --latency -s "$root/bench/serve/soak.lua" \
  "$url/v2/models/digits/infer" | grep -E "Requests/sec|requests in|Latency  |50%|99%|^status|^socket"
wait "$hostile" || true
cat "$work/hostile.txt"
sleep 1

alive=no
kill -0 "$server" 2>/dev/null && alive=yes
ready="$(curl -s -o /dev/null -w '%{http_code}' "$url/v2/health/ready" || true)"
infer="$(curl -s -o /dev/null -w '%{http_code}' -X POST -d @"$work/body.json" "$url/v2/models/digits/infer" || true)"
version="$(curl -s "$url/v2/models/digits" | python3 -c 'import json,sys; print(json.load(sys.stdin)["versions"])' || true)"
metrics_bytes="$(curl -s "$url/metrics" | wc -c)"
hwm="$(awk '/VmHWM/ {print $2, $3}' "/proc/$server/status" 2>/dev/null || echo "?")"
rss_max="$(sort -n "$work/rss" | tail -1)"
echo "reloads: $(cat "$work/reloads" 2>/dev/null || echo '?') new versions; serving versions $version at the end"
echo "server alive: $alive; /v2/health/ready: $ready; infer: $infer; /metrics: $metrics_bytes bytes"
echo "peak RSS (VmHWM): $hwm; largest 1 s sample: ${rss_max:-?} kB"
grep -c "failed to load" "$work/serve.log" | sed 's/^/load failures in the log: /' || true
