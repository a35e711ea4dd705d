#!/usr/bin/python3
"""Optuna's side of bench/tuning/digits_optuna.sh: the tuning step of
samples/digits-tuning written with Optuna 3.1 (Debian's python3-optuna) and
PyTorch (Debian's python3-torch).

Same problem as kiln's `tune` step:
- data: kiln's own `transform` artifacts (train / validation / test after
  the stratified split and the standardization), read from a kiln run of the
  same seed (`--train DIR --validation DIR --test DIR`, each a kiln dataset:
  data.safetensors with `features` F32 [n, 64] and `labels` I64 [n]), so
  both tools see exactly the same rows and values;
- model, as train.torch builds it: Linear -> ReLU -> [Dropout] per hidden
  size, then Linear to the 10 classes, PyTorch's default initialisation after
  manual_seed(seed); AdamW(lr, weight_decay), betas and eps at their
  defaults; cosine schedule per epoch over the full budget
  (lr * (1 + cos(pi * e / epochs)) / 2); cross entropy; per epoch
  a generator seeded seed * 1000003 + e for the batch order (one randperm;
  the last batch may be short) and the dropout masks (a per-trial generator,
  not the global one, as Optuna's n_jobs runs trials in threads); one
  intra-op thread;
- the trial's value, as kiln's template gives it: the validation accuracy of
  the epoch with the lowest validation loss (train.torch keeps that model;
  evaluate scores it); each epoch's validation accuracy is reported to the
  pruner (kiln's ASHA reads the same per-epoch curve);
- space, trial budget, epochs, seeds: as the pipeline's `tune` block (TPE
  with 10 random start-up trials; pruner successive halving or Hyperband,
  min_resource 1, reduction factor 3, max_resource = epochs).

The test accuracy of a trial is measured on its selected model (cheap, and
not shown to the search); kiln's pipeline retrains the best parameters with
the same seed, which gives the same model, and evaluates it on the test
split. Prints one JSON object. `--replay TRIALS_JSON` retrains the trials of a kiln
run instead and checks that every per-epoch validation accuracy is kiln's,
to the last bit.
"""
import argparse
import json
import math
import os
import struct
import sys
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402

HIDDEN = {"64": [64], "128": [128], "128,64": [128, 64], "256,128": [256, 128]}


def load_dataset(directory):
    with open(os.path.join(directory, "data.safetensors"), "rb") as f:
        blob = f.read()
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + size])
    body = blob[8 + size:]

    def tensor(name, dtype):
        info = header[name]
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"])
        return torch.from_numpy(array.copy())

    assert header["features"]["dtype"] == "F32" and header["labels"]["dtype"] == "I64", header
    return tensor("features", np.float32), tensor("labels", np.int64)


class Dropout(torch.nn.Module):
    """torch.nn.Dropout drawing from the trial's own generator: with n_jobs > 1
    Optuna runs trials in threads, which would share (and race on) the
    global one. The same draws as at::dropout on the CPU (a Bernoulli mask
    scaled by 1 / (1 - p))."""

    def __init__(self, p):
        super().__init__()
        self.p, self.generator = p, None

    def forward(self, x):
        if not self.training:
            return x
        mask = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * mask.div_(1 - self.p)


INIT = threading.Lock()  # the initialisation draws from the global generator


def build(sizes, dropout, inputs, classes):
    layers, width = [], inputs
    for size in sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    layers.append(torch.nn.Linear(width, classes))
    return torch.nn.Sequential(*layers)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        return torch.nn.functional.cross_entropy(out, y).item(), (out.argmax(1) == y).double().mean().item()


