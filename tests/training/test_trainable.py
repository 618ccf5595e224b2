"""A model's optimizer state follows its weights when the model moves (`model.to`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from maskwise import Sequential
from maskwise.layers import LSTM, Dense, Masking


def trained(optimizer: Any) -> Sequential:
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(n, 3)).astype(np.float32) for n in (2, 4, 3)]
    y = [rng.integers(0, 2, size=n) for n in (2, 4, 3)]
    model = Sequential([Masking(0.0), LSTM(4, return_sequences=True), Dense(2, "softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=3, verbose=0)
    return model


def state_tensors(model: Sequential) -> dict[str, torch.Tensor]:
    assert model.optimizer is not None
    return {
        f"{index}.{key}": value
        for index, state in enumerate(model.optimizer.state.values())
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def test_a_dtype_move_casts_the_optimizer_state_with_the_weights() -> None:
    model = trained(torch.optim.Adam)  # its step count stays put
    before = {k: v.clone() for k, v in state_tensors(model).items()}
    model.to(torch.float64)
    after = state_tensors(model)
    assert after.keys() == before.keys() and any(k.endswith("exp_avg") for k in after)
    for key, value in after.items():
        if key.endswith(".step"):  # Adam's count stays a float32 CPU scalar
            assert value.dtype == torch.float32
        else:
            assert value.dtype == torch.float64, key
        torch.testing.assert_close(value.double(), before[key].double())
    assert model.optimizer is not None
    for p in model.parameters():  # a step in float64 runs on the moved state
        p.grad = torch.ones_like(p)
    model.optimizer.step()
    assert all(v.dtype == torch.float64 for k, v in state_tensors(model).items() if "exp" in k)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_a_device_move_takes_the_optimizer_state_along(optimizer: str) -> None:
    """To the `meta` device, standing in for a GPU: every moment buffer goes where its
    weight goes; nothing is left behind on the CPU but Adam's step count. (`nn.Module`
    makes new weights for this move: the optimizer steps those.)"""
    model = trained(optimizer)
    model.to("meta")
    for key, value in state_tensors(model).items():
        expected = "cpu" if key.endswith(".step") else "meta"
        assert value.device.type == expected, key
    assert model.optimizer is not None and model.trainer.guard is None
    stepped = [p for group in model.optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in stepped] == [id(p) for p in model.parameters()]


# ------------------------------------------------------------------ Keras's call habits
def _tagger_data() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(n, 3)).astype(np.float32) for n in (2, 5, 3, 4, 1)]
    return x, [(seq[:, 0] > 0).astype(np.int64) for seq in x]


def _fresh_tagger() -> Sequential:
    torch.manual_seed(0)
    model = Sequential([LSTM(4, return_sequences=True), Dense(2, "softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_positional_arguments_follow_keras_order(method: str) -> None:
    """`model.fit(x, y, 32, 10)` is Keras's `batch_size=32, epochs=10`: every argument
    maskwise takes by position has the name Keras gives that position."""
    import inspect

    import keras

    def positional(function: object) -> list[str]:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return [p.name for p in parameters if p.kind in kinds and p.name != "self"]

    ours = positional(getattr(Sequential, method))
    theirs = positional(getattr(keras.Model, method))
    assert len(ours) >= 3 and ours == theirs[: len(ours)]


def test_fit_evaluate_predict_by_position_equal_by_keyword() -> None:
    x, y = _tagger_data()
    by_keyword = _fresh_tagger()
    expected = by_keyword.fit(x, y, batch_size=2, epochs=2, verbose=0, validation_split=0.4, seed=0)
    by_position = _fresh_tagger()
    history = by_position.fit(x, y, 2, 2, 0, None, 0.4, seed=0)
    assert history.history == expected.history
    assert by_position.evaluate(x, y, 2, 0) == by_keyword.evaluate(x, y, batch_size=2)
    for ours, theirs in zip(by_position.predict(x, 2, 0), by_keyword.predict(x), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_batch_size_none_is_keras_default_of_32() -> None:
    x, y = _tagger_data()
    model = _fresh_tagger()
    history = model.fit(x * 8, y * 8, batch_size=None, verbose=0, shuffle=False, seed=0)
    assert (
        history.history
        == _fresh_tagger()
        .fit(x * 8, y * 8, batch_size=32, verbose=0, shuffle=False, seed=0)
        .history
    )
    assert model.evaluate(x, y, batch_size=None) == model.evaluate(x, y, batch_size=32)
    assert len(model.predict(x, batch_size=None)) == len(x)


def test_compile_takes_keras_options_that_change_nothing() -> None:
    x, y = _tagger_data()
    plain = _fresh_tagger()
    keras_style = _fresh_tagger()
    keras_style.compile(
        "sgd",
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=[],
        run_eagerly=True,
        jit_compile="auto",
        steps_per_execution=1,
        auto_scale_loss=True,
        sample_weight_mode="temporal",  # Keras 2's, for per-step weights
    )
    assert keras_style.fit(x, y, epochs=2, seed=0, verbose=0).history == (
        plain.fit(x, y, epochs=2, seed=0, verbose=0).history
    )


@pytest.mark.parametrize(
    ("option", "fix"),
    [
        ({"weighted_metrics": ["accuracy"]}, r"metrics=\['accuracy'\]"),
        ({"jit_compile": True}, r"fit\(\.\.\., jit_compile=True\)"),
        ({"steps_per_execution": 8}, "steps_per_execution=1"),
        ({"run_eagerly": "yes"}, "True or False"),
        ({"sample_weight_mode": "element"}, r"\(N, time\)"),
        ({"metric": ["accuracy"]}, "loss_weights, metrics, learning_rate"),
    ],
)
def test_compile_refuses_keras_options_it_cannot_honour(option: dict, fix: str) -> None:
    from maskwise import ConfigError

    model = _fresh_tagger()
    with pytest.raises(ConfigError, match=rf"(?s){next(iter(option))}.*fix:.*{fix}"):
        model.compile("sgd", "sparse_categorical_crossentropy", **option)


def test_validation_batch_size_batches_the_validation_data_only() -> None:
    """Keras's `validation_batch_size`: the validation figures are over every real step,
    so they do not depend on it; the training batches keep `batch_size`."""
    x, y = _tagger_data()
    sizes: list[int] = []
    model = _fresh_tagger()
    original = model.test_step
    model.test_step = lambda batch: (sizes.append(batch.size), original(batch))[1]  # type: ignore[method-assign]
    history = model.fit(
        x, y, 2, 1, 0, validation_data=(x, y), validation_batch_size=1, seed=0
    ).history
    assert sizes == [1] * len(x)
    expected = _fresh_tagger().fit(x, y, 2, 1, 0, validation_data=(x, y), seed=0).history
    assert history["loss"] == expected["loss"]
    assert history["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
