#!/usr/bin/env python3
"""kiln's samplers beside Optuna's on the same objectives, budget and seeds.

Each objective is written once, in Python, and evaluated for both: kiln's
samplers (kiln_tune_core, the code behind kiln_tune.so) run in
kiln_bench_tune_probe and are driven by ask/tell over a pipe; Optuna's run
in this process through study.ask/study.tell with the same search space.

Quality: the best value found so far after 10, 25 and all trials, as regret
(best - the known optimum; validation error for the digits MLP), mean over
the seeds, and kiln's final regret over Optuna's (below 1: kiln is better).
Speed: the time a sampler spends per trial in suggest + observe (kiln: timed
inside the probe, the pipe excluded; Optuna: study.ask + study.tell with its
in-memory storage), and kiln's over Optuna's.

  bench/tuning/compare.py                      # 50 trials, seeds 0-4, every objective
  bench/tuning/compare.py --trials 30 --seeds 2 --objectives branin
  bench/tuning/compare.py --pareto --trials 200  # two objectives (ZDT1, ZDT2): TPE and NSGA-II
                                                 # vs Optuna's TPESampler and NSGAIISampler, by hypervolume
Needs python3-optuna and python3-numpy (scripts/setup.sh --bench).
"""
import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: threads only cost
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import optuna  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --- objectives (minimised): space {name: (low, high, log, int)}, function, optimum ---


def branin(p):
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p):
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(HARTMANN_ALPHA * np.exp(-np.sum(HARTMANN_A * (x - HARTMANN_P) ** 2, axis=1))))


