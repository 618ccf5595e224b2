"""Callbacks: Keras 3's callbacks as the oracle on scripted logs, then inside `fit`."""

from __future__ import annotations

import types

import keras
import pytest
import torch
from training_helpers import logits_loss, tagger, tagging_data, weights

import maskwise
from maskwise import ConfigError, callbacks

SCRIPTS = [
    [1.0, 0.9, 0.95, 0.93, 0.8, 0.85, 0.86, 0.87],
    [1.0, 1.0, 1.0, 1.0, 1.0],
    [0.5, 0.6, 0.4, 0.41, 0.39, 0.5, 0.6, 0.7, 0.8],
    [3.0, 2.0, 1.0, 0.5, 0.25, 0.2, 0.19],
]
GAPPED = [  # fit(validation_freq=2, 3): the epochs without validation log no val_loss
    [None, 1.0, None, 0.9, None, 0.95, None, 0.96, None, 0.97],
    [None, None, 1.0, None, None, 1.0, None, None, 1.0, None, None, 1.0],
]


def run_script(
    callback, model, script: list[float | None], monitor: str = "val_loss"
) -> list[dict]:
    callback.set_model(model)
    callback.on_train_begin()
    seen = []
    for epoch, value in enumerate(script):
        logs = {"loss": 1.0} if value is None else {monitor: value}  # None: not validated
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            break
    return seen


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "options",
    [
        {"patience": 0},
        {"patience": 2},
        {"patience": 1, "min_delta": 0.05},
        {"patience": 2, "baseline": 0.45},
        {"patience": 1, "start_from_epoch": 2},
    ],
)
def test_early_stopping_stops_where_keras_does(script: list[float], options: dict) -> None:
    ours = types.SimpleNamespace(stop_training=False)
    theirs = types.SimpleNamespace(stop_training=False)
    stopped = len(run_script(callbacks.EarlyStopping(**options), ours, script))
    expected = len(run_script(keras.callbacks.EarlyStopping(**options), theirs, script))
    assert stopped == expected


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "options",
    [
        {"patience": 1, "factor": 0.5},
        {"patience": 1, "factor": 0.5, "cooldown": 1, "min_lr": 0.2},
        {"patience": 2, "factor": 0.1, "min_delta": 0.05},
    ],
)
def test_reduce_lr_on_plateau_follows_keras(script: list[float], options: dict) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    ours = types.SimpleNamespace(stop_training=False, optimizer=torch.optim.SGD([param], lr=1.0))
    theirs = types.SimpleNamespace(
        stop_training=False, optimizer=keras.optimizers.SGD(learning_rate=1.0)
    )
    ours_logs = run_script(callbacks.ReduceLROnPlateau(**options), ours, script)
    keras_logs = run_script(keras.callbacks.ReduceLROnPlateau(**options), theirs, script)
    assert [log["learning_rate"] for log in ours_logs] == pytest.approx(
        [log["learning_rate"] for log in keras_logs], rel=1e-6
    )
    assert ours.optimizer.param_groups[0]["lr"] == pytest.approx(
        float(theirs.optimizer.learning_rate), rel=1e-6
    )


@pytest.mark.filterwarnings("ignore:.*(not available|without validation)")
@pytest.mark.parametrize("script", GAPPED)
@pytest.mark.parametrize("patience", [0, 1, 2])
def test_epochs_without_validation_are_skipped_as_keras_does(
    script: list[float | None], patience: int
) -> None:
    """EarlyStopping and ReduceLROnPlateau skip an epoch without `val_loss` (a warning)."""
    stop = [types.SimpleNamespace(stop_training=False) for _ in range(2)]
    stopped = [
        len(run_script(module.EarlyStopping(patience=patience), model, script))
        for module, model in zip((callbacks, keras.callbacks), stop, strict=True)
    ]
    assert stopped[0] == stopped[1] < len(script) + 1
    param = torch.nn.Parameter(torch.zeros(1))
    ours = types.SimpleNamespace(stop_training=False, optimizer=torch.optim.SGD([param], lr=1.0))
    theirs = types.SimpleNamespace(
        stop_training=False, optimizer=keras.optimizers.SGD(learning_rate=1.0)
    )
    run_script(callbacks.ReduceLROnPlateau(patience=patience, factor=0.5), ours, script)
    run_script(keras.callbacks.ReduceLROnPlateau(patience=patience, factor=0.5), theirs, script)
    assert ours.optimizer.param_groups[0]["lr"] == pytest.approx(
        float(theirs.optimizer.learning_rate), rel=1e-6
    )


