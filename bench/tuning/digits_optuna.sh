#!/usr/bin/env bash
# kiln's tune step vs Optuna on samples/digits-tuning (issue 23): the same
# data (kiln's own split and transform artifacts), MLP, optimizer, search
# space, trial budget, epochs per trial and seeds. kiln: `kiln run` of the
# sample (TPE x ASHA, TPE x Hyperband); Optuna 3.1 + PyTorch
# (digits_optuna.py): TPE + successive halving, TPE + Hyperband pruner; each
# at 1 and 2 parallel trials (parallel_trials / n_jobs).
#
#   bench/tuning/digits_optuna.sh BUILD_DIR SEEDS
#   bench/tuning/digits_optuna.sh build 5                       # seeds 0-4, 40 trials, 27 epochs
#   TRIALS=4 EPOCHS=2 PARALLELS=1 bench/tuning/digits_optuna.sh build 1   # a smoke test
#
# Seed s: the pipeline's params.seed = s (split, initialisation, batch order)
# and the search's seed = s (tune.seed / TPESampler(seed)). BUILD_DIR holds
# bin/kiln (built already; absolute, or relative to the repository root).
# Environment: FIRST_SEED (0: seeds FIRST_SEED ... FIRST_SEED+SEEDS-1), TRIALS (40), EPOCHS (27), PARALLELS ("1 2"), CONFIGS
# ("kiln:asha kiln:hyperband optuna:sh optuna:hyperband"; kiln:asha@0 is
# the sample with settings.history_lag: 0, no deterministic history), PYTHON
# (/usr/bin/python3, with python3-torch and python3-optuna), NICE (empty; e.g.
# "nice -n 19"), WORK (default: a temporary directory; kept), REPLAY ("asha":
# the kiln runs, at 1 parallel trial, of these schedulers whose trials are
# retrained in PyTorch by digits_optuna.py --replay, which fails unless every
# per-epoch validation accuracy is kiln's to the last bit; "" for none).
# One JSON line per run goes to $WORK/results.jsonl, the table to stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SEEDS" >&2; exit 2; }
case $1 in /*) BUILD=$1 ;; *) BUILD=$ROOT/$1 ;; esac
SEEDS=$2
FIRST_SEED=${FIRST_SEED:-0}
TRIALS=${TRIALS:-40}
EPOCHS=${EPOCHS:-27}
PARALLELS=${PARALLELS:-1 2}
CONFIGS=${CONFIGS:-kiln:asha kiln:hyperband optuna:sh optuna:hyperband}
PYTHON=${PYTHON:-/usr/bin/python3}
NICE=${NICE:-}
REPLAY=${REPLAY-asha}
WORK=${WORK:-$(mktemp -d)}
KILN=$BUILD/bin/kiln
[ -x "$KILN" ] || { echo "$KILN: not found (build kiln first)" >&2; exit 1; }
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
echo "work: $WORK; $(date -u '+%F %T UTC'); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

run_kiln() {  # scheduler[@history_lag] parallel seed
  local label=$1 scheduler=${1%@*} parallel=$2 seed=$3 dir=$WORK/kiln-$1-p$2-s$3 lag=""
  [[ $label == *@* ]] && lag=", history_lag: ${label#*@}"
  mkdir -p "$dir"
  # The sample with this run's budget, parallelism, scheduler and search
  # seed; it sits in samples/ so that its relative data path resolves.
  local pipeline=$ROOT/samples/digits-tuning/.bench-optuna-$$.yaml
  sed -e "s/scheduler: asha/scheduler: $scheduler/" -e "s/max_trials: 40/max_trials: $TRIALS/" \
      -e "s/parallel_trials: 2/parallel_trials: $parallel/" -e "s/      seed: 7/      seed: $seed/" \
      -e "s/n_startup_trials: 10}/n_startup_trials: 10$lag}/" \
      "$ROOT/samples/digits-tuning/pipeline.yaml" >"$pipeline"
  grep -q "scheduler: $scheduler" "$pipeline" && grep -q "max_trials: $TRIALS" "$pipeline" \
    && grep -q "n_startup_trials: 10$lag}" "$pipeline" \
    && grep -q "^      seed: $seed$" "$pipeline" || { echo "the sample's tune block changed" >&2; exit 1; }
  local start end
  start=$(date +%s.%N)
  KILN_HOME=$dir/home $NICE "$KILN" run "$pipeline" --param epochs="$EPOCHS" --param seed="$seed" \
    --no-cache --jobs "$parallel" --json >"$dir/run.json" 2>"$dir/run.log" \
    || { rm -f "$pipeline"; echo "kiln $label p$parallel s$seed: the run failed, see $dir" >&2; exit 1; }
  end=$(date +%s.%N)
  rm -f "$pipeline"
  KILN_HOME=$dir/home "$KILN" trials latest tune --json >"$dir/trials.json"
  "$PYTHON" - "$label" "$parallel" "$seed" "$dir" "$start" "$end" >>"$RESULTS" <<'PY'
import glob, json, sys
scheduler, parallel, seed, d, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
run = json.load(open(f"{d}/run.json"))
rows = json.load(open(f"{d}/trials.json"))
(log,) = glob.glob(f"{d}/home/runs/*/events.jsonl")
reported = {}  # trial unit -> the epochs it reported val_accuracy for
for line in open(log):
    e = json.loads(line)
    if e["type"] == "metric" and e["step"] == "tune" and e["name"] == "val_accuracy" and e["at"] >= 1:
        reported.setdefault(e["unit"], set()).add(e["at"])
