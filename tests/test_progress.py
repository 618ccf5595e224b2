"""The progress line: fitted to the terminal's width, plain lines off a terminal,
batches and real steps per second labelled."""

from __future__ import annotations

import io

import pytest

from maskwise import ConfigError
from maskwise.progress import ProgressBar, resolve_verbose

LOGS = {"loss": 0.123456, "accuracy": 0.5, "val_loss": 0.25, "val_accuracy": 0.75}


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run(stream: io.StringIO, verbose: int = 1, total: int = 50) -> str:
    bar = ProgressBar(total, verbose, stream=stream, interval=0.0)
    for done in range(1, total + 1):
        bar.update(done, lambda: (1000.0, LOGS))
    bar.finish(2000.0, LOGS)
    return stream.getvalue()


@pytest.mark.parametrize("columns", [40, 80, 120, 200])
def test_live_lines_fit_the_terminal(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    out = run(Terminal())
    assert out.endswith("\n") and out.count("\n") == 1
    redraws = out.rstrip("\n").split("\r")[1:]
    assert len(redraws) == 51
    assert all(len(line) <= columns - 1 for line in redraws)  # never wraps
    last = redraws[-1].rstrip()
    if columns <= 80:  # the logs first: no room for a bar, the line cut at the edge
        assert last.startswith("50/50 - ") and len(last) == columns - 1
    elif columns == 120:  # a shorter bar, the whole line
        assert last.startswith("50/50 [====") and last.endswith("val_accuracy: 0.7500")
    else:
        assert last.startswith("50/50 [==============================] - ")
        assert " real steps/s - loss: 0.1235 - " in last


def test_a_log_file_gets_one_plain_line_per_epoch(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # not used off a terminal
    for verbose in (1, 2):
        out = run(io.StringIO(), verbose)
        assert "\r" not in out and out.count("\n") == 1
        assert out.startswith("50/50 - ") and " real steps/s - loss: 0.1235 - " in out


def test_a_list_valued_metric_shows_its_mean_as_keras_does():
    """`F1Score(average=None)` logs one score per class: Keras's bar shows their mean."""
    logs = {"loss": 0.5, "f1_score": [0.25, 0.75, 0.2], "empty": [], "note": "text"}
    bar = ProgressBar(1, 2, stream=io.StringIO(), interval=0.0)
    bar.finish(10.0, logs)
    line = bar.stream.getvalue()
    assert " - loss: 0.5000 - f1_score: 0.4000\n" in line
    assert "empty" not in line and "note" not in line


def test_verbose_0_writes_nothing():
    assert run(Terminal(), verbose=0) == ""


def test_verbose_auto_is_1_and_others_are_refused():
    assert resolve_verbose("auto") == 1
    for bad in (3, -1, True, "yes"):
        with pytest.raises(ConfigError, match=r"(?s)Unsupported verbose.*'auto' \(1\)"):
            resolve_verbose(bad)
