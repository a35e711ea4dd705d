# An ordinary PyTorch training script. Only the two functions marked "kiln I/O"
# know about kiln: where the data comes from (kiln's Dataset format, read with
# numpy) and where the model goes (a kiln Model that the built-in `evaluate`
# and `kiln serve` read, and a TorchScript module). Progress and metrics go
# through kiln_report (python/kiln_report.py, on PYTHONPATH under kiln).
import json
import os
import shutil
import struct

import numpy as np
import torch
from torch import nn

import kiln_report as kiln

# --- kiln I/O ---------------------------------------------------------------

DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}


def read_dataset(directory):
    """features [N, D] float32, labels [N] int64, schema: a kiln Dataset (docs/formats.md)."""
    raw = open(os.path.join(directory, "data.safetensors"), "rb").read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])

    def tensor(name):
        t = header[name]
        begin, end = t["data_offsets"]
        data = np.frombuffer(raw[8 + size + begin:8 + size + end], dtype=DTYPES[t["dtype"]])
        return data.reshape(t["shape"])

    schema = json.load(open(os.path.join(directory, "schema.json")))
    features = tensor("features").astype(np.float32)
    if header["features"]["dtype"] == "U8":
        features = features / 255.0  # raw image bytes, as kiln's own consumers scale them
    return features.reshape(len(features), -1), tensor("labels").astype(np.int64), schema


def write_safetensors(path, tensors):
    """{name: tensor} in the safetensors layout, F32 (no safetensors package needed)."""
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        data = value.detach().cpu().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs))


def write_model(directory, net, schema, hidden, transform_dir):
    """A kiln Model (kiln.model/v1: the mlp layout evaluate rebuilds) and model.pt (TorchScript)."""
    features = schema["feature_shape"]
    classes = schema["label"]["classes"]
    spec = {
        "format": "kiln.model/v1",
        "task": "classification",
        "architecture": {"type": "mlp", "feature_shape": features, "hidden_sizes": hidden, "activation": "relu",
                         "dropout": 0.0, "batch_norm": False, "num_outputs": len(classes)},
        "label": {"name": schema["label"]["name"], "classes": classes},
        "input": {"name": "input", "datatype": "FP32", "shape": [-1] + features, "scale": 1.0},
        "output": {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
        "weights": "weights.safetensors",
        "transform": None,
    }
    if transform_dir:
        shutil.copytree(transform_dir, os.path.join(directory, "transform"))
        spec["transform"] = "transform/transform.json"
    write_safetensors(os.path.join(directory, "weights.safetensors"), net.state_dict())
    with open(os.path.join(directory, "model.json"), "w") as out:
        json.dump(spec, out, indent=2)
    torch.jit.script(nn.Sequential(net, nn.Softmax(dim=1)).eval()).save(os.path.join(directory, "model.pt"))


# --- the training script ----------------------------------------------------


def mlp(inputs, hidden, outputs):
    """Linear, ReLU per hidden size, then the output Linear (names 0.weight, 2.weight, ...)."""
    layers, width = [], inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, outputs))


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        return (net(x).argmax(dim=1) == y).float().mean().item()


def main():
    epochs, hidden = kiln.param("epochs", int), kiln.param("hidden", json)
    lr, batch_size = kiln.param("lr", float), kiln.param("batch_size", int)
    torch.manual_seed(kiln.param("seed", int))
    torch.set_num_threads(kiln.param("threads", int))

    train_x, train_y, schema = read_dataset(kiln.input_dir("train"))
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y)
    validation = kiln.input_dir("validation")
    if validation:
        val_x, val_y, _ = read_dataset(validation)
        val_x, val_y = torch.from_numpy(val_x), torch.from_numpy(val_y)
    net = mlp(x.shape[1], hidden, len(schema["label"]["classes"]))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    val_accuracy = float("nan")
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        kiln.metric("train_loss", total / len(x), step=epoch + 1)
        if validation:
            val_accuracy = accuracy(net, val_x, val_y)
            kiln.metric("val_accuracy", val_accuracy, step=epoch + 1)
        kiln.progress(epoch + 1, f"epoch {epoch + 1}/{epochs}", total=epochs)

    transform = kiln.input_dir("transform")
    write_model(kiln.output_dir("model"), net.eval(), schema, hidden, transform)
    kiln.output("val_accuracy", val_accuracy if validation else accuracy(net, x, y))
    print(f"trained {epochs} epochs: validation accuracy {val_accuracy:.4f}")


if __name__ == "__main__":
    main()
