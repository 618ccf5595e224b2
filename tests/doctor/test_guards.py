"""The guarded doors: `fit`, `evaluate`, `predict` and `make_loader` run the doctor's
checks on what they receive and stop a masking mistake before the first step."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import (
    ConfigError,
    DoctorError,
    Graph,
    Input,
    MaskError,
    MaskWarning,
    Model,
    Sequential,
    ShapeError,
    doctor,
    layers,
    losses,
)
from maskwise.data import ParquetSequences, SequenceDataset, make_loader
from maskwise.doctor import guards
from maskwise.masked import IGNORE_INDEX

from .helpers import padded, seed000


def tagger(units: int, masking: bool = True) -> Sequential:
    """Seed 000's model, small: (Masking ->) LSTM(4, return_sequences) -> Dense(units)."""
    model = Sequential(
        [
            *([layers.Masking(0.0)] if masking else []),
            layers.LSTM(4, return_sequences=True),
            layers.Dense(units, activation="softmax"),
        ]
    )
    model.compile("adam", loss="sparse_categorical_crossentropy")
    return model


def regressor(return_sequences: bool = True, mask_value: float | None = None) -> Sequential:
    masking = [] if mask_value is None else [layers.Masking(mask_value)]
    model = Sequential(
        [*masking, layers.LSTM(4, return_sequences=return_sequences), layers.Dense(1)]
    )
    model.compile("adam", loss="mse")
    return model


def ragged(lengths: list[int], features: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, features)).astype(np.float32) + 2.0 for n in lengths]


def relabelled(ys: list[np.ndarray]) -> np.ndarray:
    """Seed 000's labels 1, 2 -> 0, 1, padding (0) -> IGNORE_INDEX."""
    return np.stack([np.where(y > 0, y - 1, IGNORE_INDEX) for y in ys])


LENGTHS = [6, 3, 5, 2, 4, 6, 1, 5]


# ---------------------------------------------------------------- seed 000 at fit
def test_seed000_scrambled_layout_stops_fit_with_the_repair() -> None:
    xs, ys = seed000()
    x = np.concatenate([X.reshape(1, 20, 5) for X in xs]).astype(np.float32)  # the user's
    model = tagger(3)
    with pytest.raises(DoctorError) as caught:
        model.fit(x, np.stack(ys), verbose=0)
    error = caught.value
    assert isinstance(error, MaskError) and error.code == "MW001"
    assert [f.code for f in error.findings] == ["MW001"]
    message = str(error)
    assert "fit() stopped before the first step" in message
    assert "(all 10 sequences)" in message
    assert "x.reshape(-1, 5, 20).swapaxes(1, 2)" in message and "`X.T`" in message
    assert model.optimizer is None  # no step was taken


@pytest.mark.parametrize("split", ["train", "test"])
def test_seed000_one_scrambled_sequence_alone_stops_fit(split: str) -> None:
    xs, ys = seed000(split)
    for X, y in zip(xs, ys, strict=True):
        with pytest.raises(DoctorError, match=r"MW001 error: .*the sequence \(seen as \(20, 5\)"):
            tagger(3).fit(X.reshape(1, 20, 5), y[None], verbose=0)


def test_seed000_padding_label_with_a_unit_of_its_own_stops_fit() -> None:
    # X.T repairs the layout; labels 1/2 with 0 at padding and Dense(3) remain.
    xs, ys = seed000()
    x = np.stack([X.T for X in xs]).astype(np.float32)
    with pytest.raises(DoctorError, match="MW004 error: y: the padding label 0") as caught:
        tagger(3).fit(x, np.stack(ys), verbose=0)
    assert "the model has 3 outputs" in str(caught.value)
    assert "relabel the real classes 1->0, 2->1 and use 2 output units" in str(caught.value)
    with pytest.raises(DoctorError, match=r"evaluate\(\) stopped(.|\n)*MW004 error"):
        tagger(3).evaluate(x, np.stack(ys))
    # The repair trains, with the ignore marker or with ragged lists.
    tagger(2).fit(x, relabelled(ys), verbose=0)
    ragged_x = [X.T[y > 0] for X, y in zip(xs, ys, strict=True)]
    tagger(2, masking=False).fit(ragged_x, [y[y > 0] - 1 for y in ys], verbose=0)


