"""Recurrent speed: maskwise's BiLSTM against hand-written PyTorch and Keras 3.

Workload (a ragged tagging task): 2048 sequences of 32 random features, lognormal
lengths (median 60) clipped to [5, 400], 5 classes per step; a BiLSTM(128) then
Dense(5), masked cross-entropy on the real steps, Adam, batch 32. Figures are real
steps per second (padding not counted) for one training epoch (forward, loss,
backward, Adam step over every batch) and for inference (forward over every batch,
no gradients), after one warm-up batch.

Contenders, each in its own subprocess:
- `maskwise`: `Bidirectional(LSTM(128, return_sequences=True))` -> `Dense(5)`, loss
  `maskwise.losses.SparseCategoricalCrossentropy(from_logits=True)`;
- `packed`: `nn.LSTM(bidirectional=True)` on `pack_padded_sequence`;
- `reversal`: two `nn.LSTM`s on batch-max padding, the backward one reading each
  sequence reversed by an index gather (the fastest hand-written way on CPU);
- `keras`: Keras 3 (torch backend) `Masking(0.)` -> `Bidirectional(LSTM)` ->
  `Dense(5)`, `fit`/`predict` on the array padded to the workload's longest sequence,
  as Keras users feed it; run on the first sequences only (it is slow), so that each
  of its batches costs what it would in a full epoch; its figure is per real step too;
- `maskwise-holes`: maskwise with non-contiguous masks (each batch widened by 25 % and
  the real steps spread over it at random positions, in order).
The PyTorch contenders get the same batches (one random order, each padded to its
longest sequence). Memory, measured in a separate subprocess: how far the
peak resident set size (`ru_maxrss`) during one training epoch rises above the
resident set in use before it, with glibc's mmap threshold fixed at 128 KiB so that
large freed tensors leave the RSS at once; i.e. the most memory live at one time on
top of the loaded data, model and Adam state (activations, gradients, kernel
workspaces, temporaries, oneDNN's cache of compiled kernels); not measured for Keras,
which holds a differently padded array. Timings keep the fastest of `--repeats`
epochs (2 with `--quick`, else 1).

Targets on a 2-core CPU: maskwise >= 0.9x `reversal`, >= 2.5x `packed`, >= 10x
`keras`; `maskwise-holes` within 1.3x of `maskwise`; peak memory <= 1.2x `reversal`.

Usage:
    python bench/rnn.py            # full workload (a few minutes)
    python bench/rnn.py --quick    # 128 sequences, Keras on 32, memory of maskwise
                                   # and reversal only (under a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

FEATURES, UNITS, CLASSES, BATCH = 32, 128, 5, 32
CONTENDERS = ("maskwise", "reversal", "packed", "keras", "maskwise-holes")
MEMORY_TARGET = ("maskwise", "reversal")


def make_data(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(60), 0.8, n)), 5, 400).astype(int)
    xs = [rng.standard_normal((n_i, FEATURES)).astype(np.float32) for n_i in lengths]
    ys = [rng.integers(0, CLASSES, n_i) for n_i in lengths]
    return xs, ys


def make_batches(xs: list[np.ndarray], ys: list[np.ndarray], holes: bool) -> list[Any]:
    """`(values, mask, labels, lengths)` per batch, one random order, padded to the
    batch's longest sequence (widened by 25 % with real steps spread out, for holes)."""
    import torch

    rng = np.random.default_rng(1)
    order = rng.permutation(len(xs))
    batches = []
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        longest = max(len(ys[i]) for i in rows)
        width = longest + longest // 4 if holes else longest
        values = torch.zeros(len(rows), width, FEATURES)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for r, i in enumerate(rows):
            n = len(ys[i])
            steps = np.sort(rng.choice(width, n, replace=False)) if holes else np.arange(n)
            values[r, steps] = torch.from_numpy(xs[i])
            labels[r, steps] = torch.from_numpy(ys[i])
            mask[r, steps] = True
        batches.append((values, mask, labels, mask.sum(1)))
    return batches


