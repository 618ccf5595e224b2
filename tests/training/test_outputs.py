"""Models with several outputs train as in Keras (Keras 3 as the oracle): a loss,
loss weight and metrics per output, each loss over its own output's real steps, Keras's
log names, list or dict targets and predictions, and clear errors for a wrong structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import randomize_weights

import maskwise as mw
from maskwise import ConfigError, Model, from_keras

ATOL = 1e-5
LENGTHS = (4, 2, 5, 1, 3)


def data(frontend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded inputs (token ids, or features zero at padded steps), tags per step and a
    class per sequence, for sequences of `LENGTHS`."""
    rng = np.random.default_rng(0)
    real = np.arange(5)[None, :] < np.array(LENGTHS)[:, None]
    if frontend == "embedding":
        x: np.ndarray = rng.integers(1, 10, size=real.shape) * real
    else:
        x = (rng.uniform(0.5, 1.5, size=(*real.shape, 3)) * real[..., None]).astype(np.float32)
    tags = rng.integers(0, 3, size=real.shape) * real
    return x, tags, rng.integers(0, 2, size=len(LENGTHS))


def keras_model(frontend: str, as_dict: bool = False) -> Any:
    """A tagger head (per step) and a sequence-classifier head (per sequence) on one
    masked input: Embedding(mask_zero) or Masking, then LSTMs."""
    keras.utils.set_random_seed(0)
    if frontend == "embedding":
        inputs = keras.Input((None,), dtype="int32")
        x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    else:
        inputs = keras.Input((None, 3))
        x = keras.layers.Masking(0.0)(inputs)
    tags = keras.layers.Dense(3, activation="softmax", name="tags")(
        keras.layers.LSTM(5, return_sequences=True)(x)
    )
    cls = keras.layers.Dense(2, activation="softmax", name="cls")(keras.layers.LSTM(4)(x))
    model = keras.Model(inputs, {"a": tags, "b": cls} if as_dict else [tags, cls])
    randomize_weights(model)
    return model


def sgd() -> tuple[Any, Any]:
    """The same plain SGD in Keras and in maskwise."""
    return keras.optimizers.SGD(0.5), mw.optimizers.SGD(0.5)


def assert_same_logs(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=ATOL), key


def assert_same_weights(ours: Model, keras_model: Any) -> None:
    theirs = from_keras(keras_model)
    for (name, got), expected in zip(
        ours.state_dict().items(), theirs.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0.0, msg=name)


@pytest.mark.parametrize("frontend", ["embedding", "masking"])
def test_two_outputs_evaluate_and_train_as_in_keras(frontend: str) -> None:
    """Per-output losses (logits, probabilities), loss weights and metrics: evaluate's
    figures and the weights after 2 SGD steps equal Keras's."""
    x, tags, classes = data(frontend)
    theirs = keras_model(frontend)
    ours = from_keras(theirs)
    assert ours.output_names == ["tags", "cls"]
    keras_sgd, our_sgd = sgd()
    theirs.compile(
        keras_sgd,
        loss=[
            keras.losses.SparseCategoricalCrossentropy(),
            "sparse_categorical_crossentropy",
        ],
        loss_weights=[0.3, 2.0],
        metrics=[["accuracy"], ["accuracy", "sparse_categorical_crossentropy"]],
    )
    ours.compile(
        our_sgd,
        loss=[
            mw.losses.SparseCategoricalCrossentropy(),
            "sparse_categorical_crossentropy",
        ],
        loss_weights=[0.3, 2.0],
        metrics=[["accuracy"], ["accuracy", "sparse_categorical_crossentropy"]],
    )
    before = theirs.evaluate(x, [tags, classes], return_dict=True, verbose=0)
    assert set(before) == {
        "loss",
        "tags_loss",
        "cls_loss",
        "tags_accuracy",
        "cls_accuracy",
        "cls_sparse_categorical_crossentropy",
    }
    assert_same_logs(ours.evaluate(x, [tags, classes], batch_size=8), before)
    listed = theirs.evaluate(x, [tags, classes], verbose=0)  # Keras's order
    got = ours.evaluate(x, [tags, classes], batch_size=8, return_dict=False)
    np.testing.assert_allclose(got, listed, atol=ATOL)
    fit = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    theirs.fit(x, [tags, classes], **fit)
    ours.fit(x, [tags, classes], **fit)
    assert_same_weights(ours, theirs)
    after = theirs.evaluate(x, [tags, classes], return_dict=True, verbose=0)
    assert_same_logs(ours.evaluate(x, [tags, classes], batch_size=8), after)


