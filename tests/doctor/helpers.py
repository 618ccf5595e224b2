"""Data builders for the doctor's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED000 = Path(__file__).resolve().parents[2] / "data" / "seed000.npz"


def padded(
    lengths: list[int],
    features: int = 3,
    time: int | None = None,
    seed: int = 0,
    padding: str = "post",
    value: float = 0.0,
) -> np.ndarray:
    """A `(batch, time, features)` array of nonzero values, padded with `value`."""
    rng = np.random.default_rng(seed)
    time = time or max(lengths)
    x = np.full((len(lengths), time, features), value)
    for i, n in enumerate(lengths):
        steps = rng.uniform(0.5, 2.0, size=(n, features)) * rng.choice([-1, 1], (n, features))
        if padding == "post":
            x[i, :n] = steps
        else:
            x[i, time - n :] = steps
    return x


def seed000(split: str = "train") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Seed 000's batches: X as given, (5 features, 20 steps); y (20,) with 0 at padding."""
    with np.load(SEED000) as data:
        n = sum(name.startswith(f"X_batches_{split}_") for name in data.files)
        xs = [data[f"X_batches_{split}_{i}"] for i in range(n)]
        ys = [data[f"y_batches_{split}_{i}"] for i in range(n)]
    return xs, ys


def codes(findings: list) -> list[str]:
    return [f.code for f in findings]
