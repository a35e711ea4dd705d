#!/usr/bin/env bash
# kiln serve on the digits model against nginx returning a static response of
# the same size (the HTTP stack's ceiling), with wrk on 127.0.0.1, keep-alive.
# Usage: bench/serve/serve_http.sh [BUILD_DIR] [MODEL_VERSION_DIR] [SECONDS] [CONNECTIONS]
# Needs wrk and nginx-light (optional bench packages: apt-get install wrk nginx-light).
# Without MODEL_VERSION_DIR it trains one with samples/digits (20 epochs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
model="${2:-}"
seconds="${3:-10}"
conns="${4:-64}"
kiln="$build/bin/kiln"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (apt-get install wrk nginx-light)" >&2; exit 1; }

if [ -z "$model" ]; then
  echo "training digits (20 epochs) to publish a model"
  "$kiln" run "$root/samples/digits/pipeline.yaml" --workdir "$work/ws" --param epochs=20 \
    --param model_repo="$work/trained" >/dev/null
  model="$work/trained/digits/1"
fi
mkdir -p "$work/models/digits" "$work/models/digits_batched"
cp -r "$model" "$work/models/digits/1"
cp -r "$model" "$work/models/digits_batched/1"
echo '{"max_batch_size": 1}' > "$work/models/digits/config.json"
# No queue delay: under load the batcher still takes every request queued
# while it ran the previous batch, and at half the peak rate a request does
# not wait for others (measured: same peak, p99 1.9 ms instead of 2.5 ms with
# 200 us). QUEUE_DELAY_US overrides it.
echo "{\"max_batch_size\": 32, \"max_queue_delay_us\": ${QUEUE_DELAY_US:-0}}" > "$work/models/digits_batched/config.json"

# Builds before the epoll front end (Poco's thread-per-connection server)
# need a worker thread per connection; later ones use one I/O thread per core.
threads=(--threads "$((conns + 4))")
"$kiln" serve --help 2>/dev/null | grep -q -- --io-threads && threads=()
"$kiln" serve --model-repo "$work/models" --port 0 --port-file "$work/port" --access-log off \
  "${threads[@]}" --runtime-threads 1 >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")"
for _ in $(seq 1 300); do curl -sf "$url/v2/health/ready" >/dev/null && break; sleep 0.1; done

row="$(zcat "$root/samples/data/digits.csv.gz" | sed -n 1p)"
printf '{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [%s]}]}' "${row%,*}" >"$work/body.json"
response="$(curl -sS -X POST -d @"$work/body.json" "$url/v2/models/digits/infer")"

# nginx: the same response bytes from a `return`, one worker per core.
printf '%s' "$response" >"$work/response.json"
nport=$((20000 + RANDOM % 20000))
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    location / { default_type application/json; return 200 '$(sed "s/'/\\\\'/g" "$work/response.json")'; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5

run_wrk() {  # name url delay_ms connections [seconds]
  BODY_FILE="$work/body.json" DELAY_MS="$3" wrk -t2 -c"$4" -d"${5:-$seconds}s" --latency -s "$root/bench/serve/post.lua" "$2" >"$work/wrk.txt"
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")"
  p50="$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
  [ -n "$1" ] && printf '%-52s %10s req/s  p50 %9s  p99 %9s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps" >"$work/last_rps"
}

# Half the peak rate: each connection waits DELAY ms before each request so
# that conns / (DELAY + time per request) = peak / 2. The time per request
# (latency and client overhead, which depend on the rate) is measured by two
# 3 s calibration runs, each correcting the delay of the one before.
run_half_peak() {  # label url peak
  local target d rate
  target="$(awk -v p="$3" 'BEGIN { print p / 2 }')"
  d="$(awk -v c="$conns" -v t="$target" 'BEGIN { printf "%.3f", c / t * 1000 }')"
  for _ in 1 2; do
    run_wrk "" "$2" "$d" "$conns" 3
    d="$(awk -v c="$conns" -v d="$d" -v r="$(cat "$work/last_rps")" -v t="$target" \
      'BEGIN { o = c / r * 1000 - d; x = c / t * 1000 - o; printf "%.2f", (x < 0.1 ? 0.1 : x) }')"
  done
  local d1="$d"
  run_wrk "x" "$2" "$d1" "$conns" >/dev/null
  rate="$(awk -v r="$(cat "$work/last_rps")" -v p="$3" 'BEGIN { printf "%.0f", 100 * r / p }')"
  run_wrk_line "$1 @ ${rate}% of peak (delay ${d1} ms)"
}
run_wrk_line() {  # prints the last run under another name
  printf '%-52s %10s req/s  p50 %9s  p99 %9s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")" "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
}

echo "wrk -t2 -c$conns -d${seconds}s --latency, keep-alive, 127.0.0.1; response ${#response} bytes"
run_wrk "nginx static (ceiling)" "http://127.0.0.1:$nport/v2/models/digits/infer" 0 "$conns"
nginx_rps="$(cat "$work/last_rps")"
run_wrk "kiln serve, single-instance" "$url/v2/models/digits/infer" 0 "$conns"
single_rps="$(cat "$work/last_rps")"
run_wrk "kiln serve, dynamic batching" "$url/v2/models/digits_batched/infer" 0 "$conns"
batched_rps="$(cat "$work/last_rps")"
for pair in "single-instance:digits:$single_rps" "dynamic batching:digits_batched:$batched_rps"; do
  IFS=: read -r label name peak <<<"$pair"
  run_half_peak "kiln serve, $label" "$url/v2/models/$name/infer" "$peak"
done
awk -v s="$single_rps" -v b="$batched_rps" -v n="$nginx_rps" \
  'BEGIN { printf "kiln/nginx requests/s: single %.0f%%, batching %.0f%%\n", 100 * s / n, 100 * b / n }'
