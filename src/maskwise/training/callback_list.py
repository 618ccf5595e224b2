"""`CallbackList`: the one place that calls the callbacks' hooks, in order (those of
`fit`, and the `on_test_*` and `on_predict_*` hooks of `evaluate`, `predict` and `fit`'s
validation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..callbacks import (
    Callback,
    History,
    Logs,
    TerminateOnNaN,
    acts_before_batches,
    hook_order,
    keyed,
    overrides,
    wants_batch_logs,
)


class CallbackList:
    """The callbacks of one `fit`, with a `History` last.

    Hooks run in the order given, except that the `ModelCheckpoint`s run after the
    others (so a checkpoint saved at the end of an epoch holds the other callbacks'
    state after it) and the `History` after all (it sees every log, as in Keras).
    `on_train_batch_end` (which calls `on_batch_end` unless overridden, as in Keras)
    goes only to the callbacks that act on batches: a batch's logs cost a
    device synchronisation, so `has_batch_hooks` tells the loop whether to build them.

    Example:
        >>> class Shout(mw.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print("epoch", epoch, sorted(logs))
        >>> model = Sequential([layers.Dense(1)])
        >>> save = mw.callbacks.ModelCheckpoint("model.safetensors")
        >>> [type(c).__name__ for c in CallbackList([save, Shout()], model).callbacks]
        ['Shout', 'ModelCheckpoint', 'History']
        >>> callbacks = CallbackList([Shout()], model)
        >>> callbacks.on_epoch_end(0, {"loss": 0.5})
        epoch 0 ['loss']
        >>> callbacks.history.history
        {'loss': [0.5]}

    Args:
        callbacks: the callbacks passed to `fit`, `evaluate` or `predict` (None: none).
        model: the model being trained, given to each callback (`callback.model`).
        params: Keras's parameters (`verbose`, `epochs`, `steps`; `epochs=1` for
            `evaluate` and `predict`), given to each callback (`callback.params`).
    """

    def __init__(
        self,
        callbacks: Sequence[Callback] | None,
        model: nn.Module,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.history = History()
        self.callbacks = [*hook_order(callbacks or []), self.history]
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params or {})
        self.stateful = keyed(self.callbacks)
        self.batch_callbacks = [c for c in self.callbacks if wants_batch_logs(c)]
        self.before_batch_callbacks = [c for c in self.callbacks if acts_before_batches(c)]

    @property
    def has_batch_hooks(self) -> bool:
        return bool(self.batch_callbacks)

    def wants(self, hook: str) -> bool:
        """Whether a callback defines `hook` (its logs may cost a device read)."""
        return any(overrides(callback, hook) for callback in self.callbacks)

    def stop_on_non_finite(self, error: Exception) -> bool:
        """Hand a `NonFiniteError` of `fit` to the `TerminateOnNaN` callbacks: True when
        there is one (training ends quietly), False when `fit` raises (none, or one with
        `raise_error=True`)."""
        stoppers = [c for c in self.callbacks if isinstance(c, TerminateOnNaN)]
        if any(c.raise_error for c in stoppers):
            return False
        for callback in stoppers:
            callback.stop(error)
        return bool(stoppers)

    def on_train_begin(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch: int) -> None:
        for callback in self.before_batch_callbacks:
            callback.on_train_batch_begin(batch, {})

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        for callback in self.batch_callbacks:
            callback.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_end(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_test_begin(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_test_begin(logs)

    def on_test_batch_begin(self, batch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_test_batch_end(batch, logs)

    def on_test_end(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_test_end(logs)

    def on_predict_begin(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_predict_begin(logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_predict_batch_begin(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_predict_batch_end(batch, logs)

    def on_predict_end(self, logs: Logs) -> None:
        for callback in self.callbacks:
            callback.on_predict_end(logs)

    def states(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(JSON state, tensors) of each stateful callback, by checkpoint key."""
        return (
            {key: c.get_state() for key, c in self.stateful.items()},
            {key: c.get_tensors() for key, c in self.stateful.items()},
        )

    def restore(self, states: dict[str, dict[str, Any]], tensors: dict[str, Any]) -> None:
        """Put saved states back (keyed as when saved; call after `on_train_begin`).

        A callback gets its saved state when one is saved under its key for the same
        monitored value; any other starts fresh (e.g. a callback added on resume).
        """
        for key, callback in self.stateful.items():
            state = states.get(key)
            if state is None or state.get("monitor") != callback.get_state().get("monitor"):
                continue
            callback.set_state(state, tensors.get(key, {}))
