"""PyTorch's side of bench/gpu/run.sh: samples/fashion-mnist's CNN (conv32 -
conv64 - dense128, dropout 0.25, Adam 1e-3, batch 128) on the same IDX files,
the same 10 % validation split, device and precision as kiln's run, with
kiln's loop (randperm per epoch, index_select per batch, data resident on the
device, a no-grad validation pass each epoch, the loss read once per epoch).
Prints one JSON line: seconds of each epoch (training + validation, as
train.torch's history) and the test accuracy after the last epoch.

  python3 reference.py --data /usr/share/datasets/fashion-mnist --device cuda --epochs 5 [--precision bf16]
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
from torch import nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, prefix):
    x = torch.from_numpy(idx(f"{data_dir}/{prefix}-images-idx3-ubyte.gz").copy()).float().unsqueeze(1)
    y = torch.from_numpy(idx(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
    return x, y


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--discard", type=float, default=0.0, help="share of the training images left out")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x, y = load(args.data, "train")
    order = torch.randperm(len(x))
    n_val = round(0.1 * len(x))
    n_train = len(x) - n_val - round(args.discard * len(x))
    val_idx, train_idx = order[:n_val], order[n_val:n_val + n_train]
    scale = 1.0 / 255
    train_x, train_y = x[train_idx].to(device), y[train_idx].to(device)
    val_x, val_y = x[val_idx].to(device), y[val_idx].to(device)
    test_x, test_y = load(args.data, "t10k")
    test_x, test_y = test_x.to(device), test_y.to(device)
    net = model().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = None
    if args.precision == "fp16":  # torch.amp.GradScaler since PyTorch 2.3; torch.cuda.amp's before
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    loss_fn = nn.CrossEntropyLoss()

    def forward(features):
        with torch.autocast(device.type, dtype=low, enabled=low is not None):
            out = net(features * scale)
        return out.float()

    def accuracy(features, labels):
        net.eval()
        correct = torch.zeros((), dtype=torch.float64, device=device)
        with torch.no_grad():
            for start in range(0, len(features), 256):
                out = forward(features[start:start + 256])
                correct += out.argmax(1).eq(labels[start:start + 256]).sum()
        return correct.item() / len(features)

    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        net.train()
        perm = torch.randperm(n_train).to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for b in range(0, n_train, 128):
            index = perm[b:b + 128]
            out = forward(train_x.index_select(0, index))
            loss = loss_fn(out, train_y.index_select(0, index))
            opt.zero_grad()
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += loss.detach().double() * len(index)
        accuracy(val_x, val_y)
        total.item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "accuracy": accuracy(test_x, test_y), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
