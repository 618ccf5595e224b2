"""A `maskwise.optimizers` optimizer through compile, fit, save, load and resume."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest
import torch

import maskwise
from maskwise import ConfigError, optimizers
from maskwise.optimizers import schedules
from tests.training_helpers import assert_same_weights, logits_loss, tagger, tagging_data


def make_optimizer() -> optimizers.AdamW:
    return optimizers.AdamW(schedules.ExponentialDecay(0.01, 3, 0.5), clipnorm=1.0)


def test_fit_builds_the_optimizer_and_a_checkpoint_restores_it(tmp_path):
    x, y = tagging_data(24)
    halves = tagger()
    straight, fresh = copy.deepcopy(halves), copy.deepcopy(halves)
    opt = make_optimizer()
    halves.compile(optimizer=opt, loss=logits_loss())
    halves.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    assert halves.optimizer is opt and opt.built
    assert opt.iterations == 3  # one update per batch
    assert opt.param_groups[0]["lr"] == 0.01 * 0.5 ** (2 / 3)  # the rate of the last step
    path = halves.save(tmp_path / "m.safetensors")

    restored = maskwise.load(path).optimizer
    assert isinstance(restored, optimizers.AdamW)
    assert restored.get_config() == opt.get_config()
    assert restored.iterations == 3

    straight.compile(optimizer=make_optimizer(), loss=logits_loss())
    straight.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    fresh.fit(x, y, epochs=2, batch_size=8, verbose=0, resume_from=path)
    assert fresh.optimizer.iterations == 6
    assert_same_weights(straight, fresh, atol=1e-6)


@pytest.mark.parametrize("name", ["nadam", "adamax", "adadelta", "lion"])
def test_a_name_s_state_resumes_exactly(name, tmp_path):
    """The state of the optimizers a name makes (Nadam's momentum product, a number)
    goes through a checkpoint: 1 epoch + save + resume is 2 epochs straight."""
    x, y = tagging_data(24)
    straight = tagger()
    halves, fresh = copy.deepcopy(straight), copy.deepcopy(straight)
    for model in (straight, halves):
        model.compile(name, logits_loss(), learning_rate=0.01)
    straight.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    halves.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    path = halves.save(tmp_path / "m.safetensors")
    fresh.fit(x, y, epochs=2, batch_size=8, verbose=0, resume_from=path)
    assert type(fresh.optimizer) is type(straight.optimizer)
    assert_same_weights(straight, fresh, atol=1e-6)


def test_one_optimizer_trains_one_model():
    x, y = tagging_data(8)
    opt = optimizers.SGD(0.1)
    first, second = tagger(), tagger()
    first.compile(optimizer=opt, loss=logits_loss())
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.compile(optimizer=opt, loss=logits_loss())  # compiled again: still its weights
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert opt.iterations == 2
    second.compile(optimizer=opt, loss=logits_loss())
    with pytest.raises(ConfigError, match=r"(?s)already built on another model's weights.*new"):
        second.fit(x, y, epochs=1, batch_size=8, verbose=0)


class Halving(schedules.LearningRateSchedule):
    """A schedule of the user's own, without `get_config`."""

    def __call__(self, step: int) -> float:
        return 0.1 / 2**step


def test_a_schedule_of_your_own_trains_and_saves_the_weights(tmp_path):
    x, y = tagging_data(8)
    model = tagger()
    model.compile(optimizer=optimizers.SGD(Halving()), loss=logits_loss())
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert model.optimizer.param_groups[0]["lr"] == 0.05  # the rate of the 2nd step
    loaded = maskwise.load(model.save(tmp_path / "m.safetensors"))
    assert_same_weights(model, loaded)
    assert loaded.compiled is None  # compile it by hand, as with a loss of your own


# ---------------------------------------------------------------- Keras parity of fit
# A Keras user's script ported: the same initial weights, the same zero-padded data
# behind `Masking` (the ragged list of sequences on our side), the same compile and
# `fit(shuffle=False)`: the same weights and the same history as Keras's.

LENGTHS = [9, 3, 5, 7, 8, 4, 6, 6, 9, 5, 5, 5]
"""Each batch of 4 holds 24 real steps: Keras's epoch loss (the batches' mean weighted
by sequences) and ours (the mean over real steps) are then the same figure."""


def padded_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.zeros((len(LENGTHS), max(LENGTHS), 3), np.float32)
    y = np.zeros((len(LENGTHS), max(LENGTHS), 1), np.float32)
    for i, n in enumerate(LENGTHS):
        x[i, :n] = rng.normal(size=(n, 3))
        y[i, :n, 0] = rng.normal(size=n)
    return x, y


def ragged(x: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    return [a[:n] for a, n in zip(x, LENGTHS, strict=True)], [
        b[:n] for b, n in zip(y, LENGTHS, strict=True)
    ]


def recurrent_stack(lib) -> list:
    return [lib.layers.Masking(0.0), lib.layers.LSTM(4, return_sequences=True), lib.layers.Dense(1)]


def keras_twin() -> tuple[keras.Model, maskwise.Sequential]:
    """A Keras model and ours with the same initial weights."""
    torch.set_num_threads(1)
    x, _ = padded_data()
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input(x.shape[1:]), *recurrent_stack(keras)])
    ours = maskwise.Sequential(recurrent_stack(maskwise))
    ours(torch.from_numpy(x[:1]))
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def fit_both(
    theirs_optimizer,
    ours_optimizer,
    *,
    epochs: int = 3,
    batch_size: int = 4,
    theirs_callbacks=(),
    ours_callbacks=(),
    ragged_data: bool = False,
    **fit_options,
):
    """Compile and fit the twins; returns both models and both histories."""
    theirs, ours = keras_twin()
    x, y = padded_data()
    theirs.compile(optimizer=theirs_optimizer, loss="mse", metrics=["mae"])
    ours.compile(optimizer=ours_optimizer, loss="mse", metrics=["mae"])
    common = {"batch_size": batch_size, "epochs": epochs, "shuffle": False, "verbose": 0}
    keras_history = theirs.fit(x, y, callbacks=list(theirs_callbacks), **common, **fit_options)
    data = ragged(x, y) if ragged_data else (x, y)
    history = ours.fit(
        *data, callbacks=list(ours_callbacks), bucketing=False, **common, **fit_options
    )
    return theirs, ours, keras_history.history, history.history


