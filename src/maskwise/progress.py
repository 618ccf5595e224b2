"""The progress line of `fit` and `predict`: batches done, real steps per second, logs.

`verbose=1` on a terminal redraws one line per epoch (at most every `interval`
seconds, and at the end), cut to the terminal's width so that it never wraps;
`verbose=1` on anything else (a log file, a pipe, a notebook's captured output), and
`verbose=2` anywhere, print one plain line per epoch when it ends, without `\\r`;
`verbose=0` prints nothing.

The line counts batches as Keras does (`12/50`: batches done of the epoch's) and speed
in *real* time steps per second (`real steps/s`: padding excluded, so bucketed and
unbucketed runs compare on the work that matters).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from .errors import ConfigError, format_error

BAR_WIDTH = 30
"""Characters of the bar at most (fewer on a narrow terminal, none below `MIN_BAR`)."""
MIN_BAR = 5


def resolve_verbose(verbose: int | str) -> int:
    """`verbose` as 0, 1 or 2 (`"auto"`, Keras's default, is 1); anything else is a
    `ConfigError`."""
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return int(verbose)
    raise ConfigError(
        format_error(
            "Unsupported verbose.",
            expected="0 (silent), 1 (a progress line), 2 (one line per epoch) or 'auto' (1)",
            received=repr(verbose),
        )
    )


def format_logs(logs: Mapping[str, Any]) -> str:
    """`loss: 0.1234 - accuracy: 0.9876` for the entries of `logs` that are numbers, and
    for those that are lists of numbers (one per class or per threshold:
    `F1Score(average=None)`, `Precision(thresholds=[...])`) their mean, as Keras's
    progress bar shows them; the history keeps the lists."""
    shown = {key: _shown(value) for key, value in logs.items()}
    return " - ".join(f"{key}: {value:.4f}" for key, value in shown.items() if value is not None)


def _shown(value: Any) -> float | None:
    """A log's figure on the progress line: a number as it is, a list of numbers' mean."""

    def number(v: Any) -> bool:
        return isinstance(v, float | int) and not isinstance(v, bool)

    if number(value):
        return value
    if isinstance(value, list | tuple) and value and all(number(v) for v in value):
        return sum(value) / len(value)
    return None


def bar(done: int, total: int, width: int) -> str:
    """`[=====>....]`, `width` characters between the brackets."""
    filled = width * done // max(total, 1)
    arrow = ">" if filled < width else ""
    return f"[{'=' * filled}{arrow}{'.' * (width - filled - len(arrow))}]"


class ProgressBar:
    """One epoch's progress line (see the module docstring).

    Example:
        >>> bar = ProgressBar(total=2, verbose=2)
        >>> bar.update(2, lambda: (100, {"loss": 0.5}))
        >>> bar.finish(100, {"loss": 0.5})  # doctest: +ELLIPSIS
        2/2 - ...s - ... real steps/s - loss: 0.5000

    Args:
        total: number of batches in the epoch.
        verbose: 0 silent, 1 a live line on a terminal (else as 2), 2 one line at the
            end, `"auto"` 1 (see `resolve_verbose`).
        stream: where to write (default: `sys.stdout` at the time of writing).
        interval: minimum seconds between two redraws of the live line.
    """

    def __init__(
        self,
        total: int,
        verbose: int | str = 1,
        stream: TextIO | None = None,
        interval: float = 0.1,
    ) -> None:
        self.total = total
        self.verbose = resolve_verbose(verbose)
        self.stream = stream
        self.interval = interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.done = 0
        self.steps = 0.0
        self.drawn = 0  # length of the live line, to blank what a shorter one leaves

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def live(self) -> bool:
        """Redraw in place: `verbose=1` on a terminal."""
        isatty = getattr(self._out(), "isatty", None)
        return self.verbose == 1 and callable(isatty) and bool(isatty())

    def _write(self, text: str) -> None:
        stream = self._out()
        stream.write(text)
        stream.flush()

    def _redraw(self, line: str, end: str = "") -> None:
        self._write("\r" + line.ljust(self.drawn) + end)
        self.drawn = len(line)

    def _line(self, logs: Mapping[str, Any], columns: int | None = None) -> str:
        """The line; with `columns`, a bar fitted in and the whole cut to that width."""
        elapsed = time.perf_counter() - self.start
        speed = self.steps / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}"
        rest = [f"{elapsed:.0f}s", f"{speed:,.0f} real steps/s"]
        text = format_logs(logs)
        tail = " - ".join([*rest, text] if text else rest)
        if columns is None:
            return f"{count} - {tail}"
        # the last column stays free: a line that fills it wraps on some terminals
        width = min(BAR_WIDTH, columns - 1 - len(f"{count} [] - {tail}"))
        head = f"{count} {bar(self.done, self.total, width)}" if width >= MIN_BAR else count
        return f"{head} - {tail}"[: columns - 1]

    def update(self, done: int, read: Callable[[], tuple[float, Mapping[str, Any]]]) -> None:
        """`done` batches so far; `read()` gives `(real steps so far, running logs)`.

        `read` is called only when the line is redrawn (reading values off a GPU waits
        for it, so it is not done at every batch)."""
        self.done = done
        now = time.perf_counter()
        if now - self.last_draw >= self.interval and self.live:
            self.last_draw = now
            self.steps, logs = read()
            self._redraw(self._line(logs, shutil.get_terminal_size().columns))

    def finish(self, steps: float, logs: Mapping[str, Any]) -> None:
        """Write the epoch's final line: `steps` real steps in all, the epoch's logs."""
        self.steps = steps
        if self.live:
            self._redraw(self._line(logs, shutil.get_terminal_size().columns), "\n")
        elif self.verbose:
            self._write(self._line(logs) + "\n")
