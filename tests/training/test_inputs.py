"""Dict inputs to fit, evaluate and predict: keyed by a functional model's input names,
as Keras takes them, with Keras 3 as the oracle."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import torch
from keras_oracle import randomize_weights

import maskwise as mw
from maskwise import ConfigError, from_keras

LENGTHS = (4, 2, 5, 1)
ATOL = 1e-5


def two_inputs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Token ids (0 at padding) and features (0 at padding) for sequences of `LENGTHS`,
    and a tag per step."""
    rng = np.random.default_rng(0)
    real = np.arange(5)[None, :] < np.array(LENGTHS)[:, None]
    tokens = rng.integers(1, 10, size=real.shape) * real
    features = (rng.uniform(0.5, 1.5, size=(*real.shape, 2)) * real[..., None]).astype("float32")
    return {"tokens": tokens, "features": features}, rng.integers(0, 3, size=real.shape)


def keras_two_input_model() -> Any:
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    features = keras.Input((None, 2), name="features")
    x = keras.layers.Concatenate()(
        [keras.layers.Embedding(10, 3, mask_zero=True)(tokens), keras.layers.Masking()(features)]
    )
    out = keras.layers.Dense(3)(keras.layers.LSTM(4, return_sequences=True)(x))
    model = keras.Model([tokens, features], out)
    randomize_weights(model)
    return model


def compiled_pair() -> tuple[Any, mw.Model]:
    theirs = keras_two_input_model()
    ours = from_keras(theirs)
    theirs.compile(
        keras.optimizers.SGD(0.5),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ours.compile(
        mw.optimizers.SGD(0.5),
        mw.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return theirs, ours


def test_dict_inputs_fit_evaluate_and_predict_as_in_keras() -> None:
    x, tags = two_inputs()
    theirs, ours = compiled_pair()
    assert ours.input_names == ["tokens", "features"]
    shuffled = {"features": x["features"], "tokens": x["tokens"]}  # any key order
    expected = theirs.evaluate(x, tags, return_dict=True, verbose=0)
    got = ours.evaluate(shuffled, tags, batch_size=8)
    assert got == pytest.approx(expected, abs=ATOL)
    fit = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    theirs.fit(x, tags, **fit)
    ours.fit(shuffled, tags, validation_data=(shuffled, tags), **fit)
    for got_weight, want in zip(
        ours.state_dict().values(), from_keras(theirs).state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got_weight, want, atol=ATOL, rtol=0.0)
    padded = theirs.predict(x, verbose=0)
    for row, length in enumerate(LENGTHS):  # maskwise returns each sequence's real steps
        predicted = ours.predict(shuffled)[row]
        np.testing.assert_allclose(predicted, padded[row, :length], atol=ATOL)


def test_dict_inputs_equal_the_tuple_in_input_order() -> None:
    x, tags = two_inputs()
    _, ours = compiled_pair()
    by_name = ours.evaluate(x, tags, batch_size=8)
    in_order = ours.evaluate((x["tokens"], x["features"]), tags, batch_size=8)
    assert by_name == in_order


@pytest.mark.parametrize(
    ("keys", "received"),
    [
        (["tokens"], r"missing \['features'\]"),
        (["tokens", "features", "extra"], r"unknown input name\(s\) \['extra'\]"),
        (["token", "features"], r"unknown input name\(s\) \['token'\], missing \['tokens'\]"),
    ],
)
def test_unknown_or_missing_input_names_name_the_models_inputs(keys, received) -> None:
    x, tags = two_inputs()
    _, ours = compiled_pair()
    given = {key: x.get(key, x["tokens"]) for key in keys}
    match = rf"(?s)do not match the model's inputs \['tokens', 'features'\].*{received}"
    for door in (
        lambda: ours.fit(given, tags, verbose=0),
        lambda: ours.evaluate(given, tags),
        lambda: ours.predict(given),
    ):
        with pytest.raises(ConfigError, match=match):
            door()


def test_a_dict_for_a_model_without_input_names_is_refused() -> None:
    model = mw.Sequential([mw.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ConfigError, match=r"(?s)only for a functional Model.*tuple"):
        model.fit({"x": np.ones((2, 3, 1), "float32")}, np.ones((2, 3, 1)), verbose=0)


def test_one_named_input_takes_a_dict_of_one() -> None:
    tokens = mw.Input(shape=(None,), dtype="int64", name="tokens")
    model = mw.Model(tokens, mw.layers.Dense(2)(mw.layers.Embedding(9, 3, mask_zero=True)(tokens)))
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    assert [p.shape for p in model.predict({"tokens": ids})] == [(2, 2), (1, 2)]