def assert_same_training(theirs, ours, keras_history: dict, history: dict) -> None:
    for got, want in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    assert history.keys() == keras_history.keys()
    for key, values in keras_history.items():
        assert history[key] == pytest.approx([float(v) for v in values], rel=1e-5, abs=1e-6), key


NAMES = ["adam", "sgd", "rmsprop", "adagrad", "adamw", "nadam", "adamax", "adadelta", "lion"]


@pytest.mark.parametrize("name", NAMES)
def test_an_optimizer_name_trains_as_keras_s(name):
    """A name is Keras's optimizer, its defaults and its update rule (PyTorch's RMSprop,
    Adam and NAdam put epsilon or the momentum schedule elsewhere)."""
    theirs, ours, keras_history, history = fit_both(name, name, ragged_data=name == "adam")
    assert type(ours.optimizer) is optimizers.OPTIMIZER_CLASSES[type(theirs.optimizer).__name__]
    assert_same_training(theirs, ours, keras_history, history)


KERAS_ARGUMENTS = [
    ("Adam", (0.05, 0.8, 0.99, 1e-3, True), {}),
    ("Adam", (0.05,), {"weight_decay": 0.1, "clipnorm": 0.1}),
    ("Adam", (0.05,), {"global_clipnorm": 0.1}),
    ("Adam", (0.05,), {"clipvalue": 0.01, "name": "adam"}),
    ("AdamW", (0.05, 0.1), {"amsgrad": True}),
    ("SGD", (0.1, 0.9, True), {}),
    ("SGD", (), {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 0.01}),
    ("RMSprop", (0.01, 0.8, 0.5, 1e-7, True), {}),
    ("RMSprop", (), {"learning_rate": 0.01, "epsilon": 1e-3, "global_clipnorm": 0.5}),
    ("Adagrad", (0.1, 0.5, 1e-3), {}),
    ("Nadam", (0.05, 0.8, 0.99), {"clipnorm": 0.1}),
    ("Adamax", (0.05, 0.8, 0.99, 1e-3), {}),
    ("Adadelta", (1.0, 0.9), {}),
    ("Lion", (0.01, 0.8, 0.9), {"weight_decay": 0.1}),
    ("SGD", (0.1,), {"use_ema": True}),  # fit ends on the averaged weights
    ("Adam", (0.1,), {"use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 2}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), KERAS_ARGUMENTS)
def test_an_optimizer_with_keras_s_arguments_trains_as_keras_s(name, args, kwargs):
    made = (
        getattr(keras.optimizers, name)(*args, **kwargs),
        getattr(optimizers, name)(*args, **kwargs),
    )
    assert_same_training(*fit_both(*made))


SCHEDULES = [
    ("ExponentialDecay", (0.1, 2, 0.5), {"staircase": True}),
    ("PiecewiseConstantDecay", ([2, 5], [0.1, 0.05, 0.01]), {}),
    ("CosineDecay", (0.0, 4), {"alpha": 0.1, "warmup_target": 0.1, "warmup_steps": 3}),
    ("InverseTimeDecay", (0.1, 2, 0.5), {}),
    ("PolynomialDecay", (0.1, 4, 0.01, 2.0, True), {}),
    ("CosineDecayRestarts", (0.1, 2), {"m_mul": 0.5}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), SCHEDULES)
def test_a_schedule_trains_as_keras_s(name, args, kwargs):
    """Evaluated at each update (3 per epoch), as Keras does: the same weights, and the
    rate of the last update."""
    made = (
        getattr(keras.optimizers.schedules, name)(*args, **kwargs),
        getattr(schedules, name)(*args, **kwargs),
    )
    theirs, ours, *histories = fit_both(
        keras.optimizers.SGD(made[0], momentum=0.5), optimizers.SGD(made[1], momentum=0.5)
    )
    assert_same_training(theirs, ours, *histories)
    last = made[1](ours.optimizer.iterations - 1)
    assert ours.optimizer.param_groups[0]["lr"] == pytest.approx(last)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 9


def test_keras_s_options_fit_provides_otherwise_are_clear_errors():
    with pytest.raises(ConfigError, match=r"(?s)gradient_accumulation_steps=4.*steps_per_update=k"):
        optimizers.Adam(gradient_accumulation_steps=4)
    with pytest.raises(ConfigError, match=r"ema_momentum=\.\.\.\) must be a number in \[0, 1\]"):
        optimizers.SGD(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ConfigError, match=r"ema_overwrite_frequency=\.\.\.\) must be an integer"):
        optimizers.SGD(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(ConfigError, match=r"(?s)loss_scale_factor=128.*precision='fp16'"):
        optimizers.RMSprop(loss_scale_factor=128.0)
    with pytest.raises(ConfigError, match=r"(?s)Adam does not take the argument beta1=.*beta_1"):
        optimizers.Adam(beta1=0.9)
    with pytest.raises(ConfigError, match=r"Lion's beta_1 must be in \(0, 1\]"):
        optimizers.Lion(beta_1=0.0)
    # their defaults are Keras's and pass, and the name is kept
    adam = optimizers.Adam(
        use_ema=True, ema_momentum=0.9, gradient_accumulation_steps=None, name="a"
    )
    assert optimizers.Adam.from_config(adam.get_config()).get_config() == adam.get_config()
    assert adam.get_config()["ema_momentum"] == 0.9


CALLBACKS = {
    "reduce-lr": lambda lib: lib.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=1, min_delta=0.02, cooldown=1, min_lr=0.02
    ),
    "reduce-lr-max": lambda lib: lib.ReduceLROnPlateau(
        monitor="mae", mode="max", factor=0.3, patience=0, min_lr=0.001
    ),
    "early-stop-restore": lambda lib: lib.EarlyStopping(
        monitor="loss", patience=1, min_delta=0.02, restore_best_weights=True
    ),
    "early-stop-start": lambda lib: lib.EarlyStopping(
        monitor="loss", min_delta=0.02, start_from_epoch=2, restore_best_weights=True
    ),
    "early-stop-baseline": lambda lib: lib.EarlyStopping(
        monitor="mae", patience=2, baseline=0.5, restore_best_weights=True
    ),
    "early-stop-baseline-met": lambda lib: lib.EarlyStopping(
        monitor="mae", patience=1, baseline=5.0, min_delta=0.01, restore_best_weights=True
    ),
    "scheduler": lambda lib: lib.LearningRateScheduler(
        lambda epoch, lr: lr * 0.5 if epoch % 2 else lr + 0.01
    ),
}


@pytest.mark.parametrize("name", CALLBACKS)
def test_a_callback_changes_training_as_keras_s_does(name):
    """The same epochs run, the same weights (restored ones too), the same logs
    (`learning_rate` where Keras logs it)."""
    make = CALLBACKS[name]
    theirs, ours, keras_history, history = fit_both(
        keras.optimizers.SGD(0.1),
        optimizers.SGD(0.1),
        epochs=6,
        theirs_callbacks=[make(keras.callbacks)],
        ours_callbacks=[make(maskwise.callbacks)],
    )
    assert_same_training(theirs, ours, keras_history, history)
    assert ("learning_rate" in history) == (name.startswith(("reduce", "scheduler")))


def test_model_checkpoint_keeps_the_weights_keras_keeps(tmp_path):
    def save(lib, suffix):
        path = str(tmp_path / f"best.weights.{suffix}")
        return lib.ModelCheckpoint(
            path, monitor="mae", save_best_only=True, save_weights_only=True, mode="max"
        )

    theirs, ours, *histories = fit_both(
        keras.optimizers.Adam(0.05),
        optimizers.Adam(0.05),
        theirs_callbacks=[save(keras.callbacks, "h5")],
        ours_callbacks=[save(maskwise.callbacks, "safetensors")],
    )
    assert_same_training(theirs, ours, *histories)
    last = ours.get_weights()
    theirs.load_weights(tmp_path / "best.weights.h5")
    ours.load_weights(tmp_path / "best.weights.safetensors")
    assert_same_training(theirs, ours, *histories)
    assert not np.allclose(ours.get_weights()[0], last[0])  # the best epoch is not the last


def test_terminate_on_nan_stops_where_keras_does_without_the_broken_step():
    """Both stop in the epoch of the first infinite loss; maskwise keeps neither that
    step nor that epoch's log (docs/coming-from-keras.md), so its weights stay finite."""
    _, ours, keras_history, history = fit_both(
        keras.optimizers.SGD(1e6),
        optimizers.SGD(1e6),
        epochs=4,
        theirs_callbacks=[keras.callbacks.TerminateOnNaN()],
        ours_callbacks=[maskwise.callbacks.TerminateOnNaN()],
    )
    assert not np.isfinite(keras_history["loss"][-1])
    assert history.keys() == keras_history.keys()
    for key, values in history.items():
        assert values == pytest.approx(keras_history[key][:-1], rel=1e-5)
    assert all(np.isfinite(w).all() for w in ours.get_weights())
