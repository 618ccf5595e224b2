"""The mask doctor: find the masking mistakes that fail silently, before training.

`check(x, y, model)` reads padded data (and a model) and returns `Finding`s: a stable
code, a severity, what is wrong in plain words, and the fix. Every code is documented
in `docs/doctor.md` with the user mistake it comes from. From a shell:
`maskwise doctor data.npz` (exit status 1 when a finding is an error).

Example:
    >>> import numpy as np
    >>> X = np.ones((5, 20)); X[:, 16:] = 0      # 5 features x 20 steps, post-padded
    >>> [f.code for f in check(X.reshape(1, 20, 5))]  # features end up on the time axis
    ['MW001']
    >>> check(X.T[None])
    []
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ..errors import ConfigError, format_error
from ..masked import Masked
from .data_checks import (
    Layout,
    Padding,
    as_numpy,
    check_input_lengths,
    check_inverted_mask,
    check_layout,
    check_lengths,
    check_nonfinite,
    check_padding,
    check_padding_label,
    check_real_values,
    check_sequence_values,
    check_target_side,
    check_time_major,
    find_padding,
    step_rows,
    to_layout,
    to_targets,
)
from .findings import CODES, Finding, sort_findings
from .keras_file import check_keras_file

__all__ = ["CODES", "DataReport", "Finding", "check", "check_data", "check_keras_file"]

PROBE_ROWS = 4
"""Sequences the leak probe runs (MW013) when `check` gets a model and data."""


def check(
    x: Any = None,
    y: Any = None,
    model: nn.Module | None = None,
    mask_value: float = 0.0,
    *,
    sample_weight: Any = None,
    n_outputs: int | None = None,
    predictions: Any = None,
    trained: bool = False,
    name: str = "x",
) -> list[Finding]:
    """Look for masking mistakes in data and a model; errors first.

    Example:
        >>> x = np.zeros((2, 3, 1)); x[0, :2] = 1; x[1, :1] = 1  # 2 and 1 real steps
        >>> y = np.array([[1, 2, 0], [2, 0, 0]])  # classes 1 and 2, padding labelled 0
        >>> [(f.code, f.severity) for f in check(x, y, n_outputs=3)]
        [('MW004', 'error')]
        >>> check(x, np.array([[1, 2, -100], [2, -100, -100]]), n_outputs=3)
        []

    Args:
        x: inputs: a padded array `(batch, time, features)` (numpy or torch), token ids
            `(batch, time)`, a list of `(time, features)` sequences, or a `Masked`; several
            inputs as a tuple of those (as in `fit`); or a `SequenceDataset` or
            `ParquetSequences`, read as `fit` reads it (the same sample, its sequences as
            long as stored, its own targets and weights: no `y` or `sample_weight`).
        y: per-step targets `(batch, time)` or a list of `(time,)` arrays, or one target
            per sequence `(batch,)` (optional). Beside inputs padded to `time` steps,
            `(batch, time)` could also be one row of values per sequence: read as
            `model`'s output says (as `fit` reads it), per step without a model (and
            the findings that depend on it, MW004 and MW011, say so).
        model: a maskwise model, run on the first 32 sequences of `x` (optional; without
            `x`, only the layer order of a `Sequential` is checked). When that run shows
            no error, the leak probe runs the model again on 4 of them (those with
            padding first) with their padding changed (other values, NaN, more padding,
            real steps moved): MW013 when a real step's output or a gradient changes.
        mask_value: the value that marks padded steps (as in `Masking(mask_value)`).
        sample_weight: per sequence `(batch,)` or per step like `y` (optional).
        n_outputs: the model's output units per step, when known without giving the
            model: a padding label below it has a unit of its own (MW004).
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
    per_step: tuple[bool | None, bool | None] = (None, None)
    data_set = _data_set_sample(x, y, sample_weight)
    if data_set is not None:  # read as fit reads it: its sequences as long as stored
        x, y, sample_weight, per_step = (
            data_set.x,
            data_set.y,
            data_set.sample_weight,
            data_set.per_step,
        )
    from .guards import note_per_step_reading, take_sample  # guards imports this module

    sample = data_set if data_set is not None or y is None else take_sample(x, y, sample_weight)
    if sample is not None and data_set is None:  # y as the doors read it: (N, K) with K
        per_step = (sample.per_step[0], per_step[1])  # not a time axis, per sequence
    unread = sample is not None and sample.pending  # y (N, T): per step or per sequence?
    if unread and model is not None:
        per_step, unread = _read_by(sample, model, mask_value, per_step)
    report = check_data(
        x,
        y,
        sample_weight,
        mask_value,
        name=name,
        per_step=per_step,
        lengths_given=data_set is not None,
    )
    findings += report.findings
    if model is not None and len(report.layouts) == 1:
        from .model_checks import check_masking_value, no_mask_made, run_model

        run = run_model(model, report.layout, report.paddings[0], mask_value)
        findings += run.findings + check_masking_value(model, report.layout, report.paddings[0])
        if _unmasked_padding(model, report, run.batch, findings):
            ids = report.layout.tokens and report.layout.sequences[0].dtype.kind in "iu"
            findings.append(no_mask_made(tokens=ids))
        if run.batch is not None and not any(f.severity == "error" for f in run.findings):
            from .leak_probe import probe_leaks  # a lost or doubled mask comes first

            findings += probe_leaks(model, run.batch, rows=PROBE_ROWS)
        n_outputs = run.n_outputs
        if trained and predictions is None:
            predictions = run.predictions
    if report.targets is not None:
        findings += check_padding_label(report.targets, report.paddings[0], n_outputs)
    if predictions is not None:
        from .model_checks import as_class_ids, check_predictions

        findings += check_predictions(as_class_ids(predictions), report.paddings[0], report.targets)
    return sort_findings(note_per_step_reading(findings) if unread else findings)


