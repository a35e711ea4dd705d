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
# the data read included), ms per epoch and the ratios; and the per-epoch
# measure: trials 1 ... n-1's training in kiln (each trial's start in the
# warm worker to its last report, from the run's event log) against the
# loop's time for the same trials.
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
  done
  "$PYTHON" - "$seed" "$dir" "$REPEAT" >>"$RESULTS" <<'PY'
import glob, json, re, sys
seed, d, repeat = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
kiln, plain, process, kiln_trials, loop_trials = [], [], [], [], []
kiln_best, loop_best = {}, {}  # trial -> its fastest run on each side
first = json.load(open(f"{d}/trials0.json"))
for r in range(repeat):
    run = json.load(open(f"{d}/run{r}.json"))
    out = json.load(open(f"{d}/plain{r}.json"))
    rows = json.load(open(f"{d}/trials{r}.json"))
    assert [(x["parameters"], x.get("curve")) for x in rows] == [(x["parameters"], x.get("curve")) for x in first], \
        "a repeated kiln run trained other trials"
    epochs = sum(len(x.get("curve", {})) for x in rows)
    assert epochs == out["epochs"], (epochs, out)
    assert out["curves_identical"] == len(rows), out
    others = sum(s["duration_seconds"] for name, s in run["steps"].items() if name != "tune")
    kiln.append(run["duration_seconds"] - others)
    plain.append(out["seconds"])
    start, end = (float(x) for x in open(f"{d}/plain{r}.wall").read().split())
    process.append(end - start)
    # Each trial's training in kiln: its train unit's attempt start to the
    # val_accuracy report of its curve's last epoch (the worker's start of
    # the trial, every epoch with kiln's per-epoch work, the reports' relay;
    # a report after the tuner's stop is not the curve's), from the run's
    # event log; in the loop, its per-trial time. Trial 0 is left out: kiln
    # loads LibTorch there, the loop before it; so are trials that reported
    # nothing (failed).
    (log,) = glob.glob(f"{d}/home{r}/runs/*/events.jsonl")
    began, reported = {}, {}
    for line in open(log):
        e = json.loads(line)
        m = re.fullmatch(r"tune\[(\d+)\.train\]", e.get("unit", ""))
        if not m:
            continue
        if e["type"] == "attempt_started":
            began[int(m.group(1))] = e["ts"]
        elif e["type"] == "metric" and e["name"] == "val_accuracy" and e["at"] >= 1:
            reported[(int(m.group(1)), e["at"])] = e["ts"]
    # The loop trains the trials in the table's order (best first).
    pairs = []  # (trial, kiln seconds, loop seconds)
    for row, sec in zip(rows, out["trial_seconds"]):
        t, curve = row["trial"], row.get("curve") or {}
        end = (t, max((int(k) for k in curve), default=0))
        if t != 0 and t in began and end in reported:
            pairs.append((t, (reported[end] - began[t]) / 1000, sec))
    kiln_trials.append(sum(k for _, k, _ in pairs))
    loop_trials.append(sum(l for _, _, l in pairs))
    for t, k, l in pairs:
        kiln_best[t] = min(kiln_best.get(t, float("inf")), k)
        loop_best[t] = min(loop_best.get(t, float("inf")), l)
mean = lambda xs: sum(xs) / len(xs)
print(json.dumps({"seed": seed, "trials": len(first), "epochs": epochs, "repeats": repeat,
                  "kiln_trials_runs": kiln_trials, "loop_trials_runs": loop_trials,
                  "trials_best": [sum(kiln_best.values()), sum(loop_best.values())],
                  "kiln": mean(kiln), "plain": mean(plain), "plain_process": mean(process),
                  "kiln_runs": kiln, "plain_runs": plain, "process_runs": process,
                  "identical": len(first)}))
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
print(f"{len(rows)} seeds x {rows[0]['repeats']} alternating runs, {n} trials, {e} epochs; "
      f"curves identical to kiln's: {same}/{n}")
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
print(f"best of {rows[0]['repeats']}: kiln {bk:.2f} s, plain process {bp:.2f} s: kiln / plain = {bk / bp:.2f}x; "
      "per seed " + ", ".join(f"{x:.2f}" for x in best) + f"; median {statistics.median(best):.2f}")
# Per epoch: trials 1 ... n-1 alone, their start in the worker to their
# last report, against the loop's time for the same trials.
tk, tl = (sum(statistics.mean(r[x]) for r in rows) for x in ("kiln_trials_runs", "loop_trials_runs"))
bk, bl = (sum(min(r[x]) for r in rows) for x in ("kiln_trials_runs", "loop_trials_runs"))
pk, pl = (sum(r["trials_best"][i] for r in rows) for i in (0, 1))
print(f"the trials' training (trial 0 left out): kiln {tk:.2f} s, loop {tl:.2f} s: kiln / loop = {tk / tl:.2f}x "
      f"on the means, {bk / bl:.2f}x on the best of {rows[0]['repeats']} runs, {pk / pl:.2f}x on each trial's best")
PY