def train(data, hidden_sizes, dropout, lr, weight_decay, batch_size, epochs, seed, on_epoch, stop_after=None):
    """train.torch's loop; on_epoch(epoch, model, val_loss, val_acc) after each epoch (1-based)."""
    xt, yt, xv, yv, classes = data
    with INIT:
        torch.manual_seed(seed)
        model = build(hidden_sizes, dropout, xt.shape[1], classes)
    dropouts = [m for m in model if isinstance(m, Dropout)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = xt.shape[0]
    for epoch in range(epochs if stop_after is None else min(epochs, stop_after)):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
        generator = torch.Generator().manual_seed(seed * 1000003 + epoch)
        for m in dropouts:
            m.generator = generator
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[index]), yt[index])
            loss.backward()
            optimizer.step()
        val_loss, val_acc = evaluate(model, xv, yv)
        on_epoch(epoch + 1, model, val_loss, val_acc)


def replay(path, data, epochs, seed):
    """Retrain every trial of a kiln trials table (`kiln trials latest tune
    --json`) for the epochs of its curve; the number of trials whose
    per-epoch validation accuracies are not exactly kiln's."""
    differ = 0
    rows = json.load(open(path))
    for row in rows:
        p, curve = row["parameters"], []
        train(data, p["hidden_sizes"], p["dropout"], p["lr"], p["weight_decay"], p["batch_size"], epochs, seed,
              lambda epoch, model, loss, acc: curve.append(acc), stop_after=len(row["curve"]))
        kiln = [row["curve"][str(e + 1)] for e in range(len(curve))]
        if kiln != curve:
            differ += 1
            print(f"trial {row['trial']}: kiln {kiln}, PyTorch {curve}", file=sys.stderr)
    return len(rows), differ


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--validation", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--pruner", choices=["sh", "hyperband"], default="sh")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="training seed (the pipeline's params.seed)")
    ap.add_argument("--search-seed", type=int, default=7, help="TPESampler's seed (the tune block's seed)")
    ap.add_argument("--replay", metavar="TRIALS_JSON",
                    help="no search: retrain the trials of this kiln trials table and compare the curves")
    args = ap.parse_args()

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    xt, yt = load_dataset(args.train)
    xv, yv = load_dataset(args.validation)
    xs, ys = load_dataset(args.test)
    classes = int(max(yt.max(), yv.max(), ys.max())) + 1
    epochs, seed = args.epochs, args.seed
    data = (xt, yt, xv, yv, classes)
    if args.replay:
        trials, differ = replay(args.replay, data, epochs, seed)
        print(json.dumps({"replayed": trials, "curves_differ": differ}))
        return 1 if differ else 0

    def objective(trial):
        lr = trial.suggest_float("lr", 1.0e-4, 3.0e-2, log=True)
        hidden = trial.suggest_categorical("hidden_sizes", list(HIDDEN))
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        weight_decay = trial.suggest_float("weight_decay", 1.0e-6, 1.0e-2, log=True)
        batch_size = trial.suggest_int("batch_size", 16, 128, step=16)
        best = {"loss": math.inf, "acc": None}

        def on_epoch(epoch, model, val_loss, val_acc):
            trial.set_user_attr("epochs", epoch)
            if val_loss < best["loss"]:
                best["loss"], best["acc"] = val_loss, val_acc
                trial.set_user_attr("test_accuracy", evaluate(model, xs, ys)[1])
            trial.report(val_acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        train(data, HIDDEN[hidden], dropout, lr, weight_decay, batch_size, epochs, seed, on_epoch)
        return best["acc"]

    sampler = optuna.samplers.TPESampler(seed=args.search_seed, n_startup_trials=10)
    if args.pruner == "sh":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3, min_early_stopping_rate=0)
    else:
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials, n_jobs=args.n_jobs)
    seconds = time.perf_counter() - start

    trials = study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    print(json.dumps({
        "tool": "optuna", "pruner": args.pruner, "parallel": args.n_jobs, "seed": args.seed,
        "trials": len(trials), "completed": len(complete),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "best_val": best.value if best else None,
        "test": best.user_attrs.get("test_accuracy") if best else None,
        "best_params": best.params if best else None,
        "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
        "tune_seconds": seconds,
    }))


if __name__ == "__main__":
    sys.exit(main())
