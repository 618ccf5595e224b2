"""Guards at the doors: the doctor's checks on what `fit`, `evaluate`, `predict` and
`make_loader` receive, before the first step.

A door makes a `Guard` from its `checks` switch, gives it the data it received
(`Guard.data`) and, once the model is built, one batch (`Guard.model`; in `fit` the
leak probe runs on it too, MW013). The checks read
a bounded sample, so a guard costs about the same whatever the size of the data: at
most `SAMPLE` sequences spread evenly over the data (the first and the last included);
of a streamed `ParquetSequences`, its first `SAMPLE` sequences (its first row groups
only). A `Loader` is not checked again: `make_loader` checked its data.

- `checks="raise"` (the default): the error findings raise one `DoctorError` holding
  each one's code, message and fix; each warning finding emits a `MaskWarning`.
- `checks="warn"`: error findings are emitted as `MaskWarning`s too.
- `checks="off"`: nothing is checked.

Info findings (e.g. "most steps are padding") and MW010 (empty sequences) are left to
`maskwise doctor`.
"""

from __future__ import annotations

import itertools
import json
import warnings
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..data.datasets import SequenceDataset, split_inputs
from ..data.tables import ParquetSequences
from ..errors import ConfigError, DoctorError, MaskWarning, format_error
from ..masked import Masked, real_steps_first
from . import PROBE_ROWS, DataReport, check_data
from .data_checks import as_numpy, check_padding_label
from .findings import Finding, sort_findings
from .model_checks import (
    check_layers,
    check_masking_value,
    check_output_mask,
    check_target_kind,
)

CHECKS = ("raise", "warn", "off")
SAMPLE = 256
"""Sequences checked per data set."""
BATCH = 16
"""Sequences of the batch the model checks run on when the door has none."""
LEFT_TO_THE_DOCTOR = {"MW010"}
"""Codes the doors do not report: empty sequences and heavy padding are handled (a batch
without real steps trains to zero gradients; bucketing cuts padding)."""


def validate_checks(checks: Any) -> str:
    """`checks` itself, or a `ConfigError` when it is not one of `CHECKS`."""
    if not isinstance(checks, str) or checks not in CHECKS:
        raise ConfigError(
            format_error(
                "checks must be 'raise', 'warn' or 'off'.",
                expected="checks='raise' (stop on a masking mistake), 'warn' or 'off'",
                received=f"checks={checks!r}",
            )
        )
    return checks