def test_padding_label_shared_with_a_class_is_left_to_the_loader() -> None:
    # make_loader replaces the targets of padded steps by IGNORE_INDEX: harmless there.
    x = padded([5, 3, 4])
    y = np.array([[0, 1, 0, 1, 1], [1, 0, 1, 0, 0], [1, 1, 0, 0, 0]])
    assert doctor.check(x, y)[0].code == "MW004"  # the doctor still says it
    loader = make_loader(x, y, shuffle=False)
    assert (next(iter(loader)).y == IGNORE_INDEX).any()


def test_padding_label_without_a_model_warns_at_make_loader() -> None:
    xs, ys = seed000()
    x = np.stack([X.T for X in xs])
    with pytest.warns(MaskWarning, match=r"make_loader\(\): MW004 warning: y: real steps"):
        make_loader(x, np.stack(ys))


# ---------------------------------------------------------------- MW014: time-major
def test_time_major_array_stops_fit_and_predict() -> None:
    x = padded(LENGTHS, features=3).astype(np.float32)  # (batch, time, features)
    y = (x[..., 0] > 0).astype(np.int64)
    time_major, y_time_major = np.swapaxes(x, 0, 1), y.T
    message = (
        r"MW014 error: x \(6, 8, 3\) looks time-major, \(time, batch, features\)"
        r"(.|\n)*np\.swapaxes\(x, 0, 1\)"
    )
    with pytest.raises(DoctorError, match=message):
        tagger(2).fit(time_major, y_time_major, verbose=0)
    model = tagger(2)
    model.fit(x, y, verbose=0)
    with pytest.raises(DoctorError, match=message):
        model.predict(time_major)
    with pytest.raises(DoctorError, match=message):
        make_loader(torch.as_tensor(time_major))


def test_batch_major_and_sorted_arrays_are_not_time_major() -> None:
    x = padded(LENGTHS, features=3)
    assert [f.code for f in doctor.check(x)] == []
    # Sorted by length, the padding is symmetric: both readings are valid, no finding.
    by_length = padded(sorted(LENGTHS, reverse=True), features=3)
    assert doctor.check(np.swapaxes(by_length, 0, 1)) == []


# ---------------------------------------------------------------- MW015: several inputs
def two_inputs() -> Graph:
    model = Graph(
        inputs=["a", "b"],
        nodes=[
            ("cat", layers.Concatenate(), ["a", "b"]),
            ("rnn", layers.LSTM(3, return_sequences=True), ["cat"]),
            ("out", layers.Dense(2), ["rnn"]),
        ],
        outputs="out",
    )
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_inputs_with_different_real_steps_in_one_sample_stop_fit() -> None:
    a = ragged(LENGTHS, seed=1)
    b = ragged(LENGTHS, features=2, seed=2)
    y = [np.zeros(n, dtype=np.int64) for n in LENGTHS]
    two_inputs().fit((a, b), y, verbose=0)  # aligned: trains
    b[3] = b[3][:1]  # sequence 3 of input b lost a step
    message = (
        r"MW015 error: the inputs of one sample hold different real steps in 1 of 8 "
        r"sequences(.|\n)*sequence 3: x\[0\] steps 0..1, x\[1\] steps 0..0"
    )
    with pytest.raises(DoctorError, match=message):
        two_inputs().fit((a, b), y, verbose=0)
    with pytest.raises(DoctorError, match="MW015"):
        make_loader((a, b), y)


def test_inputs_padded_on_different_sides_stop_make_loader() -> None:
    a = padded(LENGTHS, features=3)
    b = padded(LENGTHS, features=2, seed=1)
    b[1] = padded([LENGTHS[1]], features=2, time=6, padding="pre")[0]
    with pytest.raises(DoctorError, match=r"sequence 1: x\[0\] steps 0..2, x\[1\] steps 3..5"):
        make_loader((a, b))


