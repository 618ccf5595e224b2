"""Streaming is real: peak memory does not grow with the size of a Parquet file.

Writes two long-format Parquet files of the same shape (one row per step: sequence id,
step, 8 float features, an integer label), a small one and one 10x larger, in chunks
so writing needs no memory. Then, each in a fresh subprocess, runs over each file:
- `evaluate`: iterate every batch of `make_loader(ParquetSequences(...))` and run a
  small maskwise model forward;
- `train`: one training epoch (forward, masked cross-entropy on the real steps,
  backward, Adam step), written as a plain loop over the loader.
It prints each run's peak RSS (`ru_maxrss`) and the large/small ratio, which should be
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
            columns["label"] = rng.integers(0, 3, size=rows)
            writer.write_table(pa.table(columns, schema=schema), row_group_size=100_000)
            first_id += len(lengths)
    return first_id


def make_model():
    import maskwise
    from maskwise import layers

    middle = []
    if hasattr(layers, "GRU"):
        middle = [layers.GRU(16, return_sequences=True)]
    return maskwise.Sequential([layers.Dense(16, activation="tanh"), *middle, layers.Dense(3)])


def worker(mode: str, path: str) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from maskwise.data import ParquetSequences, make_loader

    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = ParquetSequences(path, "seq", "step", FEATURES, "label", window=4096)
    loader = make_loader(data, batch_size=BATCH_SIZE, shuffle=mode == "train")
    model = make_model()
    optimizer = None
    start = time.perf_counter()
    batches = steps = 0
    for batch in loader:
        if mode == "evaluate":
            with torch.no_grad():
                model(batch.x)
        else:
            out = model(batch.x)
            real = batch.x.full_mask & out.full_mask
            loss = torch.nn.functional.cross_entropy(out.values[real], batch.y[real])
            if optimizer is None:
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        batches += 1
        steps += int(batch.x.lengths.sum())
    seconds = time.perf_counter() - start
    return {
        "batches": batches,
        "expected_batches": len(loader),
        "steps": steps,
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
        files = {}
        for label, mb in (("small", small_mb), ("large", large_mb)):
            path = Path(tmp) / f"{label}.parquet"
            start = time.perf_counter()
            n = write_file(path, mb * 2**20)
            size = path.stat().st_size / 2**20
            took = time.perf_counter() - start
            print(f"wrote {label}: {size:.0f} MB, {n} sequences in {took:.0f} s")
            files[label] = path
        flat = True
        for mode in ("evaluate", "train"):
            results = {label: measure(mode, path) for label, path in files.items()}
            for label, r in results.items():
                print(f"{mode:8s} {label}: {json.dumps(r)}")
                if r["batches"] != r["expected_batches"]:
                    print(f"  batch count differs from len(loader) = {r['expected_batches']}")
                    flat = False
            ratio = results["large"]["peak_rss_mb"] / results["small"]["peak_rss_mb"]
            flat = flat and ratio <= 1.2
            print(f"{mode:8s} peak RSS large/small = {ratio:.3f}")
    print("streaming memory is flat" if flat else "streaming memory is NOT flat")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
