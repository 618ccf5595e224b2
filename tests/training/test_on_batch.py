"""Keras's single-batch methods, `evaluate(return_dict=)`, `predict(verbose=)`,
`fit(initial_epoch=)`, `save` refusing Keras names and `load_model`: Keras parity on a
masked model, and each refusal's message."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest
import torch
from keras_oracle import randomize_weights

import maskwise
from maskwise import ConfigError, ShapeError, from_keras, optimizers
from tests.training_helpers import assert_same_weights, logits_loss, tagger, tagging_data

LENGTHS = [5, 3, 1, 4]


def padded_regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(4, 5, 3)` inputs padded with zeros after each length; per-step targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = rng.normal(size=(4, 5, 2)).astype("float32")
    for row, length in enumerate(LENGTHS):
        x[row, length:] = 0.0
    return x, y


def keras_and_ours():
    """A Keras `Masking -> Dense -> Dense` and its maskwise conversion, both compiled
    with SGD and mse (Keras's metric `mae` too)."""
    theirs = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Masking(0.0),
            keras.layers.Dense(4, "tanh"),
            keras.layers.Dense(2),
        ]
    )
    randomize_weights(theirs)
    ours = from_keras(theirs)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"])
    ours.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"])
    return theirs, ours


def test_train_and_test_on_batch_match_keras():
    theirs, ours = keras_and_ours()
    x, y = padded_regression()
    keras_test = theirs.test_on_batch(x, y, return_dict=True)
    our_test = ours.test_on_batch(x, y, return_dict=True)
    assert our_test["loss"] == pytest.approx(float(keras_test["loss"]), rel=1e-5)
    assert our_test["mae"] == pytest.approx(float(keras_test["mae"]), rel=1e-5)

    keras_loss, keras_mae = theirs.train_on_batch(x, y)
    loss, mae = ours.train_on_batch(x, y)  # [loss, metric], Keras's order
    assert (loss, mae) == pytest.approx((float(keras_loss), float(keras_mae)), rel=1e-5)
    x2, y2 = padded_regression(seed=1)
    keras_second = theirs.train_on_batch(x2, y2, return_dict=True)
    second = ours.train_on_batch(x2, y2, return_dict=True)  # this batch's figures alone
    assert second["loss"] == pytest.approx(float(keras_second["loss"]), rel=1e-5)
    assert second["mae"] == pytest.approx(float(keras_second["mae"]), rel=1e-5)
    for ours_w, keras_w in zip(ours.parameters(), theirs.trainable_weights, strict=True):
        expected = keras.ops.convert_to_numpy(keras_w)
        np.testing.assert_allclose(ours_w.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_results_forms_and_predict_on_batch():
    _, ours = keras_and_ours()
    x, y = padded_regression()
    logs = ours.evaluate(x, y, verbose=0)
    assert ours.evaluate(x, y, return_dict=False) == [logs["loss"], logs["mae"]]
    ours.compile(optimizer="sgd", loss="mse")
    assert ours.test_on_batch(x, y) == pytest.approx(logs["loss"])  # the loss alone
    out = ours.predict_on_batch(x)
    assert [len(seq) for seq in out] == LENGTHS
    expected = ours(torch.tensor(x)).values.detach().numpy()
    np.testing.assert_allclose(out[1], expected[1, :3], rtol=1e-6)


def test_on_batch_refusals():
    model = tagger()
    x, y = tagging_data(4)
    with pytest.raises(ConfigError, match=r"train_on_batch\(\) needs a compiled model"):
        model.train_on_batch(x, y)
    model.compile(optimizer="adam", loss=logits_loss())
    with pytest.raises(ShapeError, match=r"train_on_batch\(\) needs targets"):
        model.train_on_batch(x)


def test_initial_epoch_continues_as_one_fit():
    x, y = tagging_data(24)
    straight = tagger()
    split = copy.deepcopy(straight)
    for model in (straight, split):
        model.compile(optimizer=optimizers.Adam(0.01), loss=logits_loss())
    straight.fit(x, y, epochs=3, batch_size=8, seed=0, verbose=0)
    split.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    history = split.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, seed=0, verbose=0)
    assert history.epoch == [1, 2]
    assert_same_weights(straight, split, atol=1e-6)
    with pytest.raises(
        ConfigError, match=r"(?s)initial_epoch.*received: initial_epoch=4, epochs=3"
    ):
        split.fit(x, y, epochs=3, initial_epoch=4, verbose=0)


