"""Targets `(N, K)` of one row per sequence whose width `K` equals the padded inputs'
time axis `T`: read per step from their shape alone they would be trimmed and padded
with the inputs' lengths; `fit`, `evaluate` and the single-batch methods read them as
the model's output says (`maskwise.training.inputs.read_targets`), as Keras does."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from keras_oracle import randomize_weights

import maskwise as mw
from maskwise import ShapeError, from_keras, layers
from maskwise.data import SequenceDataset, make_loader

T, F = 5, 3
LENGTHS = [2, 3, 5, 1, 4, 2, 3, 2]


def padded_inputs(lengths: list[int] = LENGTHS, seed: int = 0) -> np.ndarray:
    """`(N, T, F)` inputs padded with zeros after each length."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), T, F), "float32")
    for row, length in enumerate(lengths):
        x[row, :length] = rng.normal(size=(length, F))
    return x


def keras_and_ours(head: list, loss: str):
    """A Keras `Masking -> LSTM(4)` then `head`, and its maskwise conversion, both
    compiled with plain SGD and `loss`."""
    theirs = keras.Sequential(
        [keras.Input((T, F)), keras.layers.Masking(0.0), keras.layers.LSTM(4)]
    )
    for layer in head:
        theirs.add(layer)
    randomize_weights(theirs)
    ours = from_keras(theirs)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    ours.compile(optimizer=mw.optimizers.SGD(0.1), loss=loss)
    return theirs, ours


def assert_keras_weights(ours, theirs) -> None:
    """Our weights equal Keras's (read through a conversion of the Keras model)."""
    for ours_w, keras_w in zip(ours.parameters(), from_keras(theirs).parameters(), strict=True):
        torch.testing.assert_close(ours_w.detach(), keras_w.detach(), atol=1e-5, rtol=1e-5)


def regression_targets() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(len(LENGTHS), T)).astype("float32")


def multi_label_targets() -> np.ndarray:
    return np.random.default_rng(2).integers(0, 2, size=(len(LENGTHS), T))


@pytest.mark.parametrize(
    ("head", "loss", "targets"),
    [
        (lambda: [keras.layers.Dense(T)], "mse", regression_targets),
        (lambda: [keras.layers.Dense(T, "sigmoid")], "binary_crossentropy", multi_label_targets),
    ],
    ids=["regression", "multi-label"],
)
def test_evaluate_and_single_batch_methods_match_keras(head, loss, targets):
    theirs, ours = keras_and_ours(head(), loss)
    x, y = padded_inputs(), targets()
    keras_loss = float(theirs.evaluate(x, y, batch_size=len(x), verbose=0))
    assert ours.evaluate(x, y, batch_size=3)["loss"] == pytest.approx(keras_loss, rel=1e-5)
    assert ours.test_on_batch(x, y) == pytest.approx(keras_loss, rel=1e-5)
    keras_step = float(theirs.train_on_batch(x, y))
    assert ours.train_on_batch(x, y) == pytest.approx(keras_step, rel=1e-5)
    assert_keras_weights(ours, theirs)


def test_fit_matches_keras_on_arrays_and_on_a_loader():
    theirs, ours = keras_and_ours([keras.layers.Dense(T)], "mse")
    x, y = padded_inputs(), regression_targets()
    theirs.fit(x, y, batch_size=len(x), epochs=2, shuffle=False, verbose=0)
    history = ours.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, seed=0)
    loader = make_loader(x, y, batch_size=len(x), shuffle=False)  # made without the model
    history_2 = ours.fit(loader, epochs=1, verbose=0, seed=0)
    keras_losses = theirs.history.history["loss"]
    assert [history.history["loss"][0], history_2.history["loss"][0]] == pytest.approx(
        keras_losses, rel=1e-5
    )
    assert_keras_weights(ours, theirs)


