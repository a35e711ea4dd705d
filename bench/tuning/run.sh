#!/usr/bin/env bash
# Tuning algorithms on the digits MLP (samples/digits-tuning), the same trial
# budget and seed for each: best validation accuracy found and total epochs
# the trials ran (an early-stopped trial counts the epochs it reported).
#
#   bench/tuning/run.sh                         # random, tpe, asha; 40 trials, 27 epochs
#   TUNERS="random asha" TRIALS=12 EPOCHS=9 bench/tuning/run.sh   # a quick look
#   TUNERS="tpe+asha random+hyperband" bench/tuning/run.sh       # tune.search pairs: SAMPLER+SCHEDULER
#
# Environment: BUILD_DIR (default build), TUNERS ("random tpe asha"), TRIALS
# (40), EPOCHS (27), PARALLEL (2), SEED (7), WORK (default: a temporary directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/${BUILD_DIR:-build}
TUNERS=${TUNERS:-random tpe asha}
TRIALS=${TRIALS:-40}
EPOCHS=${EPOCHS:-27}
PARALLEL=${PARALLEL:-2}
SEED=${SEED:-7}
WORK=${WORK:-$(mktemp -d)}
KILN=$BUILD/bin/kiln

[ -f "$BUILD/build.ninja" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD" kiln kiln_tune kiln_data kiln_torch >/dev/null

printf '%-8s %8s %14s %8s %10s\n' tuner trials best_val_acc epochs seconds
for tuner in $TUNERS; do
  dir=$WORK/$tuner
  mkdir -p "$dir"
  # The sample with this run's tuner, budget and seed; the pipeline sits in
  # samples/ so that its relative data path still resolves.
  pipeline=$ROOT/samples/digits-tuning/.bench-$tuner.yaml
  if [[ $tuner == *+* ]]; then  # a tune.search pair
    pick=(-e "s/sampler: tpe/sampler: ${tuner%+*}/" -e "s/scheduler: asha/scheduler: ${tuner#*+}/")
  else
    pick=(-e "s/tuner: tune.search/tuner: tune.$tuner/")
  fi
  sed "${pick[@]}" -e "s/max_trials: 40/max_trials: $TRIALS/" \
      -e "s/parallel_trials: 2/parallel_trials: $PARALLEL/" -e "s/seed: 7/seed: $SEED/" \
      "$ROOT/samples/digits-tuning/pipeline.yaml" >"$pipeline"
  start=$(date +%s.%N)
  KILN_HOME=$dir/home "$KILN" run "$pipeline" --param epochs="$EPOCHS" --no-cache --jobs "$PARALLEL" \
    >"$dir/run.log" 2>&1 || { rm -f "$pipeline"; echo "$tuner: the run failed, see $dir/run.log" >&2; exit 1; }
  end=$(date +%s.%N)
  rm -f "$pipeline"
  KILN_HOME=$dir/home "$KILN" trials latest tune --json >"$dir/trials.json"
  python3 - "$tuner" "$dir/trials.json" "$start" "$end" <<'PY'
import json, sys
tuner, path, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rows = json.load(open(path))
best = max((r["val_accuracy"] for r in rows if r["status"] in ("succeeded", "cached") and r["val_accuracy"] is not None), default=float("nan"))
epochs = sum(len(r.get("curve", {})) for r in rows)
print(f"{tuner:<8} {len(rows):>8} {100 * best:>13.2f}% {epochs:>8} {end - start:>10.1f}")
PY
done
