"""End-to-end `model.fit` speed in real steps per second, bucketing on vs off.

Workload: 2048 sequences of 32 features with lognormal lengths (median ~60 steps,
clipped to [5, 400]), a per-step label out of 5 classes; model
`Bidirectional(LSTM(128, return_sequences=True)) -> Dense(5)`, sparse categorical
cross-entropy from logits, Adam, batch 32. Each mode runs one warm-up epoch on a slice
of the data, then `--epochs` timed epochs of `fit` (data loading, forward, masked loss,
backward, optimizer step: everything), `--repeats` times alternating the modes; the
best run of each mode counts (the least disturbed by other processes). "Real steps"
excludes padding, so both modes count the same work; bucketing wins by not computing
on padded steps. Target: bucketed >= 2.5x unbucketed.

It also prints what `fit`'s checks cost on this workload, each as a fraction of one
bucketed epoch (the epoch measured above, less the checks it includes): the guards
(the doctor's data checks on a bounded sample of `x`, `y` and the first-batch checks
once the model is built; target <= 3 %) and the leak probe (on the first batch).

Usage:
    python bench/fit.py                     # full workload, CPU
    python bench/fit.py --quick             # 512 sequences
    python bench/fit.py --device cuda
    python bench/rnn.py --fit [--quick]     # the same, from the recurrent benchmark
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import maskwise
from maskwise import layers
from maskwise.data import make_loader
from maskwise.doctor import PROBE_ROWS
from maskwise.doctor.guards import Guard
from maskwise.doctor.leak_probe import probe_leaks

FEATURES = 32
CLASSES = 5


def workload(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`n` ragged sequences `(T_i, 32)` and per-step labels `(T_i,)`."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(60), 0.8, size=n)), 5, 400).astype(int)
    x = [rng.normal(size=(t, FEATURES)).astype(np.float32) for t in lengths]
    y = [(seq[:, :CLASSES].argmax(-1)) for seq in x]
    return x, y


def model() -> maskwise.Sequential:
    net = maskwise.Sequential(
        [layers.Bidirectional(layers.LSTM(128, return_sequences=True)), layers.Dense(CLASSES)]
    )
    net.compile("adam", maskwise.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def fit_speed(
    x: list, y: list, bucketing: bool, epochs: int, device: str, batch_size: int = 32
) -> float:
    """Real steps per second of `fit` (after a warm-up epoch on 1/8 of the data)."""
    torch.manual_seed(0)
    net = model()
    warm = max(batch_size, len(x) // 8)
    net.fit(
        x[:warm],
        y[:warm],
        batch_size=batch_size,
        bucketing=bucketing,
        verbose=0,
        device=device,
        seed=0,
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    net.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        bucketing=bucketing,
        verbose=0,
        device=device,
        seed=0,
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return sum(len(s) for s in x) * epochs / (time.perf_counter() - start)


def check_costs(
    x: list, y: list, device: str, batch_size: int = 32, repeats: int = 3
) -> tuple[float, float]:
    """Seconds (best of `repeats`) of `fit`'s guards and of its leak probe on `x, y`."""
    torch.manual_seed(0)
    net = model().to(device)
    first = next(iter(make_loader(x, y, batch_size=batch_size, checks="off"))).to(device)
    with torch.no_grad():
        net(first.x)  # build the lazy weights, as fit does before its checks
    guards, probe = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        guard = Guard("raise", "fit", 0.0)
        guard.data(x, y)
        guard.model(net, first)
        guards.append(time.perf_counter() - start)
        start = time.perf_counter()
        probe_leaks(net, first.x, rows=PROBE_ROWS)
        probe.append(time.perf_counter() - start)
    return min(guards), min(probe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 sequences instead of 2048")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--repeats", type=int, default=2, help="alternate runs per mode; the best one counts"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = workload(512 if args.quick else 2048)
    lengths = np.array([len(s) for s in x])
    results = {
        "sequences": len(x),
        "median_length": float(np.median(lengths)),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "bucketed": [],
        "unbucketed": [],
    }
    for _ in range(args.repeats):  # alternate, so a busy spell hits both modes
        for mode, bucketing in (("bucketed", True), ("unbucketed", False)):
            results[mode].append(fit_speed(x, y, bucketing, args.epochs, args.device))
    results["speedup"] = max(results["bucketed"]) / max(results["unbucketed"])
    guards, probe = check_costs(x, y, args.device)
    epoch = int(lengths.sum()) / max(results["bucketed"]) - guards - probe
    results.update(
        guard_seconds=guards,
        probe_seconds=probe,
        epoch_seconds=epoch,
        guard_fraction=guards / epoch,
        probe_fraction=probe / epoch,
    )
    print(json.dumps(results, indent=2))
    print(f"fit speed-up from bucketing: {results['speedup']:.2f}x (target >= 2.5x)")
    print(
        f"fit's checks, per fit call, against one {epoch:.1f} s epoch: guards {guards:.3f} s "
        f"= {guards / epoch:.2%} (target <= 3 %), leak probe {probe:.3f} s = {probe / epoch:.2%}"
    )


if __name__ == "__main__":
    main()