def rosenbrock4(p):
    x = [p[f"x{i}"] for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


class DigitsMlp:
    """A one-hidden-layer MLP on the digits data (samples/data), minibatch SGD
    with momentum (batch 128) for 4 epochs; the value is the validation error. The split,
    initialisation and batch order are fixed, so it is a function of the
    hyperparameters alone."""

    def __init__(self):
        with gzip.open(os.path.join(ROOT, "samples/data/digits.csv.gz"), "rt") as f:
            rows = np.loadtxt(f, delimiter=",")
        order = np.random.default_rng(0).permutation(len(rows))
        rows = rows[order]
        cut = int(0.7 * len(rows))
        x, y = rows[:, :-1], rows[:, -1].astype(int)
        mean, std = x[:cut].mean(0), x[:cut].std(0) + 1e-6
        self.xt, self.yt = (x[:cut] - mean) / std, y[:cut]
        self.xv, self.yv = (x[cut:] - mean) / std, y[cut:]

    def __call__(self, p):
        rng = np.random.default_rng(0)
        h, lr, wd, mom = int(p["hidden"]), p["lr"], p["weight_decay"], p["momentum"]
        w1 = rng.normal(0, math.sqrt(2 / 64), (64, h))
        w2 = rng.normal(0, math.sqrt(1 / h), (h, 10))
        b1, b2 = np.zeros(h), np.zeros(10)
        params = [w1, b1, w2, b2]
        velocity = [np.zeros_like(q) for q in params]
        onehot = np.eye(10)[self.yt]
        for _ in range(4):
            for start in range(0, len(self.yt), 128):
                xb, yb = self.xt[start:start + 128], onehot[start:start + 128]
                a = np.maximum(xb @ w1 + b1, 0)
                z = a @ w2 + b2
                z -= z.max(1, keepdims=True)
                g = np.exp(z)
                g = (g / g.sum(1, keepdims=True) - yb) / len(xb)
                ga = (g @ w2.T) * (a > 0)
                grads = [xb.T @ ga + wd * w1, ga.sum(0), a.T @ g + wd * w2, g.sum(0)]
                for q, v, gq in zip(params, velocity, grads):
                    v *= mom
                    v -= lr * gq
                    q += v
                if not np.isfinite(w2).all():
                    return 1.0  # diverged: as bad as it gets
        predicted = (np.maximum(self.xv @ w1 + b1, 0) @ w2 + b2).argmax(1)
        return float(np.mean(predicted != self.yv))


def objectives():
    unit = (0.0, 1.0, False, False)
    return {
        "branin": ({"x1": (-5.0, 10.0, False, False), "x2": (0.0, 15.0, False, False)}, branin, 0.397887),
        "hartmann6": ({f"x{i}": unit for i in range(6)}, hartmann6, -3.32237),
        "rosenbrock4": ({f"x{i}": (-2.0, 2.0, False, False) for i in range(4)}, rosenbrock4, 0.0),
        "digits_mlp": ({"lr": (1e-4, 1.0, True, False), "weight_decay": (1e-6, 1e-1, True, False),
                        "hidden": (8, 128, False, True), "momentum": (0.0, 0.99, False, False)}, DigitsMlp(), 0.0),
    }


# --- the two libraries behind one ask/tell shape ---


class KilnSearch:
    def __init__(self, probe, sampler, space, trials, seed, objectives=1, settings=None):
        settings = dict(settings or {}, sampler=sampler)
        if sampler == "tpe-mv":
            settings = {"sampler": "tpe", "multivariate": True}
        kiln_space = {}
        for name, (low, high, log, is_int) in space.items():
            kind = "int" if is_int else "log_uniform" if log else "uniform"
            kiln_space[name] = {"type": kind, "low": low, "high": high}
        config = {"algorithm": "search", "objective": {"metric": "value", "goal": "minimize"}, "space": kiln_space,
                  "settings": settings, "max_trials": trials, "seed": seed}
        if objectives > 1:
            config["objectives"] = [{"metric": f"f{i + 1}", "goal": "minimize"} for i in range(objectives)]
        self.proc = subprocess.Popen([probe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(json.dumps(config) + "\n")

    def _call(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            sys.exit(f"kiln_bench_tune_probe: {reply['error']}")
        return reply

    def ask(self):
        reply = self._call("ask")
        return reply["trial"], reply["parameters"]

    def tell(self, trial, value):
        values = value if isinstance(value, (list, tuple)) else [value]
        self._call(f"tell {trial} " + " ".join(repr(float(v)) for v in values))

    def seconds(self):
        seconds = self._call("seconds")["seconds"]
        self.proc.stdin.close()
        self.proc.wait()
        return seconds


class OptunaSearch:
    def __init__(self, sampler, space, seed, multi_objective_sampler=None):
        self.inside = 0.0
        if multi_objective_sampler is not None:
            self.study = optuna.create_study(directions=["minimize", "minimize"], sampler=multi_objective_sampler)
            self._distributions(space)
            return
        make = {"random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                "tpe-mv": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed)}[sampler]
        self.study = optuna.create_study(direction="minimize", sampler=make())
        self._distributions(space)

    def _distributions(self, space):
        self.distributions = {
            name: optuna.distributions.IntDistribution(int(low), int(high)) if is_int
            else optuna.distributions.FloatDistribution(low, high, log=log)
            for name, (low, high, log, is_int) in space.items()}

    def ask(self):
        start = time.perf_counter()
        trial = self.study.ask(self.distributions)
        self.inside += time.perf_counter() - start
        return trial, trial.params

    def tell(self, trial, value):
        start = time.perf_counter()
        self.study.tell(trial, value)
        self.inside += time.perf_counter() - start

    def seconds(self):
        return self.inside


def run(search, function, trials):
    """Best value so far after each trial, and the sampler's seconds."""
    best, curve = math.inf, []
    for _ in range(trials):
        trial, params = search.ask()
        value = function(params)
        search.tell(trial, value)
        best = min(best, value)
        curve.append(best)
    return curve, search.seconds()


# kiln sampler -> the Optuna sampler it is measured against. Optuna 3.1 has
# no Gaussian-process sampler without BoTorch, so kiln's GP meets Optuna's TPE.
PAIRS = [("random", "random"), ("tpe", "tpe"), ("tpe-mv", "tpe-mv"), ("gp", "tpe"), ("cmaes", "cmaes")]


# --- two objectives: NSGA-II against Optuna's, by hypervolume ---


def zdt1(p):
    x = [p[f"x{i}"] for i in range(len(p))]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return [x[0], g * (1 - math.sqrt(x[0] / g))]


def zdt2(p):
    x = [p[f"x{i}"] for i in range(len(p))]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return [x[0], g * (1 - (x[0] / g) ** 2)]


def hypervolume_2d(points, reference):
    """The exact area the points dominate up to `reference` (both minimised)."""
    area, ceiling = 0.0, reference[1]
    for f1, f2 in sorted(points):
        if f1 >= reference[0] or f2 >= ceiling:
            continue
        area += (reference[0] - f1) * (ceiling - f2)
        ceiling = f2
    return area


def pareto_main(args, probe):
    """ZDT1 and ZDT2 on `--dims` parameters in [0, 1]: the hypervolume (reference
    (1.1, 11); the best reachable is about 11.77 for ZDT1, 11.43 for ZDT2) of every
    trial after half and all of the budget, mean over the seeds, kiln's over Optuna's
    (above 1: kiln is better), and the sampler's time per trial."""
    space = {f"x{i}": (0.0, 1.0, False, False) for i in range(args.dims)}
    population = args.population
    pairs = [("random", {}, "random", lambda seed: optuna.samplers.RandomSampler(seed=seed)),
             ("tpe", {}, "tpe", lambda seed: optuna.samplers.TPESampler(seed=seed)),
             ("nsga2 sbx", {"population_size": population, "crossover": "sbx"}, "nsga2 sbx",
              lambda seed: optuna.samplers.NSGAIISampler(population_size=population, seed=seed,
                                                          crossover=optuna.samplers.nsgaii.SBXCrossover())),
             ("nsga2 uniform", {"population_size": population, "crossover": "uniform"}, "nsga2 uniform",
              lambda seed: optuna.samplers.NSGAIISampler(population_size=population, seed=seed))]
    marks = sorted({args.trials // 2, args.trials})
    print("%-6s %-14s " % ("problem", "sampler") + " ".join("%9s" % h for h in (
        *[f"k@{m}" for m in marks], *[f"o@{m}" for m in marks], "hv k/o", "kiln wins", "kiln ms", "optuna ms")))
    results = {}
    for name, function in (("zdt1", zdt1), ("zdt2", zdt2)):
        for kiln_name, settings, optuna_name, make in pairs:
            hv = {"kiln": [], "optuna": []}
            ms = {"kiln": [], "optuna": []}
            for seed in range(args.seeds):
                for side in ("kiln", "optuna"):
                    if side == "kiln":
                        search = KilnSearch(probe, kiln_name.split()[0], space, args.trials, seed, 2, settings)
                    else:
                        search = OptunaSearch(None, space, seed, make(seed))
                    points, curve = [], []
                    for _ in range(args.trials):
                        trial, params = search.ask()
                        values = function(params)
                        search.tell(trial, values)
                        points.append(tuple(values))
                        curve.append(hypervolume_2d(points, (1.1, 11.0)) if len(points) in marks else None)
                    hv[side].append([curve[m - 1] for m in marks])
                    ms[side].append(1000 * search.seconds() / args.trials)
            mean = {side: [float(np.mean([run[i] for run in runs])) for i in range(len(marks))] for side, runs in hv.items()}
            wins = sum(1.0 if k[-1] > o[-1] else 0.5 if k[-1] == o[-1] else 0.0 for k, o in zip(hv["kiln"], hv["optuna"]))
            print("%-7s %-14s " % (name, kiln_name) + " ".join("%9.4f" % v for v in mean["kiln"] + mean["optuna"]) +
                  " %9.3f %9s %9.3f %9.3f" % (mean["kiln"][-1] / mean["optuna"][-1], f"{wins:g}/{args.seeds}",
                                              float(np.mean(ms["kiln"])), float(np.mean(ms["optuna"]))))
            sys.stdout.flush()
            results[f"{name}/{kiln_name}"] = {"hypervolume": hv, "ms_per_trial": ms}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"), help="a build with -DKILN_BUILD_BENCH=ON")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    parser.add_argument("--objectives", nargs="*", default=None)
    parser.add_argument("--json", help="also write every curve and timing here")
    parser.add_argument("--pareto", action="store_true",
                        help="two objectives instead: ZDT1 and ZDT2, NSGA-II against Optuna's by hypervolume")
    parser.add_argument("--dims", type=int, default=6, help="--pareto: parameters of ZDT1 and ZDT2")
    parser.add_argument("--population", type=int, default=20, help="--pareto: NSGA-II's population_size, both sides")
    args = parser.parse_args()
    probe = os.path.join(args.build, "bench/bin/kiln_bench_tune_probe")
    if not os.access(probe, os.X_OK):
        sys.exit(f"{probe}: not built (cmake -DKILN_BUILD_BENCH=ON, then ninja kiln_bench_tune_probe)")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.pareto:
        return pareto_main(args, probe)
    all_objectives = objectives()
    chosen = args.objectives or list(all_objectives)
    marks = sorted({m for m in (10, 25, args.trials) if m <= args.trials})
    results = {}
    header = ("objective", "kiln", "optuna", *[f"k@{m}" for m in marks], *[f"o@{m}" for m in marks],
              "regret k/o", "kiln wins", "kiln ms", "optuna ms", "time k/o")
    print("%-11s %-7s %-7s " % header[:3] + " ".join("%9s" % h for h in header[3:]))
    for name in chosen:
        space, function, optimum = all_objectives[name]
        optuna_runs = {}
        for kiln_sampler, optuna_sampler in PAIRS:
            rows = {"kiln": [], "optuna": []}
            for seed in range(args.seeds):
                rows["kiln"].append(run(KilnSearch(probe, kiln_sampler, space, args.trials, seed), function, args.trials))
                key = (optuna_sampler, seed)
                if key not in optuna_runs:
                    optuna_runs[key] = run(OptunaSearch(optuna_sampler, space, seed), function, args.trials)
                rows["optuna"].append(optuna_runs[key])
            regret = {side: [[b - optimum for b in curve] for curve, _ in runs] for side, runs in rows.items()}
            mean_at = {side: [float(np.mean([c[m - 1] for c in curves])) for m in marks] for side, curves in regret.items()}
            wins = sum(1.0 if k[-1] < o[-1] else 0.5 if k[-1] == o[-1] else 0.0
                       for k, o in zip(regret["kiln"], regret["optuna"]))
            ms = {side: 1000 * float(np.mean([s for _, s in runs])) / args.trials for side, runs in rows.items()}
            ratio = mean_at["kiln"][-1] / mean_at["optuna"][-1] if mean_at["optuna"][-1] > 0 else math.nan
            print("%-11s %-7s %-7s " % (name, kiln_sampler, optuna_sampler) +
                  " ".join("%9.4f" % v for v in mean_at["kiln"] + mean_at["optuna"]) +
                  " %9.2f %9s %9.3f %9.3f %9.3f" % (ratio, f"{wins:g}/{args.seeds}", ms["kiln"], ms["optuna"],
                                                     ms["kiln"] / ms["optuna"]))
            sys.stdout.flush()
            results[f"{name}/{kiln_sampler}"] = {"optuna_sampler": optuna_sampler, "regret": regret, "ms_per_trial": ms}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
