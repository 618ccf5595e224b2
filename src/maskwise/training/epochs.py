"""Which batches an epoch of `fit` runs (`initial_epoch`, `steps_per_epoch`), which
epochs validate (`validation_freq`), and how many batches an evaluation or a prediction
runs (`steps`, `validation_steps`), as Keras.

Without `steps_per_epoch`, epoch `e` is one pass over the data, its batch order seeded
by `e`. With it, an epoch runs the next `steps_per_epoch` batches of the current pass;
the epoch that reaches the end of the data stops there (shorter), and the next one
starts a new pass. This is Keras's `EpochIterator`, and it is a function of the epoch
index alone, so `initial_epoch` and a resumed `fit` land on the batches a run from
epoch 0 would reach. Example: 5 batches, `steps_per_epoch=3`:

    >>> [tuple(epoch_window(e, 5, 3)) for e in range(3)]  # (seed, start, batches)
    [(0, 0, 3), (0, 3, 2), (1, 0, 3)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ConfigError, format_error


class Window(NamedTuple):
    """The batches of one epoch: `batches` batches from `start` of the pass seeded `seed`."""

    seed: int
    start: int
    batches: int


def epoch_window(epoch: int, num_batches: int, steps_per_epoch: int | None) -> Window:
    """The batches epoch `epoch` runs (see the module docstring)."""
    if steps_per_epoch is None:
        return Window(epoch, 0, num_batches)
    per_pass = -(-num_batches // steps_per_epoch)  # epochs that make one pass
    start = (epoch % per_pass) * steps_per_epoch
    return Window(epoch // per_pass, start, min(steps_per_epoch, num_batches - start))


def _refuse(what: str, expected: str, received: str, fix: str) -> ConfigError:
    return ConfigError(format_error(what, expected=expected, received=received, fix=fix))


def check_epochs(initial_epoch: Any, epochs: Any, steps_per_epoch: Any) -> None:
    """`fit(initial_epoch=..., steps_per_epoch=...)`: None, or an epoch index in `[0,
    epochs]`; None, or a number of batches >= 1."""
    if initial_epoch is not None and not (
        isinstance(initial_epoch, int)
        and not isinstance(initial_epoch, bool)
        and 0 <= initial_epoch <= epochs
    ):
        raise _refuse(
            "fit(initial_epoch=...) is the index of the first epoch to run.",
            f"an integer from 0 to epochs ({epochs}); epochs is the index of the last "
            "epoch, as in Keras",
            f"initial_epoch={initial_epoch!r}, epochs={epochs!r}",
            "e.g. `fit(x, y, epochs=10, initial_epoch=5)` runs epochs 6 to 10.",
        )
    if steps_per_epoch is not None and not (
        isinstance(steps_per_epoch, int)
        and not isinstance(steps_per_epoch, bool)
        and steps_per_epoch >= 1
    ):
        raise _refuse(
            "fit(steps_per_epoch=...) is the number of batches an epoch runs.",
            "an integer >= 1, or None for one pass over the data per epoch",
            f"steps_per_epoch={steps_per_epoch!r}",
            "e.g. `fit(x, y, epochs=10, steps_per_epoch=100)`.",
        )


def validates(epoch: int, validation_freq: int) -> bool:
    """Whether epoch `epoch` (from 0) ends with a validation: every `validation_freq`-th
    epoch, counted from 1, as Keras's `_should_eval`.

    >>> [e for e in range(6) if validates(e, 2)]
    [1, 3, 5]
    """
    return (epoch + 1) % validation_freq == 0


def check_validation_freq(validation_freq: Any) -> None:
    """`fit(validation_freq=...)`: an integer >= 1 (Keras 3 takes an integer only)."""
    if not (
        isinstance(validation_freq, int)
        and not isinstance(validation_freq, bool)
        and validation_freq >= 1
    ):
        raise _refuse(
            "fit(validation_freq=...) is how many epochs run between two validations.",
            "an integer >= 1 (1: validate after every epoch); Keras 3 takes no list",
            f"validation_freq={validation_freq!r}",
            "e.g. `fit(x, y, validation_data=(xv, yv), epochs=10, validation_freq=2)` "
            "validates after epochs 2, 4, ..., 10.",
        )


def batches_run(num_batches: int, steps: int | None) -> int:
    """The batches an evaluation or a prediction of `num_batches` runs with `steps`:
    the first `steps`, or all when there are fewer (or `steps` is None).

    >>> batches_run(5, 2), batches_run(5, 9), batches_run(5, None)
    (2, 5, 5)
    """
    return num_batches if steps is None else min(steps, num_batches)


def check_steps(steps: Any, method: str, name: str = "steps") -> None:
    """`evaluate(steps=...)`, `predict(steps=...)`, `fit(validation_steps=...)`: None
    (every batch), or the number of batches to run, >= 1, as in Keras."""
    if steps is not None and not (
        isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1
    ):
        raise _refuse(
            f"{method}({name}=...) is the number of batches to run.",
            "an integer >= 1, or None for every batch of the data",
            f"{name}={steps!r}",
            f"e.g. `{method}(..., {name}=10)` stops after 10 batches.",
        )
