"""A Keras time-series regressor ported line by line gives Keras's results, except where
Keras counts padding or turns NaN padding into a NaN loss.

Variable-length series of 3 features, padded with zeros ("post" or "pre") or NaN; the
per-step target is half the moving sum over 3 steps of feature 0, so the models learn.
Per-step models (`Masking`, `LSTM`/`GRU(return_sequences=True)` or a causal `Conv1D`,
`TimeDistributed(Dense(1))` or `Dense(1)`) and a per-sequence one (`LSTM(16)`,
`Dense(2)`). Both models start from the same weights (`set_weights(keras.get_weights())`)
and `fit(shuffle=False, bucketing=False)` takes Keras's batches.

Differs on purpose, and checked against what Keras itself says: the epoch loss is the
mean over every real step of the epoch (Keras's own `mse` metric, where Keras's loss
averages the batches' means by their numbers of sequences), `RootMeanSquaredError` is
over real steps (Keras's drops the mask), NaN padding gives Keras's zero-padded run
(Keras's loss is NaN), a causal `Conv1D` keeps the mask (Keras drops it), and zero
sample weights at the padding without `Masking` stop at MW006.
Also: per-step sample weights `(N, T)` and `(N, T, 1)`, the callbacks, Keras's loss
names, two targets per step, and ragged lists giving the padded arrays' scores.
"""

import warnings

import keras
import numpy as np
import pytest

import maskwise as mw
from maskwise import layers

N, T, F = 96, 20, 3
BATCH = 32  # the validation split (24 sequences) is one batch: Keras's val_loss is exact
METRICS = ["mae", "mse", "RootMeanSquaredError", "mape"]
ATOL = 1e-5


def series(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """N series of 5..T steps and their per-step targets `(n, 1)`."""
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(int(n), F)).astype("float32") for n in rng.integers(5, T + 1, size=N)]
    ys = [0.5 * np.convolve(s[:, 0], np.ones(3))[: len(s), None].astype("float32") for s in xs]
    return xs, ys


SERIES, TARGETS = series()
LENGTHS = np.array([len(s) for s in SERIES])
SEQUENCE_TARGETS = np.stack([[t.sum(), t[-1, 0]] for t in TARGETS]).astype("float32")


def padded(side: str = "post", value: float = 0.0, target_value: float | None = None):
    """`(N, T, F)` inputs and `(N, T, 1)` targets, padded as a Keras user pads them."""
    target_value = value if target_value is None else target_value
    x = np.full((N, T, F), value, dtype="float32")
    y = np.full((N, T, 1), target_value, dtype="float32")
    for i, (s, t) in enumerate(zip(SERIES, TARGETS, strict=True)):
        steps = slice(0, len(s)) if side == "post" else slice(T - len(s), T)
        x[i, steps], y[i, steps] = s, t
    return x, y


def real_steps(side: str = "post") -> np.ndarray:
    """`(N, T)`: True at the steps that hold data."""
    steps = np.arange(T)[None, :]
    lengths = LENGTHS[:, None]
    return steps < lengths if side == "post" else steps >= T - lengths


def stack(lib, lay, body: str, mask_value: float) -> list:
    """The same layers, from Keras (`lib=keras`) or maskwise (`lib=mw`)."""
    bodies = {
        "lstm": lambda: [lay.LSTM(16, return_sequences=True), lay.TimeDistributed(lay.Dense(1))],
        "gru": lambda: [lay.GRU(16, return_sequences=True), lay.Dense(1)],
        "conv": lambda: [lay.Conv1D(8, 3, padding="causal", activation="relu"), lay.Dense(1)],
        "sequence": lambda: [lay.LSTM(16), lay.Dense(2)],
    }
    return lib.Sequential([lay.Masking(mask_value), *bodies[body]()])


def pair(body="lstm", loss="mse", metrics=METRICS, mask_value=0.0, lr=0.01, ours_loss=None):
    """A compiled Keras model and its maskwise port, with the same initial weights."""
    keras.utils.set_random_seed(0)
    theirs = stack(keras, keras.layers, body, 0.0)
    ours = stack(mw, layers, body, mask_value)
    theirs.build((None, T, F))
    ours.build((None, T, F))
    ours.set_weights(theirs.get_weights())
    theirs.compile(keras.optimizers.Adam(lr), loss, metrics=metrics)
    ours.compile(mw.optimizers.Adam(lr), ours_loss or loss, metrics=metrics)
    return theirs, ours


