#!/usr/bin/env bash
# kiln's tuning step against a plain LibTorch loop on identical work (issue
# 23: per-epoch overhead <= 1.1x). For each seed: `kiln run` of
# samples/digits-tuning (TPE x SCHEDULER, 1 parallel trial), then
# kiln_bench_plain_loop retrains the very trials of that run, each for the
# epochs it trained in kiln, in one process with no checkpoints, reports or
# processes per trial, and checks that every curve is kiln's to the last bit.
# Prints per seed and in all: the epochs, kiln's tune step wall (the run less
# its other steps: trials, search, the step server loading LibTorch), the
# plain loop's training seconds and its whole process (LibTorch's load and
# the data read included), ms per epoch and the ratios.
#
#   bench/tuning/plain_loop.sh [BUILD_DIR] [SEEDS]      # defaults: build, 3
# Environment: SCHEDULER (asha), TRIALS (40), EPOCHS (27), WORK (a temporary directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SEEDS=${2:-3}
SCHEDULER=${SCHEDULER:-asha}
TRIALS=${TRIALS:-40}
EPOCHS=${EPOCHS:-27}
WORK=${WORK:-$(mktemp -d)}
KILN=$BUILD/bin/kiln
PLAIN=$BUILD/bench/bin/kiln_bench_plain_loop
PYTHON=/usr/bin/python3

cmake -S "$ROOT" -B "$BUILD" -DKILN_BUILD_BENCH=ON >/dev/null
ninja -C "$BUILD" kiln kiln_tune kiln_data kiln_torch kiln_bench_plain_loop >/dev/null
echo "work: $WORK; $(date -u '+%F %T UTC'); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

pipeline=$ROOT/samples/digits-tuning/.bench-plain-$$.yaml
trap 'rm -f "$pipeline"' EXIT
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for ((seed = 0; seed < SEEDS; seed++)); do
  dir=$WORK/s$seed
  mkdir -p "$dir"
  sed -e "s/scheduler: asha/scheduler: $SCHEDULER/" -e "s/max_trials: 40/max_trials: $TRIALS/" \
      -e "s/parallel_trials: 2/parallel_trials: 1/" -e "s/      seed: 7/      seed: $seed/" \
      "$ROOT/samples/digits-tuning/pipeline.yaml" >"$pipeline"
  grep -q "parallel_trials: 1" "$pipeline" && grep -q "^      seed: $seed$" "$pipeline" \
    || { echo "the sample's tune block changed" >&2; exit 1; }
  KILN_HOME=$dir/home "$KILN" run "$pipeline" --param epochs="$EPOCHS" --param seed="$seed" \
    --no-cache --jobs 1 --json >"$dir/run.json" 2>"$dir/run.log" \
    || { echo "seed $seed: the kiln run failed, see $dir" >&2; exit 1; }
  KILN_HOME=$dir/home "$KILN" trials latest tune --json >"$dir/trials.json"
  read -r train validation < <("$PYTHON" -c '
import json, sys
a = json.load(open(sys.argv[1]))["steps"]["transform"]["artifacts"]
print(a["train"], a["validation"])' "$dir/run.json")
  start=$(date +%s.%N)
  "$PLAIN" "$train" "$validation" "$dir/trials.json" "$EPOCHS" "$seed" >"$dir/plain.json"
  end=$(date +%s.%N)
  "$PYTHON" - "$seed" "$dir" "$start" "$end" >>"$RESULTS" <<'PY'
import json, sys
seed, d, start, end = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
run = json.load(open(f"{d}/run.json"))
plain = json.load(open(f"{d}/plain.json"))
rows = json.load(open(f"{d}/trials.json"))
steps = run["steps"]
others = sum(s["duration_seconds"] for name, s in steps.items() if name != "tune")
epochs = sum(len(r.get("curve", {})) for r in rows)
assert epochs == plain["epochs"], (epochs, plain)
print(json.dumps({"seed": seed, "trials": len(rows), "epochs": epochs,
                  "kiln": run["duration_seconds"] - others, "plain": plain["seconds"],
                  "plain_process": end - start, "identical": plain["curves_identical"]}))
PY
  tail -1 "$RESULTS" >&2
done
"$PYTHON" - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e = sum(r["epochs"] for r in rows)
k, p, w = (sum(r[x] for r in rows) for x in ("kiln", "plain", "plain_process"))
same = sum(r["identical"] for r in rows)
n = sum(r["trials"] for r in rows)
print(f"{len(rows)} seeds, {n} trials, {e} epochs; curves identical to kiln's: {same}/{n}")
print(f"kiln tune step      {k:7.2f} s  {1000 * k / e:6.2f} ms/epoch")
print(f"plain loop, training {p:6.2f} s  {1000 * p / e:6.2f} ms/epoch   kiln / plain = {k / p:.2f}x")
print(f"plain loop, process  {w:6.2f} s  {1000 * w / e:6.2f} ms/epoch   kiln / plain = {k / w:.2f}x")
PY
