#!/usr/bin/env bash
# kiln on a GPU beside PyTorch (issue 22's check): builds ONLY the torch plugin
# against this machine's LibTorch (the one inside python3's torch), runs
# samples/fashion-mnist's CNN with `device: cuda` through the process executor
# (train step with `resources: {gpus: 1}`), and prints kiln's seconds per epoch
# beside PyTorch's own for the same model, batch and data in the same run, the
# test accuracy after the epochs, for fp32 and bf16; then serves the fp32 model
# and samples/digits' model with kiln serve on the CPU and on the device
# (dynamic batching) and prints throughput and latency of each (serve_load.py).
#
#   bench/gpu/run.sh                 # on a GPU machine
#   bench/gpu/run.sh --cpu-dry-run   # the same path on the CPU: 1 epoch, 15 % of the images
#
# Environment:
#   KILN_HOST   a kiln build or install: bin/kiln and lib/kiln/plugins (data.idx, data.split);
#               default build/ (built here with the project's CMake when missing). A host
#               built elsewhere: bench/gpu/pack_host.sh makes a tarball of it and its libraries.
#   DATA        the four Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
#   EPOCHS      default 5 (1 for --cpu-dry-run); PRECISIONS default "fp32 bf16"
#   TORCH_BUILD where the plugin is built (default $WORK/torch-plugin; reused when built)
#   WORK        scratch directory (default: a temporary one)
#   SERVE_ROWS  images per inference request (default 32); SERVE_REQUESTS per connection (200), SERVE_CONNS (8)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/gpu
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PRECISIONS=${PRECISIONS:-fp32 bf16}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
if [ $DRY = 1 ]; then
  DEVICE=cpu EPOCHS=${EPOCHS:-1} DISCARD=0.85 THREADS=$(nproc)
else
  DEVICE=cuda EPOCHS=${EPOCHS:-5} DISCARD=0.0 THREADS=0
fi

# A python3 with torch: the GPU machine's PyTorch, or Debian's python3-torch.
PY=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import torch' 2>/dev/null; then PY=$candidate; break; fi
done
[ -n "$PY" ] || { echo "needs a python3 with torch (PyTorch, or Debian's python3-torch)" >&2; exit 2; }
[ -f "$DATA/train-images-idx3-ubyte.gz" ] ||
  { echo "no Fashion-MNIST in $DATA (apt-get install dataset-fashion-mnist, or set DATA)" >&2; exit 2; }

# The host: kiln and its data plugins.
KILN_HOST=${KILN_HOST:-$ROOT/build}
if [ ! -x "$KILN_HOST/bin/kiln" ]; then
  cmake -S "$ROOT" -B "$KILN_HOST" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_BUILD_TESTS=OFF >/dev/null
  ninja -C "$KILN_HOST" kiln kiln_data >/dev/null
fi
[ -d "$KILN_HOST/lib/kiln/plugins" ] || { echo "$KILN_HOST has no lib/kiln/plugins" >&2; exit 2; }