def test_an_epoch_without_validation_warns_and_save_best_only_saves_as_keras(tmp_path) -> None:
    saved = []
    keras_model = types.SimpleNamespace(save=lambda path, **kwargs: saved.append(path))
    model = compiled_model()
    model.build((None, 3))
    for save, on in [
        (keras.callbacks.ModelCheckpoint(tmp_path / "m.keras", save_best_only=True), keras_model),
        (callbacks.ModelCheckpoint(tmp_path / "m.safetensors", save_best_only=True), model),
    ]:
        save.set_model(on)
        save.on_train_begin()
        with pytest.warns(UserWarning, match="val_loss"):
            save.on_epoch_end(0, {"loss": 1.0})
    assert len(saved) == 1  # Keras saves when the monitored value is missing; so do we:
    assert (tmp_path / "m.safetensors").exists()
    with pytest.warns(UserWarning, match=r"EarlyStopping monitors 'val_loss'.*without validation"):
        assert callbacks.EarlyStopping().current({"loss": 1.0}) is None


def scripted(values: list[float], key: str = "val_loss") -> callbacks.LambdaCallback:
    """Overwrite `logs[key]` with a scripted value at the end of every epoch."""
    return callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: logs.update({key: values[epoch]})
    )


def compiled_model() -> maskwise.Sequential:
    model = tagger()
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.01)
    return model


def test_early_stopping_in_fit_restores_the_best_weights() -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    snapshots = []
    record = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(weights(model))
    )
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=10,
        batch_size=8,
        verbose=0,
        validation_data=(x[:2], y[:2]),  # its val_loss overwritten by the script
        callbacks=[scripted([1.0, 0.7, 0.8, 0.9, 0.1, 0.0]), record, stop],
    )
    assert history.epoch == [0, 1, 2, 3]
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1
    best = snapshots[1]
    assert all(torch.equal(value, best[key]) for key, value in weights(model).items())
    assert not all(torch.equal(value, best[key]) for key, value in snapshots[3].items())


def test_reduce_lr_on_plateau_in_fit_changes_the_optimizer() -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0)
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        verbose=0,
        callbacks=[scripted([1.0, 1.0, 1.0, 0.5], "loss"), reduce],
    )
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)


def test_model_checkpoint_saves_the_best_epochs(tmp_path) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    path = tmp_path / "ckpt" / "epoch{epoch:02d}-{val_loss:.1f}.safetensors"
    saved_weights = {}
    record = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: saved_weights.update({epoch: weights(model)})
    )
    check = callbacks.ModelCheckpoint(path, save_best_only=True)
    model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        verbose=0,
        validation_data=(x[:2], y[:2]),  # its val_loss overwritten by the script
        callbacks=[scripted([0.9, 0.5, 0.6, 0.2]), record, check],
    )
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [
        "epoch01-0.9.safetensors",
        "epoch02-0.5.safetensors",
        "epoch04-0.2.safetensors",
    ]
    loaded = maskwise.load(tmp_path / "ckpt" / "epoch02-0.5.safetensors")
    assert all(torch.equal(v, saved_weights[1][k]) for k, v in weights(loaded).items())
    assert loaded.epochs_done == 2


def test_lambda_callback_sees_every_hook() -> None:
    x, y = tagging_data(20)
    model = compiled_model()
    calls = []
    hooks = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch_begin {epoch}"),
        on_batch_end=lambda batch, logs: calls.append(f"batch {batch} {logs['size']}"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: calls.append("train_end"),
    )
    model.fit(
        x, y, epochs=2, batch_size=8, verbose=0, callbacks=[hooks], bucketing=False, shuffle=False
    )
    batches = ["batch 0 8", "batch 1 8", "batch 2 4"]
    assert calls == [
        "train_begin",
        "epoch_begin 0",
        *batches,
        "epoch_end 0 ['accuracy', 'loss']",
        "epoch_begin 1",
        *batches,
        "epoch_end 1 ['accuracy', 'loss']",
        "train_end",
    ]


