"""Data-parallel `fit` on one machine: 2 ranks x 1 thread against 1 rank x 2 threads.

The same workload as `bench/fit.py` (ragged sequences of 32 features, lognormal
lengths with median ~60; `Bidirectional(LSTM(64)) -> Dense(5)`, masked cross-entropy,
Adam) and the same global batch, through `model.fit` with bucketing:

- 2 ranks: `torchrun --standalone --nproc-per-node 2` (gloo), one thread each; each
  rank trains on its share of every global batch, the gradients all-reduced;
- 1 rank: one process with two threads.

Each run warms up with a `fit` on 1/8 of the data, then times `--epochs` epochs of
`fit` (between two barriers under torchrun); the contenders alternate `--repeats`
times and the best run of each counts. Prints real steps per second (padding not
counted) and the ratio 2 ranks / 1 rank.

Usage:
    python bench/ddp.py                # 1024 sequences, about a minute
    python bench/ddp.py --quick        # 256 sequences
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from fit import model, workload  # bench/fit.py: the same workload and model

from maskwise import distributed

MARK = "DDP-BENCH "


def worker(args: argparse.Namespace) -> None:
    """Time `fit` in this process (one of torchrun's ranks, or alone); rank 0 prints."""
    torch.set_num_threads(args.threads)
    x, y = workload(args.sequences)
    torch.manual_seed(0)
    net = model(args.units)
    options = dict(batch_size=args.batch_size, verbose=0, seed=0)
    net.fit(x[: len(x) // 8], y[: len(y) // 8], **options)  # warm-up; joins the group
    parallel = distributed.is_distributed()
    if parallel:
        torch.distributed.barrier()
    start = time.perf_counter()
    net.fit(x, y, epochs=args.epochs, **options)
    if parallel:
        torch.distributed.barrier()
    seconds = time.perf_counter() - start
    if distributed.rank() == 0:
        steps = sum(len(s) for s in x) * args.epochs
        print(MARK + json.dumps({"steps_per_second": steps / seconds}), flush=True)


def run(args: argparse.Namespace, ranks: int) -> float:
    """Real steps per second of one run with `ranks` processes (2 threads in all)."""
    script = [str(Path(__file__).resolve()), "--worker", "--threads", str(2 // ranks)]
    script += ["--sequences", str(args.sequences), "--units", str(args.units)]
    script += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
        launcher += [str(ranks)]
    env = {**os.environ, "OMP_NUM_THREADS": str(2 // ranks)}
    done = subprocess.run(launcher + script, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    line = next(s for s in done.stdout.splitlines() if s.startswith(MARK))
    return float(json.loads(line[len(MARK) :])["steps_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 sequences instead of 1024")
    parser.add_argument("--sequences", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--units", type=int, default=64, help="LSTM units per direction")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--repeats", type=int, default=2, help="alternate runs; best counts")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sequences is None:
        args.sequences = 256 if args.quick else 1024
    if args.worker:
        worker(args)
        return
    speeds: dict[str, list[float]] = {"2 ranks x 1 thread": [], "1 rank x 2 threads": []}
    for _ in range(args.repeats):  # alternate, so a busy spell hits both
        speeds["2 ranks x 1 thread"].append(run(args, 2))
        speeds["1 rank x 2 threads"].append(run(args, 1))
    best = {name: max(runs) for name, runs in speeds.items()}
    ratio = best["2 ranks x 1 thread"] / best["1 rank x 2 threads"]
    print(json.dumps({"sequences": args.sequences, "steps_per_second": speeds}, indent=2))
    for name, value in best.items():
        print(f"{name}: {value:,.0f} real steps/s (best of {args.repeats})")
    print(f"2 ranks / 1 rank: {ratio:.2f}x")


if __name__ == "__main__":
    main()
