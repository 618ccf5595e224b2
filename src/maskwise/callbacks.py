"""Callbacks for `fit`, with Keras's names and semantics.

A callback is an object with hooks that `fit` calls: `on_train_begin(logs)`,
`on_epoch_begin(epoch, logs)`, `on_batch_end(batch, logs)`, `on_epoch_end(epoch, logs)`,
`on_train_end(logs)`; `evaluate(callbacks=...)` and `fit`'s validation call
`on_test_begin`, `on_test_batch_begin`, `on_test_batch_end`, `on_test_end`, and
`predict(callbacks=...)` the `on_predict_*` hooks, as in Keras. `fit` (`evaluate`,
`predict`) sets `callback.model` first. Setting `model.stop_training =
True` in a hook ends training after the current epoch. `logs` at the end of an epoch
holds that epoch's `loss`, metrics, and `val_*` entries (see `Trainable.fit`).

The monitoring callbacks (`EarlyStopping`, `ModelCheckpoint`, `ReduceLROnPlateau`)
follow Keras 3 (`keras/src/callbacks/`) step for step, with one deliberate difference:
a monitored value that can never be in the logs (a misspelt name, `val_loss` without
validation data) is a `ConfigError`, not a warning and a callback that silently never
acts. On an epoch that `fit(validation_freq=N)` does not validate, a monitored `val_*`
value is missing as in Keras: a warning, and the callback skips that epoch
(`ModelCheckpoint(save_best_only=True)` saves, as Keras's does).

The state of these callbacks (their best value, patience counters, `EarlyStopping`'s
best weights) travels in checkpoints: `get_state()` gives it as JSON, `get_tensors()`
its tensors, `set_state(state, tensors)` puts it back. `fit(..., resume_from=...)`
restores it into the callbacks passed to the resumed `fit` (matched by class, order
and monitored value), so a resumed run equals an uninterrupted one. `fit` runs the
`ModelCheckpoint`s after the other callbacks of an epoch, so that a checkpoint holds
their state at the end of that epoch.
"""

from __future__ import annotations

import csv
import math
import operator
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, MaskWarning, MaskwiseTypeError, format_error

Logs = dict[str, Any]