def spread(n: int, k: int = SAMPLE) -> np.ndarray:
    """At most `k` positions out of `n`, evenly spread, the first and the last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


@dataclass(frozen=True)
class Sample:
    """A bounded sample of a data set, in the forms `check_data` reads.

    Args:
        x: the inputs (one, or a tuple for several).
        y: the targets, or None.
        sample_weight: the weights, or None.
        per_step: for `y` and `sample_weight`: False when it holds one value per sequence
            as the loader reads it; None: the doctor infers it from its shape.
        size: sequences in the sample.
        total: sequences in the data, None when streamed.
    """

    x: Any
    y: Any
    sample_weight: Any
    per_step: tuple[bool | None, bool | None]
    size: int
    total: int | None

    def describe(self) -> str:
        if self.total is None:
            return f"the first {self.size} sequences of the stream"
        if self.size == self.total:
            return f"all {self.total} sequences"
        return f"{self.size} of {self.total} sequences, spread over the data"

    @property
    def pending(self) -> bool:
        """Whether `y` is a padded array read per step from its shape alone (axis 1 is
        a padded input's time axis) that could be one row per sequence: the model's
        output says which (`SequenceDataset.read_targets`)."""
        return self.per_step[0] is None and isinstance(self.y, np.ndarray) and self.y.ndim >= 2

    def dataset(
        self, mask_value: float | None, model: nn.Module, device: torch.device | None
    ) -> SequenceDataset:
        """The sample as a loader's data set, its targets read per step or per sequence
        as `model`'s output on `device` says (as `fit` reads them)."""
        with warnings.catch_warnings():
            # The loader warns on the data, the model on its call: other checks say so.
            warnings.simplefilter("ignore", MaskWarning)
            data = SequenceDataset(self.x, self.y, self.sample_weight, mask_value=mask_value)
            data.read_targets(lambda probe: _single_output(model, probe, device))
        return data

    def read_by(
        self, mask_value: float | None, model: nn.Module, device: torch.device | None
    ) -> tuple[bool | None, bool | None]:
        """`per_step` as `model` reads the data: a pending `y` (see `pending`) is one
        row per sequence (False) for an output without a time axis, as `fit` reads it
        (one run of the model on the sample's shortest sequence); otherwise as given.

        Example:
            >>> x = np.zeros((3, 4, 1), "float32"); x[0] = 1; x[1:, :2] = 1  # lengths 4, 2, 2
            >>> sample = take_sample(x, np.ones((3, 4), "float32"))  # 4 values or 4 steps?
            >>> model = Sequential([layers.Masking(0.0), layers.LSTM(2), layers.Dense(4)])
            >>> sample.per_step, sample.read_by(0.0, model, None)
            ((None, None), (False, None))
        """
        if not self.pending:
            return self.per_step
        data = self.dataset(mask_value, model, device)
        if data.y is not None and not isinstance(data.y, dict) and not data.y.per_step:
            return False, self.per_step[1]
        return self.per_step

    def batch(self, mask_value: float | None, model: nn.Module, device: torch.device | None) -> Any:
        """The first `BATCH` sequences of `dataset(...)` as a `Batch` on `device`."""
        data = self.dataset(mask_value, model, device)
        batch = data.collate(list(range(min(BATCH, len(data)))))
        return batch if device is None else batch.to(device)


def take_sample(x: Any, y: Any = None, sample_weight: Any = None) -> Sample | None:
    """A bounded sample of what a door received; None for a `Loader` (already checked)."""
    if isinstance(x, SequenceDataset):  # targets the model has yet to read: as given
        return _from_batch(x.collate(spread(len(x)).tolist(), as_given=True), len(x))
    if isinstance(x, ParquetSequences):
        items = list(itertools.islice(x, SAMPLE))
        targets = None if x.target_col is None else [item[2] for item in items]
        per_step: tuple[bool | None, bool | None] = (None if x.per_step else False, None)
        return Sample([item[1] for item in items], targets, None, per_step, len(items), None)
    if not isinstance(x, tuple | list | np.ndarray | torch.Tensor):
        return None  # a Loader, checked by make_loader; anything else the loader refuses
    several, raws = split_inputs(x)
    n = len(raws[0])
    if n == 0 or any(len(raw) != n for raw in raws):
        return None  # the loader's own errors say what is wrong
    index = spread(n)
    try:
        inputs = tuple(_take(raw, index) for raw in raws)
    except ValueError:  # a sequence that is not one array (several inputs in a list)
        return None  # the loader's own error says what is wrong
    if not all(_readable(raw) for raw in inputs):
        return None  # a form the doctor does not read (e.g. an image per step)
    times = {raw.shape[1] for raw in inputs if isinstance(raw, np.ndarray) and raw.ndim >= 2}
    columns = [  # the targets of several outputs (a dict) are checked by their losses
        _take(values, index)
        if values is not None and not isinstance(values, dict) and len(values) == n
        else None
        for values in (y, sample_weight)
    ]
    per_step = _kinds(columns, times)
    x_sample = inputs if several else inputs[0]
    return Sample(x_sample, columns[0], columns[1], per_step, len(index), n)


def _readable(sample: Any) -> bool:
    """A form the doctor reads: a padded array `(N, time[, features])`, or a list of
    `(time[, features])` sequences."""
    if isinstance(sample, np.ndarray):
        return sample.ndim in (2, 3)
    return all(item.ndim in (1, 2) for item in sample)


def _take(data: Any, index: np.ndarray) -> Any:
    """The rows `index` of an array, tensor or list, as numpy."""
    if hasattr(data, "to_numpy"):  # pandas
        data = data.to_numpy()
    if isinstance(data, torch.Tensor):
        rows = data[torch.as_tensor(index)].detach().cpu()
        return (rows.float() if rows.is_floating_point() else rows).numpy()
    if isinstance(data, np.ndarray) and data.dtype != object:
        return data[index]
    return [as_numpy(data[i]) for i in index]


def _kinds(columns: list[Any], times: set[int]) -> tuple[bool | None, bool | None]:
    """Per column, False for an array the loader reads as one value per sequence (no
    axis 1 matching the time axis of a padded input), else None (the doctor infers)."""
    kinds = [
        False
        if isinstance(values, np.ndarray) and (values.ndim < 2 or values.shape[1] not in times)
        else None
        for values in columns
    ]
    return kinds[0], kinds[1]


def _from_batch(batch: Any, total: int) -> Sample:
    """A sample from a data set's batch: inputs with a mask become lists of their real
    steps, and per-step targets and weights are cut to them too."""
    inputs = batch.x if isinstance(batch.x, tuple) else (batch.x,)
    raws = tuple(_unpadded(m) for m in inputs)
    first = inputs[0]
    time = first.values.shape[1]
    columns = []
    y: Any = None if isinstance(batch.y, dict) else batch.y  # several outputs: see take_sample
    for values in (y, batch.sample_weight):
        stepwise = values is not None and values.dim() >= 2 and values.shape[1] == time
        if stepwise and first.mask is not None:
            lengths = first.full_mask.sum(1).tolist()
            values = [row[:n].cpu().numpy() for row, n in zip(values, lengths, strict=True)]
        columns.append(values.cpu().numpy() if isinstance(values, torch.Tensor) else values)
    x_sample = raws if isinstance(batch.x, tuple) else raws[0]
    kinds = _kinds(columns, {time})
    return Sample(x_sample, columns[0], columns[1], kinds, len(batch.index), total)


def _unpadded(x: Masked) -> Any:
    if x.mask is None:  # a padded array: the doctor finds its padding from the values
        return x.values.cpu().numpy()
    return [seq.cpu().numpy() for seq in x.unpad()]


class Guard:
    """The checks of one door call (`fit`, `evaluate`, `predict`, `make_loader`).

    Args:
        checks: `"raise"`, `"warn"` or `"off"` (see the module docstring).
        door: the door's name, for messages (`"fit"`).
        mask_value: the padding value of padded arrays; None: every step is real, and
            the data checks are skipped (they find padding from this value).
    """

    def __init__(self, checks: str, door: str, mask_value: float | None) -> None:
        self.checks = validate_checks(checks)
        self.door = door
        self.mask_value = mask_value
        self.reports: list[DataReport] = []
        self.samples: list[Sample] = []
        self.pending: list[tuple[Sample, DataReport, str]] = []
        """Samples whose `y` the model reads per step or per sequence (`Sample.pending`),
        their reports without the per-step checks of `y`, and where they come from."""

    def data(self, x: Any, y: Any = None, sample_weight: Any = None, *, source: str = "") -> None:
        """Check a sample of the data a door received (`source`: where, e.g.
        `"validation_data"`); raise or warn."""
        if self.checks == "off" or self.mask_value is None:
            return
        sample = take_sample(x, y, sample_weight)
        if sample is None:
            return
        # Targets the model may read per sequence: their checks wait for it (`_settle`).
        report = self._check(sample, sample.per_step, with_y=not sample.pending)
        self.samples.append(sample)
        self.reports.append(report)
        where = f"{source}, {sample.describe()}" if source else sample.describe()
        if sample.pending:
            self.pending.append((sample, report, where))
        self._emit(report.findings, where)

    def _check(
        self, sample: Sample, per_step: tuple[bool | None, bool | None], with_y: bool = True
    ) -> DataReport:
        return check_data(
            sample.x,
            sample.y if with_y else None,
            sample.sample_weight,
            float(cast(float, self.mask_value)),
            per_step=per_step,
            lengths_given=True,
        )

    def _settle(self, model: nn.Module | None, device: torch.device | None) -> list[DataReport]:
        """The checks of pending targets (`Sample.pending`), read as the model reads them:
        per step, or per sequence for an output without a time axis (`Sample.read_by`).
        A door without a model (`make_loader`) reads them per step, and its findings on
        them say so (`note_per_step_reading`); returns those reports."""
        unread = []
        for sample, report, where in self.pending:
            if model is None:
                per_step = sample.per_step
                unread.append(report)
            else:
                per_step = sample.read_by(self.mask_value, model, device)
            checked = self._check(sample, per_step)
            report.targets = checked.targets
            found = [f for f in checked.findings if f not in report.findings]
            self._emit(note_per_step_reading(found) if model is None else found, where)
        self.pending = []
        return unread

    def validation(self, data: Any) -> None:
        """`data(...)` on `fit`'s `validation_data`: `(x, y[, sample_weight])` or a data set."""
        parts = data if isinstance(data, tuple | list) and len(data) in (2, 3) else (data,)
        self.data(*parts, source="validation_data")

    def model(
        self,
        model: nn.Module | None = None,
        batch: Any = None,
        *,
        device: torch.device | None = None,
        probe: bool = False,
    ) -> None:
        """Once the model is built: the padding label against its output units (MW004;
        without a model, against the real classes only), the targets' kind against its
        output on one batch (MW016), that output's mask on padded data (MW006), padded
        arrays against the model's `Masking` value (MW017) and, with `probe`, the leak
        probe on `PROBE_ROWS` sequences of that batch (MW013); raise or warn. `batch`:
        the door's first batch (default: one made from the data's sample, moved to
        `device`)."""
        if self.checks == "off":
            return
        unread = self._settle(model, device)
        findings: list[Finding] = []
        n_outputs = None
        if model is not None:
            if batch is None and self.samples:
                batch = self.samples[0].batch(self.mask_value, model, device)
            if batch is not None:
                output = _output(model, batch.x)
                n_outputs = _units(output)
                first = batch.x[0] if isinstance(batch.x, tuple) else batch.x
                findings += check_target_kind(output, batch.y, first.values.shape[1])
                from .leak_probe import makes_a_mask  # see probe_once

                padded = self._padded(first)
                unmasked = padded and first.mask is None
                # A layer in front of the Masking that hides the padding (MW017) is the
                # cause to name; else whether the model makes a mask at all (MW006).
                order = check_layers(model) if unmasked else []
                findings += [f for f in order if f.code == "MW017"]  # MW007 warns at the call
                made = makes_a_mask(model, batch.x) if unmasked and not order else None
                findings += check_output_mask(output, batch.x, padded, model, made)
                if probe:
                    findings += probe_once(model, batch.x)
        for report in self.reports:
            if model is not None and len(report.layouts) == 1:
                findings += check_masking_value(model, report.layout, report.paddings[0])
            if report.targets is not None:
                found = check_padding_label(
                    report.targets, report.paddings[0], n_outputs, loader_fills=True
                )
                findings += (
                    note_per_step_reading(found) if any(report is r for r in unread) else found
                )
        self._emit(sort_findings(findings), "the first batch" if model is not None else "")

    def _padded(self, first: Masked) -> bool:
        """Whether the data has padding: in the batch's mask, or in the sample the data
        checks read (a padded array's padded steps, or sequences of different lengths)."""
        if first.mask is not None and not bool(first.mask.all()):
            return True
        return any(
            any(p.pad.any() for p in report.paddings[0])
            or len({len(s) for s in report.layout.sequences}) > 1
            for report in self.reports
            if report.layouts
        )

    def _emit(self, findings: list[Finding], where: str) -> None:
        findings = [f for f in findings if f.code not in LEFT_TO_THE_DOCTOR]
        errors = [f for f in findings if f.severity == "error"]
        notes = [f for f in findings if f.severity == "warning"]
        if self.checks == "warn":
            errors, notes = [], errors + notes
        place = f" ({where})" if where else ""
        if errors:
            listed = "\n".join(str(f) for f in errors)
            raise DoctorError(
                f"{self.door}() stopped before the first step: the data checks found "
                f"{len(errors)} masking mistake{'s' if len(errors) > 1 else ''}{place}, each "
                f"with its fix.\n{listed}\n  (`{self.door}(..., checks='warn')` warns instead "
                "and goes on; `checks='off'` skips the checks.)",
                errors,
            )
        for finding in notes:
            warnings.warn(f"{self.door}(){place}: {finding}", MaskWarning, stacklevel=4)


READ_PER_STEP = ("MW004", "MW011")
"""Codes of the findings on `y` (their message starts with it) that hold only when it is
one target per step."""


def note_per_step_reading(findings: list[Finding]) -> list[Finding]:
    """`findings` where those of `READ_PER_STEP` say that `y` was read per step without
    a model: targets `(N, T)` beside padded inputs of `T` steps could also be one row
    of `T` values per sequence (`Sample.pending`), which only the model's output tells.

    Example:
        >>> finding = Finding("MW011", "error", "y is padded at the other end.", "pad it.")
        >>> print(note_per_step_reading([finding])[0].message)
        y is padded at the other end. (y was read as one target per step; if it holds ...
    """
    note = (
        " (y was read as one target per step; if it holds one row of values per "
        "sequence, for a multi-label or multi-output head, give the model: "
        "`doctor.check(x, y, model=model)`, `fit` and `evaluate` read y as its output says.)"
    )
    return [
        replace(f, message=f.message + note)
        if f.code in READ_PER_STEP and f.message.startswith("y")
        else f
        for f in findings
    ]


def _output(model: nn.Module, x: Masked | tuple[Masked, ...]) -> Any:
    """The model's output on `x`, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*x) if isinstance(x, tuple) else model(x)
    finally:
        model.train(was_training)


def _single_output(
    model: nn.Module, batch: Any, device: torch.device | None
) -> dict[str | None, Any]:
    """The model's output on `batch` keyed as the one output of a single `y` (a
    sample's targets are one array: several outputs' are left to their losses)."""
    if device is None:  # where the model's weights are
        device = next((p.device for p in model.parameters()), None)
    output = _output(model, batch.x if device is None else batch.to(device).x)
    return {None: output} if isinstance(output, Masked | torch.Tensor) else {}


def _units(output: Any) -> int | None:
    """Output units per step of a per-step output `(batch, time, units)`, else None."""
    values = output.values if isinstance(output, Masked) else output
    if isinstance(values, torch.Tensor) and values.dim() >= 3:
        return int(values.shape[-1])
    return None


_PROBED: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, list[Finding]]] = (
    weakref.WeakKeyDictionary()
)
"""Each model's last leak probe: what it was run on (`_probe_key`) and its findings."""


