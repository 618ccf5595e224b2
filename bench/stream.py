"""Streaming is real: peak memory does not grow with the size of a Parquet file.

Writes two long-format Parquet files of the same shape (one row per step: sequence id,
step, 8 float features, an integer label), a small one and one 10x larger, in chunks
so writing needs no memory. Then, each in a fresh subprocess, runs over each file a
small masked recurrent model (`GRU(16, return_sequences=True)`, `Dense(3)`, compiled
with Adam and sparse categorical cross-entropy on logits) given the `ParquetSequences`:
- `evaluate`: `model.evaluate(data)`;
- `fit`: one training epoch, `model.fit(data, epochs=1, verbose=0)`.
It prints each run's peak RSS (`ru_maxrss`) and the large/small ratio, which must be
within 1.2 (flat).

Usage:
    python bench/stream.py            # ~100 MB vs ~1 GB
    python bench/stream.py --quick    # ~20 MB vs ~200 MB
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = [f"f{i}" for i in range(8)]
BATCH_SIZE = 64
NUM_CLASSES = 3
MODES = ("evaluate", "fit")
TARGET = 1.2  # peak RSS large/small


def write_file(path: Path, target_bytes: int, seed: int = 0) -> int:
    """Write sequences (lognormal lengths, mean ~100 steps) until the file has
    `target_bytes`; returns the number of sequences."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [("seq", pa.int64()), ("step", pa.int32())]
        + [(f, pa.float32()) for f in FEATURES]
        + [("label", pa.int64())]
    )
    first_id = 0
    with pq.ParquetWriter(path, schema) as writer:
        while not path.exists() or path.stat().st_size < target_bytes:
            lengths = np.clip(rng.lognormal(4.3, 0.6, size=2000), 1, 1000).astype(np.int64)
            rows = int(lengths.sum())
            ids = np.repeat(np.arange(first_id, first_id + len(lengths)), lengths)
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            columns = {"seq": ids, "step": (np.arange(rows) - starts).astype(np.int32)}
            columns |= {f: rng.normal(size=rows).astype(np.float32) for f in FEATURES}
            columns["label"] = rng.integers(0, NUM_CLASSES, size=rows)
            writer.write_table(pa.table(columns, schema=schema), row_group_size=100_000)
            first_id += len(lengths)
    return first_id


def make_model():
    import maskwise
    from maskwise import layers, losses

    model = maskwise.Sequential([layers.GRU(16, return_sequences=True), layers.Dense(NUM_CLASSES)])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss=loss, metrics=["accuracy"])
    return model


def worker(mode: str, path: str) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from maskwise.data import ParquetSequences

    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = ParquetSequences(path, "seq", "step", FEATURES, "label", window=4096)
    model = make_model()
    seen = {"batches": 0, "sequences": 0}

    def count(module, inputs, output):  # the passes measured, not fit's build pass
        if module.training == (mode == "fit"):
            seen["batches"] += 1
            seen["sequences"] += inputs[0].values.shape[0]

    model.register_forward_hook(count)
    start = time.perf_counter()
    if mode == "evaluate":
        logs = model.evaluate(data, batch_size=BATCH_SIZE)
    else:
        history = model.fit(data, epochs=1, batch_size=BATCH_SIZE, verbose=0, seed=0)
        logs = {key: values[-1] for key, values in history.history.items()}
    seconds = time.perf_counter() - start
    return {
        **seen,
        "expected_sequences": len(data),
        "loss": round(logs["loss"], 4),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 MB vs 200 MB")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help="where to write the files (default: a temp dir)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    small_mb, large_mb = (20, 200) if args.quick else (100, 1000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        files, sizes = {}, {}
        for label, mb in (("small", small_mb), ("large", large_mb)):
            path = Path(tmp) / f"{label}.parquet"
            start = time.perf_counter()
            n = write_file(path, mb * 2**20)
            size = path.stat().st_size / 2**20
            took = time.perf_counter() - start
            print(f"wrote {label}: {size:.0f} MB, {n} sequences in {took:.0f} s")
            files[label], sizes[label] = path, size
        results = {
            (mode, label): measure(mode, path) for mode in MODES for label, path in files.items()
        }
    print(
        f"\n{'pass':8s} {'file':5s} {'MB':>6s} {'sequences':>9s} {'batches':>7s} "
        f"{'loss':>6s} {'seconds':>7s} {'peak RSS MB':>11s}"
    )
    complete = True
    for (mode, label), r in results.items():
        print(
            f"{mode:8s} {label:5s} {sizes[label]:6.0f} {r['sequences']:9d} {r['batches']:7d} "
            f"{r['loss']:6.3f} {r['seconds']:7.1f} {r['peak_rss_mb']:11.1f}"
        )
        if r["sequences"] != r["expected_sequences"]:
            print(f"  saw {r['sequences']} of {r['expected_sequences']} sequences")
            complete = False
    print(f"\n{'pass':8s} {'peak RSS large/small':>20s} {'target':>7s} result")
    flat = complete
    for mode in MODES:
        ratio = results[mode, "large"]["peak_rss_mb"] / results[mode, "small"]["peak_rss_mb"]
        flat = flat and ratio <= TARGET
        print(f"{mode:8s} {ratio:20.3f} {TARGET:7.2f} {'PASS' if ratio <= TARGET else 'FAIL'}")
    print("streaming memory is flat" if flat else "streaming memory is NOT flat")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