class Callback:
    """Base class: override the hooks you need (they do nothing by default).

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(epoch, round(logs["loss"], 3))
    """

    model: Any = None
    params: dict[str, Any] | None = None
    """Keras's parameters, set by `fit`, `evaluate` and `predict`: `verbose`, `epochs`
    (1 for `evaluate` and `predict`) and `steps` (the batches per epoch, or run)."""

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """After the last epoch (`logs`: the last epoch's logs)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Before epoch `epoch` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """After epoch `epoch` and its validation; `logs` holds its results."""

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before each training batch (`logs` is empty)."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Keras 3's name of the hook `fit` calls before each training batch; by default
        it calls `on_batch_begin`, as in Keras, so a callback overrides either one."""
        self.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After each training batch; `logs` holds `loss` (that batch's) and `size`."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Keras 3's name of the hook `fit` calls after each training batch; by default it
        calls `on_batch_end`, as in Keras, so a callback overrides either one."""
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs | None = None) -> None:
        """Before an evaluation: `evaluate(callbacks=...)`, or `fit`'s validation."""

    def on_test_end(self, logs: Logs | None = None) -> None:
        """After an evaluation; `logs` holds its results (without the `val_` prefix)."""

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before each batch of an evaluation (`logs` is empty)."""

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After each batch of an evaluation; `logs` holds the loss and the metrics so
        far (under data parallel, this process's share so far), as in Keras."""

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        """Before `predict(callbacks=...)` runs its batches."""

    def on_predict_end(self, logs: Logs | None = None) -> None:
        """After `predict`'s last batch (`logs` is empty)."""

    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before each batch of `predict` (`logs` is empty)."""

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After each batch of `predict`; `logs["outputs"]` is the batch's output
        (`predict_step`'s: a padded `Masked`; None for an empty share under data
        parallel)."""

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback, as JSON values ({} here: nothing)."""
        return {}

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint keeps of this callback ({} here: none)."""
        return {}

    def set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `get_state` and `get_tensors` gave (after `on_train_begin`)."""


def has_state(callback: Callback) -> bool:
    """Whether `callback` keeps a state worth saving in checkpoints."""
    return type(callback).get_state is not Callback.get_state


def keyed(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """The callbacks with a state, under stable checkpoint keys: the class name, then
    `:1`, `:2`, ... for further callbacks of the same class (in the order given)."""
    out: dict[str, Callback] = {}
    counts: dict[str, int] = {}
    for callback in callbacks:
        if not has_state(callback):
            continue
        name = type(callback).__name__
        index = counts.get(name, 0)
        counts[name] = index + 1
        out[name if index == 0 else f"{name}:{index}"] = callback
    return out


def hook_order(callbacks: Sequence[Callback]) -> list[Callback]:
    """`callbacks` with the `ModelCheckpoint`s last (the others keep their order), so a
    checkpoint saved at the end of an epoch holds the other callbacks' state after it.

    A single callback, or anything that is not a maskwise `Callback` (a Keras callback,
    a function), is a `MaskwiseTypeError` naming the maskwise callback to use."""
    if isinstance(callbacks, Callback):
        raise MaskwiseTypeError(
            format_error(
                "callbacks must be a list of callbacks.",
                received=f"one {type(callbacks).__name__}",
                fix=f"pass `callbacks=[{type(callbacks).__name__}(...)]`.",
            )
        )
    for position, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise MaskwiseTypeError(_foreign_callback(position, callback))
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    return [*(c for c in callbacks if not isinstance(c, ModelCheckpoint)), *checkpoints]


def require_validation(callbacks: Sequence[Callback]) -> None:
    """A `ConfigError` when a callback of a `fit` without validation data monitors a
    `val_*` value, which would never be logged."""
    for callback in callbacks:
        if (
            isinstance(callback, MonitorCallback)
            and callback.reads_monitor
            and callback.monitor.startswith("val_")
        ):
            raise ConfigError(
                format_error(
                    f"{type(callback).__name__} monitors {callback.monitor!r}, which is "
                    "not in the epoch's logs: fit has no validation data.",
                    expected="validation data for a val_* monitor",
                    received=repr(callback.monitor),
                    fix="pass validation_data (or validation_split) to fit, or monitor "
                    "a training value such as 'loss'.",
                )
            )


def _foreign_callback(position: int, callback: Any) -> str:
    """The message for `callbacks[position]` that is not a maskwise `Callback`."""
    kind = type(callback)
    name = kind.__name__
    ours = globals().get(name)
    if isinstance(ours, type) and issubclass(ours, Callback):
        fix = f"use `maskwise.callbacks.{name}` (Keras's arguments), made for maskwise's fit."
    else:
        fix = (
            "subclass `maskwise.callbacks.Callback` (hooks on_epoch_end(epoch, logs), ...), "
            "or wrap a function in `maskwise.callbacks.LambdaCallback(on_epoch_end=...)`."
        )
    return format_error(
        f"callbacks[{position}] is not a maskwise callback.",
        expected="maskwise.callbacks.Callback objects",
        received=f"{kind.__module__}.{kind.__qualname__}",
        fix=fix,
    )


def acts_before_batches(callback: Callback) -> bool:
    """Whether `callback` does something before each training batch."""
    if isinstance(callback, LambdaCallback):
        return callback.batch_begin is not None
    return overrides(callback, "on_batch_begin") or overrides(callback, "on_train_batch_begin")


def wants_batch_logs(callback: Callback) -> bool:
    """Whether `callback` does something at each training batch (reading a batch's loss
    off the device costs a synchronisation, so `fit` builds batch logs only when
    needed)."""
    if isinstance(callback, LambdaCallback):
        return callback.batch_end is not None
    return overrides(callback, "on_batch_end") or overrides(callback, "on_train_batch_end")


def overrides(callback: Callback, hook: str) -> bool:
    """Whether `callback`'s class defines `hook` itself (not `Callback`'s no-op)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class History(Callback):
    """Records every epoch's logs; `fit` returns it.

    Attributes:
        history: `{"loss": [...], "accuracy": [...], "val_loss": [...], ...}`, one entry
            per epoch.
        epoch: the epoch numbers trained (from 0; a resumed fit starts later).

    Example:
        >>> model = Sequential([layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = y = np.ones((4, 3, 1), dtype="float32")
        >>> history = model.fit(x, y, epochs=2, verbose=0)
        >>> history.epoch, list(history.history), len(history.history["loss"])
        ([0, 1], ['loss'], 2)
    """

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


