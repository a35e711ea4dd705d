#!/usr/bin/env bash
# kiln's tuning step against a plain LibTorch loop on identical work (issue
# 23: per-epoch overhead <= 1.1x). For each seed: `kiln run` of
# samples/digits-tuning (TPE x SCHEDULER, 1 parallel trial), then
# kiln_bench_plain_loop retrains the very trials of that run, each for the
# epochs it trained in kiln, in one process with no checkpoints, reports or
# processes per trial, and checks that every curve is kiln's to the last bit.
# The loop runs twice per kiln run: bare (the validation accuracy alone) and
# with --metrics (also the training loss and accuracy and the validation
# loss that kiln reports every epoch, as a training loop usually prints).
# Prints, over all seeds:
#   - per epoch: every trial's epochs 2 ... n (but trial 0 and the table's
#     first row, where kiln's worker and the loop meet LibTorch), in kiln the span from its epoch 1
#     report to its last one in the run's event log (the host's clock, ms: a
#     span is off by at most 1 ms however many epochs it holds), in the loops
#     the same epochs' seconds; ratios on the means and on each trial's best;
#   - per trial, its start and epoch 1: in kiln the train unit's attempt
#     start to epoch 1's report (the journal's commit, the step server, the
#     warm worker's setup), in the loop the model's construction and epoch 1;
#   - the whole tune step (the run less its other steps: the trials and their
#     evaluate steps, the search) against the loop's whole process (LibTorch's
#     load and the data read included), with the ratio per seed and best-of.
#
#   bench/tuning/plain_loop.sh [BUILD_DIR] [SEEDS]      # defaults: build, 3
# Environment: SCHEDULER (asha), TRIALS (40), EPOCHS (27), REPEAT (3: kiln and the
# loop run alternately this many times per seed; means and best-of reported), WORK (a temporary directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SEEDS=${2:-3}
SCHEDULER=${SCHEDULER:-asha}
TRIALS=${TRIALS:-40}
EPOCHS=${EPOCHS:-27}
REPEAT=${REPEAT:-3}
WORK=${WORK:-$(mktemp -d)}
KILN=$BUILD/bin/kiln
PLAIN=$BUILD/bench/bin/kiln_bench_plain_loop
PYTHON=/usr/bin/python3