MODEL = from_keras(keras_model("embedding"))
MODEL.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[["acc"], ["acc"]])


@settings(max_examples=15, deadline=None)
@given(extra=st.integers(1, 6), tag_fill=st.integers(0, 2))
def test_each_outputs_figures_do_not_depend_on_padding_length_or_target_fill(
    extra: int, tag_fill: int
) -> None:
    """More padded steps (any tag there) change no loss or metric of either output."""
    x, tags, classes = data("embedding")
    expected = MODEL.evaluate(x, [tags, classes])
    padded_x = np.pad(x, ((0, 0), (0, extra)))
    padded_tags = np.pad(tags, ((0, 0), (0, extra)), constant_values=tag_fill)
    real = np.arange(5 + extra)[None, :] < np.array(LENGTHS)[:, None]
    padded_tags = np.where(real, padded_tags, tag_fill)
    assert_same_logs(MODEL.evaluate(padded_x, [padded_tags, classes]), expected)


def test_dict_outputs_take_dict_losses_weights_metrics_and_targets() -> None:
    """Output names are the dict's keys; an output left out of the metrics has none;
    one loss name serves every output."""
    x, tags, classes = data("embedding")
    theirs = keras_model("embedding", as_dict=True)
    ours = from_keras(theirs)
    assert ours.output_names == ["a", "b"]
    keras_sgd, our_sgd = sgd()
    options: dict[str, Any] = {
        "loss": "sparse_categorical_crossentropy",
        "loss_weights": {"b": 3.0},
        "metrics": {"b": "accuracy"},
    }
    theirs.compile(  # Keras wants a dict of losses and of every weight
        keras_sgd,
        loss=dict.fromkeys("ab", options["loss"]),
        loss_weights={"a": 1.0, "b": 3.0},
        metrics=options["metrics"],
    )
    ours.compile(our_sgd, **options)
    targets = {"a": tags, "b": classes}
    expected = theirs.evaluate(x, targets, return_dict=True, verbose=0)
    assert set(expected) == {"loss", "a_loss", "b_loss", "b_accuracy"}
    assert_same_logs(ours.evaluate(x, targets, batch_size=8), expected)
    theirs.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(ours, theirs)


def test_an_output_without_a_loss_is_not_trained_and_logs_no_output_loss() -> None:
    x, tags, classes = data("embedding")
    theirs = keras_model("embedding")
    ours = from_keras(theirs)
    theirs.compile("sgd", loss=["sparse_categorical_crossentropy", None], metrics=[None, ["acc"]])
    ours.compile("sgd", loss=["sparse_categorical_crossentropy", None], metrics=[None, ["acc"]])
    expected = theirs.evaluate(x, [tags, classes], return_dict=True, verbose=0)
    assert set(expected) == {"loss", "cls_acc"}
    assert_same_logs(ours.evaluate(x, [tags, classes]), expected)
    classifier = list(ours.get_layer("cls").parameters())
    before = [p.detach().clone() for p in classifier]
    ours.fit(x, [tags, classes], verbose=0, epochs=2)
    assert classifier and all(torch.equal(p, b) for p, b in zip(classifier, before, strict=True))


def test_predict_returns_each_output_in_the_models_structure() -> None:
    """A per-step output comes back per sequence (its own mask), a per-sequence one
    stacked; a list model gives a list, a dict model a dict."""
    x, _, _ = data("embedding")
    for as_dict in (False, True):
        theirs = keras_model("embedding", as_dict=as_dict)
        out = from_keras(theirs).predict(x)
        expected = theirs.predict(x, verbose=0)
        pairs = [(out[k], expected[k]) for k in ("a", "b")] if as_dict else zip(out, expected)
        (tag_scores, tag_expected), (class_scores, class_expected) = pairs
        assert isinstance(out, dict) == as_dict
        assert [len(t) for t in tag_scores] == list(LENGTHS)
        for got, want, n in zip(tag_scores, tag_expected, LENGTHS, strict=True):
            np.testing.assert_allclose(got, want[:n], atol=ATOL)
        np.testing.assert_allclose(class_scores, class_expected, atol=ATOL)


