#!/usr/bin/env bash
# Data-parallel train.torch (docs/distributed.md): the Fashion-MNIST CNN of
# samples/fashion-mnist on one process and on 2 replicas (c10d Gloo over
# loopback), the same global batch (128), in one run: seconds per epoch,
# test accuracy, and the share of the training time rank 0 spent in
# collectives (the gradients' all-reduce, waiting for the slower rank included).
#
#   bench/distributed_train.sh [BUILD_DIR] [EPOCHS] [DATA_DIR]
#
# BUILD_DIR defaults to build/, EPOCHS to 2, DATA_DIR to Debian's
# dataset-fashion-mnist (/usr/share/datasets/fashion-mnist): any directory
# holding the four IDX files. Configurations: 1 process with 1 thread, 1
# process with all cores, N=2 replicas with cores/2 threads each.
# KILN_BENCH_EXECUTOR=slurm runs the same on the Slurm executor (2 replicas =
# one srun step of 2 tasks) on the cluster of scripts/slurm-local.sh (started
# here when not running, and stopped again at the end; root).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
EPOCHS=${2:-2}
DATA=${3:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
CORES=$(nproc)
[ -f "$DATA/train-images-idx3-ubyte.gz" ] ||
  { echo "no Fashion-MNIST in $DATA (apt-get install dataset-fashion-mnist, or pass its directory)" >&2; exit 2; }
ninja -C "$BUILD" kiln kiln_torch kiln_data >/dev/null
WORK=$(mktemp -d)
started_cluster=""
# A cluster this script started is stopped again: left running, it would hold
# the ports the test suite's own Slurm fixture needs.
trap '[ -n "$started_cluster" ] && "$ROOT/scripts/slurm-local.sh" stop >/dev/null 2>&1; rm -rf "$WORK"' EXIT
export KILN_PLUGIN_PATH=$BUILD/lib/kiln/plugins
EXECUTOR=${KILN_BENCH_EXECUTOR:-process}
if [ "$EXECUTOR" = slurm ]; then
  "$ROOT/scripts/slurm-local.sh" status >/dev/null 2>&1 || { "$ROOT/scripts/slurm-local.sh" start >/dev/null; started_cluster=1; }
  eval "$("$ROOT/scripts/slurm-local.sh" env)"
fi

# The sample's pipeline with its train step on REPLICAS processes.
pipeline() {  # replicas
  sed "s|^    retries: {limit: 2, on: \[crash\]}|    distributed: {replicas: $1}|" \
    "$ROOT/samples/fashion-mnist/pipeline.yaml" >"$WORK/p$1.yaml"
  grep -q "distributed: {replicas: $1}" "$WORK/p$1.yaml" || { echo "samples/fashion-mnist changed" >&2; exit 1; }
  echo "$WORK/p$1.yaml"
}

# One row: configuration name, replicas, threads per process.
row() {
  local name=$1 replicas=$2 threads=$3 dir=$WORK/w-$2-$3
  "$BUILD/bin/kiln" run "$(pipeline "$replicas")" --executor "$EXECUTOR" --workdir "$dir" --json -p data_dir="$DATA" -p epochs="$EPOCHS" \
    -p threads="$threads" 2>"$dir.log" >"$dir.json" || { cat "$dir.log" >&2; exit 1; }
  "$PY" - "$name" "$dir.json" <<'PYEOF'
import json, os, re, sys
name, run = sys.argv[1], json.load(open(sys.argv[2]))
history = json.load(open(os.path.join(run["run_dir"], run["steps"]["train"]["artifacts"]["history"], "history.json")))
seconds = [row["seconds"] for row in history["epochs"]]
attempt = os.path.join(run["run_dir"], "steps", "train", "attempt-1", "events.jsonl")
share = "-"
for line in open(attempt):
    m = re.search(r"([0-9.]+) s of ([0-9.]+) s training in collectives \(([0-9.]+)%\)", line)
    if m: share = "%s%% (%s s of %s s)" % (m.group(3), m.group(1), m.group(2))
print("| %s | %.2f | %.4f | %s |" % (name, sum(seconds) / len(seconds), run["steps"]["evaluate"]["outputs"]["accuracy"], share))
PYEOF
}

echo "Fashion-MNIST CNN, global batch 128, $EPOCHS epoch(s), $CORES cores, $EXECUTOR executor; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| configuration | s/epoch | test accuracy | rank 0 in collectives |"
echo "|---|---|---|---|"
row "1 process, 1 thread" 1 1
row "1 process, $CORES threads" 1 "$CORES"
row "2 replicas x $((CORES / 2 > 0 ? CORES / 2 : 1)) thread(s)" 2 0
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
