"""The PyTorch side of the benchmark: the model, data, batch size, epochs
and thread count train.torch is given, in PyTorch (Debian's python3-torch),
with the same loop (randperm per epoch, index_select per batch, no-grad
evaluation). Prints one JSON line: seconds per epoch and test accuracy.

  /usr/bin/python3 baseline.py --data DIR --architecture mlp --epochs 30 ...
"""
import argparse
import json
import sys
import time

import torch
from torch import nn

from datasets import read_safetensors


def load(path):
    tensors = read_safetensors(path + "/data.safetensors")
    x = torch.from_numpy(tensors["features"].copy())
    scale = 1.0 / 255 if x.dtype == torch.uint8 else 1.0
    return x.float(), torch.from_numpy(tensors["labels"].copy()), scale


def build(args, shape, classes):
    layers = []
    if args.architecture == "cnn":
        channels, h, w = shape
        for out in args.conv_channels:
            layers += [nn.Conv2d(channels, out, args.kernel_size, padding=args.kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            channels, h, w = out, h // 2, w // 2
        layers.append(nn.Flatten())
        width, sizes = channels * h * w, args.dense_sizes
    else:
        width, sizes = shape[0], args.hidden_sizes
    for size in sizes:
        layers += [nn.Linear(width, size), nn.ReLU()] + ([nn.Dropout(args.dropout)] if args.dropout > 0 else [])
        width = size
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--architecture", default="mlp")
    p.add_argument("--hidden-sizes", type=json.loads, default=[128, 64])
    p.add_argument("--conv-channels", type=json.loads, default=[32, 64])
    p.add_argument("--dense-sizes", type=json.loads, default=[128])
    p.add_argument("--kernel-size", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y, scale = load(args.data + "/train")
    tx, ty, _ = load(args.data + "/test")
    classes = int(max(y.max(), ty.max())) + 1
    model = build(args, list(x.shape[1:]), classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y))
        for begin in range(0, len(y), args.batch_size):
            index = order[begin:begin + args.batch_size]
            xb, yb = x.index_select(0, index) * scale, y.index_select(0, index)
            optimizer.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            (out.argmax(1) == yb).sum().item(), loss.item()  # the per-batch tallies kiln reports
        seconds.append(time.perf_counter() - start)
        print("epoch %d: %.3f s" % (len(seconds), seconds[-1]), file=sys.stderr, flush=True)
    model.eval()
    with torch.no_grad():
        accuracy = sum((model(tx[i:i + 1024] * scale).argmax(1) == ty[i:i + 1024]).sum().item()
                       for i in range(0, len(ty), 1024)) / len(ty)
    print(json.dumps({"seconds_per_epoch": sum(seconds) / len(seconds), "accuracy": accuracy}))


if __name__ == "__main__":
    main()