def test_several_ragged_inputs_in_a_list_stop_fit_with_the_tuple_fix() -> None:
    a, b = ragged(LENGTHS, seed=1), ragged(LENGTHS, features=2, seed=2)
    y = [np.zeros(n, dtype=np.int64) for n in LENGTHS]
    with pytest.raises(ShapeError, match=r"(?s)is not one array.*several inputs.*as a tuple"):
        two_inputs().fit([a, b], y, verbose=0)  # Keras's list of inputs
    two_inputs().fit((a, b), y, verbose=0)  # the fix


def test_separate_timelines_are_not_flagged() -> None:
    # An encoder's and a decoder's inputs differ in most samples: no finding.
    a = ragged(LENGTHS)
    b = ragged([n + 2 for n in LENGTHS], features=2)
    make_loader((a, b))


# ---------------------------------------------------------------- MW016: target kind
def test_per_sequence_targets_for_a_per_step_output_stop_fit_and_evaluate() -> None:
    x = ragged(LENGTHS)
    y = np.linspace(0.0, 1.0, len(LENGTHS)).astype(np.float32)
    message = (
        r"MW016 error: y holds one target per sequence \(shape \(8,\) in the first batch\), "
        r"but the model returns one output per step \(shape \(8, 6, 1\)\)"
    )
    with pytest.raises(DoctorError, match=message):
        regressor(return_sequences=True).fit(x, y, batch_size=8, verbose=0)
    model = regressor(return_sequences=True)
    model.fit(x, [np.zeros(n, np.float32) for n in LENGTHS], verbose=0)
    with pytest.raises(DoctorError, match="MW016 error: y holds one target per sequence"):
        model.evaluate(x, y)


def test_per_step_targets_for_a_per_sequence_output_stop_fit() -> None:
    x = padded(LENGTHS).astype(np.float32)
    y = x[..., 0]
    with pytest.raises(
        DoctorError, match=r"MW016 error: y holds one target per step \(shape \(8, 6\)"
    ):
        regressor(return_sequences=False, mask_value=0.0).fit(x, y, batch_size=8, verbose=0)
    regressor(return_sequences=False, mask_value=0.0).fit(x, y[:, 0], verbose=0)


# ---------------------------------------------------------------- MW017: Masking value
def test_nan_padding_with_a_zero_masking_stops_fit_evaluate_and_predict() -> None:
    x = padded(LENGTHS, value=np.nan).astype(np.float32)  # the model masks zeros only
    y = np.nan_to_num(x[..., :1])
    message = (
        r"MW017 error: x: 16 padded steps hold nan \(first: sequence 1, step 3\), but the "
        r"model's masking\w* \(layers.0\) masks only steps equal to 0.0: .*NaN makes every "
        r"output NaN.\n  fix: .*`Masking\(mask_value=np.nan\)`.*np.nan_to_num\(x, nan=0.0\)"
    )
    with pytest.raises(DoctorError, match=message):
        regressor(mask_value=0.0).fit(x, y, verbose=0)
    model = regressor(mask_value=np.nan)  # the padding's own value: trains, finite
    assert np.isfinite(model.fit(x, y, verbose=0).history["loss"][0])
    with pytest.raises(DoctorError, match="MW017"):
        regressor(mask_value=0.0).evaluate(x, y)
    with pytest.raises(DoctorError, match=r"(?s)predict\(\) stopped .*MW017"):
        regressor(mask_value=0.0).predict(x)
    assert all(np.isfinite(p).all() for p in model.predict(x))