def test_a_callback_can_stop_training() -> None:
    x, y = tagging_data(8)
    model = compiled_model()

    class StopAfterTwo(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    assert model.fit(x, y, epochs=5, verbose=0, callbacks=[StopAfterTwo()]).epoch == [0, 1]


def test_a_missing_monitored_value_is_a_clear_error() -> None:
    x, y = tagging_data(8)
    message = r"(?s)monitors 'val_loss'.*no validation data.*pass validation_data"
    with pytest.raises(ConfigError, match=message):
        compiled_model().fit(x, y, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_a_per_class_metric_monitored_by_its_keras_name_names_its_logged_values() -> None:
    monitor = callbacks.EarlyStopping(monitor="val_precision")
    logs = {
        "loss": 1.0,
        "val_loss": 1.0,
        "val_precision/0": 0.5,
        "val_precision/1": 0.7,
        "val_precision_macro": 0.6,
    }
    with pytest.raises(
        ConfigError,
        match=r"(?s)not in the epoch's logs. The metric logs one value per class and their "
        r"average: \['val_precision/0', 'val_precision/1', 'val_precision_macro'\].*"
        r"\n  fix: monitor one of them, e.g. 'val_precision_macro'",
    ) as caught:
        monitor.current(logs)
    assert "validation_data" not in str(caught.value)  # validation data was given
    with pytest.raises(ConfigError, match=r"'val_acc', .*logs.\n.*\n.*\n  fix: monitor a logged"):
        callbacks.EarlyStopping(monitor="val_acc").current(logs)


def test_keras_callbacks_and_a_single_callback_are_clear_errors() -> None:
    x, y = tagging_data(8)
    model = compiled_model()
    with pytest.raises(
        maskwise.MaskwiseTypeError,
        match=r"callbacks\[1\] is not a maskwise callback.\n.*\n  received: keras\..*"
        r"EarlyStopping\n  fix: use `maskwise.callbacks.EarlyStopping`",
    ):
        model.fit(x, y, verbose=0, callbacks=[callbacks.History(), keras.callbacks.EarlyStopping()])
    with pytest.raises(maskwise.MaskwiseTypeError, match=r"subclass `maskwise\.callbacks"):
        model.fit(x, y, verbose=0, callbacks=[print])
    with pytest.raises(maskwise.MaskwiseTypeError, match=r"`callbacks=\[EarlyStopping\(...\)\]`"):
        model.fit(x, y, verbose=0, callbacks=callbacks.EarlyStopping(monitor="loss"))


def test_monitor_direction_errors() -> None:
    with pytest.raises(ConfigError, match="cannot tell whether 'speed' should go up or down"):
        callbacks.EarlyStopping(monitor="speed")
    assert callbacks.EarlyStopping(monitor="val_accuracy").is_improvement(0.9, 0.8)
    assert callbacks.EarlyStopping(monitor="speed", mode="min").is_improvement(0.8, 0.9)
    with pytest.raises(ConfigError, match="unknown mode"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ConfigError, match="factor below 1"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_model_checkpoint_path_fields_must_be_logged(tmp_path) -> None:
    x, y = tagging_data(8)
    check = callbacks.ModelCheckpoint(tmp_path / "m-{val_acc:.2f}.safetensors")
    with pytest.raises(ConfigError, match=r"uses \{val_acc\}, which is not in the epoch's logs"):
        compiled_model().fit(x, y, verbose=0, callbacks=[check])


def saved_weights_of(path) -> dict[str, torch.Tensor]:
    return weights(maskwise.load(path))


@pytest.mark.parametrize("save_best_only", [False, True])
def test_model_checkpoint_never_writes_non_finite_weights(tmp_path, save_best_only: bool) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    path = tmp_path / "model.safetensors"
    good: dict = {}

    def poison(epoch: int, logs: dict) -> None:
        if epoch == 0:
            good.update(weights(model))
        else:
            with torch.no_grad():
                model.layers[1].bias[0] = float("nan")

    check = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=save_best_only)
    poisoner = callbacks.LambdaCallback(on_epoch_end=poison)
    with pytest.warns(
        maskwise.MaskWarning, match=r"did not save epoch 2: the weights \['layers\.1\.bias'\]"
    ):
        model.fit(
            x,
            y,
            epochs=2,
            batch_size=8,
            verbose=0,
            callbacks=[check, scripted([1.0, 0.5], "loss"), poisoner],
        )
    kept = saved_weights_of(path)
    assert all(torch.equal(value, good[key]) for key, value in kept.items())
    assert check.best == (1.0 if save_best_only else None)  # the refused epoch is not the best


def test_a_run_that_goes_nan_keeps_the_last_good_checkpoint(tmp_path) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    path = tmp_path / "model.safetensors"
    good: dict = {}

    def at_epoch_begin(epoch: int, logs: dict) -> None:
        if epoch == 1:
            good.update(weights(model))
            model.optimizer.param_groups[0]["lr"] = float("inf")

    blow_up = callbacks.LambdaCallback(on_epoch_begin=at_epoch_begin)
    check = callbacks.ModelCheckpoint(path, monitor="loss")
    with pytest.raises(maskwise.NonFiniteError, match="epoch 2, batch 1"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[check, blow_up])
    kept = saved_weights_of(path)
    assert all(torch.equal(value, good[key]) for key, value in kept.items())
    assert maskwise.load(path).epochs_done == 1


# ------------------------------------------------------------------ Keras's other callbacks
CSV_SCRIPT = [
    {"loss": 0.5, "accuracy": 0.25, "lengths": [3, 1]},
    {"loss": 0.25, "accuracy": 0.5},  # "lengths" missing: NA
]


def run_csv_logger(callback, script: list[dict]) -> None:
    callback.on_train_begin()
    for epoch, logs in enumerate(script):
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end()


@pytest.mark.parametrize("separator", [",", ";"])
def test_csv_logger_writes_the_file_keras_writes(tmp_path, separator: str) -> None:
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    for append in (False, True):  # a second run appends rows without a second header
        run_csv_logger(callbacks.CSVLogger(ours, separator, append), CSV_SCRIPT)
        run_csv_logger(keras.callbacks.CSVLogger(str(theirs), separator, append), CSV_SCRIPT)
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.read_text().count("epoch") == 1


def test_csv_logger_in_fit_has_a_row_per_epoch(tmp_path) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    path = tmp_path / "log.csv"
    history = model.fit(
        x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25,
        callbacks=[callbacks.CSVLogger(path)],
    )  # fmt: skip
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    rows = [line.split(",") for line in lines[1:]]
    assert [row[0] for row in rows] == ["0", "1"]
    assert [float(row[2]) for row in rows] == pytest.approx(history.history["loss"])


def halving(epoch: int, lr: float) -> float:
    return lr if epoch < 2 else lr / 2


def test_learning_rate_scheduler_sets_the_rates_keras_sets() -> None:
    x = torch.randn(8, 3).numpy()
    y = torch.randn(8, 1).numpy()
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    expected = theirs.fit(
        x, y, epochs=4, verbose=0, callbacks=[keras.callbacks.LearningRateScheduler(halving)]
    ).history["learning_rate"]
    model = maskwise.Sequential([maskwise.layers.Dense(1)])
    model.compile("sgd", "mse", learning_rate=0.1)
    seen: list[float] = []
    record = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(model.optimizer.param_groups[0]["lr"])
    )
    schedule = callbacks.LearningRateScheduler(halving)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[schedule, record])
    assert history.history["learning_rate"] == pytest.approx(expected, rel=1e-6)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.025])  # set before the epoch trains


