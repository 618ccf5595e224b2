"""Seed 000: "Zero predictions despite masking support" — stopped by `fit`, then fixed.

The seed's data (`data/seed000.npz`): 10 training and 2 test sequences, each a `(5, 20)`
array of 5 features x 20 steps, post-padded with zero columns, with per-step labels 1 or
2 and 0 at padding. The user's code, run as written, makes two mistakes, and `fit`
stops each one before the first step with a `DoctorError` that names the fix:

- MW001: `X.reshape(1, 20, 5)` mixes features and time, so no step is all zeros and
  `Masking` masks nothing. The fix is `X.T`.
- MW004: the padding label 0 is also a class (`Dense(3)`), so the model has a unit to
  predict "padding". With a mask the padded steps need no class: relabel 1->0, 2->1,
  pad the targets with `IGNORE_INDEX`, and use `Dense(2, softmax)`.

The fixed model, `Masking -> Bidirectional(LSTM(20, return_sequences=True)) ->
Dropout(0.2) -> TimeDistributed(Dense(2, softmax))`, trained with `fit` and evaluated on
the 30 real test steps only (a reference Keras run gets about 99 %).

Run: `python examples/seed_000_zero_predictions.py`
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maskwise import DoctorError, Sequential, layers
from maskwise.doctor import check
from maskwise.masked import IGNORE_INDEX

DATA = Path(__file__).resolve().parent.parent / "data" / "seed000.npz"


def load_seed_data() -> dict[str, list[np.ndarray]]:
    """The seed's arrays: X `(5, 20)` = features x time, y `(20,)` with 0 at padding."""
    data = np.load(DATA)
    return {
        part: [data[f"{part}_{i}"] for i in range(10 if "train" in part else 2)]
        for part in ("X_batches_train", "y_batches_train", "X_batches_test", "y_batches_test")
    }


def tagger(units: int) -> Sequential:
    """The seed's model; `units=3` is the user's (a class for the padding label 0)."""
    return Sequential(
        [
            layers.Masking(0.0),
            layers.Bidirectional(layers.LSTM(20, return_sequences=True)),
            layers.Dropout(0.2),
            layers.TimeDistributed(layers.Dense(units, activation="softmax")),
        ]
    )


def relabel(y: list[np.ndarray]) -> np.ndarray:
    """Classes 1, 2 -> 0, 1; padding (label 0) -> IGNORE_INDEX."""
    return np.stack([np.where(labels > 0, labels - 1, IGNORE_INDEX) for labels in y])


def stopped(x: np.ndarray, y: np.ndarray, units: int, seed: int) -> DoctorError:
    """The error `fit` raises on the user's data and model."""
    model = tagger(units)
    model.compile("adam", loss="sparse_categorical_crossentropy", learning_rate=0.01)
    try:
        model.fit(x, y, epochs=1, seed=seed, verbose=0)
    except DoctorError as error:
        return error
    raise AssertionError("fit trained on the seed's mistake")


def main(seed: int = 0, epochs: int = 30, batch_size: int = 5) -> dict[str, object]:
    data = load_seed_data()
    y_seed = np.stack(data["y_batches_train"])  # labels 1/2, 0 at padding
    # The user's code: each (5, 20) array reshaped to (1, 20, 5), stacked; Dense(3).
    x_user = np.concatenate([x.reshape(1, 20, 5) for x in data["X_batches_train"]])
    layout_error = stopped(x_user.astype(np.float32), y_seed, units=3, seed=seed)
    # The layout repaired (X.T), the labels and Dense(3) still the user's.
    x_train = np.stack([x.T for x in data["X_batches_train"]]).astype(np.float32)
    label_error = stopped(x_train, y_seed, units=3, seed=seed)

    # Both repaired: X.T, labels 1->0, 2->1 with IGNORE_INDEX at padding, Dense(2).
    y_train = relabel(data["y_batches_train"])
    torch.manual_seed(seed)
    model = tagger(2)
    model.compile(
        "adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], learning_rate=0.01
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, seed=seed, verbose=0)

    x_test = np.stack([x.T for x in data["X_batches_test"]]).astype(np.float32)
    y_test = relabel(data["y_batches_test"])
    evaluated = model.evaluate(x_test, y_test, verbose=0)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x_test))
    real = out.mask.numpy()
    predicted = out.values.argmax(-1).numpy()
    accuracy = float((predicted[real] == y_test[real]).mean())
    return {
        "layout_error_code": layout_error.code,
        "layout_error": str(layout_error),
        "label_error_code": label_error.code,
        "label_error": str(label_error),
        "fixed_codes": [f.code for f in check(x_train, y_train)],
        "test_real_steps": int(real.sum()),
        "test_accuracy": accuracy,
        "evaluate_accuracy": float(evaluated["accuracy"]),
        "predicted_classes": sorted(set(predicted[real].tolist())),
    }


def indent(text: str) -> str:
    return "  " + text.replace("\n", "\n  ")


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small recurrent model: one thread is fastest
    first = main()
    print("The user's code: X.reshape(1, 20, 5), labels 1/2 padded with 0, Dense(3):")
    print(indent(first["layout_error"]))
    print("\nX.T, the user's labels and Dense(3):")
    print(indent(first["label_error"]))
    print("\nX.T, labels 1->0, 2->1, IGNORE_INDEX at padding, Dense(2): fit trains.")
    accuracies = [first["test_accuracy"]] + [main(seed)["test_accuracy"] for seed in range(1, 5)]
    print(f"\nfixed model, accuracy on the {first['test_real_steps']} real test steps:")
    for seed, accuracy in enumerate(accuracies):
        print(f"  seed {seed}: {accuracy:.3f}")
    print(f"  mean over 5 seeds: {np.mean(accuracies):.3f}  (reference Keras run: about 0.99)")
