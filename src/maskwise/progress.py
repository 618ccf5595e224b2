"""A tiny progress bar for `fit`: batches done, real steps per second, running logs.

`verbose=1` redraws one line per epoch (at most every `interval` seconds, and at the
end); `verbose=2` prints one line per epoch when it ends; `verbose=0` prints nothing.
Speed is counted in *real* steps (padding excluded), so bucketed and unbucketed runs
compare on the work that matters.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO


def format_logs(logs: Mapping[str, Any]) -> str:
    """`loss: 0.1234 - accuracy: 0.9876` for the scalar entries of `logs`."""
    return " - ".join(
        f"{key}: {value:.4f}" for key, value in logs.items() if isinstance(value, float | int)
    )


class ProgressBar:
    """One epoch's progress line.

    Example:
        >>> bar = ProgressBar(total=2, verbose=2)
        >>> bar.update(2, lambda: (100, {"loss": 0.5}))
        >>> bar.finish(100, {"loss": 0.5})  # doctest: +ELLIPSIS
        2/2 - ...s - ... steps/s - loss: 0.5000

    Args:
        total: number of batches in the epoch.
        verbose: 0 silent, 1 a live bar, 2 one line at the end.
        stream: where to write (default: `sys.stdout` at the time of writing).
        width: characters of the bar itself.
        interval: minimum seconds between two redraws of the live bar.
    """

    def __init__(
        self,
        total: int,
        verbose: int = 1,
        stream: TextIO | None = None,
        width: int = 30,
        interval: float = 0.1,
    ) -> None:
        self.total = total
        self.verbose = verbose
        self.stream = stream
        self.width = width
        self.interval = interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.done = 0
        self.steps = 0.0
        self.drawn = 0  # length of the live line, to blank what a shorter one leaves

    def _redraw(self, line: str, end: str = "") -> None:
        self._write("\r" + line.ljust(self.drawn) + end)
        self.drawn = len(line)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

    def _line(self, logs: Mapping[str, Any]) -> str:
        elapsed = time.perf_counter() - self.start
        speed = self.steps / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total}"]
        if self.verbose == 1:
            filled = self.width * self.done // max(self.total, 1)
            arrow = ">" if filled < self.width else ""
            parts[0] += f" [{'=' * filled}{arrow}{'.' * (self.width - filled - len(arrow))}]"
        parts += [f"{elapsed:.0f}s", f"{speed:.0f} steps/s"]
        text = format_logs(logs)
        return " - ".join([*parts, text] if text else parts)

    def update(self, done: int, read: Callable[[], tuple[float, Mapping[str, Any]]]) -> None:
        """`done` batches so far; `read()` gives `(real steps so far, running logs)`.

        `read` is called only when the bar is redrawn (reading values off a GPU waits
        for it, so it is not done at every batch)."""
        self.done = done
        now = time.perf_counter()
        if self.verbose == 1 and now - self.last_draw >= self.interval:
            self.last_draw = now
            self.steps, logs = read()
            self._redraw(self._line(logs))

    def finish(self, steps: float, logs: Mapping[str, Any]) -> None:
        """Write the epoch's final line: `steps` real steps in all, the epoch's logs."""
        self.steps = steps
        if self.verbose == 1:
            self._redraw(self._line(logs), "\n")
        elif self.verbose == 2:
            self._write(self._line(logs) + "\n")