def test_an_output_without_a_mask_on_padded_data_stops_predict() -> None:
    """A padded array and no `Masking`, or ragged inputs whose mask a layer drops: the
    output keeps the time axis without a mask, so predict would return every padded step
    as a prediction (the loss catches it in fit; predict has no targets): MW006."""
    x = padded(LENGTHS).astype(np.float32)
    unmasked = Sequential([layers.Bidirectional(layers.LSTM(4, return_sequences=True))])
    with pytest.raises(
        DoctorError, match=r"(?s)predict\(\) stopped .*MW006.*makes no mask.*Masking"
    ):
        unmasked.predict(x)
    sequences = ragged(LENGTHS)
    dropped = Sequential(
        [layers.LSTM(4, return_sequences=True), layers.Lambda(torch.tanh, mask="drop")]
    )
    with pytest.raises(DoctorError, match=r"(?s)MW006.*a layer dropped it.*doctor.check"):
        dropped.predict(sequences)
    with pytest.warns(MaskWarning, match="MW006"):
        assert len(dropped.predict(sequences, checks="warn")) == len(LENGTHS)
    masked = Sequential([layers.Masking(0.0), *unmasked.layers])
    assert [len(p) for p in masked.predict(x)] == LENGTHS  # the mask made: each true length
    # One vector per sequence: with a Masking, nothing lost; without, the LSTM runs
    # through the padding (the last real step's state is never its output).
    pooled = Sequential([layers.LSTM(4)])
    with pytest.raises(DoctorError, match=r"(?s)MW006.*makes no mask from it.*mask_value=None"):
        pooled.predict(x)
    assert pooled.predict(x, mask_value=None).shape == (len(LENGTHS), 4)  # zeros as data
    masked_pool = Sequential([layers.Masking(0.0), *pooled.layers])
    assert masked_pool.predict(x).shape == (len(LENGTHS), 4)


def test_a_layers_extra_output_is_no_output_that_lost_its_mask() -> None:
    """Attention scores `(batch, time, time)` returned as a functional model's output
    have the inputs' time axis and no mask, and none to keep: predict returns them."""
    inputs = Input((None, 3))
    h = layers.LSTM(4, return_sequences=True)(inputs)
    attended, scores = layers.Attention()([h, h], return_attention_scores=True)
    model = Model(inputs, [layers.Dense(2)(attended), scores])
    tags, weights = model.predict(ragged(LENGTHS))
    assert [len(t) for t in tags] == LENGTHS
    assert weights.shape == (len(LENGTHS), max(LENGTHS), max(LENGTHS))
    lost = Model(inputs, [layers.Lambda(torch.tanh, mask="drop")(attended), scores])
    with pytest.raises(DoctorError, match=r"(?s)MW006.*a layer dropped it"):
        lost.predict(ragged(LENGTHS))


def test_zero_padding_with_another_masking_value_stops_fit() -> None:
    x = padded(LENGTHS).astype(np.float32)
    with pytest.raises(
        DoctorError,
        match=r"MW017 .* masks only steps equal to -1.0: .* count "
        r"as data.\n  fix: .*`Masking\(mask_value=0.0\)`",
    ):
        regressor(mask_value=-1.0).fit(x, x[..., :1], verbose=0)


# ---------------------------------------------------------------- MW005: non-finite values
def test_nan_at_a_real_step_of_inputs_targets_or_weights_stops_fit() -> None:
    x = ragged(LENGTHS)
    y = [np.ones(n, np.float32) for n in LENGTHS]
    bad_x = [s.copy() for s in x]
    bad_x[2][4, 1] = np.nan
    with pytest.raises(DoctorError, match=r"MW005 error: x: 1 real steps hold NaN or inf"):
        regressor().fit(bad_x, y, verbose=0)
    bad_y = [t.copy() for t in y]
    bad_y[5][3] = np.inf
    with pytest.raises(
        DoctorError,
        match=r"MW005 error: y: 1 real steps hold NaN or inf \(first: sequence 5, step 3\)",
    ):
        regressor().fit(x, bad_y, verbose=0)
    weights = np.ones(len(x), np.float32)
    weights[7] = np.nan
    with pytest.raises(
        DoctorError, match=r"MW005 error: sample_weight: 1 of 8 sequences have a NaN"
    ):
        regressor().fit(x, y, sample_weight=weights, verbose=0)
    step_weights = [np.ones(n, np.float32) for n in LENGTHS]
    step_weights[0][2] = np.nan
    with pytest.raises(DoctorError, match=r"MW005 error: sample_weight: 1 real steps hold NaN"):
        regressor().fit(x, y, sample_weight=step_weights, verbose=0)