def _unmasked_padding(model: nn.Module, report: Any, batch: Any, found: list[Finding]) -> bool:
    """Whether a padded array with padded steps goes, as `fit` feeds it (no mask), into
    a model that makes no mask from it (MW006; not repeated after another MW006, nor
    after MW007 or MW017, whose findings name the layers in the way)."""
    if not report.layout.padded_array or batch is None:
        return False
    if not any(p.pad.any() for p in report.paddings[0]):
        return False
    if any(f.code in ("MW006", "MW007", "MW017") for f in found):
        return False
    from .leak_probe import makes_a_mask  # the probe imports this package's modules

    return not makes_a_mask(model, Masked(batch.values))


def _read_by(
    sample: Any, model: nn.Module, mask_value: float, per_step: tuple[bool | None, bool | None]
) -> tuple[tuple[bool | None, bool | None], bool]:
    """`per_step` with the kind of `y` as `model` reads it (`Sample.read_by`: one short
    run of the model), and whether `y` is still unread: it is when the model cannot run
    on the data, which `run_model` reports (MW012)."""
    try:
        kind = sample.read_by(mask_value, model, None)[0]
    except Exception:  # any failure to run is MW012's, found below
        return per_step, True
    return (kind, per_step[1]), False


def _data_set_sample(x: Any, y: Any, sample_weight: Any) -> Any:
    """The sample `fit` checks of a `SequenceDataset` or `ParquetSequences` (its own
    targets and weights), or None for other data."""
    from ..data.datasets import SequenceDataset
    from ..data.tables import ParquetSequences

    if not isinstance(x, SequenceDataset | ParquetSequences):
        return None
    if y is not None or sample_weight is not None:
        raise ConfigError(
            format_error(
                "check() got y= or sample_weight= with a data set, which holds its own.",
                expected="check(data) or check(data, model=model)",
                received=f"a {type(x).__name__} and y= or sample_weight=",
                fix="leave out y= and sample_weight=: the doctor takes them from the data set.",
            )
        )
    from .guards import take_sample

    return take_sample(x)


@dataclass
class DataReport:
    """What the data checks found, and the data as they read it.

    Args:
        findings: the findings on the data alone (not MW004, which needs the model's
            output units: `check_padding_label(targets, paddings, n_outputs)`).
        layouts: each input as sequences, repaired when its layout was found wrong.
        paddings: per input, the padded steps of each sequence.
        targets: per-step targets lined up with the first input, or None.

    Example:
        >>> x = np.zeros((2, 3, 1)); x[0, :2] = 1; x[1, :1] = 1  # 2 and 1 real steps
        >>> report = check_data(x, np.array([[1, 2, -100], [2, -100, -100]]))
        >>> report.findings, [p.pad.tolist() for p in report.paddings[0]]
        ([], [[False, False, True], [False, True, True]])
        >>> [t.tolist() for t in report.targets]
        [[1, 2, -100], [2, -100, -100]]
    """

    findings: list[Finding] = field(default_factory=list)
    layouts: list[Layout] = field(default_factory=list)
    paddings: list[list[Padding]] = field(default_factory=list)
    targets: list[np.ndarray] | None = None

    @property
    def layout(self) -> Layout:
        """The first input."""
        return self.layouts[0]


