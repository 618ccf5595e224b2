"""Seed 000: "Zero predictions despite masking support" — found by the doctor, then fixed.

The seed's data (`data/seed000.npz`): 10 training and 2 test sequences, each a `(5, 20)`
array of 5 features x 20 steps, post-padded with zero columns, with per-step labels 1 or
2 and 0 at padding. The user's two mistakes, both reported by `maskwise.doctor.check`:

- MW001: `X.reshape(1, 20, 5)` mixes features and time, so no step is all zeros and
  `Masking` masks nothing. The fix is `X.T`. (`fit` on that layout raises too: the
  mask `Masking` finds does not line up with the padding of the targets.)
- MW004: the padding label 0 is also a class (`Dense(3)`), so the model learns to
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

from maskwise import MaskError, Sequential, layers
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


def fixed_model() -> Sequential:
    return Sequential(
        [
            layers.Masking(0.0),
            layers.Bidirectional(layers.LSTM(20, return_sequences=True)),
            layers.Dropout(0.2),
            layers.TimeDistributed(layers.Dense(2, activation="softmax")),
        ]
    )


def relabel(y: list[np.ndarray]) -> np.ndarray:
    """Classes 1, 2 -> 0, 1; padding (label 0) -> IGNORE_INDEX."""
    return np.stack([np.where(labels > 0, labels - 1, IGNORE_INDEX) for labels in y])


def main(seed: int = 0, epochs: int = 30, batch_size: int = 5) -> dict[str, object]:
    data = load_seed_data()
    x_wrong = np.stack([x.reshape(20, 5) for x in data["X_batches_train"]])  # the seed's
    x_train = np.stack([x.T for x in data["X_batches_train"]]).astype(np.float32)
    y_seed = np.stack(data["y_batches_train"])
    wrong_layout = check(x_wrong)
    padding_label = check(x_train, y_seed)
    y_train = relabel(data["y_batches_train"])
    fixed = check(x_train, y_train)

    # Training on the seed's layout fails loudly: its Masking mask does not line up
    # with the targets' padding.
    model = fixed_model()
    model.compile("adam", loss="sparse_categorical_crossentropy", learning_rate=0.01)
    try:
        model.fit(x_wrong.astype(np.float32), y_train, epochs=1, seed=seed, verbose=0)
        wrong_fit_error = ""
    except MaskError as error:
        wrong_fit_error = str(error)

    torch.manual_seed(seed)
    model = fixed_model()
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
        "wrong_layout_codes": [f.code for f in wrong_layout],
        "wrong_layout_message": str(wrong_layout[0]) if wrong_layout else "",
        "padding_label_codes": [f.code for f in padding_label],
        "padding_label_message": str(padding_label[0]) if padding_label else "",
        "wrong_layout_fit_error": wrong_fit_error,
        "fixed_codes": [f.code for f in fixed],
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
    print("The seed's X.reshape(1, 20, 5), checked by the doctor:")
    print(indent(first["wrong_layout_message"]))
    print("\nfit() on that layout:")
    print(indent(first["wrong_layout_fit_error"]))
    print("\nX.T with the seed's labels, checked by the doctor:")
    print(indent(first["padding_label_message"]))
    print(f"\nX.T, labels 1->0, 2->1, IGNORE_INDEX at padding: findings {first['fixed_codes']}")
    accuracies = [first["test_accuracy"]] + [main(seed)["test_accuracy"] for seed in range(1, 5)]
    print(f"\nfixed model, accuracy on the {first['test_real_steps']} real test steps:")
    for seed, accuracy in enumerate(accuracies):
        print(f"  seed {seed}: {accuracy:.3f}")
    print(f"  mean over 5 seeds: {np.mean(accuracies):.3f}  (reference Keras run: about 0.99)")
