"""The leak probe's cost on `bench/fit.py`'s workload, against one epoch of `fit`.

The probe runs once per `fit` (on the first batch): its time is compared with the time
of one epoch (2048 sequences, batch 32, `Bidirectional(LSTM(128)) -> Dense(5)`, with
bucketing). Both are timed `--repeats` times, alternately; the best of each counts.

Usage:
    python bench/leak_probe.py               # full workload, CPU
    python bench/leak_probe.py --quick       # 512 sequences
    python bench/leak_probe.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from maskwise.data import make_loader
from maskwise.doctor.leak_probe import probe_leaks

FIT = Path(__file__).with_name("fit.py")


def load_fit_bench() -> dict:
    namespace: dict = {"__name__": "bench_fit"}
    exec(compile(FIT.read_text(), str(FIT), "exec"), namespace)
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 sequences instead of 2048")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=3, help="probe runs and epochs; the best of each counts"
    )
    args = parser.parse_args()
    fit = load_fit_bench()
    x, y = fit["workload"](512 if args.quick else 2048)
    torch.manual_seed(0)
    net = fit["model"]()
    loader = make_loader(x, y, batch_size=32, seed=0)
    first = next(iter(loader)).to(args.device)
    net.to(args.device)
    with torch.no_grad():
        net(first.x)  # build the weights

    def synchronize() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    probe_times, epoch_times = [], []
    for _ in range(args.repeats):  # alternate, so a busy spell hits both
        synchronize()
        start = time.perf_counter()
        findings = probe_leaks(net, first.x)
        synchronize()
        probe_times.append(time.perf_counter() - start)
        assert findings == [], findings
        start = time.perf_counter()
        net.fit(x, y, epochs=1, batch_size=32, verbose=0, device=args.device, seed=0)
        synchronize()
        epoch_times.append(time.perf_counter() - start)
    epoch = min(epoch_times)
    result = {
        "sequences": len(x),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "first_batch": list(first.x.values.shape),
        "probe_s": min(probe_times),
        "epoch_s": epoch,
        "batches": len(loader),
        "probe_share_of_epoch": min(probe_times) / epoch,
    }
    print(json.dumps(result, indent=2))
    print(f"leak probe: {result['probe_share_of_epoch']:.2%} of one epoch of fit")


if __name__ == "__main__":
    main()