def test_learning_rate_scheduler_prints_and_checks_the_rate(capsys) -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    model = types.SimpleNamespace(optimizer=torch.optim.SGD([weight], lr=0.1))
    loud = callbacks.LearningRateScheduler(lambda epoch, lr: 0.5, verbose=1)
    loud.set_model(model)
    loud.on_epoch_begin(0)
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.5." in capsys.readouterr().out
    for bad in (None, float("nan"), -1.0, True):
        wrong = callbacks.LearningRateScheduler(lambda epoch, lr, bad=bad: bad)
        wrong.set_model(model)
        with pytest.raises(ConfigError, match=r"(?s)schedule gave .* for epoch 3.*lr\) -> lr"):
            wrong.on_epoch_begin(3)
    assert model.optimizer.param_groups[0]["lr"] == 0.5


def blow_up_at_epoch(model, epoch: int, good: dict) -> callbacks.LambdaCallback:
    def at_epoch_begin(current: int, logs: dict) -> None:
        if current == epoch:
            good.update(weights(model))
            model.optimizer.param_groups[0]["lr"] = float("inf")

    return callbacks.LambdaCallback(on_epoch_begin=at_epoch_begin)


def test_terminate_on_nan_ends_fit_quietly_with_finite_weights(capsys) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    good: dict = {}
    ended: list[dict] = []
    seen = callbacks.LambdaCallback(on_train_end=ended.append)
    history = model.fit(
        x, y, epochs=3, batch_size=8, verbose=0,
        callbacks=[blow_up_at_epoch(model, 1, good), callbacks.TerminateOnNaN(), seen],
    )  # fmt: skip
    assert history.epoch == [0]  # the interrupted epoch has no entry
    assert model.epochs_done == 1 and ended and "loss" in ended[0]
    assert all(torch.equal(value, good[key]) for key, value in weights(model).items())
    out = capsys.readouterr().out
    assert "TerminateOnNaN: terminating training. Training stopped at epoch 2, batch 1" in out
    model.optimizer.param_groups[0]["lr"] = 0.01
    with pytest.raises(maskwise.NonFiniteError):  # without the callback: the error
        model.fit(x, y, epochs=1, verbose=0, callbacks=[blow_up_at_epoch(model, 0, {})])