def probe_once(model: nn.Module, x: Masked | tuple[Masked, ...]) -> list[Finding]:
    """The leak probe's findings (MW013) for `model` on the batch inputs `x`, on
    `PROBE_ROWS` sequences: probed at a model's first `fit` on masked inputs, and again
    only when what the verdict depends on changes: the model's layers (each one's type and config),
    its weights' shapes, dtypes and trainability, the training flags, or the inputs'
    layout (dtype, features, where the padding is). Not the weights' values: the probe
    varies the padding, not the weights. So a loop of one-epoch `fit` calls (Keras's
    `for epoch in ...: model.fit(..., epochs=1)`) probes once, and a leak found is
    reported at every call."""
    # Imported here: the probe needs the models, which need the data package, which
    # imports this module.
    from .leak_probe import probe_leaks

    inputs = x if isinstance(x, tuple) else (x,)
    if any(item.mask is None for item in inputs):
        # The model makes the mask (`Masking`): where the padding is shows only in the
        # values, so every call probes.
        return probe_leaks(model, x, rows=PROBE_ROWS)
    key = _probe_key(model, inputs)
    last = _PROBED.get(model)
    if last is not None and last[0] == key:
        return last[1]
    findings = probe_leaks(model, x, rows=PROBE_ROWS)
    _PROBED[model] = (key, findings)
    return findings