def test_nan_in_padding_and_per_sequence_targets() -> None:
    x = padded(LENGTHS, value=np.nan).astype(np.float32)
    y = np.where(np.isnan(x[..., 0]), np.nan, 1.0).astype(np.float32)  # NaN at padding
    weights = np.where(np.isnan(x[..., 0]), np.nan, 1.0).astype(np.float32)
    regressor(mask_value=np.nan).fit(x, y, sample_weight=weights, mask_value=np.nan, verbose=0)
    per_sequence = np.ones(len(LENGTHS), np.float32)
    per_sequence[1] = np.nan
    model = regressor(return_sequences=False, mask_value=np.nan)
    with pytest.raises(DoctorError, match=r"MW005 error: y: 1 of 8 sequences have a NaN"):
        model.fit(x, per_sequence, mask_value=np.nan, verbose=0)


def test_nan_in_validation_data_is_named() -> None:
    x, y = ragged(LENGTHS), [np.ones(n, np.float32) for n in LENGTHS]
    bad = [s.copy() for s in x]
    bad[0][0, 0] = np.nan
    with pytest.raises(DoctorError, match=r"\(validation_data, all 8 sequences\)"):
        regressor().fit(x, y, validation_data=(bad, y), verbose=0)
    with pytest.raises(DoctorError, match="MW005"):  # validation_split: checked with x
        regressor().fit(x + bad, y + y, validation_split=0.5, verbose=0)


# ---------------------------------------------------------------- MW013: leak probe in fit
def test_fit_runs_the_leak_probe_on_its_first_batch() -> None:
    def leaky() -> Sequential:
        model = Sequential(
            [
                layers.Dense(4),
                layers.Lambda(lambda v: torch.roll(v, 1, dims=1), mask=lambda i, m: m),
                layers.Dense(1),
            ]
        )
        model.compile("adam", loss="mse")
        return model

    x, y = ragged(LENGTHS), [np.ones(n, np.float32) for n in LENGTHS]
    with pytest.raises(DoctorError, match=r"MW013 error: .*lambda") as caught:
        leaky().fit(x, y, verbose=0)
    assert caught.value.code == "MW013"
    leaky().fit(x, y, verbose=0, checks="off")


def test_the_leak_probe_runs_again_only_when_the_model_or_the_input_layout_changes() -> None:
    """One-epoch `fit` calls in a loop probe once; a frozen weight probes again, and so
    does every call whose mask the model makes (its `Masking`: the padding's place
    shows only in the values); a leak found is reported at every call."""
    from maskwise.doctor import leak_probe

    x, y = ragged(LENGTHS), [np.ones(n, np.float32) for n in LENGTHS]
    model = regressor()
    runs = []
    real_probe = leak_probe.probe_leaks

    def counting(*args, **kwargs):
        runs.append(1)
        return real_probe(*args, **kwargs)

    with mock.patch.object(leak_probe, "probe_leaks", counting):
        for _ in range(3):
            model.fit(x, y, verbose=0)
        assert len(runs) == 1
        model.layers[0].trainable = False
        model.fit(x, y, verbose=0)
        assert len(runs) == 2
        masked = regressor(return_sequences=False, mask_value=0.0)
        targets = np.ones((len(LENGTHS), 1), np.float32)
        for padding in ("post", "post", "pre"):  # the Masking layer makes the mask
            masked.fit(padded(LENGTHS, padding=padding), targets, verbose=0)
        assert len(runs) == 5

    leaky = Sequential(
        [
            layers.Dense(4),
            layers.Lambda(lambda v: torch.roll(v, 1, dims=1), mask=lambda i, m: m),
            layers.Dense(1),
        ]
    )
    leaky.compile("adam", loss="mse")
    for _ in range(2):
        with pytest.raises(DoctorError, match="MW013"):
            leaky.fit(x, y, verbose=0)


