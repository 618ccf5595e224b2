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


HOOKS = [
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    *(f"on_{kind}_{when}" for kind in ("test", "predict") for when in ("begin", "end")),
    *(f"on_{kind}_batch_{when}" for kind in ("test", "predict") for when in ("begin", "end")),
]
"""The hooks both libraries call with the same logs (maskwise's training batch logs
hold the batch's own loss and size, Keras's the running figures)."""


def recorder(module) -> tuple[object, list[tuple]]:
    """A callback of `module` recording (hook, epoch or batch index, sorted log keys)."""
    calls: list[tuple] = []

    def hook(name: str):
        indexed = "epoch" in name or "batch" in name

        def record(self, *args, **kwargs):  # Keras passes logs=... by name
            index, rest = (args[0], args[1:]) if indexed else (None, args)
            logs = kwargs.get("logs", rest[0] if rest else None)
            calls.append((name, index, sorted(logs or {})))

        return record

    kind = type("Record", (module.callbacks.Callback,), {name: hook(name) for name in HOOKS})
    return kind(), calls


def test_evaluate_calls_the_test_hooks_keras_does() -> None:
    sequences = []
    for model, module in [(theirs(), keras), (ours(), maskwise)]:
        callback, calls = recorder(module)
        model.evaluate(X, Y, batch_size=4, verbose=0, callbacks=[callback])
        sequences.append(calls)
    assert sequences[1] == sequences[0]
    assert [call[0] for call in sequences[0]].count("on_test_batch_end") == 3  # 10 rows / 4


def test_predict_calls_the_predict_hooks_keras_does() -> None:
    sequences = []
    for model, module in [(theirs(), keras), (ours(), maskwise)]:
        callback, calls = recorder(module)
        model.predict(X, batch_size=4, verbose=0, callbacks=[callback])
        sequences.append(calls)
    assert sequences[1] == sequences[0]
    assert [call[0] for call in sequences[0]].count("on_predict_batch_end") == 3


@pytest.mark.parametrize("freq", [1, 2])
def test_fit_validation_calls_the_test_hooks_keras_does(freq: int) -> None:
    sequences = []
    for model, module in [(theirs(), keras), (ours(), maskwise)]:
        callback, calls = recorder(module)
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=2,
            verbose=0,
            validation_data=(X[:6], Y[:6]),
            validation_freq=freq,
            callbacks=[callback],
        )
        sequences.append(calls)
    assert sequences[1] == sequences[0]
    assert [call[0] for call in sequences[0]].count("on_test_begin") == 2 // freq


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
@pytest.mark.parametrize("steps", [1, 2, 9])  # 9: more than the 3 batches, all of them
def test_evaluate_steps_measures_the_first_batches_as_keras(steps: int) -> None:
    model, oracle = ours(), theirs()
    model.build((None, 3, 2))
    oracle.set_weights([w.detach().numpy() for w in model.parameters()])  # the same Dense
    expected = oracle.evaluate(X, Y, batch_size=4, steps=steps, verbose=0)
    assert expected == pytest.approx(oracle.evaluate(X[: 4 * steps], Y[: 4 * steps], verbose=0))
    logs = model.evaluate(X, Y, batch_size=4, steps=steps)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_predict_steps_predicts_the_first_batches_as_keras() -> None:
    model = ours()
    got = model.predict(X, batch_size=4, steps=2)
    assert len(got) == len(theirs().predict(X, batch_size=4, steps=2, verbose=0)) == 8
    np.testing.assert_allclose(np.stack(got), np.stack(model.predict(X[:8])), rtol=1e-6)


def test_validation_steps_validates_on_the_first_batches_as_keras() -> None:
    counts = []
    for model, module in [(theirs(), keras), (ours(), maskwise)]:
        callback, calls = recorder(module)
        model.fit(
            X,
            Y,
            batch_size=4,
            verbose=0,
            validation_data=(X, Y),
            validation_steps=2,
            validation_batch_size=3,
            callbacks=[callback],
        )
        counts.append([call[1] for call in calls if call[0] == "on_test_batch_end"])
    assert counts[1] == counts[0] == [0, 1]
    model = ours()
    history = model.fit(
        X,
        Y,
        batch_size=4,
        verbose=0,
        validation_data=(X, Y),
        validation_steps=2,
        validation_batch_size=3,
    )
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(X[:6], Y[:6])["loss"], rel=1e-5
    )


@pytest.mark.parametrize("steps", [0, -2, 1.0, True])
def test_steps_are_a_positive_integer(steps) -> None:
    model = ours()
    with pytest.raises(ConfigError, match=r"evaluate\(steps=\.\.\.\) is the number of batches"):
        model.evaluate(X, Y, steps=steps)
    with pytest.raises(ConfigError, match=r"predict\(steps=\.\.\.\)"):
        model.predict(X, steps=steps)
    with pytest.raises(ConfigError, match=r"fit\(validation_steps=\.\.\.\)"):
        model.fit(X, Y, validation_data=(X, Y), validation_steps=steps, verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_positional_arguments_follow_keras_order(method: str) -> None:
    import inspect

    def positional(function) -> list[str]:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        parameters = inspect.signature(function).parameters.values()
        return [p.name for p in parameters if p.kind in kinds and p.name != "self"]

    ours_names = positional(getattr(maskwise.Sequential, method))
    assert ours_names == positional(getattr(keras.Model, method))[: len(ours_names)]
    assert {"steps", "callbacks", "validation_freq"} & set(ours_names)


def test_csv_logger_writes_na_on_epochs_without_validation_as_keras(tmp_path) -> None:
    rows = []
    for model, module in [(theirs(), keras), (ours(), maskwise)]:
        path = tmp_path / f"{module.__name__}.csv"
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=4,
            verbose=0,
            validation_data=(X, Y),
            validation_freq=2,
            callbacks=[module.callbacks.CSVLogger(str(path))],
        )
        lines = path.read_text().splitlines()
        rows.append([lines[0]] + [[v == "NA" for v in line.split(",")] for line in lines[1:]])
    assert rows[1] == rows[0]
    assert rows[0][1][-1] and not rows[0][2][-1]  # val_loss: NA at epoch 1, logged at 2