cmake -S "$ROOT" -B "$BUILD" -DKILN_BUILD_BENCH=ON >/dev/null
ninja -C "$BUILD" kiln kiln_tune kiln_data kiln_torch kiln_bench_plain_loop >/dev/null
mkdir -p "$WORK"
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
  # kiln, the loop, kiln, the loop, ... (REPEAT times each): this VM's speed
  # drifts by tens of percent within minutes, and alternating puts both
  # sides under the same drift. Every kiln run must train the same trials.
  for ((r = 0; r < REPEAT; r++)); do
    KILN_HOME=$dir/home$r "$KILN" run "$pipeline" --param epochs="$EPOCHS" --param seed="$seed" \
      --no-cache --jobs 1 --json >"$dir/run$r.json" 2>"$dir/run$r.log" \
      || { echo "seed $seed: the kiln run failed, see $dir" >&2; exit 1; }
    KILN_HOME=$dir/home$r "$KILN" trials latest tune --json >"$dir/trials$r.json"
    read -r train validation < <("$PYTHON" -c '
import json, sys
a = json.load(open(sys.argv[1]))["steps"]["transform"]["artifacts"]
print(a["train"], a["validation"])' "$dir/run$r.json")
    start=$(date +%s.%N)
    "$PLAIN" "$train" "$validation" "$dir/trials$r.json" "$EPOCHS" "$seed" >"$dir/plain$r.json"
    end=$(date +%s.%N)
    echo "$start $end" >"$dir/plain$r.wall"
    "$PLAIN" "$train" "$validation" "$dir/trials$r.json" "$EPOCHS" "$seed" --metrics >"$dir/metrics$r.json"
  done
  "$PYTHON" - "$seed" "$dir" "$REPEAT" >>"$RESULTS" <<'PY'
import glob, json, re, sys
seed, d, repeat = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
kiln, plain, process = [], [], []
# Per trial (all but trial 0 and the table's first row: where kiln's worker
# and the loop meet LibTorch) and run: its epochs 2 ... n ("later") and its start up to epoch 1's end
# ("first"), on each side: kiln (from the run's event log), the loop, the
# loop computing kiln's metrics too.
sides = ("kiln", "loop", "metrics")
later = {x: [] for x in sides}
first = {x: [] for x in sides}
later_best = {x: {} for x in sides}
first_best = {x: {} for x in sides}
epochs_later = 0
table = json.load(open(f"{d}/trials0.json"))
for r in range(repeat):
    run = json.load(open(f"{d}/run{r}.json"))
    loops = {"loop": json.load(open(f"{d}/plain{r}.json")), "metrics": json.load(open(f"{d}/metrics{r}.json"))}
    rows = json.load(open(f"{d}/trials{r}.json"))
    assert [(x["parameters"], x.get("curve")) for x in rows] == [(x["parameters"], x.get("curve")) for x in table], \
        "a repeated kiln run trained other trials"
    epochs = sum(len(x.get("curve", {})) for x in rows)
    for out in loops.values():
        assert epochs == out["epochs"] and out["curves_identical"] == len(rows), (epochs, out["epochs"], out["curves_identical"])
    others = sum(s["duration_seconds"] for name, s in run["steps"].items() if name != "tune")
    kiln.append(run["duration_seconds"] - others)
    plain.append(loops["loop"]["seconds"])
    start, end = (float(x) for x in open(f"{d}/plain{r}.wall").read().split())
    process.append(end - start)
    # kiln: the train unit's attempt start and the val_accuracy report of
    # each epoch (the host's clock, ms: a span's error is at most 1 ms,
    # however many epochs it holds); a report after the tuner's stop is not
    # the curve's. The loop: each epoch's seconds.
    (log,) = glob.glob(f"{d}/home{r}/runs/*/events.jsonl")
    began, reported = {}, {}
    for line in open(log):
        e = json.loads(line)
        m = re.fullmatch(r"tune\[(\d+)\.train\]", e.get("unit", ""))
        if not m:
            continue
        if e["type"] == "attempt_started":
            began[int(m.group(1))] = e["ts"] / 1000
        elif e["type"] == "metric" and e["name"] == "val_accuracy" and e["at"] >= 1:
            reported[(int(m.group(1)), e["at"])] = e["ts"] / 1000
    run_later = {x: 0.0 for x in sides}
    run_first = {x: 0.0 for x in sides}
    # The loop trains the trials in the table's order (best first): match by trial.
    for j, row in enumerate(rows):
        t, n = row["trial"], len(row.get("curve") or {})
        # Trial 0 is where kiln's worker meets LibTorch, the table's first
        # row where the loop does (its first ops' lazy set-up): neither counts.
        if t == 0 or j == 0 or n == 0 or t not in began or (t, n) not in reported or (t, 1) not in reported:
            continue
        times = {"kiln": (reported[(t, 1)] - began[t], reported[(t, n)] - reported[(t, 1)])}
        for side, out in loops.items():
            rest = sum(out["epoch_seconds"][j][1:])
            times[side] = (out["trial_seconds"][j] - rest, rest)
        if r == 0:
            epochs_later += n - 1
        for side, (f, l) in times.items():
            run_first[side] += f
            first_best[side][t] = min(first_best[side].get(t, float("inf")), f)
            if n > 1:
                run_later[side] += l
                later_best[side][t] = min(later_best[side].get(t, float("inf")), l)
    for side in sides:
        later[side].append(run_later[side])
        first[side].append(run_first[side])
mean = lambda xs: sum(xs) / len(xs)
print(json.dumps({"seed": seed, "trials": len(table), "epochs": epochs, "epochs_later": epochs_later,
                  "starts": len(first_best["kiln"]), "repeats": repeat,
                  "later_runs": later, "first_runs": first,
                  "later_best": {x: sum(v.values()) for x, v in later_best.items()},
                  "first_best": {x: sum(v.values()) for x, v in first_best.items()},
                  "kiln": mean(kiln), "plain": mean(plain), "plain_process": mean(process),
                  "kiln_runs": kiln, "plain_runs": plain, "process_runs": process,
                  "identical": len(table)}))
PY
  tail -1 "$RESULTS" | cut -c1-160 >&2
done
"$PYTHON" - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e = sum(r["epochs"] for r in rows)
k, p, w = (sum(r[x] for r in rows) for x in ("kiln", "plain", "plain_process"))
same = sum(r["identical"] for r in rows)
n = sum(r["trials"] for r in rows)
R = rows[0]["repeats"]
print(f"{len(rows)} seeds x {R} alternating runs, {n} trials, {e} epochs; "
      f"curves identical to kiln's (both loops): {same}/{n}")
# Each side's seconds over the seeds: the mean of the runs, or the sum of
# each trial's best.
means = lambda field: {x: sum(statistics.mean(r[field][x]) for r in rows) for x in ("kiln", "loop", "metrics")}
bests = lambda field: {x: sum(r[field][x] for r in rows) for x in ("kiln", "loop", "metrics")}
# Per epoch: every trial's epochs 2 ... n (its start and epoch 1 apart).
el = sum(r["epochs_later"] for r in rows)
m, b = means("later_runs"), bests("later_best")
print(f"per epoch (epochs 2 ... n of every trial but kiln's and the loop's first, {el} epochs): "
      f"kiln {1000 * m['kiln'] / el:.2f} ms, plain loop {1000 * m['loop'] / el:.2f} ms, "
      f"the loop computing kiln's metrics {1000 * m['metrics'] / el:.2f} ms")
print(f"  kiln / plain loop = {m['kiln'] / m['loop']:.3f}x on the means, {b['kiln'] / b['loop']:.3f}x on each trial's best of {R}; "
      f"kiln / loop with the metrics = {m['kiln'] / m['metrics']:.3f}x, {b['kiln'] / b['metrics']:.3f}x")
st = sum(r["starts"] for r in rows)
f, fb = means("first_runs"), bests("first_best")
print(f"per trial, its start and epoch 1 ({st} trials; kiln: attempt start to epoch 1's report): "
      f"kiln {1000 * f['kiln'] / st:.2f} ms, plain loop {1000 * f['loop'] / st:.2f} ms "
      f"(best of {R}: {1000 * fb['kiln'] / st:.2f} vs {1000 * fb['loop'] / st:.2f} ms)")
print(f"kiln tune step      {k:7.2f} s  {1000 * k / e:6.2f} ms/epoch")
print(f"plain loop, training {p:6.2f} s  {1000 * p / e:6.2f} ms/epoch   kiln / plain = {k / p:.2f}x")
print(f"plain loop, process  {w:6.2f} s  {1000 * w / e:6.2f} ms/epoch   kiln / plain = {k / w:.2f}x")
ratios = sorted(r["kiln"] / r["plain_process"] for r in rows)
print("per seed, kiln / plain process: " + ", ".join(f"{x:.2f}" for x in ratios) +
      f"; median {statistics.median(ratios):.2f}")
# Best of the repeats on each side (as bench/dag_overhead.sh): a run the
# VM slowed down (identical runs here differ by up to 40 %) drops out.
bk, bp = (sum(min(r[x]) for r in rows) for x in ("kiln_runs", "process_runs"))
best = sorted(min(r["kiln_runs"]) / min(r["process_runs"]) for r in rows)
print(f"best of {R}: kiln {bk:.2f} s, plain process {bp:.2f} s: kiln / plain = {bk / bp:.2f}x; "
      "per seed " + ", ".join(f"{x:.2f}" for x in best) + f"; median {statistics.median(best):.2f}")
PY