# ---------------------------------------------------------------- the switch
def test_checks_warn_and_off() -> None:
    xs, ys = seed000()
    x, y = np.stack([X.T for X in xs]).astype(np.float32), np.stack(ys)
    with pytest.warns(MaskWarning, match=r"fit\(\) \(the first batch\): MW004 error"):
        tagger(3).fit(x, y, verbose=0, checks="warn")
    model = tagger(3)
    model.fit(x, y, verbose=0, checks="off")  # silent: filterwarnings = error
    assert model.optimizer is not None
    time_major = np.swapaxes(padded(LENGTHS), 0, 1)
    make_loader(time_major, checks="off")
    with pytest.warns(MaskWarning, match=r"make_loader\(\) \(all 6 sequences\): MW014 error"):
        make_loader(time_major, checks="warn")


def test_warning_findings_warn_under_raise() -> None:
    x = padded([5, 3, 4, 2], padding="post")
    x[1] = padded([3], time=5, padding="pre")[0]
    with pytest.warns(MaskWarning, match=r"make_loader\(\) \(all 4 sequences\): MW008 warning"):
        make_loader(x)


@pytest.mark.parametrize("checks", ["strict", None, True, "Raise"])
def test_checks_value_is_validated(checks: object) -> None:
    x, y = ragged(LENGTHS), [np.ones(n, np.float32) for n in LENGTHS]
    message = r"checks must be 'raise', 'warn' or 'off'(.|\n)*received: checks="
    with pytest.raises(ConfigError, match=message):
        regressor().fit(x, y, checks=checks)
    with pytest.raises(ConfigError, match=message):
        make_loader(x, y, checks=checks)
    with pytest.raises(ConfigError, match=message):
        regressor().predict(x, checks=checks)


def test_fit_checks_its_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = guards.check_data

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(guards, "check_data", counting)
    x, y = ragged(LENGTHS), [np.ones(n, np.float32) for n in LENGTHS]
    model = regressor()
    model.fit(x, y, verbose=0)
    assert len(calls) == 1  # not again in the make_loader that fit calls
    model.fit(x, y, validation_data=(x, y), verbose=0)
    assert len(calls) == 3
    model.evaluate(x, y)
    model.predict(x)
    assert len(calls) == 5
    model.fit(make_loader(x, y), verbose=0)  # a Loader: make_loader checked it
    assert len(calls) == 6


# ---------------------------------------------------------------- the bounded sample
def test_sample_is_spread_over_the_data() -> None:
    index = guards.spread(10_000)
    assert len(index) == guards.SAMPLE and index[0] == 0 and index[-1] == 9_999
    assert np.all(np.diff(index) > 0)
    assert guards.spread(5).tolist() == [0, 1, 2, 3, 4]
    x = ragged([4] * 3000)
    x[-1] = x[-1].copy()
    x[-1][0, 0] = np.nan  # the last sequence is always in the sample
    with pytest.raises(DoctorError, match=r"\(256 of 3000 sequences, spread over the data\)"):
        make_loader(x)


def test_data_sets_and_streams_are_sampled(tmp_path) -> None:
    x = ragged(LENGTHS)
    bad = [s.copy() for s in x]
    bad[3][1, 0] = np.inf
    with pytest.raises(DoctorError, match="MW005 error: x: 1 real steps"):
        make_loader(SequenceDataset(bad))
    rows = [
        {"seq": i, "step": t, "a": float(s[t, 0]), "b": float(s[t, 1]), "label": 1}
        for i, s in enumerate(ragged([3] * 300))
        for t in range(3)
    ]
    table = pd.DataFrame(rows)
    path = tmp_path / "steps.parquet"
    late = table.copy()
    late.loc[late["seq"] == 299, "a"] = np.nan  # past the first 256 sequences
    pq.write_table(pa.Table.from_pandas(late, preserve_index=False), path, row_group_size=90)
    make_loader(ParquetSequences(path, "seq", "step", ["a", "b"], "label"))
    early = table.copy()
    early.loc[early["seq"] == 2, "a"] = np.nan
    pq.write_table(pa.Table.from_pandas(early, preserve_index=False), path, row_group_size=90)
    stream = ParquetSequences(path, "seq", "step", ["a", "b"], "label")
    with pytest.raises(DoctorError, match=r"\(the first 256 sequences of the stream\)"):
        make_loader(stream)