def test_model_checkpoint_can_save_the_weights_only(tmp_path) -> None:
    x, y = tagging_data(16)
    model = compiled_model()
    path = tmp_path / "epoch{epoch}.weights.safetensors"
    check = callbacks.ModelCheckpoint(path, monitor="loss", save_weights_only=True)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[check])
    saved = tmp_path / "epoch2.weights.safetensors"
    assert maskwise.load(saved).compiled is None  # no compile or training state
    fresh = tagger()
    fresh.load_weights(saved)
    assert all(torch.equal(value, weights(model)[key]) for key, value in weights(fresh).items())
    with pytest.raises(ConfigError, match=r"(?s)Keras's .h5 format.*m.weights.safetensors"):
        callbacks.ModelCheckpoint(tmp_path / "m.weights.h5", save_weights_only=True)


@pytest.mark.parametrize(
    "callback",
    [
        lambda: callbacks.LearningRateScheduler(halving),
        lambda: callbacks.ReduceLROnPlateau("loss", patience=0),
    ],
    ids=["LearningRateScheduler", "ReduceLROnPlateau"],
)
def test_rate_setting_callbacks_refuse_an_optimizer_on_a_schedule(callback) -> None:
    """The schedule sets the rate at every step: a callback's rate would be overwritten
    at the next step (Keras refuses it too)."""
    decay = maskwise.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model = maskwise.Sequential([maskwise.layers.Dense(1)])
    model.compile(maskwise.optimizers.SGD(decay), "mse")
    x, y = torch.randn(4, 3).numpy(), torch.randn(4, 1).numpy()
    with pytest.raises(ConfigError, match=r"(?s)follows a schedule.*ExponentialDecay\(initial"):
        model.fit(x, y, verbose=0, callbacks=[callback()])


# ------------------------------------------------------------------ Keras 3's hook names
def test_keras3_on_train_batch_end_runs_at_each_batch() -> None:
    """Keras 3 calls `on_train_batch_end` (its `on_batch_end` is an alias): a callback
    written for Keras 3 runs here too, as does `LambdaCallback(on_train_batch_end=...)`."""

    class Counter(callbacks.Callback):
        def __init__(self) -> None:
            self.batches: list[int] = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(batch)

    seen: list[int] = []
    counter = Counter()
    hook = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    x, y = tagging_data(20)
    model = compiled_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[counter, hook])
    assert counter.batches == seen == [0, 1, 2, 0, 1, 2]


def test_the_hooks_before_each_training_batch_run_under_both_names() -> None:
    """`on_batch_begin` (Keras 2's name, which `on_train_batch_begin` calls by default,
    as in Keras) and `on_train_batch_begin` run before each training batch, with empty
    logs; LambdaCallback takes either name, not both."""

    class Old(callbacks.Callback):
        def __init__(self) -> None:
            self.batches: list[int] = []

        def on_batch_begin(self, batch, logs=None):
            self.batches.append(batch)
            assert logs == {}

    old, seen = Old(), []
    hook = callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(batch))
    x, y = tagging_data(20)
    compiled_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[old, hook])
    assert old.batches == seen == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ConfigError, match="both on_batch_begin and on_train_batch_begin"):
        callbacks.LambdaCallback(on_batch_begin=print, on_train_batch_begin=print)