def assert_close(ours: dict, theirs: dict, names, atol: float = ATOL) -> None:
    for name in names:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=atol, err_msg=name)


def assert_same_weights(theirs, ours, atol: float = ATOL) -> None:
    for got, want in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=atol)


def assert_keras_history(expected: dict, history: dict, loss_metric: str | None) -> None:
    """Every value equal but the two that differ on purpose (see the module docstring)."""
    assert sorted(history) == sorted(expected)
    roots = ("RootMeanSquaredError", "val_RootMeanSquaredError")
    same = [k for k in expected if k != "loss" and k not in roots]
    assert_close(history, expected, same)  # every metric, val_loss included
    if loss_metric is not None:  # the loss over every real step: Keras's metric of it
        np.testing.assert_allclose(history["loss"], expected[loss_metric], rtol=1e-5)
    for prefix in ("", "val_"):  # the root of the mean over real steps; Keras's counts padding
        root = np.sqrt(expected[prefix + "mse"])
        keras_root = np.asarray(expected[prefix + "RootMeanSquaredError"])
        np.testing.assert_allclose(history[prefix + "RootMeanSquaredError"], root, rtol=1e-5)
        assert np.abs(keras_root - root).max() > 1e-2


@pytest.mark.parametrize(
    ("body", "side", "loss", "loss_metric"),
    [
        ("lstm", "post", "mse", "mse"),
        ("gru", "pre", "mae", "mae"),
        ("lstm", "pre", "huber", None),
        ("lstm", "post", "mape", "mape"),
    ],
)
def test_per_step_regressor_trains_as_in_keras(body, side, loss, loss_metric):
    x, y = padded(side)
    theirs, ours = pair(body, loss)
    kwargs = dict(batch_size=BATCH, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, bucketing=False, **kwargs).history
    assert_keras_history(expected, history, loss_metric)
    if loss != "mape":  # it learns (near-zero targets make the percentage a poor loss)
        assert history["mse"][-1] < 0.8 * history["mse"][0]
    assert_same_weights(theirs, ours)

    # evaluate in one batch: Keras's loss is then the mean over real steps too
    scores = ours.evaluate(x, y, batch_size=N)
    keras_scores = theirs.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert_close(scores, keras_scores, ["loss", "mae", "mse", "mape"])
    # predict, then "un-pad" Keras's output by hand: maskwise's are the real steps
    keras_predicted = theirs.predict(x, verbose=0)
    real = real_steps(side)
    predicted = ours.predict(x)
    assert [len(p) for p in predicted] == list(LENGTHS)
    for i, p in enumerate(predicted):
        np.testing.assert_allclose(p, keras_predicted[i][real[i]], atol=ATOL)
    # or padded back as Keras's array, with the mask
    back = mw.Masked.pad(predicted, padding=side, max_len=T)
    np.testing.assert_array_equal(back.mask.numpy(), real)
    np.testing.assert_allclose(back.values.numpy()[real], keras_predicted[real], atol=ATOL)
    # the masked MSE by hand, from Keras's predictions
    by_hand = np.square(keras_predicted - y)[real].mean()
    assert scores["mse"] == pytest.approx(by_hand, rel=1e-5)
    if loss == "mse":
        assert scores["loss"] == pytest.approx(by_hand, rel=1e-5)
        # in batches of 32, Keras's evaluate averages the batches' means: not the mean
        batched = theirs.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
        assert batched["loss"] != pytest.approx(by_hand, rel=1e-4)
        assert ours.evaluate(x, y, batch_size=BATCH)["loss"] == pytest.approx(by_hand, rel=1e-5)


def test_huber_with_delta_as_in_keras():
    x, y = padded("post")
    theirs, ours = pair(
        loss=keras.losses.Huber(delta=0.5), ours_loss=mw.losses.Huber(delta=0.5), metrics=["mae"]
    )
    kwargs = dict(batch_size=BATCH, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, bucketing=False, **kwargs).history
    assert_close(history, expected, ["mae", "val_loss", "val_mae"])
    assert_same_weights(theirs, ours)
    keras_scores = theirs.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert_close(ours.evaluate(x, y, batch_size=N), keras_scores, ["loss", "mae"])