# The torch plugin alone, against this machine's LibTorch (plugins/ml/torch/standalone).
TORCH_BUILD=${TORCH_BUILD:-$WORK/torch-plugin}
prefix=()
[ $DRY = 0 ] && prefix=(-DKILN_TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')")
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$ROOT/plugins/ml/torch/standalone" -B "$TORCH_BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  "${prefix[@]}" >"$WORK/cmake.log" || { cat "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$TORCH_BUILD" --target kiln_torch -j "$(nproc)" >"$WORK/build.log" || { tail -50 "$WORK/build.log" >&2; exit 1; }
export KILN_PLUGIN_PATH=$TORCH_BUILD/plugins:$KILN_HOST/lib/kiln/plugins
KILN=$KILN_HOST/bin/kiln
echo "train.torch: $("$KILN" plugins describe train.torch | sed -n 2p)"
"$KILN" plugins describe train.torch | sed -n 3p

# The pipeline, with the train step given a GPU (none for the dry run).
if [ $DRY = 1 ]; then
  sed '/# KILN_GPU_RESOURCES/d' "$HERE/pipeline.yaml" >"$WORK/pipeline.yaml"
else
  sed 's/# KILN_GPU_RESOURCES/resources: {gpus: 1}/' "$HERE/pipeline.yaml" >"$WORK/pipeline.yaml"
fi

# One row per precision: kiln's and PyTorch's mean seconds per epoch (all
# epochs, and without the first, which pays for CUDA's lazy start-up), ratio,
# test accuracy.
summary() {  # name kiln-run.json reference.json
  "$PY" - "$@" <<'PYEOF'
import json, os, sys
name, run, ref = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
history = json.load(open(os.path.join(run["run_dir"], run["steps"]["train"]["artifacts"]["history"], "history.json")))
kiln = [row["seconds"] for row in history["epochs"]]
torch = ref["seconds"]
mean = lambda xs: sum(xs) / len(xs)
rest = lambda xs: xs[1:] if len(xs) > 1 else xs
print("%-5s %8.3f %8.3f %8.3f %8.3f %6.2fx %8.4f %8.4f" % (
    name, mean(kiln), mean(torch), mean(rest(kiln)), mean(rest(torch)), mean(rest(kiln)) / mean(rest(torch)),
    run["steps"]["evaluate"]["outputs"]["accuracy"], ref["accuracy"]))
PYEOF
}

declare -a ROWS
for precision in $PRECISIONS; do
  dir=$WORK/kiln-$precision
  "$KILN" run "$WORK/pipeline.yaml" --executor process --no-cache --workdir "$dir" --json -p data_dir="$DATA" \
    -p device="$DEVICE" -p precision="$precision" -p epochs="$EPOCHS" -p discard="$DISCARD" -p threads="$THREADS" \
    2>"$dir.log" >"$dir.json" || { tail -30 "$dir.log" >&2; exit 1; }
  "$PY" "$HERE/reference.py" --data "$DATA" --device "$DEVICE" --precision "$precision" --epochs "$EPOCHS" \
    --discard "$DISCARD" --threads "$THREADS" >"$WORK/torch-$precision.json"
  ROWS+=("$(summary "$precision" "$dir.json" "$WORK/torch-$precision.json")")
done

echo "device $DEVICE, $EPOCHS epoch(s), batch 128, $(nproc) cores, PyTorch $("$PY" -c 'import torch; print(torch.__version__)')"
echo "                 s/epoch (all)      s/epoch (after the 1st)         test accuracy"
echo "prec      kiln  PyTorch     kiln  PyTorch  ratio     kiln  PyTorch"
for r in "${ROWS[@]}"; do echo "$r"; done

# Serving: kiln serve with serve.torch on the CPU and on $DEVICE, dynamic
# batching (up to 256 rows, 2 ms), the same load for each; the fashion CNN
# trained above (fp32) and samples/digits' MLP.
[[ " $PRECISIONS " == *" fp32 "* ]] || exit 0

# serve_rows NAME MODEL_DIR: one row per device for model NAME (a version
# directory), its config.json's device set for each.
serve_rows() {
  local name=$1 model=$2 serve_device repo server
  for serve_device in cpu "$DEVICE"; do
    repo=$WORK/repo-$name-$serve_device
    rm -rf "$repo" && mkdir -p "$repo/$name"
    cp -r "$model" "$repo/$name/1"
    "$PY" - "$model/../config.json" "$repo/$name/config.json" "$serve_device" <<'PYEOF'
import json, os, sys
source, target, device = sys.argv[1:4]
config = json.load(open(source)) if os.path.exists(source) else {}
config.update({"device": device, "max_batch_size": 256, "max_queue_delay_us": 2000})
json.dump(config, open(target, "w"))
PYEOF
    rm -f "$WORK/port"
    "$KILN" serve --model-repo "$repo" --port 0 --port-file "$WORK/port" --access-log off \
      >"$WORK/serve-$name-$serve_device.log" 2>&1 &
    server=$!
    for _ in $(seq 1 600); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    [ -s "$WORK/port" ] || { cat "$WORK/serve-$name-$serve_device.log" >&2; kill "$server"; exit 1; }
    ready="import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
    for _ in $(seq 1 600); do
      "$PY" -c "$ready" "http://127.0.0.1:$(cat "$WORK/port")/v2/models/$name/ready" 2>/dev/null && break
      sleep 0.1
    done
    "$PY" "$HERE/serve_load.py" --port "$(cat "$WORK/port")" --model "$name" --rows "${SERVE_ROWS:-32}" \
      --requests "${SERVE_REQUESTS:-200}" --conns "${SERVE_CONNS:-8}" >"$WORK/serve-$name-$serve_device.json"
    kill "$server"
    wait "$server" 2>/dev/null || true
    "$PY" -c 'import json, sys; j = json.load(open(sys.argv[2])); print("%-10s %-8s %11.1f %10.0f %8.2f %8.2f%s" % (sys.argv[1], sys.argv[3], j["requests_per_s"], j["images_per_s"], j["p50_ms"], j["p99_ms"], "  (%d errors)" % j["errors"] if j["errors"] else ""))' \
      "$name" "$WORK/serve-$name-$serve_device.json" "$serve_device"
    [ "$DEVICE" = cpu ] && break  # the dry run: one CPU row
  done
}

fashion=$("$PY" -c 'import json, os, sys; r = json.load(open(sys.argv[1])); print(os.path.join(r["run_dir"], r["steps"]["train"]["artifacts"]["model"]))' "$WORK/kiln-fp32.json")
# samples/digits as it is (its train step has no GPU, so device auto trains
# on the CPU); it publishes the model with its preprocessing to a repository.
"$KILN" run "$ROOT/samples/digits/pipeline.yaml" --no-cache --workdir "$WORK/digits" \
  --param model_repo="$WORK/digits-models" --json 2>"$WORK/digits.log" >"$WORK/digits.json" ||
  { tail -30 "$WORK/digits.log" >&2; exit 1; }
digits=$(ls -d "$WORK/digits-models/digits"/*/ | sort -V | tail -n 1)

echo
echo "kiln serve, ${SERVE_ROWS:-32} rows per request, ${SERVE_CONNS:-8} connections"
echo "model      device    requests/s   images/s   p50 ms   p99 ms"
serve_rows fashion "$fashion"
serve_rows digits "${digits%/}"
