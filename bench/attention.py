"""Attention speed: maskwise's `MultiHeadAttention` against hand-written PyTorch.

Workload (ragged self-attention): 512 sequences of 64 features, lognormal lengths
(median 60) clipped to [5, 200], in batches of 32 sorted by length (as a bucketing
loader gives them), each padded to its longest sequence. One epoch is forward and
backward over every batch, the loss being the sum of squares of the outputs at the
real steps. Figures are real steps (padding not counted) per second of the process's
CPU time (`time.process_time`; wall time on a GPU) over one epoch, each batch timed at
its best of `--repeats` runs after a warm-up round, the contenders alternating batch
by batch: on a shared machine, time spent waiting for a core counts for neither. One
thread by default (`--threads`): with more, a thread spinning while it waits for a
descheduled peer counts as CPU time.

Contenders, same shapes, same batches:
- `maskwise`: `MultiHeadAttention(num_heads=4, key_dim=16)` called on the `Masked`
  batch (`mha(x, x)`);
- `sdpa`: four `nn.Linear` projections around one
  `torch.nn.functional.scaled_dot_product_attention` call with the key-padding mask
  `(batch, 1, 1, time)`, written by hand; no padding fill, no row zeroing.

Target: maskwise >= 0.9x `sdpa`.

Usage:
    python bench/attention.py               # 10 to 30 s on 2 CPU cores
    python bench/attention.py --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from maskwise import Masked
from maskwise.layers import MultiHeadAttention

FEATURES, HEADS, KEY_DIM, BATCH = 64, 4, 16, 32


def make_batches(n: int, device: str, seed: int = 0) -> list[Masked]:
    """Ragged batches of random features, sorted by length, each padded to its longest."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(60), 0.6, n), 5, 200).astype(int)
    lengths.sort()
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, n, BATCH):
        seqs = [
            torch.randn(int(t), FEATURES, generator=generator)
            for t in lengths[start : start + BATCH]
        ]
        batches.append(Masked.pad(seqs).to(device))
    return batches


class HandWritten(nn.Module):
    """Multi-head self-attention as one writes it by hand with SDPA."""

    def __init__(self) -> None:
        super().__init__()
        inner = HEADS * KEY_DIM
        self.q, self.k, self.v = (nn.Linear(FEATURES, inner) for _ in range(3))
        self.o = nn.Linear(inner, FEATURES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, time = x.shape[:2]

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(batch, time, HEADS, KEY_DIM).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q), heads(self.k), heads(self.v), attn_mask=mask[:, None, None, :]
        )
        return self.o(out.transpose(1, 2).reshape(batch, time, HEADS * KEY_DIM))


def step_seconds(step: Callable[[Masked], torch.Tensor], x: Masked, device: str) -> float:
    """Seconds for forward + backward on one batch: CPU time, or wall time on a GPU."""
    clock = time.perf_counter if device == "cuda" else time.process_time
    start = clock()
    out = step(x)
    torch.where(x.mask[..., None], out, 0.0).square().sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = make_batches(args.sequences, args.device)
    real_steps = sum(int(x.lengths.sum()) for x in batches)
    mha = MultiHeadAttention(num_heads=HEADS, key_dim=KEY_DIM)
    mha(batches[0])  # build
    hand = HandWritten()
    mha.to(args.device)
    hand.to(args.device)
    contenders: dict[str, Callable[[Masked], torch.Tensor]] = {
        "maskwise": lambda x: mha(x, x).values,
        "sdpa": lambda x: hand(x.values, x.mask),
    }
    # The best time of each batch over the repeats, contenders alternating batch by
    # batch: a shared machine's load then costs both the same, and its peaks drop out.
    best = {name: [float("inf")] * len(batches) for name in contenders}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for i, x in enumerate(batches):
            for name, step in contenders.items():
                seconds = step_seconds(step, x, args.device)
                if repeat:
                    best[name][i] = min(best[name][i], seconds)
    total = {name: sum(times) for name, times in best.items()}
    clock = "wall time" if args.device == "cuda" else "CPU time"
    padded = sum(x.values.shape[0] * x.values.shape[1] for x in batches)
    print(
        f"{args.sequences} sequences, {real_steps} real steps ({real_steps / padded:.0%} of "
        f"the padded batches), device {args.device}, {torch.get_num_threads()} threads"
    )
    for name in contenders:
        steps = real_steps / total[name]
        print(f"{name:9s} {steps:10,.0f} real steps/s ({clock}, forward + backward)")
    ratio = total["sdpa"] / total["maskwise"]
    print(f"maskwise / sdpa: {ratio:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