def test_per_sequence_regressor_trains_as_in_keras():
    """`LSTM(16)` then `Dense(2)`: one row per sequence, no mask at the output, so every
    value is Keras's, the loss and `RootMeanSquaredError` included."""
    x, _ = padded("pre")
    y = SEQUENCE_TARGETS
    theirs, ours = pair("sequence", metrics=["mae", "RootMeanSquaredError"], lr=0.02)
    kwargs = dict(batch_size=BATCH, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    expected = theirs.fit(x, y, **kwargs).history
    history = ours.fit(x, y, bucketing=False, **kwargs).history
    assert sorted(history) == sorted(expected)
    assert_close(history, expected, expected, atol=1e-4)
    assert history["loss"][-1] < history["loss"][0]
    assert_same_weights(theirs, ours)
    keras_scores = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert_close(ours.evaluate(x, y), keras_scores, keras_scores, atol=1e-4)
    predicted = ours.predict(x)
    assert predicted.shape == (N, 2)
    np.testing.assert_allclose(predicted, theirs.predict(x, verbose=0), atol=ATOL)


@pytest.mark.parametrize(("value", "target_value"), [(np.nan, np.nan), (0.0, np.nan)])
def test_nan_padding_gives_keras_zero_padded_run(value, target_value):
    """Differs on purpose: Keras's loss is NaN as soon as the inputs or the targets are
    padded with NaN (its mask multiplies the loss by 0, and 0 * NaN = NaN). maskwise's
    run on NaN padding is Keras's run on zero padding."""
    x, y = padded("post", value, target_value)
    theirs, _ = pair(mask_value=value)
    kwargs = dict(batch_size=BATCH, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        poisoned = theirs.fit(x, y, **kwargs).history
    assert np.isnan(poisoned["loss"]).all() and np.isnan(poisoned["val_mae"]).all()

    theirs, ours = pair(mask_value=value)
    x0, y0 = padded("post")
    expected = theirs.fit(x0, y0, **kwargs).history
    history = ours.fit(x, y, bucketing=False, **kwargs).history
    assert_keras_history(expected, history, "mse")
    assert_same_weights(theirs, ours)
    keras_scores = theirs.evaluate(x0, y0, batch_size=N, verbose=0, return_dict=True)
    assert_close(ours.evaluate(x, y, batch_size=N), keras_scores, ["loss", "mae", "mse", "mape"])
    keras_predicted = theirs.predict(x0, verbose=0)
    for i, p in enumerate(ours.predict(x)):
        np.testing.assert_allclose(p, keras_predicted[i, : LENGTHS[i]], atol=ATOL)


@pytest.mark.parametrize("trailing_unit", [False, True])
def test_temporal_sample_weight_as_in_keras(trailing_unit):
    """Per-step weights `(N, T)`, or `(N, T, 1)` like the targets (Keras drops the
    trailing 1), in `fit`, `validation_data` and `evaluate`; `sample_weight_mode=
    "temporal"` (Keras 2's) is accepted."""
    x, y = padded("pre")
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=(N, T)).astype("float32")
    if trailing_unit:
        weights = weights[..., None]
    theirs, ours = pair(metrics=["mae", "mse"])
    ours.compile(
        mw.optimizers.Adam(0.01), "mse", metrics=["mae", "mse"], sample_weight_mode="temporal"
    )
    keras_scores = theirs.evaluate(x, y, sample_weight=weights, batch_size=N, verbose=0)
    np.testing.assert_allclose(
        list(ours.evaluate(x, y, sample_weight=weights, batch_size=N).values()),
        keras_scores,
        rtol=1e-5,
    )
    kwargs = dict(batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    validation = (x[:24], y[:24], weights[:24])
    expected = theirs.fit(
        x[24:], y[24:], sample_weight=weights[24:], validation_data=validation, **kwargs
    ).history
    history = ours.fit(
        x[24:],
        y[24:],
        sample_weight=weights[24:],
        validation_data=validation,
        bucketing=False,
        **kwargs,
    ).history
    assert_close(history, expected, ["mae", "mse", "val_loss", "val_mae", "val_mse"])
    assert_same_weights(theirs, ours)


def test_callbacks_as_in_keras(tmp_path):
    """`EarlyStopping(restore_best_weights=True)`, `ReduceLROnPlateau` and
    `ModelCheckpoint(save_best_only=True)` on `val_loss` act on the same epochs; the
    best checkpoint holds Keras's best weights. A Keras file name is refused when the
    callback is made, not at the end of the first epoch."""
    with pytest.raises(mw.ConfigError, match=r"\.keras format(?s:.*)best\.safetensors"):
        mw.callbacks.ModelCheckpoint(tmp_path / "best.keras", save_best_only=True)
    with pytest.raises(mw.ConfigError, match=r"\.h5 format"):
        mw.callbacks.ModelCheckpoint("w{epoch:02d}.weights.h5", save_weights_only=True)

    x, y = padded("post")
    theirs, ours = pair(metrics=["mse"], lr=0.05)

    def callbacks(lib, name):
        return [
            lib.callbacks.EarlyStopping(patience=2, min_delta=0.01, restore_best_weights=True),
            lib.callbacks.ReduceLROnPlateau(factor=0.5, patience=1),
            lib.callbacks.ModelCheckpoint(tmp_path / name, save_best_only=True),
        ]

    kwargs = dict(batch_size=BATCH, epochs=12, shuffle=False, verbose=0, validation_split=0.25)
    expected = theirs.fit(x, y, callbacks=callbacks(keras, "best.keras"), **kwargs).history
    history = ours.fit(
        x, y, callbacks=callbacks(mw, "best.safetensors"), bucketing=False, **kwargs
    ).history
    assert len(expected["loss"]) < 12 and min(expected["learning_rate"]) < 0.05
    assert sorted(history) == sorted(expected)
    np.testing.assert_allclose(history["loss"], expected["mse"], rtol=1e-4)
    assert_close(history, expected, ["learning_rate", "mse", "val_loss", "val_mse"], atol=1e-4)
    assert_same_weights(theirs, ours, atol=1e-4)  # the best epoch's, restored
    best = mw.models.load_model(tmp_path / "best.safetensors")
    assert_same_weights(keras.models.load_model(tmp_path / "best.keras"), best, atol=1e-4)


def test_causal_conv_keeps_the_mask_where_keras_drops_it():
    """Differs on purpose: Keras's `Conv1D` drops the mask (with a warning), so its loss
    and metrics count the padded steps. maskwise's computes each series as if it were
    unpadded and keeps the mask: its predictions, on pre- or post-padded zeros or NaN,
    are Keras's on each series alone, and its scores are over real steps."""
    x, y = padded("post")
    theirs, _ = pair("conv", metrics=["mae"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_predicted = theirs.predict(x, verbose=0)
        keras_scores = theirs.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
        alone = [theirs.predict(s[None], verbose=0)[0] for s in SERIES]
    assert keras_scores["loss"] == pytest.approx(np.square(keras_predicted - y).mean(), rel=1e-5)
    for side, value in (("post", 0.0), ("pre", 0.0), ("pre", np.nan)):
        x, y = padded(side, value)
        _, ours = pair("conv", metrics=["mae"], mask_value=value)
        for got, want in zip(ours.predict(x), alone, strict=True):
            np.testing.assert_allclose(got, want, atol=ATOL)
        by_hand = np.square(np.concatenate(alone) - np.concatenate(TARGETS)).mean()
        assert ours.evaluate(x, y)["loss"] == pytest.approx(by_hand, rel=1e-5)


def test_ragged_lists_with_bucketing_evaluate_as_the_padded_arrays():
    """The same series as ragged lists (`fit`'s and `evaluate`'s default bucketing):
    on fixed weights, the scores and predictions of the padded arrays, pre or post;
    per-step targets given as `(n,)` or `(n, 1)`, per-step weights as `(n,)`."""
    _, ours = pair()
    expected = ours.evaluate(*padded("post"), batch_size=16)
    for y in (TARGETS, [t[:, 0] for t in TARGETS]):
        assert ours.evaluate(SERIES, y, batch_size=16) == pytest.approx(expected, rel=1e-6)
    assert ours.evaluate(*padded("pre"), batch_size=16) == pytest.approx(expected, rel=1e-6)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=(N, T)).astype("float32")
    per_series = [w[:n] for w, n in zip(weights, LENGTHS, strict=True)]  # (n,), post-aligned
    weighted = ours.evaluate(*padded("post"), sample_weight=weights, batch_size=16)
    assert weighted["loss"] != pytest.approx(expected["loss"], rel=1e-3)
    ragged = ours.evaluate(SERIES, TARGETS, sample_weight=per_series, batch_size=16)
    assert ragged == pytest.approx(weighted, rel=1e-6)
    for got, want in zip(ours.predict(SERIES), ours.predict(padded("pre")[0]), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    ours.fit(SERIES, TARGETS, batch_size=16, epochs=1, verbose=0, seed=0)  # bucketed batches
    trained = ours.evaluate(SERIES, TARGETS)
    assert trained["loss"] < expected["loss"]
    assert ours.evaluate(*padded("pre")) == pytest.approx(trained, rel=1e-6)


def test_zero_weights_at_padding_instead_of_masking():
    """Keras 2's habit: no `Masking`, per-step weights 0 at the padding. Keras's loss then
    divides by every step, padding included. maskwise stops the padded array with
    MW006 (naming `Masking`); `mask_value=None` says the zeros are data, and gives
    Keras's values; with `Masking` the loss is the weighted mean over real steps."""
    x, y = padded("post")
    real = real_steps("post").astype("float32")
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.layers.LSTM(16, return_sequences=True), keras.layers.Dense(1)])
    ours = mw.Sequential([layers.LSTM(16, return_sequences=True), layers.Dense(1)])
    theirs.build((None, T, F))
    ours.build((None, T, F))
    ours.set_weights(theirs.get_weights())
    theirs.compile("adam", "mse", metrics=["mae"])
    ours.compile("adam", "mse", metrics=["mae"], sample_weight_mode="temporal")
    with pytest.raises(mw.DoctorError, match=r"(?s)MW006.*Masking\(mask_value\)"):
        ours.evaluate(x, y, sample_weight=real)
    keras_scores = theirs.evaluate(x, y, sample_weight=real, batch_size=N, verbose=0)
    scores = ours.evaluate(x, y, sample_weight=real, batch_size=N, mask_value=None)
    np.testing.assert_allclose(list(scores.values()), keras_scores, rtol=1e-5)
    squared = np.square(theirs.predict(x, verbose=0) - y)[..., 0]
    assert keras_scores[0] == pytest.approx((squared * real).sum() / real.size, rel=1e-5)


@pytest.mark.parametrize("name", ["mse", "MSE", "MAE", "mape", "MAPE", "huber", "Huber"])
def test_keras_loss_names(name):
    """Every spelling Keras's `compile` takes for a regression loss, with its value."""
    x, y = padded("pre", np.nan)
    _, ours = pair(loss=name, metrics=[], mask_value=np.nan)
    theirs, _ = pair(loss=name, metrics=[])
    expected = theirs.evaluate(*padded("pre"), batch_size=N, verbose=0)
    assert ours.evaluate(x, y, batch_size=N)["loss"] == pytest.approx(expected, rel=1e-5)


def test_keras_loss_and_metric_objects_are_named():
    """`compile(loss=keras.losses.Huber(0.5))` copied as is: the error names maskwise's
    class of the same name."""
    model = mw.Sequential([layers.Masking(0.0), layers.LSTM(4, return_sequences=True)])
    with pytest.raises(mw.MaskwiseTypeError, match=r"maskwise\.losses\.Huber\(\.\.\.\)"):
        model.compile("adam", keras.losses.Huber(0.5))
    with pytest.raises(mw.MaskwiseTypeError, match=r"maskwise\.metrics\.RootMeanSquaredError"):
        model.compile("adam", "mse", metrics=[keras.metrics.RootMeanSquaredError()])


def test_two_targets_per_step_padded_with_nan():
    """`Dense(2)` per step, targets `(N, T, 2)` padded with NaN: the data checks read
    them per step (NaN at padded steps is fine) and the scores are Keras's on zero
    padding; a NaN at a real step is still MW005."""
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential(
        [
            keras.layers.Masking(0.0),
            keras.layers.LSTM(16, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    ours = mw.Sequential(
        [layers.Masking(np.nan), layers.LSTM(16, return_sequences=True), layers.Dense(2)]
    )
    theirs.build((None, T, F))
    ours.build((None, T, F))
    ours.set_weights(theirs.get_weights())
    theirs.compile("adam", "mse", metrics=["mae"])
    ours.compile("adam", "mse", metrics=["mae"])
    x0, y0 = padded("pre")
    x, y = padded("pre", np.nan)
    y0, y = (np.concatenate([t, -2 * t], axis=-1) for t in (y0, y))
    expected = theirs.evaluate(x0, y0, batch_size=N, verbose=0)
    np.testing.assert_allclose(
        list(ours.evaluate(x, y, batch_size=N).values()), expected, rtol=1e-5
    )
    y[0, -1, 1] = np.nan  # the last step of a pre-padded series is real
    with pytest.raises(mw.DoctorError, match=r"MW005.*1 real steps hold NaN"):
        ours.evaluate(x, y)