def test_padded_inputs_train_like_the_same_sequences_given_ragged():
    """A ragged list of the same sequences never reads `(N, T)` targets per step (no
    padded time axis): the padded inputs reach the same losses and weights, batch by
    bucketed batch (the same lengths and seed give the same batches)."""
    x, y = padded_inputs(), regression_targets()
    ragged = [row[:length] for row, length in zip(x, LENGTHS, strict=True)]
    runs = []
    for inputs in (x, ragged):
        torch.manual_seed(0)
        model = mw.Sequential([layers.Masking(0.0), layers.LSTM(4), layers.Dense(T)])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(inputs, y, batch_size=3, epochs=2, verbose=0, seed=0)
        runs.append((history.history["loss"], model.evaluate(inputs, y)["loss"], model))
    (fit_padded, eval_padded, padded), (fit_ragged, eval_ragged, ragged_model) = runs
    assert fit_padded == pytest.approx(fit_ragged, rel=1e-6)
    assert eval_padded == pytest.approx(eval_ragged, rel=1e-6)
    for a, b in zip(padded.parameters(), ragged_model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def keras_two_heads():
    """A tagger head (per step, 3 classes) and a multi-label head of `T` labels (per
    sequence) on one `Masking` input, as a list of outputs."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T, F))
    x = keras.layers.Masking(0.0)(inputs)
    tags = keras.layers.Dense(3, "softmax", name="tags")(
        keras.layers.LSTM(4, return_sequences=True)(x)
    )
    labels = keras.layers.Dense(T, "sigmoid", name="labels")(keras.layers.LSTM(4)(x))
    model = keras.Model(inputs, [tags, labels])
    randomize_weights(model)
    return model


def test_two_outputs_one_per_step_one_per_sequence_of_the_same_width_match_keras():
    """`[tags (N, T), labels (N, T)]`: the tagger's targets read per step, the
    multi-label head's per sequence, each from its own output."""
    x = padded_inputs()
    rng = np.random.default_rng(3)
    tags, labels = rng.integers(0, 3, size=(len(x), T)), rng.integers(0, 2, size=(len(x), T))
    theirs = keras_two_heads()
    ours = from_keras(theirs)
    losses = ["sparse_categorical_crossentropy", "binary_crossentropy"]
    theirs.compile(keras.optimizers.SGD(0.5), loss=losses)
    ours.compile(mw.optimizers.SGD(0.5), loss=losses)
    before = theirs.evaluate(x, [tags, labels], return_dict=True, verbose=0)
    got = ours.evaluate(x, {"tags": tags, "labels": labels}, batch_size=len(x))
    assert got == pytest.approx({k: float(v) for k, v in before.items()}, rel=1e-5)
    theirs.fit(x, [tags, labels], batch_size=len(x), epochs=2, shuffle=False, verbose=0)
    ours.fit(x, [tags, labels], batch_size=len(x), epochs=2, shuffle=False, verbose=0)
    assert_keras_weights(ours, theirs)


def test_a_data_set_reads_such_targets_per_step_until_a_model_says_otherwise():
    """Without a model (`make_loader`, `SequenceDataset`), `(N, T)` targets are read per
    step, as a tagger's; `read_targets` with an output of no time axis reads them per
    sequence, and one with a mask keeps them per step."""
    x, y = padded_inputs(), regression_targets()
    data = SequenceDataset(x, y)
    assert torch.isnan(data.collate([0, 1]).y).any()  # per step: padded with NaN
    probe = data.probe()
    assert probe is not None and probe.x.values.shape == (1, min(LENGTHS), F)
    data.read_targets(lambda batch: {None: torch.zeros(1, T)})
    torch.testing.assert_close(data.collate([0, 1]).y, torch.as_tensor(y[:2]))
    assert data.probe() is None  # settled: no further forward pass
    tagger = SequenceDataset(x, y)
    per_step = mw.Masked(
        torch.zeros(1, min(LENGTHS), 2), torch.ones(1, min(LENGTHS), dtype=torch.bool)
    )
    tagger.read_targets(lambda batch: {None: per_step})
    assert tagger.collate([0, 1]).y.shape == (2, 3)  # trimmed to the batch's steps


def test_full_length_sequences_need_no_model_and_ragged_targets_stay_per_step():
    """Nothing to settle when every sequence fills the time axis (both readings give
    the same batches) or when the targets are given one array per sequence."""
    full = padded_inputs([T] * 4)
    assert SequenceDataset(full, regression_targets()[:4]).probe() is None
    x = padded_inputs()
    ragged_y = [np.ones(length, "float32") for length in LENGTHS]
    assert SequenceDataset(x, ragged_y).probe() is None


def test_sample_weights_follow_the_outputs_and_outputs_of_both_kinds_are_refused():
    x, y = padded_inputs(), regression_targets()
    weights = np.ones((len(x), T), "float32")
    data = SequenceDataset(x, None, weights)
    data.read_targets(lambda batch: {"a": torch.zeros(1, T)})
    assert data.collate([0, 1]).sample_weight.shape == (2, T)  # per sequence: whole
    both = SequenceDataset(x, {"a": y[:, 0], "b": y[:, 0]}, weights)
    per_step = mw.Masked(
        torch.zeros(1, min(LENGTHS), 1), torch.ones(1, min(LENGTHS), dtype=torch.bool)
    )
    with pytest.raises(ShapeError, match=r"sample_weight \(8, 5\) could hold one weight per step"):
        both.read_targets(lambda batch: {"a": torch.zeros(1, T), "b": per_step})


def test_evaluate_checks_its_first_batch_with_the_targets_read_per_sequence():
    """The doctor's check of the target kind (MW016) on `evaluate`'s own batch reads the
    targets as `evaluate` does, also when no sequence of that batch fills the time axis."""
    lengths = [2, 3, 4, 3] * 5 + [T]  # the first 16 sequences are all shorter than T
    x = padded_inputs(lengths)
    y = np.random.default_rng(4).normal(size=(len(lengths), T)).astype("float32")
    torch.manual_seed(0)
    model = mw.Sequential([layers.Masking(0.0), layers.LSTM(4), layers.Dense(T)])
    model.compile(optimizer="sgd", loss="mse")
    expected = float(((model.predict(x) - y) ** 2).mean())
    assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-5)