# ------------------------------------------------------------------ Keras's arguments, verbose
@pytest.mark.parametrize("name", ["EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint"])
def test_constructor_arguments_follow_keras_names_and_order(name: str) -> None:
    """`ModelCheckpoint(filepath=..., verbose=1)` and Keras's positional order work."""
    import inspect

    def names(cls: type) -> list[str]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self" and p.kind != p.VAR_KEYWORD]

    ours, theirs = names(getattr(callbacks, name)), names(getattr(keras.callbacks, name))
    assert "verbose" in ours and ours == theirs[: len(ours)]


def test_verbose_early_stopping_and_reduce_lr_print_keras_messages(capsys) -> None:
    script = [1.0, 0.9, 0.95, 0.96, 0.97]
    printed = []
    for module in (callbacks, keras.callbacks):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = (
            torch.optim.SGD([param], lr=1.0)
            if module is callbacks
            else keras.optimizers.SGD(learning_rate=1.0)
        )
        model = types.SimpleNamespace(stop_training=False, optimizer=optimizer)
        stop = module.EarlyStopping(patience=2, verbose=1)
        reduce = module.ReduceLROnPlateau(factor=0.5, patience=1, verbose=1)
        for callback in (stop, reduce):
            callback.set_model(model)
            callback.on_train_begin()
        for epoch, value in enumerate(script):
            for callback in (reduce, stop):
                callback.on_epoch_end(epoch, {"val_loss": value})
            if model.stop_training:
                break
        stop.on_train_end()
        printed.append(capsys.readouterr().out)
    assert "early stopping" in printed[0] and "reducing learning rate to 0.5" in printed[0]
    assert printed[0] == printed[1]


def test_verbose_model_checkpoint_prints_keras_messages(tmp_path, capsys) -> None:
    script = [1.0, 0.9, 0.95]
    printed = []
    for module, suffix in ((callbacks, "safetensors"), (keras.callbacks, "keras")):
        path = str(tmp_path / f"{module.__name__}-{{epoch}}.{suffix}")
        save = module.ModelCheckpoint(path, "val_loss", 1, True)  # Keras's order
        if module is callbacks:
            model = compiled_model()
            model.build((None, None, 3))
        else:
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        save.set_model(model)
        save.on_train_begin()
        for epoch, value in enumerate(script):
            save.on_epoch_end(epoch, {"val_loss": value})
        printed.append(capsys.readouterr().out.replace(module.__name__, "").replace(suffix, ""))
    assert "improved from None to 1.00000" in printed[0] and "did not improve" in printed[0]
    assert printed[0] == printed[1]


def test_callbacks_get_keras_params() -> None:
    """Keras's `self.params`: the verbosity, the epochs and the batches per epoch."""

    class Record(callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = dict(self.params)

    x, y = tagging_data(20)
    record = Record()
    compiled_model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[record])
    assert record.seen == {"verbose": 0, "epochs": 3, "steps": 3}  # 20 sequences, 8 a batch
    keras_record = keras.callbacks.LambdaCallback()
    theirs = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    theirs.compile("sgd", "mse")
    theirs.fit(torch.zeros(20, 2), torch.zeros(20, 1), 8, 3, 0, [keras_record])
    assert keras_record.params == record.seen


def test_model_checkpoint_initial_value_threshold_and_save_freq(tmp_path) -> None:
    """Keras's `initial_value_threshold`: with `save_best_only`, a value must beat it
    before the first save; `save_freq="epoch"` is the only frequency (a number of
    batches is refused)."""
    model = compiled_model()
    model.build((None, None, 3))
    path = tmp_path / "best-{epoch}.safetensors"
    save = callbacks.ModelCheckpoint(
        path, save_best_only=True, save_freq="epoch", initial_value_threshold=0.5
    )
    save.set_model(model)
    save.on_train_begin()
    for epoch, value in enumerate([0.9, 0.6, 0.4]):
        save.on_epoch_end(epoch, {"val_loss": value})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-3.safetensors"]
    with pytest.raises(ConfigError, match=r"save_freq=100.*\n.*\n.*fix: .*save_freq='epoch'"):
        callbacks.ModelCheckpoint(path, save_freq=100)
