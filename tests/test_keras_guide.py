"""A Keras 3 guide-style script runs on maskwise with its imports changed, and gives
Keras's results for the same weights: predictions, the evaluated loss and accuracy,
and the weights after two SGD steps.

The script is the Keras guide's masking example made functional: Input -> Embedding
(mask_zero) -> LSTM(return_sequences) -> Dense(softmax), then summary, compile, fit,
evaluate and predict. It is run twice, once under each pair of imports.
"""

import keras
import numpy as np
import pytest
import torch

import maskwise

KERAS_IMPORTS = "import keras\nfrom keras import layers\n"
MASKWISE_IMPORTS = "import maskwise as keras\nfrom maskwise import layers\n"

SCRIPT = """
inputs = keras.Input(shape=(None,), dtype="int32")
x = layers.Embedding(input_dim=12, output_dim=6, mask_zero=True)(inputs)
x = layers.LSTM(5, return_sequences=True)(x)
outputs = layers.Dense(3, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.summary(print_fn=printed.append)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""

TRAIN = """
model.fit(tokens, tags, batch_size=8, epochs=2, shuffle=False, verbose=0)
"""

MEASURE = """
scores = model.evaluate(tokens, tags, batch_size=8, verbose=0)
predictions = model.predict(tokens, batch_size=8)
"""


def data() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Eight zero-padded token sequences of lengths 1..7 and a tag per step (0 at the
    padding, which the mask leaves out)."""
    rng = np.random.default_rng(0)
    lengths = [5, 2, 7, 1, 4, 6, 3, 7]
    tokens = np.zeros((8, 7), dtype="int32")
    tags = np.zeros((8, 7), dtype="int64")
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(1, 12, length)
        tags[row, :length] = rng.integers(0, 3, length)
    return tokens, tags, lengths


def run(imports: str, code: str, namespace: dict) -> dict:
    exec(imports + code, namespace)
    return namespace


@pytest.fixture(scope="module")
def scripts() -> tuple[dict, dict]:
    """The script's namespace under Keras and under maskwise, the same weights in both."""
    tokens, tags, lengths = data()
    keras.utils.set_random_seed(0)
    theirs = run(KERAS_IMPORTS, SCRIPT, {"printed": [], "tokens": tokens, "tags": tags})
    ours = run(MASKWISE_IMPORTS, SCRIPT, {"printed": [], "tokens": tokens, "tags": tags})
    ours["model"].set_weights(maskwise.from_keras(theirs["model"]).get_weights())
    for namespace in (theirs, ours):
        namespace["lengths"] = lengths
    return theirs, ours


def assert_same_predictions(theirs: dict, ours: dict) -> None:
    for row, length in enumerate(theirs["lengths"]):
        np.testing.assert_allclose(
            ours["predictions"][row], theirs["predictions"][row, :length], atol=1e-5
        )


def test_summary_lists_the_layers_and_their_mask_rules(scripts):
    theirs, ours = scripts
    assert ours["model"].count_params() == theirs["model"].count_params() == 330
    lines = ours["printed"]
    assert lines and all(len(line) <= 80 for line in lines)
    expected = [  # output shape, parameters (LSTM: 4 * 5 * (6 + 5) + 4 * 5), mask rule
        ("(None, None, 6)", "72", "creates"),
        ("(None, None, 5)", "240", "passes"),
        ("(None, None, 3)", "18", "passes"),
    ]
    for layer, (shape, params, mask) in zip(ours["model"].layers, expected, strict=True):
        row = next(line for line in lines if line.startswith(layer.name + " "))
        assert shape in row and f" {params} " in row and row.split()[-2] == mask
    assert "Total params: 330 (1.29 KB)" in lines


def test_evaluate_and_predict_equal_keras_for_the_same_weights(scripts):
    theirs, ours = scripts
    run(KERAS_IMPORTS, MEASURE, theirs)
    run(MASKWISE_IMPORTS, MEASURE, ours)
    loss, accuracy = theirs["scores"]
    assert ours["scores"]["loss"] == pytest.approx(loss, abs=1e-5)
    assert ours["scores"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert_same_predictions(theirs, ours)


def test_two_sgd_steps_give_keras_weights(scripts):
    theirs, ours = scripts
    run(KERAS_IMPORTS, TRAIN, theirs)
    run(MASKWISE_IMPORTS, TRAIN, ours)
    expected = maskwise.from_keras(theirs["model"]).get_weights()
    for got, want in zip(ours["model"].get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    run(KERAS_IMPORTS, MEASURE, theirs)
    run(MASKWISE_IMPORTS, MEASURE, ours)
    assert_same_predictions(theirs, ours)
    torch.testing.assert_close(
        torch.tensor(ours["scores"]["loss"]), torch.tensor(theirs["scores"][0]), atol=1e-5, rtol=0
    )
