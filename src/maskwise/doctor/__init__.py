"""The mask doctor: find the masking mistakes that fail silently, before training.

`check(x, y, model)` reads padded data (and a model) and returns `Finding`s: a stable
code, a severity, what is wrong in plain words, and the fix. Every code is documented
in `docs/doctor.md` with the user mistake it comes from. From a shell:
`maskwise doctor data.npz` (exit status 1 when a finding is an error).

Example:
    >>> import numpy as np
    >>> X = np.ones((5, 20)); X[:, 16:] = 0      # 5 features x 20 steps, post-padded
    >>> [f.code for f in check(X.reshape(1, 20, 5))]  # the wrong reshape of seed 000
    ['MW001']
    >>> check(X.T[None])
    []
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..masked import Masked
from .data_checks import (
    as_numpy,
    check_layout,
    check_nonfinite,
    check_padding,
    check_targets,
    find_padding,
    to_layout,
    to_targets,
)
from .findings import CODES, Finding, sort_findings
from .keras_file import check_keras_file

__all__ = ["CODES", "Finding", "check", "check_keras_file"]

PROBE_ROWS = 4
"""Sequences the leak probe runs (MW013) when `check` gets a model and data."""


def check(
    x: Any = None,
    y: Any = None,
    model: nn.Module | None = None,
    mask_value: float = 0.0,
    *,
    predictions: Any = None,
    trained: bool = False,
    name: str = "x",
) -> list[Finding]:
    """Look for masking mistakes in data and a model; errors first.

    Args:
        x: inputs: a padded array `(batch, time, features)` (numpy or torch), token ids
            `(batch, time)`, a list of `(time, features)` sequences, or a `Masked`.
        y: per-step targets `(batch, time)` or a list of `(time,)` arrays (optional).
        model: a maskwise model, run on the first 32 sequences of `x` (optional; without
            `x`, only the layer order of a `Sequential` is checked). When that run shows
            no error, the leak probe runs the model again on 4 of them (those with
            padding first) with their padding changed (other values, NaN, more padding,
            real steps moved): MW013 when a real step's output or a gradient changes.
        mask_value: the value that marks padded steps (as in `Masking(mask_value)`).
        predictions: the model's predictions on `x`: class ids `(batch, time)` or scores
            `(batch, time, classes)`, to check for one-class predictions (MW009).
        trained: the model is trained: check its own predictions on `x` (MW009).
        name: what to call `x` in messages.

    Returns:
        The findings, errors first; an empty list when nothing looks wrong.
    """
    findings: list[Finding] = []
    if x is None:
        if model is not None:
            from .model_checks import check_layers

            findings += check_layers(model)
        return sort_findings(findings)
    mask_value = float(mask_value)
    if isinstance(x, Masked):  # the mask is known: check the real steps
        mask = x.full_mask.cpu().numpy()
        x = [seq.cpu().numpy() for seq in x.unpad()]
        if y is not None and not isinstance(y, list | tuple) and as_numpy(y).ndim >= 2:
            y = [row[keep] for row, keep in zip(as_numpy(y), mask, strict=False)]
    layout = to_layout(x, name)
    layout_findings, layout = check_layout(layout, mask_value)
    findings += layout_findings
    paddings = [find_padding(seq, mask_value) for seq in layout.sequences]
    findings += check_padding(layout, paddings, mask_value)
    findings += check_nonfinite(layout, paddings)
    n_outputs = None
    if model is not None:
        from .model_checks import run_model

        run = run_model(model, layout, paddings, mask_value)
        findings += run.findings
        if run.batch is not None and not any(f.severity == "error" for f in run.findings):
            from .leak_probe import probe_leaks  # a lost or doubled mask comes first

            findings += probe_leaks(model, run.batch, rows=PROBE_ROWS)
        n_outputs = run.n_outputs
        if trained and predictions is None:
            predictions = run.predictions
    targets = None
    if y is not None:
        targets, target_findings = to_targets(y, layout)
        findings += target_findings
        if targets is not None:
            findings += check_targets(targets, layout, paddings, n_outputs)
    if predictions is not None:
        from .model_checks import as_class_ids, check_predictions

        findings += check_predictions(as_class_ids(predictions), paddings, targets)
    return sort_findings(findings)
