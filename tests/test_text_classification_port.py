"""A Keras text classifier ported line by line gives Keras's results.

Token ids padded by `keras.utils.pad_sequences` ("pre" and "post"), an
`Embedding(mask_zero=True)` followed by `LSTM`, `Bidirectional(GRU)` or
`GlobalAveragePooling1D`, a sigmoid unit with `binary_crossentropy` and the metrics
`["accuracy", "AUC", "Precision", "Recall"]`, or four softmax units with
`sparse_categorical_crossentropy`. Both models start from the same weights
(`set_weights(keras_model.get_weights())`); `fit(shuffle=False, bucketing=False)` takes
Keras's batches, so histories, weights, `evaluate` and `predict` agree. The label is
whether token 7 appears (and, for four classes, token 9), so the models learn.
"""

import warnings

import keras
import numpy as np
import pytest

import maskwise as mw
from maskwise import layers

VOCAB, N, MAXLEN = 50, 240, 30
METRICS = ["accuracy", "AUC", "Precision", "Recall"]
ATOL = 1e-5


def token_sequences(seed: int = 0, low: int = 1) -> list[np.ndarray]:
    """N sequences of 5..40 token ids in [low, VOCAB)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(low, VOCAB, size=int(n)) for n in rng.integers(5, 41, size=N)]


SEQUENCES = token_sequences()
# pad_sequences truncates too (maxlen 30 < 40): the label is read from what the model sees
PADDED = {
    side: keras.utils.pad_sequences(SEQUENCES, maxlen=MAXLEN, padding=side, truncating=side)
    for side in ("pre", "post")
}


def labels(x: np.ndarray, classes: int = 2) -> np.ndarray:
    has_7 = (x == 7).any(axis=1).astype("int64")
    return has_7 if classes == 2 else has_7 + 2 * (x == 9).any(axis=1)


def stack(lib, lay, body: str, units: int = 1, mask_zero: bool = True) -> list:
    """The same layers, from Keras (`lib=keras`) or maskwise (`lib=mw`)."""
    head = lay.Dense(units, activation="sigmoid" if units == 1 else "softmax")
    bodies = {
        "lstm": lambda: [lay.LSTM(32)],
        "bigru": lambda: [lay.Bidirectional(lay.GRU(16))],
        "average": lambda: [lay.GlobalAveragePooling1D()],
        "conv": lambda: [lay.Conv1D(16, 3, activation="relu"), lay.GlobalMaxPooling1D()],
    }
    return lib.Sequential([lay.Embedding(VOCAB, 16, mask_zero=mask_zero), *bodies[body](), head])


def pair(body: str, units: int = 1, mask_zero: bool = True, lr: float = 0.02, metrics=METRICS):
    """A compiled Keras model and its maskwise port, with the same initial weights."""
    keras.utils.set_random_seed(0)
    theirs = stack(keras, keras.layers, body, units, mask_zero)
    ours = stack(mw, layers, body, units, mask_zero)
    theirs.build((None, None))
    ours.build((None, None))
    ours.set_weights(theirs.get_weights())
    loss = "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"
    theirs.compile(keras.optimizers.Adam(lr), loss, metrics=metrics)
    ours.compile(mw.optimizers.Adam(lr), loss, metrics=metrics)
    return theirs, ours


def assert_same_history(theirs: dict, ours: dict, atol: float = ATOL) -> None:
    assert sorted(ours) == sorted(theirs)  # the same names: "AUC", "val_Precision", ...
    for name, values in theirs.items():
        np.testing.assert_allclose(ours[name], values, atol=atol, err_msg=name)


def assert_same_weights(theirs, ours, atol: float = ATOL) -> None:
    for got, want in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=atol)


def assert_same_scores(theirs, ours, x, y, atol: float = ATOL, ours_only=None, **kwargs) -> None:
    """`evaluate` of both models; `ours_only` holds maskwise's own arguments."""
    expected = theirs.evaluate(x, y, verbose=0, return_dict=True, **kwargs)
    got = ours.evaluate(x, y, **kwargs, **(ours_only or {}))
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=atol), name


