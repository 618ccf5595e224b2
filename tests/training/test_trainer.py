"""The Keras arguments of `fit`, `evaluate` and `predict` that shape the loop
(`validation_freq`, `steps`, `validation_steps`, `callbacks`), against Keras 3."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import maskwise
from maskwise import ConfigError, layers

RNG = np.random.default_rng(0)
X = RNG.uniform(0.5, 1.5, size=(10, 3, 2)).astype("float32")  # no step equals mask_value
Y = RNG.uniform(0.5, 1.5, size=(10, 3, 1)).astype("float32")


def ours() -> maskwise.Sequential:
    model = maskwise.Sequential([layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def theirs() -> keras.Sequential:
    model = keras.Sequential([keras.layers.Input((3, 2)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def epoch_keys(model, module, **fit_args) -> list[list[str]]:
    """The sorted log keys of each epoch of `model.fit(X, Y, ...)`."""
    seen: list[list[str]] = []
    record = module.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(sorted(logs))
    )
    model.fit(X, Y, batch_size=4, verbose=0, callbacks=[record], **fit_args)
    return seen


@pytest.mark.parametrize("freq", [1, 2, 3])
def test_validation_freq_validates_the_epochs_keras_does(freq: int) -> None:
    args = {"epochs": 5, "validation_data": (X[:4], Y[:4]), "validation_freq": freq}
    expected = epoch_keys(theirs(), keras, **args)
    assert epoch_keys(ours(), maskwise, **args) == expected
    assert sum("val_loss" in keys for keys in expected) == 5 // freq  # the oracle validates


@pytest.mark.parametrize("freq", [0, -1, 1.5, True, [1, 2]])
def test_validation_freq_is_an_integer_of_at_least_one(freq) -> None:
    with pytest.raises(ConfigError, match=r"validation_freq=.*\n.*integer >= 1"):
        ours().fit(X, Y, validation_data=(X, Y), validation_freq=freq, verbose=0)
