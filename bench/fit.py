"""End-to-end `model.fit` speed in real steps per second, against the no-padding limit.

Workload: 2048 sequences of 32 features with lognormal lengths (median ~60 steps,
clipped to [5, 400]), a per-step label out of 5 classes; model
`Bidirectional(LSTM(units, return_sequences=True)) -> Dense(5)` (units 64 unless
`--units`), sparse categorical cross-entropy from logits, Adam, batch 32. "Real steps"
excludes padding. Three contenders, each timed on one epoch of forward, backward and
Adam step, alternating `--repeats` times; the best run of each counts (the least
disturbed by other processes on a shared machine):

- limit: plain `torch.nn.LSTM` (bidirectional, the same sizes) + `nn.Linear` +
  cross-entropy on the same sequences with no padding at all: sorted by length, cut
  into batches of 32, each batch cut to its shortest sequence; one fused call per
  batch. It computes fewer steps than the data holds; its figure counts the steps it
  computes, so it is the speed of the recurrent kernels on dense batches.
- layer: maskwise's layers and masked loss in a hand-written loop on the
  length-bucketed batches of `make_loader` (made once, before the clock starts).
  Target: >= 0.85 of the limit.
- fit: `model.fit` with bucketing (the default), everything included: the loader,
  the per-call checks, the non-finite guard, the metrics. Target: >= 0.75 of the limit.
  Each timed call is one epoch, so it also pays `fit`'s once-per-call checks (the
  guards; the leak probe runs at a model's first `fit` only, here the warm-up's); the
  ratio without them (an epoch of a longer `fit`) is printed too.

It also prints `fit` without bucketing (random batches; the speed-up of bucketing) and
what `fit`'s checks cost, each as a fraction of one bucketed epoch (the epoch measured
above, less the checks it includes): the guards (the doctor's data checks on a bounded
sample of `x`, `y` and the first-batch checks once the model is built; target <= 3 %)
and the leak probe (on the first batch of a model's first `fit`).

Usage:
    python bench/fit.py --threads 2            # full workload, 2 threads
    python bench/fit.py --quick                # 512 sequences
    python bench/fit.py --device cuda
    python bench/rnn.py --fit [--quick]        # the same, from the recurrent benchmark
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import maskwise
from maskwise import layers
from maskwise.data import make_loader
from maskwise.doctor import PROBE_ROWS
from maskwise.doctor.guards import Guard
from maskwise.doctor.leak_probe import probe_leaks

FEATURES = 32
CLASSES = 5
BATCH = 32


def workload(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`n` ragged sequences `(T_i, 32)` and per-step labels `(T_i,)`."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(60), 0.8, size=n)), 5, 400).astype(int)
    x = [rng.normal(size=(t, FEATURES)).astype(np.float32) for t in lengths]
    y = [(seq[:, :CLASSES].argmax(-1)) for seq in x]
    return x, y


def model(units: int) -> maskwise.Sequential:
    net = maskwise.Sequential(
        [layers.Bidirectional(layers.LSTM(units, return_sequences=True)), layers.Dense(CLASSES)]
    )
    net.compile("adam", maskwise.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def limit_epoch(x: list, y: list, units: int, device: str) -> tuple[Callable[[], None], int]:
    """One epoch of the no-padding limit, and the real steps it computes."""
    order = np.argsort([len(s) for s in x], kind="stable")
    batches = []
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        cut = min(len(x[i]) for i in rows)  # the shortest: no padding at all
        values = torch.from_numpy(np.stack([x[i][:cut] for i in rows])).to(device)
        labels = torch.from_numpy(np.stack([y[i][:cut] for i in rows])).to(device)
        batches.append((values, labels))
    torch.manual_seed(0)
    lstm = nn.LSTM(FEATURES, units, batch_first=True, bidirectional=True).to(device)
    head = nn.Linear(2 * units, CLASSES).to(device)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()])

    def epoch() -> None:
        for values, labels in batches:
            optimizer.zero_grad()
            logits = head(lstm(values)[0])
            nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
            optimizer.step()

    return epoch, sum(int(labels.numel()) for _, labels in batches)


def layer_epoch(x: list, y: list, units: int, device: str) -> Callable[[], None]:
    """One epoch of maskwise's layers and masked loss in a hand-written loop, on the
    length-bucketed batches of `make_loader`."""
    batches = [b.to(device) for b in make_loader(x, y, batch_size=BATCH, checks="off")]
    torch.manual_seed(0)
    net = maskwise.Sequential(
        [
            layers.Bidirectional(layers.LSTM(units, return_sequences=True, input_dim=FEATURES)),
            layers.Dense(CLASSES, input_dim=2 * units),
        ]
    ).to(device)
    loss = maskwise.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = torch.optim.Adam(net.parameters())

    def epoch() -> None:
        for batch in batches:
            optimizer.zero_grad()
            loss(batch.y, net(batch.x)).backward()
            optimizer.step()

    return epoch


def fit_epoch(x: list, y: list, units: int, bucketing: bool, device: str) -> Callable[[], None]:
    """One `fit` epoch on all of `x, y` (the model warmed up by a `fit` on 1/8 of it)."""
    torch.manual_seed(0)
    net = model(units)
    warm = max(BATCH, len(x) // 8)
    options = dict(batch_size=BATCH, bucketing=bucketing, verbose=0, device=device, seed=0)
    net.fit(x[:warm], y[:warm], **options)

    def epoch() -> None:
        net.fit(x, y, **options)

    return epoch


def timed(epoch: Callable[[], None], device: str) -> float:
    """Seconds of one call of `epoch`."""
    sync(device)
    start = time.perf_counter()
    epoch()
    sync(device)
    return time.perf_counter() - start


def check_costs(x: list, y: list, units: int, device: str, repeats: int = 3) -> tuple[float, float]:
    """Seconds (best of `repeats`) of `fit`'s guards and of its leak probe on `x, y`."""
    torch.manual_seed(0)
    net = model(units).to(device)
    first = next(iter(make_loader(x, y, batch_size=BATCH, checks="off"))).to(device)
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
    parser.add_argument("--units", type=int, default=64, help="LSTM units per direction")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (pinned)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternate runs per contender; the best counts"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = workload(512 if args.quick else 2048)
    real = int(sum(len(s) for s in x))
    limit, limit_steps = limit_epoch(x, y, args.units, args.device)
    contenders = {
        "limit": (limit, limit_steps),
        "layer": (layer_epoch(x, y, args.units, args.device), real),
        "fit": (fit_epoch(x, y, args.units, True, args.device), real),
        "fit_unbucketed": (fit_epoch(x, y, args.units, False, args.device), real),
    }
    for epoch, _ in contenders.values():
        epoch()  # warm-up: oneDNN's kernels for these shapes, Adam's state
    speeds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):  # alternate, so a busy spell hits every contender
        for name, (epoch, steps) in contenders.items():
            speeds[name].append(steps / timed(epoch, args.device))
    best = {name: max(runs) for name, runs in speeds.items()}
    guards, probe = check_costs(x, y, args.units, args.device)
    epoch_seconds = real / best["fit"] - guards  # the probe ran at the warm-up fit only
    results = {
        "sequences": len(x),
        "median_length": float(np.median([len(s) for s in x])),
        "units": args.units,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "steps_per_second": speeds,
        "layer_over_limit": best["layer"] / best["limit"],
        "fit_over_limit": best["fit"] / best["limit"],
        "fit_epoch_over_limit": real / epoch_seconds / best["limit"],
        "bucketing_speedup": best["fit"] / best["fit_unbucketed"],
        "guard_seconds": guards,
        "probe_seconds": probe,
        "epoch_seconds": epoch_seconds,
    }
    print(json.dumps(results, indent=2))
    print(
        f"best real steps/s: limit {best['limit']:,.0f}, layer {best['layer']:,.0f}, "
        f"fit {best['fit']:,.0f}, fit unbucketed {best['fit_unbucketed']:,.0f}"
    )
    print(f"layer / limit: {results['layer_over_limit']:.2f} (target >= 0.85)")
    print(f"fit / limit:   {results['fit_over_limit']:.2f} (target >= 0.75)")
    print(f"fit / limit, the per-call checks below left out: {results['fit_epoch_over_limit']:.2f}")
    print(f"fit speed-up from bucketing: {results['bucketing_speedup']:.2f}x")
    print(
        f"fit's checks, per fit call, against one {epoch_seconds:.2f} s epoch: guards "
        f"{guards:.3f} s = {guards / epoch_seconds:.2%} (target <= 3 %); leak probe, at a "
        f"model's first fit only, {probe:.3f} s = {probe / epoch_seconds:.2%}"
    )


if __name__ == "__main__":
    main()