@pytest.mark.parametrize(("body", "side"), [("lstm", "pre"), ("bigru", "post"), ("average", "pre")])
def test_binary_classifier_trains_as_in_keras(body, side):
    x = PADDED[side]
    y = labels(x)
    theirs, ours = pair(body)
    kwargs = dict(batch_size=32, epochs=3, shuffle=False, verbose=0, validation_split=0.2)
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, bucketing=False, **kwargs).history
    assert_same_history(expected, history)
    assert history["accuracy"][-1] > 0.6  # it learns: the comparison is not of constants
    assert_same_weights(theirs, ours)
    assert_same_scores(theirs, ours, x, y)
    predicted = ours.predict(x)
    assert predicted.shape == (N, 1)  # one probability per sequence
    np.testing.assert_allclose(predicted, theirs.predict(x, verbose=0), atol=ATOL)


def test_four_classes_with_validation_data_and_predict_classes():
    x = PADDED["pre"]
    y = labels(x, classes=4)
    theirs, ours = pair("lstm", units=4, metrics=["accuracy"])
    kwargs = dict(batch_size=32, epochs=3, shuffle=False, verbose=0)
    validation = (x[:48], y[:48])
    expected = theirs.fit(x[48:], y[48:], validation_data=validation, **kwargs).history
    history = ours.fit(x[48:], y[48:], validation_data=validation, bucketing=False, **kwargs)
    assert_same_history(expected, history.history)
    assert_same_weights(theirs, ours)
    assert_same_scores(theirs, ours, x, y)
    probabilities = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x), probabilities, atol=ATOL)
    classes = ours.predict_classes(x)  # Keras 2's predict_classes: argmax per sequence
    assert classes.shape == (N,)
    np.testing.assert_array_equal(classes, probabilities.argmax(-1))
    np.testing.assert_array_equal(mw.argmax(ours.predict(x)), classes)


def test_class_weight_and_sample_weight_as_in_keras():
    x = PADDED["pre"]
    y = labels(x)
    kwargs = dict(batch_size=32, epochs=2, shuffle=False, verbose=0)
    theirs, ours = pair("lstm")
    expected = theirs.fit(x, y, class_weight={0: 1, 1: 3}, **kwargs).history
    assert_same_history(
        expected, ours.fit(x, y, class_weight={0: 1, 1: 3}, bucketing=False, **kwargs).history
    )
    assert_same_weights(theirs, ours)

    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=N).astype("float32")
    theirs, ours = pair("lstm")
    assert_same_scores(theirs, ours, x, y, sample_weight=weights)
    expected = theirs.fit(x, y, sample_weight=weights, **kwargs).history
    history = ours.fit(x, y, sample_weight=weights, bucketing=False, **kwargs).history
    assert_same_history(expected, history)
    assert_same_weights(theirs, ours)
    assert_same_scores(theirs, ours, x, y, sample_weight=weights)


def test_early_stopping_restores_keras_best_weights():
    x = PADDED["post"]
    y = labels(x)
    theirs, ours = pair("lstm")
    kwargs = dict(batch_size=32, epochs=8, shuffle=False, verbose=0, validation_split=0.2)
    expected = theirs.fit(
        x,
        y,
        callbacks=[keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)],
        **kwargs,
    ).history
    history = ours.fit(
        x,
        y,
        callbacks=[mw.callbacks.EarlyStopping(patience=1, restore_best_weights=True)],
        bucketing=False,
        **kwargs,
    ).history
    assert len(expected["loss"]) < 8  # it stopped early
    # Adam's normalised steps carry float32 rounding into the later epochs
    assert_same_history(expected, history, atol=1e-3)
    assert_same_weights(theirs, ours, atol=1e-4)  # the best epoch's, restored


def test_conv_without_mask_zero_reads_the_padding_only_when_told():
    """Keras's CNN text classifier reads the padded zeros as tokens. maskwise stops a
    padded array fed to a model that makes no mask (MW006, naming the Embedding's
    `mask_zero`), and `mask_value=None` says the zeros are data: then Keras's results."""
    x = PADDED["post"]
    y = labels(x)
    theirs, ours = pair("conv", mask_zero=False, metrics=["accuracy", "AUC"])
    with pytest.raises(mw.DoctorError, match=r"(?s)MW006.*token ids.*mask_zero=True") as caught:
        ours.fit(x, y, verbose=0)
    assert "Masking(" not in str(caught.value)  # no Masking in front of token ids
    (finding,) = mw.doctor.check(x, model=ours)
    assert (
        finding.code == "MW006"
        and "Embedding(input_dim, output_dim, mask_zero=True)" in finding.fix
    )
    kwargs = dict(batch_size=32, epochs=2, shuffle=False, verbose=0)
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, bucketing=False, mask_value=None, **kwargs).history
    assert_same_history(expected, history)
    assert_same_weights(theirs, ours)
    assert_same_scores(theirs, ours, x, y, ours_only={"mask_value": None})


