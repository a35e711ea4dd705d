"""Writes the benchmark's datasets in kiln's Dataset layout (docs/formats.md):
a directory with data.safetensors (features, labels) and schema.json.

Written with numpy alone, so the benchmark does not depend on the data.*
components; also read back by baseline.py so both sides train on the same
bytes.

  python3 datasets.py OUT_DIR   ->  OUT_DIR/{digits,diabetes,fashion}/{train,test}
"""
import gzip
import json
import os
import struct
import sys

import numpy as np

SHARED = os.environ.get("KILN_SHARED_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data"))
FASHION = "/usr/share/datasets/fashion-mnist"
DTYPES = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8", np.dtype("int64"): "I64"}
NUMPY = {v: k for k, v in DTYPES.items()}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + size + begin:8 + size + end], NUMPY[info["dtype"]]).reshape(info["shape"])
    return out


def write_dataset(path, features, labels, classes, label_name, columns):
    """classes=None writes a regression dataset (F32 labels)."""
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "data.safetensors"), {"features": features, "labels": labels})
    label = {"name": label_name, "task": "classification", "classes": classes}
    if classes is None:
        label = {"name": label_name, "task": "regression"}
    schema = {"format": "kiln.dataset/v1", "rows": int(len(labels)), "feature_shape": list(features.shape[1:]),
              "columns": [{"name": c, "kind": "numeric", "source_dtype": "float64"} for c in columns],
              "label": label}
    with open(os.path.join(path, "schema.json"), "w") as f:
        json.dump(schema, f, indent=2)


def digits(out):
    data = np.loadtxt(os.path.join(SHARED, "digits.csv.gz"), delimiter=",", dtype=np.float64)
    x, y = data[:, :64], data[:, 64].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:360], order[360:]  # 20 % held out
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0  # constant pixels (the digits' corners)
    x = ((x - mean) / std).astype(np.float32)
    classes = [str(k) for k in range(10)]
    columns = ["pixel_%d" % i for i in range(64)]
    write_dataset(os.path.join(out, "digits/train"), x[train], y[train], classes, "digit", columns)
    write_dataset(os.path.join(out, "digits/test"), x[test], y[test], classes, "digit", columns)


def diabetes(out):
    """Regression (not in the speed table): checks R² of the diabetes MLP."""
    x = np.loadtxt(os.path.join(SHARED, "diabetes_data_raw.csv.gz"))
    y = np.loadtxt(os.path.join(SHARED, "diabetes_target.csv.gz")).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:89], order[89:]  # 20 % held out
    mean, std = x[train].mean(0), x[train].std(0)
    x = ((x - mean) / std).astype(np.float32)
    columns = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    write_dataset(os.path.join(out, "diabetes/train"), x[train], y[train], None, "progression", columns)
    write_dataset(os.path.join(out, "diabetes/test"), x[test], y[test], None, "progression", columns)


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return np.frombuffer(raw[4 + 4 * dims:], np.uint8).reshape(shape)


def fashion(out):
    classes = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = idx(os.path.join(FASHION, prefix + "-images-idx3-ubyte.gz"))[:, None, :, :]
        y = idx(os.path.join(FASHION, prefix + "-labels-idx1-ubyte.gz")).astype(np.int64)
        write_dataset(os.path.join(out, "fashion", split), np.ascontiguousarray(x), y, classes, "item", [])


if __name__ == "__main__":
    target = sys.argv[1]
    digits(target)
    diabetes(target)
    if os.path.isdir(FASHION):
        fashion(target)
    else:
        print("no %s (apt-get install dataset-fashion-mnist): fashion skipped" % FASHION, file=sys.stderr)