_MINIMIZE = ("loss", "error", "mae", "mse", "crossentropy", "huber")
_MAXIMIZE = ("acc", "precision", "recall", "f1", "auc")


class MonitorCallback(Callback):
    """Shared by the callbacks that watch a logged value (Keras's `MonitorCallback`).

    Example:
        >>> class PrintBest(MonitorCallback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         current = self.current(logs)
        ...         if current is not None and self.is_improvement(current, self.best):
        ...             self.best = current
        ...             print(f"epoch {epoch + 1}: best {self.monitor} so far, {current}")
        >>> best = PrintBest(monitor="val_accuracy")  # "auto": an accuracy should go up
        >>> for epoch, accuracy in enumerate([0.5, 0.75, 0.7]):
        ...     best.on_epoch_end(epoch, {"val_accuracy": accuracy})
        epoch 1: best val_accuracy so far, 0.5
        epoch 2: best val_accuracy so far, 0.75

    Args:
        monitor: the key in the epoch logs, e.g. `"val_loss"`, `"val_accuracy"`.
        mode: `"min"`, `"max"`, or `"auto"` (from the name: losses and errors are
            minimized, accuracies, precision, recall, F1 maximized).
        min_delta: an improvement must be larger than this (absolute).
        baseline: the value to beat at first (None: the first value seen).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
        baseline: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                format_error(
                    f"{type(self).__name__}: unknown mode.",
                    expected="'auto', 'min' or 'max'",
                    received=repr(mode),
                )
            )
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.baseline = baseline
        self.best: float | None = baseline
        self.op = self._direction()

    def _direction(self) -> Callable[[Any, Any], bool]:
        if self.mode == "min":
            return operator.lt
        if self.mode == "max":
            return operator.gt
        name = self.monitor.removeprefix("val_").lower()
        if any(word in name for word in _MINIMIZE):
            return operator.lt
        if any(word in name for word in _MAXIMIZE):
            return operator.gt
        raise ConfigError(
            format_error(
                f"{type(self).__name__} cannot tell whether {self.monitor!r} should go up or down.",
                fix="pass mode='max' (higher is better) or mode='min' (lower is better).",
            )
        )

    @property
    def reads_monitor(self) -> bool:
        """Whether the callback reads the monitored value (ModelCheckpoint: only with
        `save_best_only`)."""
        return True

    def is_improvement(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        delta = -self.min_delta if self.op is operator.lt else self.min_delta
        return bool(self.op(current - delta, reference))

    def current(self, logs: Logs | None) -> float | None:
        """The monitored value in `logs`. On an epoch without validation (`fit(
        validation_freq=N)`: no `val_*` entry at all) a monitored `val_*` value is
        missing: a warning and None, and the callback skips the epoch, as in Keras
        (`fit` refuses a `val_*` monitor when it has no validation data at all). Any
        other missing value is a `ConfigError`."""
        logs = logs or {}
        if self.monitor.startswith("val_") and not any(k.startswith("val_") for k in logs):
            warnings.warn(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not in the "
                f"logs of an epoch without validation; it skips this epoch. Available "
                f"metrics are: {', '.join(logs)}.",
                stacklevel=3,
            )
            return None
        if self.monitor not in logs:
            per_class = sorted(
                k for k in logs if k.startswith((f"{self.monitor}/", f"{self.monitor}_"))
            )
            hint, fix = "", "monitor a logged value, e.g. 'loss' or 'val_' + a compiled metric."
            if per_class:  # Precision, Recall, F1Score log one value per class
                hint = f" The metric logs one value per class and their average: {per_class}."
                fix = f"monitor one of them, e.g. {per_class[-1]!r} (the macro average)."
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} monitors {self.monitor!r}, which is not in the "
                    "epoch's logs." + hint,
                    expected=f"one of {sorted(logs)}",
                    received=repr(self.monitor),
                    fix=fix,
                )
            )
        return float(logs[self.monitor])

    def get_state(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "best": self.best}

    def set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.best = state["best"]


def get_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights and buffers."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored value has stopped improving (Keras semantics).

    Each epoch, `wait` goes up by one unless the value improves on the best so far
    (by more than `min_delta`); training stops once `wait >= patience` (never after
    the first epoch).

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        >>> # model.fit(x, y, validation_data=(xv, yv), epochs=100, callbacks=[stop])

    Args:
        monitor: see `MonitorCallback`.
        min_delta: see `MonitorCallback`.
        patience: epochs without improvement before stopping.
        verbose: 1 prints, as Keras does, the epoch where training stopped and the
            epoch whose weights are restored.
        mode: see `MonitorCallback`.
        baseline: training also stops if the value does not beat this in `patience`
            epochs.
        restore_best_weights: at the end, put back the weights of the best epoch (if
            training ran at least one epoch with the monitored value).
        start_from_epoch: epochs to wait before monitoring starts.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience = patience
        self.verbose = verbose
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self.current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = get_weights(self.model)
            self.best_epoch = epoch
        self.wait += 1
        if self.is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = get_weights(self.model)
            if self.baseline is None or self.is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                best = self.best_epoch + 1
                print(f"Restoring model weights from the end of the best epoch: {best}.")
            self.model.load_state_dict(self.best_weights)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.best_weights or {})

    def set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().set_state(state, tensors)
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_epoch = int(state["best_epoch"])
        self.best_weights = dict(tensors) if self.restore_best_weights and tensors else None


class ModelCheckpoint(MonitorCallback):
    """Save the model (and its training state) at the end of epochs.

    Weights holding NaN or inf are never written: the epoch is skipped with a
    `MaskWarning` naming it, and the previous checkpoint stays as it was.

    `path` may hold Keras-style fields filled from the epoch (counted from 1) and
    its logs, e.g. `"ckpt/epoch{epoch:02d}-{val_loss:.3f}.safetensors"`. Every save is
    atomic (see `maskwise.checkpoint`), and the file can be given to
    `fit(resume_from=...)`.

    Example:
        >>> import os, tempfile
        >>> model = Sequential([layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = y = np.ones((4, 3, 1), dtype="float32")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save = ModelCheckpoint(folder + "/epoch{epoch:02d}.safetensors", monitor="loss")
        ...     _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[save])
        ...     print(sorted(os.listdir(folder)))
        ['epoch01.safetensors', 'epoch02.safetensors']

    Args:
        filepath: where to save (a file path, possibly with `{epoch}` and log fields).
        monitor: the value `save_best_only` compares.
        verbose: 1 prints Keras's message at each epoch: the model saved, or the
            monitored value that did not improve.
        save_best_only: save only when `monitor` improves on the best so far.
        save_weights_only: save with `model.save_weights` (the weights, for
            `model.load_weights`) rather than `model.save` (with the training state,
            for `fit(resume_from=...)`).
        mode: see `MonitorCallback`.
        save_freq: `"epoch"` (Keras's default): save at the end of each epoch; saving
            every so many batches is not implemented.
        initial_value_threshold: with `save_best_only`, the value the first save must
            beat (None: the first epoch saves).

    Raises:
        ConfigError: a Keras file name (`.keras`, `.h5`, `.hdf5`), when the callback is
            made (Keras too refuses a name it cannot write there): the message names the
            `.safetensors` name to use.
    """

    def __init__(
        self,
        filepath: str | Path,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        if save_freq != "epoch":
            raise ConfigError(
                format_error(
                    f"ModelCheckpoint does not take save_freq={save_freq!r}: saving every so "
                    "many batches is not implemented.",
                    expected="save_freq='epoch'",
                    fix="save at the end of each epoch: save_freq='epoch' (the default).",
                )
            )
        # here: maskwise.checkpoint imports the training loop, which imports this module
        from .checkpoint import check_suffix

        # a Keras file name fails here, not at the first epoch's end
        check_suffix(Path(filepath), weights_only=save_weights_only)
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.path = str(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only

    @property
    def reads_monitor(self) -> bool:
        return self.save_best_only

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = self.baseline

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        bad = non_finite_weights(self.model)
        if bad:
            warnings.warn(
                f"ModelCheckpoint did not save epoch {epoch + 1}: the weights {bad[:3]} "
                "hold NaN or inf; the previous checkpoint is kept. Find where training "
                "went non-finite (fit stops with a NonFiniteError at the first "
                "non-finite loss or gradient).",
                MaskWarning,
                stacklevel=2,
            )
            return
        path = self._filled_path(epoch, logs)
        message = f"\nEpoch {epoch + 1}: saving model to {path}"
        current = self.current(logs) if self.save_best_only else None
        if current is not None:  # None: an epoch without validation saves, as in Keras
            best = "None" if self.best is None else f"{self.best:.5f}"
            if not self.is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
                return
            message = (
                f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                f"{current:.5f}, saving model to {path}"
            )
            self.best = current
        if self.verbose > 0:
            print(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {path}")

    def _filled_path(self, epoch: int, logs: Logs) -> Path:
        """The path with its fields filled from the epoch (counted from 1) and its logs."""
        try:
            return Path(self.path.format(epoch=epoch + 1, **logs))
        except KeyError as missing:
            raise ConfigError(
                format_error(
                    f"ModelCheckpoint path {self.path!r} uses {{{missing.args[0]}}}, which is "
                    "not in the epoch's logs.",
                    expected=f"fields among epoch, {', '.join(sorted(logs))}",
                    fix="use a logged name, or pass validation data for val_* fields.",
                )
            ) from missing


def non_finite_weights(model: torch.nn.Module) -> list[str]:
    """Names of `model`'s floating-point weights and buffers that hold NaN or inf."""
    return [
        name
        for name, value in model.state_dict().items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def refuse_scheduled(optimizer: Any, callback: str) -> None:
    """A `ConfigError` for `callback` setting the learning rate of an optimizer whose
    rate follows a schedule, which sets the rate at every step (Keras refuses it too)."""
    schedule = getattr(optimizer, "schedule", None)
    if schedule is None:
        return
    raise ConfigError(
        format_error(
            f"{callback} cannot set the learning rate of an optimizer whose rate follows a "
            "schedule (it sets the rate at every step).",
            received=f"{type(optimizer).__name__}(learning_rate={schedule!r})",
            fix="give the optimizer a number as learning_rate, or drop the callback.",
        )
    )


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when a monitored value stops improving.

    Keras semantics: after `patience` epochs without an improvement larger than
    `min_delta`, every parameter group's `lr` becomes `max(lr * factor, min_lr)`; then
    `cooldown` epochs pass before counting again. Adds `learning_rate` to the logs.

    Example:
        >>> reduce = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
        >>> # model.fit(x, y, validation_data=(xv, yv), callbacks=[reduce]); by hand:
        >>> from types import SimpleNamespace
        >>> weight = torch.nn.Parameter(torch.zeros(1))
        >>> reduce.set_model(SimpleNamespace(optimizer=torch.optim.SGD([weight], lr=0.1)))
        >>> for epoch, val_loss in enumerate([0.9, 0.8, 0.8, 0.8, 0.8]):
        ...     logs = {"val_loss": val_loss}
        ...     reduce.on_epoch_end(epoch, logs)
        ...     print(epoch + 1, logs["learning_rate"])  # the rate the epoch trained with
        1 0.1
        2 0.1
        3 0.1
        4 0.1
        5 0.05

    Args:
        monitor: see `MonitorCallback`.
        factor: the multiplier, < 1.
        patience: epochs without improvement before reducing.
        verbose: 1 prints Keras's message at each reduction, with the new rate.
        mode: see `MonitorCallback`.
        min_delta: see `MonitorCallback` (Keras's default 1e-4).
        cooldown: epochs to wait after a reduction.
        min_lr: the learning rate never goes below this.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if factor >= 1.0:
            raise ConfigError(
                format_error(
                    "ReduceLROnPlateau needs a factor below 1.",
                    received=f"factor={factor}",
                    fix="e.g. factor=0.1 or 0.5.",
                )
            )
        super().__init__(monitor, mode, min_delta)
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.on_train_begin()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        refuse_scheduled(self.model.optimizer, "ReduceLROnPlateau")
        groups = self.model.optimizer.param_groups
        if logs is not None:
            logs["learning_rate"] = float(groups[0]["lr"])
        current = self.current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                reduced = False
                for group in groups:
                    old = float(group["lr"])
                    if old > np.float32(self.min_lr):
                        group["lr"] = max(old * self.factor, self.min_lr)
                        reduced = True
                if reduced:
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
                    if self.verbose > 0:
                        rate = groups[0]["lr"]
                        message = "ReduceLROnPlateau reducing learning rate to"
                        print(f"\nEpoch {epoch + 1}: {message} {rate}.")

    def get_state(self) -> dict[str, Any]:
        """Best value and counters (the learning rate itself is in the optimizer's
        state, which checkpoints keep)."""
        return {**super().get_state(), "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().set_state(state, tensors)
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


class LambdaCallback(Callback):
    """A simple way to write your own callback from plain functions.

    Example:
        >>> losses = []
        >>> record = LambdaCallback(on_epoch_end=lambda epoch, logs: losses.append(logs["loss"]))
        >>> # model.fit(x, y, callbacks=[record])

    Args (Keras's order; Keras 2's `on_batch_begin` and `on_batch_end` by keyword):
        on_epoch_begin: `f(epoch, logs)`.
        on_epoch_end: `f(epoch, logs)`.
        on_train_begin: `f(logs)`.
        on_train_end: `f(logs)`.
        on_train_batch_begin: `f(batch, logs)`, before each training batch.
        on_train_batch_end: `f(batch, logs)`, after each training batch.
        on_batch_begin: the same as on_train_batch_begin (give one of the two).
        on_batch_end: the same as on_train_batch_end (give one of the two).
    """

    def __init__(
        self,
        on_epoch_begin: Callable[[int, Logs], Any] | None = None,
        on_epoch_end: Callable[[int, Logs], Any] | None = None,
        on_train_begin: Callable[[Logs], Any] | None = None,
        on_train_end: Callable[[Logs], Any] | None = None,
        on_train_batch_begin: Callable[[int, Logs], Any] | None = None,
        on_train_batch_end: Callable[[int, Logs], Any] | None = None,
        *,
        on_batch_begin: Callable[[int, Logs], Any] | None = None,
        on_batch_end: Callable[[int, Logs], Any] | None = None,
    ) -> None:
        pairs = {"end": (on_batch_end, on_train_batch_end)}
        pairs["begin"] = (on_batch_begin, on_train_batch_begin)
        for when, (old, keras3) in pairs.items():
            if old is not None and keras3 is not None:
                raise ConfigError(
                    format_error(
                        f"LambdaCallback got both on_batch_{when} and on_train_batch_{when}: "
                        "they name the same hook.",
                        fix=f"pass one function, as on_train_batch_{when}=(Keras 3's name).",
                    )
                )
        self.train_begin = on_train_begin
        self.train_end = on_train_end
        self.epoch_begin = on_epoch_begin
        self.epoch_end = on_epoch_end
        self.batch_end = on_batch_end or on_train_batch_end
        self.batch_begin = on_batch_begin or on_train_batch_begin

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if self.train_begin is not None:
            self.train_begin(logs or {})

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.train_end is not None:
            self.train_end(logs or {})

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        if self.epoch_begin is not None:
            self.epoch_begin(epoch, logs or {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.epoch_end is not None:
            self.epoch_end(epoch, logs or {})

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        if self.batch_begin is not None:
            self.batch_begin(batch, logs or {})

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self.batch_end is not None:
            self.batch_end(batch, logs or {})


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file, as Keras's `CSVLogger` does.

    The columns are `epoch` (counted from 0) and the first epoch's log names, sorted;
    if none starts with `val_`, a `val_` column for each follows (empty: "NA"), as in
    Keras, so that a later run with validation appends to the same columns. A missing
    value is written "NA"; a list or array as `"[a, b]"`. The file is flushed after
    every row, and closed at the end of training.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     log = CSVLogger(Path(folder) / "log.csv")  # fit(..., callbacks=[log])
        ...     log.on_train_begin()
        ...     log.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.75})
        ...     log.on_train_end()
        ...     print((Path(folder) / "log.csv").read_text().splitlines())
        ['epoch,loss,val_loss', '0,0.5,0.75']

    Args:
        filename: the CSV file's path.
        separator: the string between values.
        append: add to an existing file (no second header unless it is empty);
            False overwrites it.
    """

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False) -> None:
        self.filename = str(filename)
        self.separator = separator
        self.append = append
        self.file: Any = None
        self.writer: csv.DictWriter | None = None
        self.keys: list[str] | None = None
        self.header = True

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.on_train_end()
        path = Path(self.filename)
        self.header = not (self.append and path.is_file() and path.stat().st_size > 0)
        self.file = open(path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(
                self.file, fieldnames=["epoch", *self.keys], delimiter=self.separator
            )
            if self.header:
                self.writer.writeheader()
        row = {key: _csv_value(logs.get(key, "NA")) for key in self.keys}
        self.writer.writerow({"epoch": epoch, **row})
        self.file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()
        self.writer = None


def _csv_value(value: Any) -> Any:
    """A log value as Keras's `CSVLogger` writes it: an iterable as `"[a, b]"`."""
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if isinstance(value, Iterable):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to `schedule(epoch, lr)`, as
    Keras's `LearningRateScheduler` does (`epoch` counted from 0, `lr` the current
    rate); every parameter group of the optimizer gets it. Adds `learning_rate` to
    each epoch's logs.

    Example:
        >>> halve = LearningRateScheduler(lambda epoch, lr: lr if epoch < 1 else lr / 2)
        >>> # model.fit(x, y, epochs=3, callbacks=[halve]); by hand:
        >>> from types import SimpleNamespace
        >>> weight = torch.nn.Parameter(torch.zeros(1))
        >>> halve.set_model(SimpleNamespace(optimizer=torch.optim.SGD([weight], lr=0.1)))
        >>> for epoch in range(3):
        ...     logs = {}
        ...     halve.on_epoch_begin(epoch)
        ...     halve.on_epoch_end(epoch, logs)
        ...     print(epoch, logs["learning_rate"])
        0 0.1
        1 0.05
        2 0.025

    Args:
        schedule: `f(epoch, lr) -> new lr`, a number >= 0.
        verbose: 1 prints each epoch's new rate.
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = self.model.optimizer
        refuse_scheduled(optimizer, "LearningRateScheduler")
        groups = optimizer.param_groups
        rate = self.schedule(epoch, float(groups[0]["lr"]))
        number = float(rate) if isinstance(rate, int | float | np.number) else math.nan
        if isinstance(rate, bool) or not math.isfinite(number) or number < 0:
            raise ConfigError(
                format_error(
                    f"LearningRateScheduler: the schedule gave {rate!r} for epoch {epoch}.",
                    expected="a finite number >= 0 (the new learning rate)",
                    received=f"{rate!r} ({type(rate).__name__})",
                    fix="return the learning rate: `schedule(epoch, lr) -> lr`.",
                )
            )
        for group in groups:
            group["lr"] = number
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {number}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.param_groups[0]["lr"])


class TerminateOnNaN(Callback):
    """End training quietly at the first batch that is not finite, Keras's
    `TerminateOnNaN`.

    Without it, `fit` raises a `NonFiniteError` at the first batch whose loss,
    gradients or new weights hold NaN or inf (the step not kept: the weights stay those
    from before the batch). With it, `fit` prints the batch and what was not finite,
    and returns its `History` instead: training ends at that batch; the epoch it
    interrupts gets no validation, no `on_epoch_end` and no entry in the history (its
    logs would not be over the epoch), and `on_train_end` runs with the last finished
    epoch's logs.

    Differences from Keras: Keras looks at the loss only, keeps the step (the weights
    may hold NaN afterwards) and ends the interrupted epoch with its logs (NaN);
    maskwise also stops at non-finite gradients or weights, and keeps the weights finite.

    Example:
        >>> stop = TerminateOnNaN()
        >>> # history = model.fit(x, y, epochs=10, callbacks=[stop])  # no error raised

    Args:
        raise_error: Keras's argument: True makes `fit` raise its `NonFiniteError`
            (where Keras raises a `RuntimeError`) instead of ending quietly.
    """

    def __init__(self, raise_error: bool = False) -> None:
        if not isinstance(raise_error, bool):
            raise ConfigError(
                format_error(
                    "TerminateOnNaN raise_error must be True or False.", received=repr(raise_error)
                )
            )
        self.raise_error = raise_error

    def stop(self, error: Exception) -> None:
        """Called by `fit` with the `NonFiniteError` that ends training."""
        reason = str(error).splitlines()[0]  # names the epoch, the batch and what
        print(f"TerminateOnNaN: terminating training. {reason}")
        self.model.stop_training = True


__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