def test_conv_after_mask_zero_keeps_the_mask_where_keras_drops_it():
    """Differs on purpose: Keras's Conv1D drops the Embedding's mask (with a warning),
    so its GlobalMaxPooling1D reads windows of padding and pre- and post-padding give
    other predictions. maskwise's convolution keeps the mask of its windows and the
    pooling takes the max over real windows: the side of the padding does not matter."""
    theirs, ours = pair("conv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_pre = theirs.predict(PADDED["pre"], verbose=0)
        keras_post = theirs.predict(PADDED["post"], verbose=0)
    assert any("does not support masking" in str(w.message) for w in caught)
    assert np.abs(keras_pre - keras_post).max() > 1e-3
    truncated = [s[-MAXLEN:] for s in SEQUENCES]  # what truncating="pre" keeps
    np.testing.assert_allclose(ours.predict(PADDED["pre"]), ours.predict(truncated), atol=ATOL)


def test_ragged_token_lists_with_bucketing_equal_the_padded_arrays():
    """The sequences as a ragged list, unpadded, with `fit`'s default bucketing: the
    same scores and predictions as the padded arrays on the same weights, and, with one
    batch (no batch order), the same training."""
    truncated = [s[:MAXLEN] for s in SEQUENCES]  # what truncating="post" keeps
    x, y = PADDED["post"], labels(PADDED["post"])
    theirs, ours = pair("bigru")
    assert_same_scores(theirs, ours, x, y)
    expected = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert ours.evaluate(truncated, y) == pytest.approx(expected, abs=ATOL)
    np.testing.assert_allclose(ours.predict(truncated), theirs.predict(x, verbose=0), atol=ATOL)
    kwargs = dict(batch_size=N, epochs=2, verbose=0)
    expected = theirs.fit(x, y, shuffle=False, **kwargs).history
    history = ours.fit(truncated, y, **kwargs).history  # shuffled, bucketed: one batch
    assert_same_history(expected, history)
    assert_same_weights(theirs, ours)
    # many batches: a different order, the same evaluation of the weights it reached
    ours.fit(truncated, y, batch_size=16, epochs=1, verbose=0, seed=0)
    padded_pre = keras.utils.pad_sequences(truncated)
    assert ours.evaluate(truncated, y) == pytest.approx(ours.evaluate(padded_pre, y), abs=1e-6)


def test_token_id_zero_inside_the_sequences_is_named():
    """Id 0 used as a real token and padded with 0: Embedding(mask_zero=True) would mask
    it. The doctor (and `fit`) warn with MW003, naming the Embedding, not a Masking."""
    sequences = token_sequences(seed=2, low=0)
    x = keras.utils.pad_sequences(sequences)
    (finding,) = mw.doctor.check(x)
    assert (finding.code, finding.severity) == ("MW003", "warning")
    assert "token id 0" in finding.message and "Embedding(mask_zero=True)" in finding.message
    assert "Masking(" not in finding.message
    assert "shift the ids by 1" in finding.fix
    row = finding.sequence
    assert x[row, finding.step] == 0 and x[row, : finding.step].any()  # a real step indeed
    _, ours = pair("lstm")
    with pytest.warns(mw.MaskWarning, match=r"MW003.*token id 0"):
        ours.evaluate(x, labels(x))


def test_summary_shows_keras_shapes_and_counts():
    """Keras's output shapes and parameter counts, and a Mask column: the Embedding
    creates the mask, the recurrent layer consumes it, the Dense has none to pass."""
    for body, units in (("lstm", 1), ("bigru", 4)):
        theirs, ours = pair(body, units=units)
        printed: list[str] = []
        ours.summary(print_fn=printed.append)
        assert ours.count_params() == theirs.count_params()
        for mine, keras_layer in zip(ours.layers, theirs.layers, strict=True):
            row = next(line for line in printed if line.startswith(mine.name + " "))
            assert str(keras_layer.output.shape) in row  # "(None, None, 16)", "(None, 32)"
            assert f" {keras_layer.count_params():,} " in row
        rules = [
            next(line for line in printed if line.startswith(m.name + " ")) for m in ours.layers
        ]
        assert [row.split()[-1] for row in rules] == ["creates", "consumes", "passes"]
        assert f"Total params: {theirs.count_params():,} " in "\n".join(printed)
