#!/usr/bin/python3
"""Expected epochs of 40 trials of at most 27 epochs under ASHA / Hyperband
stopping rules at eta 3, with a random sampler: trial quality i.i.d.
N(0, 1), each rung's score that plus N(0, 0.3) noise; 400 draws. Compares
the quota ceil(n / eta) kiln used until 2026-12-07 with max(1, floor(n /
eta)) (the paper's, Optuna's, kiln's since), kiln's 3 brackets (27 : 12 : 6,
weighted round robin) with Optuna's 4 (27 : 12 : 6 : 4, CRC32 hash), and a
history lag of 1 and 2 (a trial compared with trials 0 .. k - lag). The
simulated scores never tie, so how a rule ranks ties (kiln's by arrival
since 2026-12-07 18:00 UTC: asha_ties_replay.py) does not enter here.
docs/benchmarks.md, "After the floor(n/eta) quota". Run: python3 asha_quota_sim.py
"""
import random, math, zlib, statistics
R, ETA, N = 27, 3, 40
def run(rule, brackets, alloc, seed, lag=1):
    rnd = random.Random(seed)
    recorded = {}  # (bracket, rung) -> list of (trial, score)
    epochs = 0
    for t in range(N):
        b = alloc(t)
        first = ETA ** brackets[b]
        q = rnd.gauss(0, 1)
        rungs = []
        r = first
        while r < R: rungs.append(r); r *= ETA
        stop_at = R
        for r in rungs:
            s = q + rnd.gauss(0, 0.3)
            others = [v for (tt, v) in recorded.get((b, r), []) if tt <= t - lag]
            recorded.setdefault((b, r), []).append((t, s))
            n = len(others) + 1
            better = sum(v > s for v in others)  # higher = better
            keep = math.ceil(n / ETA) if rule == "ceil" else max(1, n // ETA)
            if better >= keep: stop_at = r; break
        epochs += stop_at
    return epochs
def swrr(weights):
    cur = [0.0]*len(weights); out = []
    for _ in range(N):
        for i, w in enumerate(weights): cur[i] += w
        p = max(range(len(weights)), key=lambda i: (cur[i], -i))
        cur[p] -= sum(weights); out.append(p)
    return out.__getitem__
def crc(seed, weights):
    name = f"study-{seed}"
    def f(t):
        n = zlib.crc32(f"{name}_{t}".encode()) % sum(weights)
        for i, w in enumerate(weights):
            n -= w
            if n < 0: return i
    return f
for lag in (1, 2):
  for label, rule, br, w in [("kiln 3 brackets ceil", "ceil", [0,1,2], [27,12,6]),
                           ("kiln 3 brackets floor", "floor", [0,1,2], [27,12,6]),
                           ("4 brackets floor (Optuna)", "floor", [0,1,2,3], [27,12,6,4]),
                           ("4 brackets ceil", "ceil", [0,1,2,3], [27,12,6,4]),
                           ("asha ceil", "ceil", [0], [1]), ("asha floor", "floor", [0], [1])]:
    e = [run(rule, br, crc(s, w) if len(w) == 4 else swrr(w), s, lag) for s in range(400)]
    print(f"lag {lag} {label:28s} {statistics.mean(e):6.1f} ± {statistics.stdev(e):5.1f}")