def multi_label_with_rare_first_labels() -> tuple[np.ndarray, np.ndarray]:
    """Inputs of 2 to 4 steps of 5 (one of 5), and `T` labels per sequence whose first
    three are always 0: read per step, they would look like targets padded at the
    front (MW011)."""
    lengths = [2, 3, 4, 3] * 5 + [T]
    y = np.random.default_rng(5).integers(0, 2, size=(len(lengths), T))
    y[:, :3] = 0
    return padded_inputs(lengths), y


def test_the_doors_check_such_targets_per_step_only_for_a_per_step_output():
    """The doctor's per-step checks of `y` (MW011 here) wait for the model: none for a
    multi-label head of `T` labels, as before for a tagger of the same targets."""
    x, y = multi_label_with_rare_first_labels()
    torch.manual_seed(0)
    labels = mw.Sequential([layers.Masking(0.0), layers.LSTM(4), layers.Dense(T, "sigmoid")])
    labels.compile(optimizer="sgd", loss="binary_crossentropy")
    labels.fit(x, y, epochs=1, verbose=0)
    expected = keras.ops.convert_to_numpy(
        keras.losses.binary_crossentropy(y.astype("float32"), labels.predict(x))
    ).mean()
    assert labels.evaluate(x, y)["loss"] == pytest.approx(float(expected), rel=1e-5)
    tagger = mw.Sequential(
        [layers.Masking(0.0), layers.LSTM(4, return_sequences=True), layers.Dense(2)]
    )
    tagger.compile(optimizer="sgd", loss=mw.losses.SparseCategoricalCrossentropy(from_logits=True))
    for door in (tagger.fit, tagger.evaluate):
        with pytest.raises(mw.DoctorError, match="MW011 error: y is padded at the other end"):
            door(x, y, verbose=0)
    with pytest.raises(mw.DoctorError, match="MW011"):
        make_loader(x, y)  # no model: read per step


NOTE = "if it holds one row of values per sequence"


def labels_and_tagger() -> tuple[mw.Sequential, mw.Sequential]:
    """A multi-label head of `T` labels (no time axis) and a tagger (per step)."""
    torch.manual_seed(0)
    labels = mw.Sequential([layers.Masking(0.0), layers.LSTM(4), layers.Dense(T, "sigmoid")])
    labels.compile(optimizer="sgd", loss="binary_crossentropy")
    tagger = mw.Sequential(
        [layers.Masking(0.0), layers.LSTM(4, return_sequences=True), layers.Dense(2)]
    )
    tagger.compile(optimizer="sgd", loss=mw.losses.SparseCategoricalCrossentropy(from_logits=True))
    return labels, tagger


def test_the_doctor_reads_such_targets_as_the_model_given_says():
    """`doctor.check(x, y, model=...)` reads `y` as `fit` does: no MW011 for the
    multi-label head, MW011 for the tagger; without a model, per step, and its finding
    says that this reading decided it."""
    x, y = multi_label_with_rare_first_labels()
    labels, tagger = labels_and_tagger()
    assert [f.code for f in mw.doctor.check(x, y, model=labels)] == []
    (found,) = mw.doctor.check(x, y, model=tagger)
    assert found.code == "MW011" and NOTE not in found.message
    (unread,) = mw.doctor.check(x, y)
    assert unread.code == "MW011" and NOTE in unread.message and "model=" in unread.message
    data = SequenceDataset(x, y)  # a data set is read alike
    assert mw.doctor.check(data, model=labels) == []
    assert [f.code for f in mw.doctor.check(data, model=tagger)] == ["MW011"]
    assert NOTE in mw.doctor.check(data)[0].message


def test_a_data_set_given_to_fit_is_checked_as_the_model_reads_its_targets():
    """A `SequenceDataset` whose `(N, T)` targets wait for the model: the doors check
    them as given, once the model says how to read them (its batches would show them
    trimmed and filled per step: NaN per sequence, MW005, and no MW011 for a tagger)."""
    x, y = padded_inputs(), regression_targets()
    runs = []
    for data in (SequenceDataset(x, y), (x, y)):
        torch.manual_seed(0)
        model = mw.Sequential([layers.Masking(0.0), layers.LSTM(4), layers.Dense(T)])
        model.compile(optimizer="sgd", loss="mse")
        args = (data,) if isinstance(data, SequenceDataset) else data
        history = model.fit(*args, batch_size=3, epochs=2, verbose=0, seed=0)
        runs.append([*history.history["loss"], model.evaluate(*args)["loss"]])
    assert runs[0] == pytest.approx(runs[1], rel=1e-6)
    x, y = multi_label_with_rare_first_labels()
    labels, tagger = labels_and_tagger()
    labels.fit(SequenceDataset(x, y), epochs=1, verbose=0)
    for door in (tagger.fit, tagger.evaluate):
        with pytest.raises(mw.DoctorError, match="MW011 error: y is padded at the other end"):
            door(SequenceDataset(x, y), verbose=0)
    for data in (SequenceDataset(x, y), x):  # no model: per step, and the finding says so
        with pytest.raises(mw.DoctorError, match=NOTE):
            make_loader(data, None if isinstance(data, SequenceDataset) else y)