def torch_model(name: str) -> tuple[Any, Any]:
    """The model and a `loss(batch) -> scalar` for a PyTorch contender."""
    import torch
    from torch import nn
    from torch.nn.functional import cross_entropy
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if name.startswith("maskwise"):
        import maskwise
        from maskwise.layers import LSTM, Bidirectional, Dense
        from maskwise.losses import SparseCategoricalCrossentropy

        model = maskwise.Sequential(
            [
                Bidirectional(LSTM(UNITS, return_sequences=True, input_dim=FEATURES)),
                Dense(CLASSES, input_dim=2 * UNITS),
            ]
        )
        loss_fn = SparseCategoricalCrossentropy(from_logits=True)

        def loss(batch: Any) -> Any:
            values, mask, labels, _ = batch
            return loss_fn(labels, model(maskwise.Masked(values, mask)))

        return model, loss

    head = nn.Linear(2 * UNITS, CLASSES)
    if name == "packed":
        lstm = nn.LSTM(FEATURES, UNITS, batch_first=True, bidirectional=True)
        model = nn.ModuleList([lstm, head])

        def features(values: Any, lengths: Any) -> Any:
            packed = pack_padded_sequence(values, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(
                lstm(packed)[0], batch_first=True, total_length=values.shape[1]
            )
            return out

    else:  # per-sequence reversal on batch-max padding
        forward_lstm = nn.LSTM(FEATURES, UNITS, batch_first=True)
        backward_lstm = nn.LSTM(FEATURES, UNITS, batch_first=True)
        model = nn.ModuleList([forward_lstm, backward_lstm, head])

        def features(values: Any, lengths: Any) -> Any:
            steps = torch.arange(values.shape[1]).unsqueeze(0)
            last = lengths.unsqueeze(1) - 1
            index = torch.where(steps <= last, last - steps, steps).unsqueeze(-1)
            backward = backward_lstm(values.gather(1, index.expand_as(values)))[0]
            backward = backward.gather(1, index.expand(-1, -1, UNITS))
            return torch.cat([forward_lstm(values)[0], backward], dim=-1)

    def loss(batch: Any) -> Any:
        values, _, labels, lengths = batch
        logits = head(features(values, lengths))
        return cross_entropy(logits.reshape(-1, CLASSES), labels.reshape(-1), ignore_index=-100)

    return model, loss


def run_torch(name: str, n: int, measure: str, repeats: int) -> dict[str, float]:
    import torch

    xs, ys = make_data(n)
    batches = make_batches(xs, ys, holes=name == "maskwise-holes")
    real = float(sum(len(y) for y in ys))
    torch.manual_seed(0)
    model, loss = torch_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_epoch() -> None:
        for batch in batches:
            optimizer.zero_grad()
            loss(batch).backward()
            optimizer.step()

    def infer_epoch() -> None:
        with torch.no_grad():
            for batch in batches:
                loss(batch)

    optimizer.zero_grad()
    loss(batches[0]).backward()  # warm-up (and Adam's state, below)
    optimizer.step()
    if measure == "memory":
        return {"rss_mb": peak_rss_growth(train_epoch)}
    return {
        "train": real / best_seconds(train_epoch, repeats),
        "infer": real / best_seconds(infer_epoch, repeats),
    }


def run_keras(n: int, workload: int, repeats: int) -> dict[str, float]:
    """Keras on the first `n` sequences of the workload, padded to the longest sequence
    of the whole workload (as its users pad the whole array), so that each batch costs
    what it would in a full epoch."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    xs, ys = make_data(workload)
    longest = max(len(y) for y in ys)
    xs, ys = xs[:n], ys[:n]
    x = np.zeros((n, longest, FEATURES), np.float32)
    y = np.zeros((n, longest), np.int64)
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        x[i, : len(yi)] = xi
        y[i, : len(yi)] = yi
    real = float(sum(len(y_i) for y_i in ys))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True)),
            keras.layers.Dense(CLASSES),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # warm-up

    def train_epoch() -> None:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    def infer_epoch() -> None:
        model.predict(x, batch_size=BATCH, verbose=0)

    return {
        "train": real / best_seconds(train_epoch, repeats),
        "infer": real / best_seconds(infer_epoch, repeats),
    }


def best_seconds(epoch: Any, repeats: int) -> float:
    """The fastest of `repeats` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_growth(epoch: Any) -> float:
    """MB the process's peak RSS rose above the RSS in use before `epoch` (run by
    `main` with a fixed glibc mmap threshold, so that freed tensors leave the RSS at
    once and the peak is the most memory live at one time, not an artefact of heap
    reuse)."""
    with open("/proc/self/statm") as statm:  # pages: size, resident, ...
        before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    epoch()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before


def worker(name: str, n: int, workload: int, threads: int, measure: str, repeats: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if name == "keras":
        result = run_keras(n, workload, repeats)
    else:
        result = run_torch(name, n, measure, repeats)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per contender")
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument(
        "--fit", action="store_true", help="time model.fit, bucketing on vs off (bench/fit.py)"
    )
    parser.add_argument("--repeats", type=int, help="timed epochs per figure, best kept")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workload", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("time", "memory"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.workload, args.threads, args.measure, args.repeats)
        return
    if args.fit:  # the end-to-end fit figure lives in its own script
        fit_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fit.py")
        quick = ["--quick"] if args.quick else []
        subprocess.run(
            [sys.executable, fit_script, *quick, "--threads", str(args.threads)], check=True
        )
        return

    sizes = {"keras": 32 if args.quick else 256}
    default = 128 if args.quick else 2048
    repeats = args.repeats or (2 if args.quick else 1)
    memory_env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    results: dict[str, dict[str, float]] = {}
    for name in args.only:
        n = sizes.get(name, default)
        results[name] = {"rss_mb": float("nan")}
        # Memory: not for Keras (see above); with --quick only for the target's two.
        measure_memory = name != "keras" and (not args.quick or name in MEMORY_TARGET)
        measures = [("time", None)] + ([("memory", memory_env)] if measure_memory else [])
        for measure, env in measures:
            command = [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--n",
                str(n),
                "--workload",
                str(default),
                "--threads",
                str(args.threads),
                "--measure",
                measure,
                "--repeats",
                str(repeats),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr[-2000:]}")
                break
            results[name].update(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            print(f"  ran {name} on {n} sequences", file=sys.stderr)
            continue
        del results[name]

    base = results.get("maskwise")
    print(
        f"{'contender':<16}{'train steps/s':>15}{'infer steps/s':>15}"
        f"{'mw/x train':>12}{'mw/x infer':>12}{'peak RSS +MB':>14}"
    )
    for name, r in results.items():
        ratio_t = base["train"] / r["train"] if base else float("nan")
        ratio_i = base["infer"] / r["infer"] if base else float("nan")
        print(
            f"{name:<16}{r['train']:>15,.0f}{r['infer']:>15,.0f}"
            f"{ratio_t:>12.2f}{ratio_i:>12.2f}{r['rss_mb']:>14.1f}"
        )
    if base and "maskwise-holes" in results:
        holes = results["maskwise-holes"]
        print(
            f"non-contiguous masks cost {base['train'] / holes['train']:.2f}x (train) and "
            f"{base['infer'] / holes['infer']:.2f}x (inference) of post-padding"
        )
    if base and "reversal" in results and results["reversal"]["rss_mb"] > 0:
        print(
            f"peak memory vs hand-written reversal: "
            f"{base['rss_mb'] / results['reversal']['rss_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