def test_predict_verbose_reports_batches_and_real_steps(capsys):
    model = tagger()
    x, _ = tagging_data(6)
    model.predict(x, batch_size=4, verbose=2)
    line = capsys.readouterr().out
    assert line.startswith("2/2 - ") and "real steps/s" in line


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.weights.h5", "M.HDF5"])
def test_save_refuses_keras_file_names(tmp_path, name):
    model = tagger()
    model(maskwise.Masked(torch.ones(1, 2, dtype=torch.long)))
    stem = name.rsplit(".", 1)[0]
    with pytest.raises(ConfigError, match=rf"(?s)Keras's .* format.*{stem}\.safetensors"):
        model.save(tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_load_model_round_trip(tmp_path):
    x, y = tagging_data(8)
    model = tagger()
    model.compile(optimizer=optimizers.RMSprop(0.01), loss=logits_loss())
    model.fit(x, y, epochs=1, batch_size=4, seed=0, verbose=0)
    loaded = maskwise.models.load_model(model.save(tmp_path / "m.safetensors"))
    assert_same_weights(model, loaded)
    assert isinstance(loaded.optimizer, optimizers.RMSprop)


def test_compiled_auc_is_keras_auc_over_the_real_steps():
    """`compile(metrics=["auc"])` gives `keras.metrics.AUC` weighted by the mask (Keras's
    compiled "auc" itself counts the padded steps too)."""
    theirs = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Masking(0.0),
            keras.layers.Dense(1, "sigmoid"),
        ]
    )
    randomize_weights(theirs)
    ours = from_keras(theirs)
    ours.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["auc"])
    x, _ = padded_regression()
    y = (np.random.default_rng(3).random((4, 5, 1)) < 0.5).astype("float32")
    real = (np.abs(x).sum(-1) > 0).astype("float32")
    auc = keras.metrics.AUC()
    auc.update_state(y, keras.ops.convert_to_numpy(theirs(x)), real)
    got = ours.test_on_batch(x, y, return_dict=True)
    assert got["auc"] == pytest.approx(float(auc.result()), abs=1e-6)


class BatchCounter(maskwise.callbacks.Callback):
    """Counts the batches of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.counts.append(0)

    def on_batch_end(self, batch, logs=None):
        self.counts[-1] += 1


def test_steps_per_epoch_walks_the_passes_as_keras():
    x, y = tagging_data(40)  # 5 batches of 8
    one_pass = tagger()
    windows = copy.deepcopy(one_pass)
    for model in (one_pass, windows):
        model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss=logits_loss())
    one_pass.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    counter = BatchCounter()
    windows.fit(
        x, y, epochs=2, steps_per_epoch=3, batch_size=8, seed=0, verbose=0, callbacks=[counter]
    )
    assert counter.counts == [3, 2]  # Keras: the second epoch runs out of data
    assert_same_weights(one_pass, windows, atol=1e-6)  # the same 5 batches, in order
    windows.fit(
        x,
        y,
        epochs=4,
        initial_epoch=2,
        steps_per_epoch=3,
        batch_size=8,
        seed=0,
        verbose=0,
        callbacks=[counter],
    )
    assert counter.counts == [3, 2, 3, 2]
    with pytest.raises(ConfigError, match=r"(?s)steps_per_epoch.*received: steps_per_epoch=0"):
        windows.fit(x, y, steps_per_epoch=0, verbose=0)


def test_load_model_of_a_keras_file_says_how_to_convert_it(tmp_path):
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    with pytest.raises(ConfigError, match=r"(?s)not a readable safetensors.*from_keras\(keras"):
        maskwise.models.load_model(path)