def check_data(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    mask_value: float = 0.0,
    *,
    name: str = "x",
    per_step: tuple[bool | None, bool | None] = (None, None),
    lengths_given: bool = False,
) -> DataReport:
    """The checks on data alone: layout (MW001, MW014), padding (MW002, MW003, MW008,
    MW010), NaN/inf in inputs, targets and weights (MW005), lengths across several inputs
    (MW015), targets lined up with the inputs (MW011) and, for a `Masked`, a mask that
    is True at the padding (MW018).

    Args:
        x, y, sample_weight, mask_value, name: as in `check`.
        per_step: for `y` and for `sample_weight`: False when it holds one value per
            sequence; None: inferred from its shape.
        lengths_given: a list's sequences are as long as given, every step real (as
            `make_loader` reads them), rather than padded with `mask_value` at the ends;
            the layout is still checked from the values (MW001).

    Example:
        >>> X = np.ones((5, 20)); X[:, 16:] = 0  # 5 features x 20 steps, post-padded
        >>> report = check_data(X.reshape(1, 20, 5))  # features end up on the time axis
        >>> [f.code for f in report.findings]
        ['MW001']
        >>> report.layout.sequences[0].shape, int(report.paddings[0][0].pad.sum())  # repaired
        ((20, 5), 4)
    """
    inverted: list[Finding] = []
    if isinstance(x, Masked):  # the mask is known: check the real steps
        mask = x.full_mask.cpu().numpy()
        inverted = check_inverted_mask(as_numpy(x.values), mask, mask_value, name)
        x = [seq.cpu().numpy() for seq in x.unpad()]
        y, sample_weight = (_real_rows(v, mask) for v in (y, sample_weight))
    several = isinstance(x, tuple)
    raws = list(x) if several else [x]
    names = [f"{name}[{i}]" for i in range(len(raws))] if several else [name]
    report = DataReport(findings=inverted)
    time_major = False
    for raw, input_name in zip(raws, names, strict=True):
        layout = to_layout(raw, input_name)
        found, layout = check_layout(layout, mask_value)
        if not found:
            found, layout = check_time_major(layout, mask_value)
            time_major = time_major or bool(found)
        report.findings += found
        if lengths_given and not layout.padded_array:
            paddings = [Padding(np.zeros(len(seq), bool), None) for seq in layout.sequences]
            report.findings += check_lengths(layout, paddings)
        else:
            paddings = [find_padding(seq, mask_value) for seq in layout.sequences]
            report.findings += check_padding(layout, paddings, mask_value)
        report.findings += check_nonfinite(layout, paddings)
        report.layouts.append(layout)
        report.paddings.append(paddings)
    if several and len({len(layout.sequences) for layout in report.layouts}) == 1:
        report.findings += check_input_lengths(report.layouts, report.paddings)
    for values, column, kind in zip(
        (y, sample_weight), ("y", "sample_weight"), per_step, strict=True
    ):
        if values is None:
            continue
        rows = None
        if kind is not False:
            rows, misaligned = to_targets(values, report.layout, column)
            if misaligned:  # targets made time-major with the inputs: MW014 says it
                report.findings += [] if time_major else misaligned
                continue
        steps = step_rows(values, report.layout) if rows is None and kind is not False else None
        if rows is None and steps is not None:  # several units per step: NaN at padding is fine
            report.findings += check_real_values(steps, column, report.paddings[0])
            continue
        if rows is None:
            report.findings += check_sequence_values(values, column)
            continue
        report.findings += check_real_values(rows, column, report.paddings[0])
        if column == "y":
            report.targets = rows
            report.findings += check_target_side(rows, report.paddings[0])
    return report


def _real_rows(values: Any, mask: np.ndarray) -> Any:
    """Per-step rows `(batch, time, ...)` cut to the real steps of `mask`; others as given."""
    if values is None or isinstance(values, list | tuple) or as_numpy(values).ndim < 2:
        return values
    return [row[keep] for row, keep in zip(as_numpy(values), mask, strict=False)]
