#!/usr/bin/env bash
# train.torch vs PyTorch 1.13.1 on the same model, data, batch size, epochs
# and thread count, in one run: seconds per epoch, their ratio, and final
# test accuracy, for the digits MLP and the Fashion-MNIST CNN.
#
#   bench/train_torch/run.sh                 # both cases, full length
#   CASES=digits EPOCHS_DIGITS=5 bench/train_torch/run.sh
#
# Environment: BUILD_DIR (default build), THREADS (default: all cores),
# EPOCHS_DIGITS (30), EPOCHS_FASHION (10), CASES ("digits fashion"), WORK
# (default: a temporary directory). Needs python3-torch and, for the CNN,
# dataset-fashion-mnist (Debian packages).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/train_torch
BUILD_DIR=${BUILD_DIR:-build}
BUILD=$ROOT/$BUILD_DIR
THREADS=${THREADS:-$(nproc)}
EPOCHS_DIGITS=${EPOCHS_DIGITS:-30}
EPOCHS_FASHION=${EPOCHS_FASHION:-10}
CASES=${CASES:-digits fashion}
PY=/usr/bin/python3  # Debian's python3-torch lives here, not in a virtualenv
WORK=${WORK:-$(mktemp -d)}

"$PY" -c 'import torch' 2>/dev/null || { echo "needs python3-torch (apt-get install python3-torch)" >&2; exit 2; }
[ -f "$BUILD/build.ninja" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD" kiln kiln_torch >/dev/null
mkdir -p "$WORK/plugins"
c++ -std=c++17 -O2 -shared -fPIC -fvisibility=hidden -I"$ROOT/plugin_api/include" \
  "$HERE/dataset_source.cpp" -o "$WORK/plugins/kiln_bench_dataset.so"
[ -d "$WORK/data/digits" ] || (cd "$HERE" && "$PY" datasets.py "$WORK/data")
export KILN_PLUGIN_PATH=$WORK/plugins:$BUILD/lib/kiln/plugins

# kiln: mean seconds/epoch from the TrainingHistory, accuracy from evaluate.
run_kiln() {  # data-dir args...
  local data=$1
  shift
  "$BUILD/bin/kiln" run "$HERE/pipeline.yaml" --workdir "$WORK/kiln" --json -p data="$data" -p threads="$THREADS" "$@" \
    2>"$WORK/kiln.log" >"$WORK/run.json"
  "$PY" - "$WORK/run.json" <<'PYEOF'
import json, sys
run = json.load(open(sys.argv[1]))
import os  # artifact paths are absolute (in the store) or relative to the run directory
history = json.load(open(os.path.join(run["run_dir"], run["steps"]["train"]["artifacts"]["history"], "history.json")))
seconds = [row["seconds"] for row in history["epochs"]]
print(json.dumps({"seconds_per_epoch": sum(seconds) / len(seconds),
                  "accuracy": run["steps"]["evaluate"]["outputs"]["accuracy"]}))
PYEOF
}

# One row of the table: name, kiln JSON, PyTorch JSON.
row() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
name, kiln, torch = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = kiln["seconds_per_epoch"] / torch["seconds_per_epoch"]
print("%-22s %12.3f %12.3f %7.2fx %10.4f %10.4f" % (name, kiln["seconds_per_epoch"], torch["seconds_per_epoch"], ratio,
                                                     kiln["accuracy"], torch["accuracy"]))
PYEOF
}

declare -a ROWS
for case in $CASES; do
  case $case in
    digits)
      args=(-p architecture=mlp -p 'hidden_sizes=[128, 64]' -p batch_size=32 -p epochs="$EPOCHS_DIGITS" -p lr=0.001)
      base=(--architecture mlp --hidden-sizes '[128, 64]' --batch-size 32 --epochs "$EPOCHS_DIGITS" --lr 0.001)
      name="digits MLP ($EPOCHS_DIGITS ep)" ;;
    fashion)
      [ -d "$WORK/data/fashion" ] || { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)" >&2; continue; }
      args=(-p architecture=cnn -p 'conv_channels=[32, 64]' -p 'dense_sizes=[128]' -p dropout=0.25 -p batch_size=128
            -p epochs="$EPOCHS_FASHION" -p lr=0.001)
      base=(--architecture cnn --conv-channels '[32, 64]' --dense-sizes '[128]' --dropout 0.25 --batch-size 128
            --epochs "$EPOCHS_FASHION" --lr 0.001)
      name="fashion CNN ($EPOCHS_FASHION ep)" ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  kiln=$(run_kiln "$WORK/data/$case" "${args[@]}")
  torch=$(cd "$HERE" && "$PY" baseline.py --data "$WORK/data/$case" --threads "$THREADS" "${base[@]}" 2>"$WORK/torch.log")
  ROWS+=("$(row "$name" "$kiln" "$torch")")
done

echo "threads=$THREADS  work=$WORK"
printf "%-22s %12s %12s %8s %10s %10s\n" case "kiln s/ep" "torch s/ep" ratio "kiln acc" "torch acc"
printf "%s\n" "${ROWS[@]}"