def test_forms_the_doctor_does_not_read_are_left_to_the_loader() -> None:
    images = np.random.default_rng(0).normal(size=(4, 5, 2, 3)).astype(np.float32)
    assert next(iter(make_loader(images))).x.values.shape == (4, 5, 2, 3)  # not checked
    with pytest.raises(ShapeError, match="x holds no sequences"):  # the loader's error
        make_loader([])
    with pytest.raises(ShapeError, match="hold different numbers of sequences"):
        make_loader(ragged(LENGTHS), np.zeros(3))


def test_a_list_is_read_with_its_own_lengths() -> None:
    # make_loader takes a list's lengths as given: zero steps in it are real steps.
    x = ragged(LENGTHS)
    x[0][2] = 0.0  # inside
    x[1][-1] = 0.0  # at the end
    assert {f.code for f in doctor.check(x)} == {"MW003"}  # the doctor reads them as Masking
    y = [np.ones(n, np.float32) for n in LENGTHS]
    regressor().fit(x, y, verbose=0)  # no warning: filterwarnings = error
    x[1][-1] = np.nan  # a real step, though at the end
    with pytest.raises(DoctorError, match=r"MW005 error: x: 1 real steps .*sequence 1, step 2"):
        regressor().fit(x, y, verbose=0)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=10),
    features=st.integers(1, 5),
    form=st.sampled_from(["padded", "list", "tensor", "two inputs"]),
    classes=st.integers(2, 4),
    seed=st.integers(0, 1000),
)
def test_clean_data_passes_every_door_silently(lengths, features, form, classes, seed) -> None:
    # filterwarnings = error: a warning fails the test like an error.
    rng = np.random.default_rng(seed)
    x = padded(lengths, features=features, seed=seed).astype(np.float32)
    labels = rng.integers(0, classes, size=x.shape[:2])
    y = np.where(np.arange(x.shape[1]) < np.array(lengths)[:, None], labels, IGNORE_INDEX)
    inputs: object = x
    if form == "list":
        inputs = [seq[:n] for seq, n in zip(x, lengths, strict=True)]
        y = [row[:n] for row, n in zip(y, lengths, strict=True)]
    elif form == "tensor":
        inputs = torch.as_tensor(x)
    elif form == "two inputs":
        inputs = (x, padded(lengths, features=2, time=x.shape[1], seed=seed + 1))
    loader = make_loader(inputs, y, batch_size=4)
    assert sum(batch.size for batch in loader) == len(lengths)


def test_a_per_sequence_model_that_makes_no_mask_stops_fit() -> None:
    """A padded array, an LSTM without `return_sequences` and no `Masking`: the LSTM runs
    through the padding (MW006); a `Normalization` in front of the `Masking` hides the
    padding from it (MW017, the layers named); the `Masking` first trains."""
    x = padded(LENGTHS).astype(np.float32)
    y = np.ones((len(LENGTHS), 1), np.float32)
    with pytest.raises(DoctorError, match=r"(?s)fit\(\) stopped.*MW006.*makes no mask from it"):
        regressor(return_sequences=False).fit(x, y, verbose=0)
    norm = layers.Normalization()
    norm.adapt(x)
    hidden = Sequential([norm, layers.Masking(0.0), layers.LSTM(4), layers.Dense(1)])
    hidden.compile("adam", loss="mse")
    with pytest.raises(DoctorError, match=r"(?s)MW017.*comes after Normalization") as error:
        hidden.fit(x, y, verbose=0)
    assert "MW006" not in str(error.value)  # the cause named, not its effect
    ordered = Sequential([layers.Masking(0.0), norm, layers.LSTM(4), layers.Dense(1)])
    ordered.compile("adam", loss="mse")
    assert np.isfinite(ordered.fit(x, y, verbose=0).history["loss"][0])
