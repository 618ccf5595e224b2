"""Seed 002: "Does Keras ignore the labels of masked values?" — yes, and here is how.

The seed's model, `Masking -> LSTM(100, return_sequences=True) -> Dropout(0.5) ->
Dense(1, sigmoid)`, outputs a `Masked`: its mask marks which steps are real. A loss
only counts those steps, so the labels at padded steps never matter.

Two reductions over the real steps, both checked against hand formulas:
- maskwise's default (Keras 3): the mean of the per-step losses over the real steps.
- Keras 2's `weighted_masked_objective` (`reduction="keras2"`): `score *= mask;
  score /= mean(mask) + eps`, then sample weights (`score *= w; score /= mean(w != 0)`),
  then the mean of everything. Per batch it is the same as the mean over the real steps
  (up to eps), but it weights batches by their share of real steps, and sample weights
  are normalised by how many are non-zero.

Run: `python examples/seed_002_masked_loss.py`
"""

from __future__ import annotations

import numpy as np
import torch

from maskwise import Sequential, layers
from maskwise.losses import EPSILON, BinaryCrossentropy


def bce_by_hand(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Keras's binary cross-entropy per step: probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def main(seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lengths = [7, 3, 5, 1]
    timesteps, features = 8, 4
    x = np.zeros((len(lengths), timesteps, features), np.float32)
    y = rng.integers(0, 2, (len(lengths), timesteps, 1)).astype(np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, features))

    model = Sequential(
        [
            layers.Masking(0.0),
            layers.LSTM(100, return_sequences=True),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    real = out.mask.numpy()
    p = out.values.numpy()

    # 1. Labels at padded steps are ignored: scramble them, the loss does not move.
    loss = BinaryCrossentropy()
    y_other = y.copy()
    y_other[~real] = 1.0 - y_other[~real]
    y_nan = y.copy()
    y_nan[~real] = np.nan
    mean_loss = float(loss(y, out))
    scrambled = float(loss(y_other, out))
    nan_labels = float(loss(y_nan, out))

    # 2. Default reduction: mean over the real steps.
    per_step = bce_by_hand(p[..., 0], y[..., 0])
    mean_by_hand = float(per_step[real].mean())

    # 3. Keras 2's weighted_masked_objective, with and without sample weights.
    keras2 = BinaryCrossentropy(reduction="keras2")
    mask_f = real.astype(np.float64)
    score = per_step * mask_f / (mask_f.mean() + EPSILON)
    keras2_by_hand = float(score.mean())
    weights = np.array([1.0, 0.0, 2.0, 1.0], np.float32)
    weighted = score.mean(axis=1) * weights / (weights != 0).mean()
    keras2_weighted_by_hand = float(weighted.mean())
    keras2_loss = float(keras2(y, out))
    keras2_weighted = float(keras2(y, out, sample_weight=weights))

    # The unmasked mean, what a model that lost its mask would report (seed 001).
    unmasked = float(per_step.mean())

    results = {
        "mean_loss": mean_loss,
        "mean_by_hand": mean_by_hand,
        "scrambled_padding_labels": scrambled,
        "nan_padding_labels": nan_labels,
        "keras2_loss": keras2_loss,
        "keras2_by_hand": keras2_by_hand,
        "keras2_weighted": keras2_weighted,
        "keras2_weighted_by_hand": keras2_weighted_by_hand,
        "unmasked_mean_by_hand": unmasked,
        "real_steps": int(real.sum()),
        "all_steps": int(real.size),
    }
    return results


if __name__ == "__main__":
    r = main()
    print(f"real steps: {r['real_steps']} of {r['all_steps']}")
    print(f"loss (mean over real steps)           {r['mean_loss']:.6f}")
    print(f"  by hand                             {r['mean_by_hand']:.6f}")
    print(f"  labels at padded steps flipped      {r['scrambled_padding_labels']:.6f}")
    print(f"  labels at padded steps NaN          {r['nan_padding_labels']:.6f}")
    print(f"Keras 2 weighted_masked_objective     {r['keras2_loss']:.6f}")
    print(f"  by hand                             {r['keras2_by_hand']:.6f}")
    print(f"  with sample weights [1, 0, 2, 1]    {r['keras2_weighted']:.6f}")
    print(f"  by hand                             {r['keras2_weighted_by_hand']:.6f}")
    print(f"unmasked mean (padding counted)       {r['unmasked_mean_by_hand']:.6f}")