steps = run["steps"]
tune = steps["tune"]["outputs"]
# The steps run one after another: the tune step's wall is the run's less the others'.
others = sum(s["duration_seconds"] for name, s in steps.items() if name != "tune")
print(json.dumps({
    "tool": "kiln", "pruner": scheduler, "parallel": parallel, "seed": seed, "trials": len(rows),
    "completed": sum(r["status"] == "succeeded" for r in rows),
    "pruned": sum(r["status"] == "early-stopped" for r in rows),
    "best_val": tune["best_value"], "test": steps["evaluate"]["outputs"]["accuracy"],
    "best_params": tune["best_parameters"],
    # Every epoch a trial reported, from the run's event log: its curve in
    # the trials table ends where the tuner stopped it, so a report landing
    # after the stop is counted here and not there.
    "epochs": sum(len(v) for v in reported.values()),
    "epochs_in_curves": sum(len(r.get("curve", {})) for r in rows),
    "tune_seconds": run["duration_seconds"] - others, "run_seconds": end - start,
    "transform": steps["transform"]["artifacts"]}))
PY
  if [[ " $REPLAY " == *" $label "* && $parallel == 1 && $TRIALS -gt 1 ]]; then
    # Retrain this run's trials in PyTorch: each curve must be kiln's, bit for bit.
    local a
    a=$(tail -1 "$RESULTS")
    "$PYTHON" "$ROOT/bench/tuning/digits_optuna.py" --epochs "$EPOCHS" --seed "$seed" --replay "$dir/trials.json" \
      $("$PYTHON" -c 'import json,sys; t=json.loads(sys.argv[1])["transform"]; print("--train", t["train"], "--validation", t["validation"], "--test", t["test"])' "$a") \
      >"$dir/replay.json" || { echo "kiln $label s$seed: PyTorch's curves differ from kiln's, see $dir/replay.json" >&2; exit 1; }
    echo "  replay of kiln $label p1 seed $seed in PyTorch: $(cat "$dir/replay.json")" >&2
  fi
}

run_optuna() {  # pruner parallel seed
  local pruner=$1 parallel=$2 seed=$3 data=$WORK/data-s$3.json
  [ -f "$data" ] || {  # kiln's transform artifacts for this seed: a short kiln run if no kiln run made them
    local saved=$RESULTS
    RESULTS=$WORK/data-run.jsonl
    TRIALS=1 EPOCHS=1 run_kiln asha 1 "$seed"
    tail -1 "$RESULTS" >"$data"
    RESULTS=$saved
  }
  local t v s
  t=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["transform"]["train"])' "$data")
  v=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["transform"]["validation"])' "$data")
  s=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["transform"]["test"])' "$data")
  local start end line
  start=$(date +%s.%N)
  line=$($NICE "$PYTHON" "$ROOT/bench/tuning/digits_optuna.py" --train "$t" --validation "$v" --test "$s" \
    --pruner "$pruner" --trials "$TRIALS" --epochs "$EPOCHS" --n-jobs "$parallel" --seed "$seed" --search-seed "$seed")
  end=$(date +%s.%N)
  "$PYTHON" -c 'import json,sys; r=json.loads(sys.argv[1]); r["run_seconds"]=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps(r))' \
    "$line" "$start" "$end" >>"$RESULTS"
}

for ((seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++)); do
  for parallel in $PARALLELS; do
    for config in $CONFIGS; do
      case $config in
        kiln:*) run_kiln "${config#kiln:}" "$parallel" "$seed"
                [ -f "$WORK/data-s$seed.json" ] || tail -1 "$RESULTS" >"$WORK/data-s$seed.json" ;;
        optuna:*) run_optuna "${config#optuna:}" "$parallel" "$seed" ;;
        *) echo "unknown config $config" >&2; exit 2 ;;
      esac
      echo "  $config p$parallel seed $seed: $(tail -1 "$RESULTS" | cut -c1-200)" >&2
    done
  done
done

"$PYTHON" - "$RESULTS" "$TRIALS" "$EPOCHS" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
groups = collections.OrderedDict()
for r in rows:
    groups.setdefault((r["tool"], r["pruner"], r["parallel"]), []).append(r)
name = {("kiln", "asha"): "kiln TPE x ASHA", ("kiln", "hyperband"): "kiln TPE x Hyperband",
        ("kiln", "asha@0"): "kiln TPE x ASHA, history_lag 0", ("kiln", "hyperband@0"): "kiln TPE x Hyperband, history_lag 0",
        ("optuna", "sh"): "Optuna TPE + successive halving", ("optuna", "hyperband"): "Optuna TPE + Hyperband pruner"}
def ms(values, scale=1.0, digits=2):
    values = [v * scale for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"
print(f"{sys.argv[2]} trials of at most {sys.argv[3]} epochs; mean ± standard deviation over seeds")
print("| configuration | parallel | seeds | best validation accuracy (%) | test accuracy of the best (%) | epochs (trials) | completed / pruned | tune wall (s) | whole run (s) |")
print("|---|---|---|---|---|---|---|---|---|")
for parallel in sorted({k[2] for k in groups}):
    for (tool, pruner, p), rs in groups.items():
        if p != parallel:
            continue
        print(f"| {name.get((tool, pruner), tool + ' ' + pruner)} | {p} | {len(rs)} | {ms([r['best_val'] for r in rs], 100)} "
              f"| {ms([r['test'] for r in rs], 100)} | {ms([r['epochs'] for r in rs], 1, 0)} "
              f"| {statistics.mean(r['completed'] for r in rs):.1f} / {statistics.mean(r['pruned'] for r in rs):.1f} "
              f"| {ms([r['tune_seconds'] for r in rs])} | {ms([r['run_seconds'] for r in rs])} |")
PY