def _probe_key(model: nn.Module, inputs: tuple[Masked, ...]) -> Hashable:
    """What a leak probe's verdict depends on (see `probe_once`), as a hashable."""
    layers = tuple(
        (name, id(module), type(module), module.training, _config_text(module))
        for name, module in model.named_modules()
    )
    weights = tuple(
        (name, tuple(p.shape), p.dtype, p.requires_grad) for name, p in model.named_parameters()
    )
    return layers, weights, tuple(_layout(item) for item in inputs)


def _config_text(module: nn.Module) -> str | None:
    """A maskwise layer's config as text (its arguments), None for other modules."""
    get_config = getattr(module, "get_config", None)
    if get_config is None:
        return None
    try:
        return json.dumps(get_config(), sort_keys=True, default=repr)
    except Exception:  # a config that cannot be written: compare the module by identity
        return None


def _layout(x: Masked) -> Hashable:
    """An input's dtype, feature shape and padding layout: no padded step, padded at
    the end of every row, or elsewhere."""
    values, mask = x.values, cast(torch.Tensor, x.mask)
    if bool(mask.all()):
        kind = "no padding"
    else:
        kind = "post" if torch.equal(mask, real_steps_first(mask)) else "other"
    return values.dtype, tuple(values.shape[2:]), kind