def test_train_and_test_on_batch_take_list_targets_as_keras() -> None:
    x, tags, classes = data("masking")
    theirs = keras_model("masking")
    ours = from_keras(theirs)
    keras_sgd, our_sgd = sgd()
    theirs.compile(keras_sgd, loss=["sparse_categorical_crossentropy"] * 2, metrics=[[], ["acc"]])
    ours.compile(our_sgd, loss=["sparse_categorical_crossentropy"] * 2, metrics=[[], ["acc"]])
    expected = theirs.train_on_batch(x, [tags, classes], return_dict=True)
    assert_same_logs(ours.train_on_batch(x, [tags, classes], return_dict=True), expected)
    assert_same_weights(ours, theirs)
    expected = theirs.test_on_batch(x, [tags, classes], return_dict=True)
    assert_same_logs(ours.test_on_batch(x, [tags, classes], return_dict=True), expected)


def test_validation_split_and_a_checkpoint_keep_the_outputs(tmp_path: Path) -> None:
    x, tags, classes = data("embedding")
    model = from_keras(keras_model("embedding"))
    model.compile(
        "adam",
        loss=["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"],
        loss_weights=[1.0, 0.5],
        metrics=[["accuracy"], None],
    )
    history = model.fit(x, [tags, classes], validation_split=0.4, verbose=0)
    assert {"val_loss", "val_tags_loss", "val_cls_loss", "val_tags_accuracy"} <= set(
        history.history
    )
    loaded = mw.load(model.save(tmp_path / "two.safetensors"))
    assert loaded.compiled is not None
    assert [h.weight for h in loaded.compiled.heads] == [1.0, 0.5]
    assert [[m.name for m in h.metrics] for h in loaded.compiled.heads] == [["accuracy"], []]
    assert_same_logs(loaded.evaluate(x, [tags, classes]), model.evaluate(x, [tags, classes]))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"loss": ["mse", "mse", "mse"]},
            r"(?s)compile\(loss=...\) must match the model's 2 outputs \['tags', 'cls'\]"
            r".*received: 3 entries.*fix: e.g. `loss=\{'tags': 'mse', 'cls': 'mse'\}`",
        ),
        (
            {"loss": {"tags": "mse", "bogus": "mse"}},
            r"received: unknown output name\(s\) \['bogus'\]",
        ),
        ({"loss": "mse", "loss_weights": [1.0]}, r"(?s)compile\(loss_weights=...\).*1 entries"),
        ({"loss": "mse", "metrics": ["accuracy"]}, r"compile\(metrics=...\) must match"),
        ({"loss": [None, None]}, "compile needs a loss"),
    ],
)
def test_a_wrong_structure_is_a_config_error_naming_the_outputs(
    options: dict[str, Any], match: str
) -> None:
    model = from_keras(keras_model("embedding"))
    with pytest.raises(ConfigError, match=match):
        model.compile("sgd", **options)


def test_wrong_targets_and_unsupported_fit_options_are_refused() -> None:
    x, tags, classes = data("embedding")
    model = from_keras(keras_model("embedding"))
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(
        ConfigError, match=r"(?s)targets given to fit\(\) must.*received: 3 entries"
    ):
        model.fit(x, [tags, classes, classes], verbose=0)
    with pytest.raises(ConfigError, match=r"unknown output name\(s\) \['c'\]"):
        model.evaluate(x, {"tags": tags, "c": classes})
    with pytest.raises(ConfigError, match="The targets hold none for the output 'cls'"):
        model.evaluate(x, {"tags": tags})
    with pytest.raises(ConfigError, match=r"class_weight.*the model has 2"):
        model.fit(x, [tags, classes], class_weight={0: 1.0, 1: 2.0}, verbose=0)
