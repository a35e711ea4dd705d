#!/usr/bin/env python3
"""Replays kiln's ASHA decisions on the trials tables of TPE x ASHA runs of
bench/tuning/digits_optuna.sh, to count the rung decisions that let a trial
go on only because it tied the scores ahead of it, and what the runs' fixed
curves would have trained had ties ranked by arrival (docs/benchmarks.md,
"Ties at a rung"; docs/tuning.md, "ASHA").

Each WORK_DIR/kiln-asha-p<P>-s<seed>/trials.json holds every trial's
per-epoch val_accuracy curve. The replay goes through the trials in id
order; trial k at a rung (min_resource * eta^i < max_resource) is compared
with trials 0 .. k - P that reached the rung (P = parallel trials = kiln's
default history_lag), and goes on if fewer than max(1, floor(n / eta)) of
the n scores (its own included) rank ahead of it. --rule says which rule
the runs used ("kept": only strictly better scores rank ahead, kiln before
2026-12-07 18:00 UTC and Optuna; "arrival": equal earlier scores too); the
replay checks that it gives every decision the runs made. The second
replay applies the arrival rule to the same curves: it can only stop
trials earlier, and it ignores that a real run's sampler would then
suggest other trials.

  python3 bench/tuning/asha_ties_replay.py --rule kept WORK_DIR [WORK_DIR ...]
"""
import argparse
import glob
import json
import os
import re
import sys


def rungs_of(min_resource, eta, max_resource):
    rungs, r = [], min_resource
    while r < max_resource:
        rungs.append(r)
        r *= eta
    return rungs


def replay(curves, lag, rungs, eta, arrival):
    """Epochs each trial runs under the rule, and the go-on decisions: a list
    of (rung, tie) where tie is True when only ties decided it."""
    ran, decisions = [], []
    for k, curve in enumerate(curves):
        length = max(curve)
        stop = length
        for r in rungs:
            if r >= length:
                break
            score = curve[r]
            others = [curves[j][r] for j in range(0, k - lag + 1) if ran[j] >= r]
            quota = max(1, (len(others) + 1) // eta)
            better = sum(s > score for s in others)  # val_accuracy: higher is better
            equal = sum(s == score for s in others)
            ahead = better + equal if arrival else better
            if ahead >= quota:
                stop = r
                break
            decisions.append((r, better + equal >= quota))
        ran.append(stop)
    return ran, decisions


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", nargs="+", help="digits_optuna.sh WORK directories")
    ap.add_argument("--rule", choices=["kept", "arrival"], required=True, help="the tie rule the runs used")
    ap.add_argument("--min-resource", type=int, default=1)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--max-resource", type=int, default=27)
    args = ap.parse_args()
    rungs = rungs_of(args.min_resource, args.eta, args.max_resource)
    runs = epochs = arrival_epochs = completed = arrival_completed = 0
    go_ons, ties, ties_by_rung, mismatches = 0, 0, {r: 0 for r in rungs}, 0
    for work in args.work:
        for path in sorted(glob.glob(os.path.join(work, "kiln-asha-p*-s*", "trials.json"))):
            lag = int(re.search(r"kiln-asha-p(\d+)-s", path).group(1))
            rows = sorted(json.load(open(path)), key=lambda row: row["trial"])
            curves = [{int(step): value for step, value in row["curve"].items()} for row in rows]
            ran, decisions = replay(curves, lag, rungs, args.eta, args.rule == "arrival")
            mismatches += sum(r != max(c) for r, c in zip(ran, curves))
            if args.rule == "kept":
                go_ons += len(decisions)
                for r, tie in decisions:
                    ties += tie
                    ties_by_rung[r] += tie
            again, _ = replay(curves, lag, rungs, args.eta, True)
            runs += 1
            epochs += sum(max(c) for c in curves)
            completed += sum(max(c) == args.max_resource for c in curves)
            arrival_epochs += sum(again)
            arrival_completed += sum(r == args.max_resource for r in again)
    if runs == 0:
        sys.exit("no kiln-asha-p*-s*/trials.json under " + " ".join(args.work))
    print(f"{runs} runs; the replay differs from the runs on {mismatches} trials (0 expected)")
    if args.rule == "kept":
        by_rung = ", ".join(f"epoch {r}: {n}" for r, n in ties_by_rung.items())
        print(f"decisions that let a trial go on: {go_ons}; decided by ties alone: {ties} ({by_rung})")
    print(f"epochs: {epochs} as run ({epochs / runs:.1f} per run, {completed / runs:.1f} completed); "
          f"ties ranked by arrival on the same curves: {arrival_epochs} ({arrival_epochs / runs:.1f}, "
          f"{arrival_completed / runs:.1f} completed)")


if __name__ == "__main__":
    main()
