"""Masked losses: only the steps the model's output marks as real count.

A loss takes the targets and the model's output (a `Masked`, or a plain tensor meaning
"every step is real"), in Keras's order, and returns a scalar tensor:

    loss(y_true, y_pred, sample_weight=None, class_weight=None)

The steps that count are `y_pred.mask`. Padded steps are replaced by safe values with
`torch.where` *before* the element-wise loss, so NaN or inf in the padding of the
predictions or targets never reaches the loss or its gradient (masking by
multiplication would turn `0 * NaN` into NaN). A target holding padding (`IGNORE_INDEX` for
class ids, NaN for float targets) at a step the output marks as real is an error: the
output lost its mask (e.g. a `Lambda` without `mask=`) or the targets were padded differently.

Where the targets are checked. On CPU every call checks the targets (class ids in
range, no padding at real steps) and raises the error naming what it found. On an
accelerator, where reading a value back stalls the host, the check runs on the device
(`torch._assert_async`) and a bad target stops the process at the host's next read
(on CUDA a device-side assertion, after which the process must restart); `fit` and
`evaluate` check the first batch of each epoch with the exact error everywhere.

Reductions (`reduction=`), Keras 3's names first (`keras/src/losses/loss.py`, each
with Keras's value on masked data):
- `"mean"` (default) or `"sum_over_batch_size"` (Keras's default name; the same
  reduction, stored as `"mean"`): sum of the weighted per-step losses over the real
  steps, divided by the number of real steps (not by the sum of the weights). This is
  Keras 3's value for a masked model: its mask weighs real steps by total / real.
- `"mean_with_sample_weight"`: the weighted sum over the real steps divided by the sum
  of the weights at the real steps (0 when they sum to 0); without weights, the mean
  over the real steps.
- `"none"` or None: no reduction. The weighted loss of each step: a `Masked` whose mask
  is the output's (padded steps hold 0, Keras's values) for a masked `y_pred`, else a
  tensor of the step shape. `compile` refuses it (training needs one number).
- `"keras2"`: Keras 2's `weighted_masked_objective`: `score *= mask;
  score /= mean(mask) + 1e-7`, then `score *= weights; score /= mean(weights != 0)`,
  then the mean. It weights batches by their fraction of real steps.
- `"sequence_mean"`: each sequence's mean over its real steps, then the mean over the
  sequences that have at least one real step (every sequence counts the same,
  whatever its length).
- `"sum"`: the sum over the real steps (Keras's `"sum"`).

A batch with no real step gives 0 (with zero gradients), never NaN.

Global normalisation (`normalizer=`). A batch split across processes (data parallel)
or into micro-batches (gradient accumulation) must be divided by the real steps of the
*whole* batch, not each piece by its own: with ragged data the pieces hold different
numbers of real steps, and the mean of per-piece means is not the mean over the batch.
`loss(y_true, y_pred, normalizer=n)` replaces the reduction's own denominator by `n`:
- `"mean"`: the sum of the weighted per-step losses over *this* piece's real steps,
  divided by `n` (sample and class weights multiply the per-step losses as without
  `n`; the denominator stays a count of steps, not a sum of weights);
- `"sequence_mean"`: the sum of this piece's per-sequence means divided by `n`, the
  number of sequences with a real step in the whole batch;
- `"sum"`: the sum divided by `n` (it has no count: `n = 1` is the piece's sum);
- `"keras2"`, `"mean_with_sample_weight"`, `"none"`: refused; a per-batch fraction, a
  sum of weights, and no reduction have no global form.
Then the sum of the pieces' losses is the loss of the whole batch. Under
`DistributedDataParallel`, which *averages* the gradients of W processes, pass
`n = N / W` where N is the count over every process (`maskwise.distributed
.global_real_steps`): the averaged gradient is then `(1/W) sum_r grad(S_r W / N) =
grad(sum_r S_r / N)`, the gradient of one process on the whole batch (for `"sum"`,
`n = 1 / W`). With gradient accumulation (k micro-batches, gradients summed), N counts
all k micro-batches. `Loss.denominator(y_pred)` gives one piece's share of N.

Argument order. The order is Keras's, `(y_true, y_pred)`, for losses and metrics alike
(`metric.update(y_true, y_pred)`). Arguments evidently passed the other way round raise
an error instead of giving a wrong number (`read_pair`):
- `y_true` is a `Masked` and `y_pred` is not: the model's output came first (every
  loss and metric).
- `y_true` holds floats with a class axis and `y_pred` integers shaped like `y_true`
  without that axis: scores and class ids swapped (every loss and metric).
- Cross-entropies and classification metrics, on two plain tensors of one shape:
  `y_pred` holds only 0s and 1s (labels) while `y_true` holds other values
  (probabilities or logits). Soft targets against predictions that are exactly 0 or 1
  everywhere look the same: pass such predictions as `Masked(y_pred)`, which is always
  taken as the model's output.
- Not detectable: regression losses and metrics (`MeanSquaredError`, ...) on two plain
  tensors of one shape. Their value is the same either way (the errors are
  symmetric); the order matters when the output is a `Masked`, and that is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, MaskError, MaskwiseTypeError, ShapeError, format_error
from .layers import _host
from .layers._keras_args import FLOAT_DTYPES, dtype_name
from .masked import IGNORE_INDEX, Masked

__all__ = [
    "IGNORE_INDEX",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Huber",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "SparseCategoricalCrossentropy",
    "counted_steps",
    "get_loss",
]

EPSILON = 1e-7
"""Keras's `backend.epsilon()`: probabilities are clipped to `[EPSILON, 1 - EPSILON]`,
`MeanAbsolutePercentageError` divides by at least `EPSILON`, and
`MeanSquaredLogarithmicError` raises values below `EPSILON` to it."""

REDUCTIONS = ("mean", "sum", "mean_with_sample_weight", "none", "sequence_mean", "keras2")
"""The reductions a loss stores (`Loss.reduction`)."""

KERAS_REDUCTIONS: dict[str | None, str] = {"sum_over_batch_size": "mean", None: "none"}
"""Keras 3's other names for reductions of `REDUCTIONS`."""

COUNTED = ("mean", "sequence_mean", "sum")
"""The reductions that take a `normalizer` (a batch split into pieces)."""

ClassWeight = Mapping[int, float] | Sequence[float]


# ---------------------------------------------------------------------- shared helpers
def split_output(y_pred: Masked | torch.Tensor | np.ndarray) -> tuple[torch.Tensor, Any]:
    """`(values, mask)` of a model output; a tensor or array has no mask (all steps real)."""
    if isinstance(y_pred, Masked):
        return y_pred.values, y_pred.mask
    if isinstance(y_pred, np.ndarray):
        return torch.as_tensor(y_pred), None
    if isinstance(y_pred, torch.Tensor):
        return y_pred, None
    raise MaskwiseTypeError(
        format_error(
            "Predictions must be a Masked (the model's output) or a tensor.",
            received=type(y_pred).__name__,
            fix="pass the model's output as it is; it carries the mask the loss needs.",
        )
    )


def as_targets(y_true: Any, device: torch.device) -> torch.Tensor:
    """Targets as a tensor on `device` (tensors, numpy arrays and lists are accepted)."""
    if isinstance(y_true, Masked):
        raise MaskwiseTypeError(
            format_error(
                "Targets must be a tensor, not a Masked.",
                fix="pass `y.values` as y_true: the steps that count come from the model "
                "output's mask, and padded targets hold IGNORE_INDEX (class ids) or NaN.",
            )
        )
    if not isinstance(y_true, torch.Tensor):
        y_true = torch.as_tensor(np.asarray(y_true))
    return y_true.to(device)


def read_pair(
    y_true: Any, y_pred: Any, usage: str, labels: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """`(values, mask, targets)` of a loss's or metric's `(y_true, y_pred)` arguments.

    Refuses arguments evidently passed in the other order (see the module docstring):
    `usage` is the call to show in the fix (`"MeanSquaredError()(y_true, y_pred)"`);
    `labels` says the targets are classes, which allows the 0/1 check.
    """
    if isinstance(y_true, Masked) and not isinstance(y_pred, Masked):
        raise _order_error(
            MaskwiseTypeError,
            usage,
            "y_true is a Masked, the model's output",
            f"y_true: Masked, y_pred: {type(y_pred).__name__}",
        )
    values, mask = split_output(y_pred)
    if values.dim() == 0:
        raise ShapeError(
            format_error(
                f"{usage}: y_pred is a scalar; predictions have a batch axis.",
                expected="(batch, units), (batch, time) or (batch, time, units)",
                received="a 0-dim tensor",
                fix="pass the model's output for a batch, e.g. `values[None]` for one row.",
            )
        )
    if mask is not None and values.dim() > 3:
        raise ShapeError(
            format_error(
                f"{usage}: a masked y_pred holds (batch, time, units) per step.",
                expected="a Masked with values of 2 or 3 dimensions",
                received=f"values of shape {tuple(values.shape)}",
                fix="flatten the trailing axes into units, e.g. `values.flatten(2)`.",
            )
        )
    targets = as_targets(y_true, values.device)
    if not isinstance(y_pred, Masked):
        _check_plain_order(targets, values, usage, labels)
    return values, mask, targets


def _check_plain_order(
    y_true: torch.Tensor, y_pred: torch.Tensor, usage: str, labels: bool
) -> None:
    """Raise when two plain tensors are evidently `(y_pred, y_true)`."""
    received = (
        f"y_true {y_true.dtype} {tuple(y_true.shape)}, y_pred {y_pred.dtype} {tuple(y_pred.shape)}"
    )
    ids_shape = _drop_unit(y_pred.shape) if y_pred.dim() == y_true.dim() else y_pred.shape
    if (
        y_true.is_floating_point()
        and not y_pred.is_floating_point()
        and y_true.dim() >= 2
        and y_true.shape[-1] > 1
        and ids_shape == y_true.shape[:-1]
    ):
        raise _order_error(
            ShapeError,
            usage,
            "y_true looks like per-class scores (floats with a class axis) and y_pred "
            "like class ids (integers without it)",
            received,
            extra=" If these are in the right order, the predictions need one score per class.",
        )
    if (
        labels
        and y_true.is_floating_point()
        and _drop_unit(y_true.shape) == _drop_unit(y_pred.shape)
        and _only_zeros_and_ones(y_pred)
        and _has_non_label(y_true)
    ):
        raise _order_error(
            ShapeError,
            usage,
            "y_pred holds only 0s and 1s (like labels) and y_true other values "
            "(like probabilities or logits)",
            received,
            extra=" If y_pred really is the model's output, pass it as Masked(y_pred).",
        )


def _drop_unit(shape: torch.Size) -> torch.Size:
    """`shape` without a trailing axis of size 1 (`(batch, time, 1)` ~ `(batch, time)`)."""
    return shape[:-1] if len(shape) and shape[-1] == 1 else shape


def _only_zeros_and_ones(values: torch.Tensor) -> bool:
    """Every entry 0 or 1, padding (NaN, IGNORE_INDEX) aside, and at least one of them."""
    label = (values == 0) | (values == 1)
    padding = (values == IGNORE_INDEX) | (values != values)
    return bool((label | padding).all()) and bool(label.any())


def _has_non_label(values: torch.Tensor) -> bool:
    """Some finite entry other than 0, 1 or IGNORE_INDEX."""
    other = torch.isfinite(values) & (values != 0) & (values != 1) & (values != IGNORE_INDEX)
    return bool(other.any())


def _order_error(
    kind: type[MaskwiseTypeError] | type[ShapeError],
    usage: str,
    seen: str,
    received: str,
    extra: str = "",
) -> MaskwiseTypeError | ShapeError:
    return kind(
        format_error(
            f"The arguments look swapped: {seen}. maskwise takes Keras's order, "
            "y_true (the targets) first, then y_pred (the model's output).",
            expected="(y_true, y_pred)",
            received=received,
            fix=f"swap the two arguments: `{usage}`, e.g. `(batch.y, model(batch.x))`." + extra,
        )
    )


def _step_mask(y_pred: Masked | torch.Tensor) -> torch.Tensor:
    """The steps a loss counts in the output `y_pred`, as a boolean tensor of its step
    shape: its mask, else every row (`(batch, time)` or `(batch,)`)."""
    values, mask = split_output(y_pred)
    if mask is not None:
        return mask
    step_shape = values.shape[:-1] if values.dim() > 1 else values.shape
    return _real_steps(step_shape, None, values.device)


def counted_steps(y_pred: Masked | torch.Tensor) -> torch.Tensor:
    """How many steps a loss counts in the output `y_pred` (an int64 scalar): the real
    steps of its mask, else one per row of its step shape (`(batch,)` for a
    per-sequence output). The denominator of the `"mean"` reduction.

    Example:
        >>> counted_steps(Masked(torch.zeros(2, 3, 1), lengths_to_mask([3, 1], 3)))
        tensor(4)
        >>> counted_steps(torch.zeros(2, 5))  # (batch, units): one step per sequence
        tensor(2)
    """
    return _step_mask(y_pred).sum()


def _real_steps(
    step_shape: torch.Size, mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    if mask is not None:
        return mask
    return torch.ones(step_shape, dtype=torch.bool, device=device)


def _padding_error(name: str, count: int, mask: torch.Tensor | None, what: str) -> MaskError:
    if mask is None:
        fix = (
            "the model's output carries no mask, so every step counts. A layer dropped "
            "the mask (e.g. a Lambda without `mask=`) or the input was never "
            "masked: give the model a mask (Masking, Embedding(mask_zero=True), "
            "Masked.from_lengths) and check each layer's output mask."
        )
    else:
        fix = (
            "the targets are padded differently from the inputs (other padding side or "
            "length): pad targets and inputs the same way, e.g. with make_loader."
        )
    return MaskError(
        format_error(
            f"{name}: the targets hold padding ({what}) at {count} step(s) that the "
            "model's output marks as real.",
            expected="padding in the targets only where the output mask is False",
            received=f"{count} padded target step(s) at real steps; output mask: "
            + ("None" if mask is None else "present"),
            fix=fix,
        )
    )


PROBABILITY_SLACK = 1e-4
"""How far outside [0, 1] a prediction may round before it is not a probability."""


def require_probabilities(preds: torch.Tensor, name: str) -> None:
    """A `ShapeError` when predictions read as probabilities (`from_logits=False`) hold
    values outside [0, 1]: the model ends without a softmax or sigmoid, and Keras's
    clipping would turn its logits into a finite, wrong loss. `preds` holds 1 at padded
    steps (as `class_targets` and `dense_targets` return them); NaN is not flagged here."""
    outside = (preds < -PROBABILITY_SLACK) | (preds > 1.0 + PROBABILITY_SLACK)
    if not _host.checks_read_host(preds.device):
        _host.assert_none(outside, f"{name}: predictions outside [0, 1] with from_logits=False.")
        return
    count = int(outside.any(-1).sum())
    if count:
        raise ShapeError(
            format_error(
                f"{name}: with from_logits=False the predictions must be probabilities, but "
                f"{count} real step(s) hold values outside [0, 1].",
                expected="probabilities at the real steps: a softmax (or sigmoid) at the end "
                "of the model",
                received=f"predictions from {float(preds.detach().min()):.4g} to "
                f"{float(preds.detach().max()):.4g}",
                fix="end the model with `Dense(units, activation='softmax')` ('sigmoid' for "
                "binary), or pass `from_logits=True` to the loss (or metric), e.g. "
                "`SparseCategoricalCrossentropy(from_logits=True)`.",
            )
        )


def _require_classes(num_classes: int, values: torch.Tensor, name: str) -> None:
    if num_classes == 0:
        raise ShapeError(
            format_error(
                f"{name}: the predictions have no class axis to score (its size is 0).",
                expected="predictions (..., classes) with classes >= 1",
                received=f"predictions of shape {tuple(values.shape)}",
                fix="end the model with Dense(num_classes).",
            )
        )


def class_targets(
    values: torch.Tensor,
    y_true: torch.Tensor,
    mask: torch.Tensor | None,
    name: str,
    ignore_class: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate class-id targets against scores `(..., classes)`.

    Returns `(scores, ids, real)`: scores with padded steps set to 1, ids `long` with
    padded steps set to 0 (both safe for any loss), and the real-step mask, all over the
    step shape `values.shape[:-1]`. A target equal to `ignore_class` makes its step
    count as padding (Keras's `ignore_class`): it is left out of `real`, and any id is
    allowed there.
    """
    if (mask is not None and values.dim() != 3) or values.dim() < 2:
        raise ShapeError(
            format_error(
                f"{name} needs one score per class at each step.",
                expected="predictions (batch, time, classes) with a mask, "
                "or (batch, classes) per sequence",
                received=f"predictions of shape {tuple(values.shape)}",
                fix="end the model with Dense(num_classes).",
            )
        )
    step_shape, num_classes = values.shape[:-1], values.shape[-1]
    _require_classes(num_classes, values, name)
    if not values.is_floating_point():  # integer scores: computed in float, as in Keras
        values = values.float()
    if y_true.dim() == values.dim() and y_true.shape[-1] == 1 and num_classes > 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape == values.shape:
        raise ShapeError(
            format_error(
                f"{name} takes class ids, but the targets look one-hot encoded.",
                expected=f"targets of shape {tuple(step_shape)} holding class ids",
                received=f"targets of shape {tuple(y_true.shape)}",
                fix="use the categorical loss or metric for one-hot targets "
                "(CategoricalCrossentropy, CategoricalAccuracy), or pass `y.argmax(-1)` "
                "as class ids.",
            )
        )
    if y_true.shape != step_shape:
        raise ShapeError(
            format_error(
                f"{name}: targets and predictions do not line up.",
                expected=f"targets {tuple(step_shape)} for predictions {tuple(values.shape)}"
                " (one class id per step)",
                received=f"targets of shape {tuple(y_true.shape)}",
                fix=_time_fix(step_shape, y_true.shape, "(batch, output steps, 1)")
                or "targets are (batch, time) for sequence outputs, (batch,) per sequence.",
            )
        )
    real = _real_steps(step_shape, mask, values.device)
    if ignore_class is not None:
        real = real & (y_true != ignore_class)
    exact = _host.checks_read_host(values.device)
    if y_true.is_floating_point():
        whole = torch.where(real, y_true, torch.zeros_like(y_true))
        fractional = whole != whole.round()
        if not exact:
            _host.assert_none(fractional, f"{name} takes whole-number class ids.")
        elif bool(fractional.any()):
            raise ShapeError(
                format_error(
                    f"{name} takes whole-number class ids.",
                    received="fractional or NaN targets at real steps",
                    fix="pass integer class ids (pad them with maskwise.masked.IGNORE_INDEX).",
                )
            )
        y_true = whole.long()
    y_true = y_true.long()  # bool and narrow integer ids index like int64 ones
    invalid = real & ((y_true < 0) | (y_true >= num_classes))
    if not exact:
        _host.assert_none(
            invalid,
            f"{name}: a target at a real step is padding (IGNORE_INDEX) or a class id "
            f"outside the {num_classes} classes the model predicts.",
        )
    elif bool(invalid.any()):
        padded = int((invalid & (y_true == IGNORE_INDEX)).sum())
        if padded:
            raise _padding_error(name, padded, mask, f"IGNORE_INDEX = {IGNORE_INDEX}")
        bad = int(y_true[invalid][0])
        raise ShapeError(
            format_error(
                f"{name}: a class id is outside the {num_classes} classes the model predicts.",
                expected=f"class ids in 0..{num_classes - 1}",
                received=f"class id {bad}",
                fix="give the last Dense one unit per class; padding needs no class "
                "(relabel classes from 0 and let the mask skip the padding).",
            )
        )
    scores = torch.where(real.unsqueeze(-1), values, torch.ones_like(values))
    ids = torch.where(real, y_true, torch.zeros_like(y_true))
    return scores, ids, real


def _time_fix(predictions: torch.Size, targets: torch.Size, form: str) -> str | None:
    """The fix for targets that differ from the predictions in axis 1 alone (their
    number of steps), None otherwise."""
    if len(predictions) < 2 or len(targets) < 2 or predictions[1] == targets[1]:
        return None
    if predictions[:1] + predictions[2:] != targets[:1] + targets[2:]:
        return None
    return (
        f"the targets have {targets[1]} steps and the model's output {predictions[1]}: give "
        f"per-step targets the output's time axis, {form}, padded as the inputs are (a "
        "model that crops, strides or pools the time axis needs targets of its output's "
        "length; the batches then keep the inputs' full padded time axis, as in Keras)."
    )


def dense_targets(
    values: torch.Tensor,
    y_true: torch.Tensor,
    mask: torch.Tensor | None,
    name: str,
    probabilities: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate targets shaped like the predictions `(..., features)`.

    A masked output `(batch, time)` or an unmasked `(batch,)` gets a feature axis of 1;
    targets may omit a trailing feature axis of size 1; `probabilities` requires real
    targets in [0, 1] (read in the same host read as the padding check). Returns
    `(predictions, targets,
    real)` with padded steps set to 1 and 0 (finite, whatever the padding held), both in
    the floating dtype that holds either exactly (integer predictions never truncate
    float targets), and the real-step mask over `predictions.shape[:-1]`.
    """
    if (mask is not None and values.dim() == 2) or values.dim() == 1:
        values = values.unsqueeze(-1)
    if y_true.shape == values.shape[:-1] and values.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    if y_true.shape != values.shape:
        raise ShapeError(
            format_error(
                f"{name}: targets and predictions do not line up.",
                expected=f"targets of shape {tuple(values.shape)} (like the predictions)",
                received=f"targets of shape {tuple(y_true.shape)}",
                fix=_time_fix(values.shape, y_true.shape, "(batch, output steps, features)")
                or "give the last layer one unit per target feature; sequence targets "
                "are (batch, time, features).",
            )
        )
    real = _real_steps(values.shape[:-1], mask, values.device)
    if y_true.is_floating_point():
        padding, what = ~torch.isfinite(y_true), "NaN or inf"
    else:
        padding, what = y_true == IGNORE_INDEX, f"IGNORE_INDEX = {IGNORE_INDEX}"
    outside = (y_true < 0) | (y_true > 1) if probabilities else torch.zeros_like(padding)
    bad = torch.stack([(real & padding.any(-1)).sum(), (real & outside.any(-1)).sum()])
    if not _host.checks_read_host(values.device):
        _host.assert_none(
            bad > 0,
            f"{name}: a target at a real step is padding ({what})"
            + (" or outside [0, 1]." if probabilities else "."),
        )
        padded = out_of_range = 0
    else:
        padded, out_of_range = bad.tolist()
    if padded:
        raise _padding_error(name, padded, mask, what)
    if out_of_range:
        raise ShapeError(
            format_error(
                f"{name}: {out_of_range} real step(s) have targets outside [0, 1].",
                expected="probabilities or 0/1 labels at the real steps",
                received=f"targets from {float(y_true.min())} to {float(y_true.max())}",
                fix="pad binary targets with NaN (`make_loader` does this) rather than a "
                "label such as -1, and pass 0/1 labels.",
            )
        )
    keep = real.unsqueeze(-1)
    dtype = torch.promote_types(torch.promote_types(values.dtype, y_true.dtype), torch.float32)
    values = values.to(dtype)
    preds = torch.where(keep, values, torch.ones_like(values))
    targets = torch.where(keep, y_true.to(dtype), torch.zeros_like(values))
    return preds, targets, real


def step_weights(
    sample_weight: Any, step_shape: torch.Size, device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """Sample weights as a tensor `(batch,)` or of the step shape, or None. A trailing
    axis of 1 is dropped, as Keras does: `(N, T, 1)` weights for `(N, T)` steps, and
    `(N, 1)` for one step per sequence."""
    if sample_weight is None:
        return None
    weight = as_targets(sample_weight, device).to(dtype)
    if (
        weight.ndim > 1
        and weight.shape[-1] == 1
        and weight.shape[:-1] in (step_shape[:1], step_shape)
    ):
        weight = weight.squeeze(-1)
    if weight.shape not in (step_shape[:1], step_shape):
        raise ShapeError(
            format_error(
                "sample_weight must hold one weight per sequence or per step.",
                expected=f"shape {tuple(step_shape[:1])} or {tuple(step_shape)} (or either "
                "with a trailing axis of 1)",
                received=f"shape {tuple(weight.shape)}",
            )
        )
    return weight


def _class_weight_table(
    class_weight: ClassWeight, num_classes: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One weight per class id `0..num_classes - 1` (1 for a class a dict leaves out)."""
    if isinstance(class_weight, Mapping):
        table = torch.ones(num_classes, dtype=dtype)
        for key, weight in class_weight.items():
            table[_class_id_key(key, num_classes)] = _class_weight_value(weight, key)
    else:
        values = list(class_weight)
        table = torch.tensor([_class_weight_value(w, i) for i, w in enumerate(values)])
        table = table.to(dtype)
        if table.numel() != num_classes:
            raise ConfigError(
                format_error(
                    "class_weight needs one weight per class.",
                    expected=f"a dict {{class_id: weight}} or a list of {num_classes} weights",
                    received=f"{table.numel()} weight(s)",
                )
            )
    return table.to(device)


def _class_weight_value(weight: Any, key: Any) -> float:
    """A class weight checked to be a finite number >= 0."""
    number = weight.item() if isinstance(weight, np.generic | torch.Tensor) else weight
    if isinstance(number, bool) or not isinstance(number, int | float):
        problem = f"the class_weight of class {key!r} is not a number."
    elif not math.isfinite(number) or number < 0:
        problem = f"the class_weight of class {key!r} is {number}; weights are finite and >= 0."
    else:
        return float(number)
    raise ConfigError(
        format_error(
            problem,
            expected="a finite weight >= 0 per class (0 ignores the class)",
            received=f"{weight!r} ({type(weight).__name__})",
            fix="e.g. class_weight={0: 1.0, 1: 3.0} to weigh class 1 three times.",
        )
    )


def _class_id_key(key: Any, num_classes: int) -> int:
    """A `class_weight` key checked to be a class id in `0..num_classes - 1`."""
    if isinstance(key, bool) or not isinstance(key, int | np.integer):
        problem = f"class_weight key {key!r} is not an integer class id."
    elif key < 0:
        problem = (
            f"class_weight key {key} is negative; class ids start at 0 (a negative key "
            "does not count from the end)."
        )
    elif key >= num_classes:
        problem = f"class_weight key {key} is not one of the {num_classes} classes."
    else:
        return int(key)
    raise ConfigError(
        format_error(
            problem,
            expected=f"integer keys in 0..{num_classes - 1} "
            f"(the predictions have {num_classes} classes)",
            received=f"key {key!r} ({type(key).__name__})",
            fix="key the weights by class id: {0: w0, 1: w1, ...}.",
        )
    )


def broadcast_weight(weight: torch.Tensor, step_shape: torch.Size) -> torch.Tensor:
    """Weights `(batch,)` or of the step shape, viewed to broadcast over the step shape."""
    return weight.reshape(weight.shape + (1,) * (len(step_shape) - weight.dim()))


def weighted_steps(
    loss: torch.Tensor, real: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    """Per-step losses times their weights, 0 at padded steps (Keras's `"none"` values)."""
    if weight is not None:
        loss = loss * broadcast_weight(weight, loss.shape)
    return torch.where(real, loss, torch.zeros_like(loss))


def _reduce(
    loss: torch.Tensor,
    real: torch.Tensor,
    weight: torch.Tensor | None,
    masked: bool,
    reduction: str,
    normalizer: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-step losses `loss` (step shape) over the real steps; `normalizer`
    replaces the denominator (see the module docstring)."""
    if reduction == "keras2":
        return _reduce_keras2(loss, real, weight, masked)
    loss = weighted_steps(loss, real, weight)
    if reduction == "mean_with_sample_weight":
        ones = torch.ones_like(loss)
        weights = ones if weight is None else broadcast_weight(weight, loss.shape) * ones
        total_weight = torch.where(real, weights, torch.zeros_like(loss)).sum()
        # Keras's divide_no_nan: weights summing to 0 give 0.
        safe = torch.where(total_weight != 0, total_weight, torch.ones_like(total_weight))
        return torch.where(total_weight != 0, loss.sum() / safe, torch.zeros_like(safe))
    if reduction == "mean":
        total, count = loss.sum(), real.sum()
    elif reduction == "sum":
        total, count = loss.sum(), torch.ones((), device=loss.device)
    else:  # sequence_mean
        rows = loss.reshape(loss.shape[0], -1).sum(1)
        counts = real.reshape(real.shape[0], -1).sum(1)
        total, count = (rows / counts.clamp_min(1).to(loss.dtype)).sum(), (counts > 0).sum()
    if normalizer is not None:
        count = torch.as_tensor(normalizer, device=loss.device)
        # A whole batch without a real step has a sum of 0 on every piece: 0, not NaN.
        count = torch.where(count > 0, count, torch.ones_like(count))
        return total / count.to(loss.dtype)
    return total / count.clamp_min(1).to(loss.dtype)


def _reduce_keras2(
    loss: torch.Tensor, real: torch.Tensor, weight: torch.Tensor | None, masked: bool
) -> torch.Tensor:
    """Keras 2's `weighted_masked_objective`, step for step."""
    score = loss
    if masked:
        mask = real.to(loss.dtype)
        score = torch.where(real, score, torch.zeros_like(score))  # score *= mask
        score = score / (mask.mean() + EPSILON)
    if weight is not None:
        if score.dim() > weight.dim():
            score = score.mean(dim=tuple(range(weight.dim(), score.dim())))
        score = score * weight
        nonzero = (weight != 0).to(loss.dtype).mean()
        score = score / torch.where(nonzero > 0, nonzero, torch.ones_like(nonzero))
    return score.mean()


def standard_reduction(reduction: str | None) -> str:
    """The name a loss stores for `reduction`, one of `REDUCTIONS` (Keras 3's other
    names map to theirs), or a `ConfigError` listing the accepted names.

    Example:
        >>> standard_reduction("sum_over_batch_size"), standard_reduction(None)
        ('mean', 'none')
    """
    if isinstance(reduction, str | None) and reduction in KERAS_REDUCTIONS:
        return KERAS_REDUCTIONS[reduction]
    if isinstance(reduction, str) and reduction in REDUCTIONS:
        return reduction
    accepted = [*REDUCTIONS, *KERAS_REDUCTIONS]
    raise ConfigError(
        format_error(
            "Unknown loss reduction.",
            expected="one of " + ", ".join(repr(name) for name in accepted),
            received=repr(reduction),
            fix="Keras's default 'sum_over_batch_size' is maskwise's 'mean' (the mean "
            "over the real steps).",
        )
    )


# ---------------------------------------------------------------------- losses
class Loss:
    """Base class: a per-step loss reduced over the real steps.

    Subclasses implement `per_step(values, y_true, mask) -> (loss, real, class_ids)`:
    the loss at each step (step shape: `(batch, time)` or `(batch,)`), the real-step
    mask, and the class id of each step's target (or None when the targets are not
    classes, which makes `class_weight` an error).

    Example:
        >>> class CubedError(Loss):
        ...     labels = False  # the targets are values, not classes
        ...     def per_step(self, values, y_true, mask):
        ...         preds, targets, real = dense_targets(values, y_true, mask, self.name)
        ...         return (preds - targets).abs().pow(3).mean(-1), real, None
        >>> y_pred = Masked(torch.zeros(1, 2, 1), lengths_to_mask([1], 2))
        >>> float(CubedError()(torch.tensor([[[2.0], [float("nan")]]]), y_pred))  # |0 - 2|^3
        8.0

    Args:
        reduction: `"mean"` (default, Keras 3's `"sum_over_batch_size"`), `"sum"`,
            `"mean_with_sample_weight"`, `"none"` (or None), `"sequence_mean"` or
            `"keras2"` (see the module docstring).
        name: the loss's name (defaults to the Keras function name).
        dtype: the float dtype the loss computes in (`"float32"`, `torch.float64`, ...):
            the predictions are cast to it; None (default) computes in theirs.
    """

    default_name = "loss"
    labels = True
    """The targets are classes (the cross-entropies): lets `read_pair` check the order."""

    def __init__(
        self, name: str | None = None, reduction: str | None = "mean", dtype: Any = None
    ) -> None:
        self.reduction = standard_reduction(reduction)
        self.name = name or self.default_name
        self.dtype = None if dtype is None else dtype_name(type(self).__name__, dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly), enough to rebuild the loss."""
        dtype = {} if self.dtype is None else {"dtype": self.dtype}
        return {"reduction": self.reduction, "name": self.name, **dtype}

    def per_step(
        self, values: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def __call__(
        self,
        y_true: Any,
        y_pred: Masked | torch.Tensor,
        sample_weight: Any = None,
        class_weight: ClassWeight | None = None,
        normalizer: float | torch.Tensor | None = None,
    ) -> torch.Tensor | Masked:
        """The reduced loss over the real steps of `y_pred` (a scalar tensor), or with
        `reduction="none"` the weighted loss of each step (a `Masked` marking the
        padded steps for a masked `y_pred`, else a tensor of the step shape).

        Keras's argument order: `loss(y_true, y_pred)`; arguments evidently swapped are
        an error (see the module docstring).

        Args:
            y_true: targets; class ids `(batch, time)` / `(batch,)` for sparse losses,
                else shaped like the predictions.
            y_pred: the model's output, `Masked` or tensor `(batch, time, units)` /
                `(batch, units)`.
            sample_weight: `(batch,)` per sequence or `(batch, time)` per step.
            class_weight: `{class_id: weight}` (keys: class ids `0..classes - 1`; an
                absent class weighs 1) or a list of one weight per class (class targets
                only); multiplies the sample weight of each step.
            normalizer: the denominator of the whole batch when `y_pred` is one piece
                of it (data parallel, gradient accumulation): see the module docstring.
                None divides by this batch's own count.
        """
        self._check_normalizer(normalizer)
        usage = f"{type(self).__name__}()(y_true, y_pred)"
        values, mask, targets = read_pair(y_true, y_pred, usage, self.labels)
        if self.dtype is not None:
            values = values.to(FLOAT_DTYPES[self.dtype])
        loss, real, class_ids = self.per_step(values, targets, mask)
        weight = step_weights(sample_weight, loss.shape, loss.device, loss.dtype)
        if class_weight is not None:
            if class_ids is None:
                raise ConfigError(
                    format_error(
                        f"{self.name}: class_weight needs class targets.",
                        expected="class ids, one-hot rows, or 0/1 targets of one output unit",
                        received=f"class_weight with {type(self).__name__} and predictions "
                        f"{tuple(values.shape)}",
                        fix="weight the steps with sample_weight instead.",
                    )
                )
            table = _class_weight_table(class_weight, _num_classes(values), loss.device, loss.dtype)
            by_class = table[class_ids]
            weight = by_class if weight is None else broadcast_weight(weight, loss.shape) * by_class
        if self.reduction == "none":
            steps = weighted_steps(loss, real, weight)
            return steps if mask is None else Masked(steps, mask)
        return _reduce(loss, real, weight, mask is not None, self.reduction, normalizer)

    def counted(self, y_true: Any, y_pred: Masked | torch.Tensor) -> torch.Tensor:
        """The steps this loss counts (bool, `y_pred`'s step shape): the output's real
        steps (`counted_steps`), less those whose target the loss leaves out
        (`SparseCategoricalCrossentropy(ignore_class=)`). What `fit` weighs each
        batch's loss by in the epoch's loss.

        Example:
            >>> y_pred = Masked(torch.full((1, 3, 2), 0.5), lengths_to_mask([2], 3))
            >>> y_true = torch.tensor([[1, 255, -100]])
            >>> SparseCategoricalCrossentropy(ignore_class=255).counted(y_true, y_pred)
            tensor([[ True, False, False]])
        """
        return _step_mask(y_pred)

    def denominator(self, y_pred: Masked | torch.Tensor, y_true: Any = None) -> torch.Tensor:
        """This batch's share of the `normalizer` of a whole batch (an int64 scalar).

        `"mean"`: the steps the loss counts (`counted`); `"sequence_mean"`: the
        sequences with at least one of them. Summed over the pieces of a batch (and
        all-reduced across processes), it is the `normalizer` of each piece. The
        `"sum"` and `"keras2"` reductions have no count: a `ConfigError`. `y_true`, the
        targets, is needed by a loss that leaves some out (`ignore_class`).
        """
        if self.reduction not in ("mean", "sequence_mean"):
            raise ConfigError(
                format_error(
                    f"{self.name}: the {self.reduction!r} reduction divides by no count.",
                    expected="reduction 'mean' or 'sequence_mean'",
                    received=f"reduction={self.reduction!r}",
                    fix="for 'sum', pass normalizer=1 / world_size() under data parallel "
                    "(DDP averages the gradients); 'keras2' cannot be split.",
                )
            )
        real = self.counted(y_true, y_pred)
        if self.reduction == "sequence_mean":
            return (real.reshape(real.shape[0], -1).sum(1) > 0).sum()
        return real.sum()

    def _check_normalizer(self, normalizer: float | torch.Tensor | None) -> None:
        """Refuse a normalizer with the keras2 reduction, or one that is not a count."""
        if normalizer is None:
            return
        if self.reduction not in COUNTED:
            raise ConfigError(
                format_error(
                    f"{self.name}: the {self.reduction!r} reduction cannot take a normalizer.",
                    expected="reduction " + ", ".join(repr(name) for name in COUNTED),
                    received=f"reduction={self.reduction!r} with normalizer=...",
                    fix="a batch split across processes or micro-batches has no form for "
                    "Keras 2's per-batch fraction of real steps, a sum of weights, or no "
                    "reduction: use reduction='mean'.",
                )
            )
        if isinstance(normalizer, torch.Tensor):
            if normalizer.numel() != 1:
                raise ShapeError(
                    format_error(
                        f"{self.name}: normalizer must be one number.",
                        expected="a scalar tensor or a number (the whole batch's count)",
                        received=f"a tensor of shape {tuple(normalizer.shape)}",
                    )
                )
            return
        if (
            isinstance(normalizer, bool)
            or not isinstance(normalizer, int | float | np.number)
            or not math.isfinite(normalizer)
            or normalizer < 0
        ):
            raise ConfigError(
                format_error(
                    f"{self.name}: normalizer must be a finite number >= 0.",
                    expected="the count of real steps of the whole batch, e.g. "
                    "`global_real_steps(y_pred) / world_size()`",
                    received=repr(normalizer),
                )
            )


def _num_classes(values: torch.Tensor) -> int:
    return max(int(values.shape[-1]), 2) if values.dim() >= 2 else 2


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between class-id targets and per-class scores, at real steps.

    Value rule: `-log p[target]`, with probabilities renormalised to sum 1 and clipped
    to `[1e-7, 1 - 1e-7]` like Keras (or `log_softmax` of logits when `from_logits`).
    Mask rule: only the steps `y_pred.mask` marks as real count; targets hold
    `IGNORE_INDEX` at padded steps.

    `ignore_class` (Keras 3's argument): the steps whose target equals it count as
    padded steps, in every reduction, as Keras's mask on the loss makes them count:
    the default `"mean"` is the mean over the real steps whose target is another class
    (with padding from a mask too, Keras's value), `"none"` holds 0 at them. Their
    target may be any number (255, -1, `IGNORE_INDEX`), not a class of the model.
    Keras 2's `"keras2"` reduction, which predates it, refuses it.

    Example:
        >>> y = Masked(torch.full((1, 3, 2), 0.5), lengths_to_mask([2], 3))
        >>> float(SparseCategoricalCrossentropy()(torch.tensor([[0, 1, -100]]), y))
        0.6931...
        >>> logits = Masked(torch.tensor([[[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]]))
        >>> loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
        >>> float(loss(torch.tensor([[0, 255, 1]]), logits))  # steps 0 and 2 only
        0.4100...

    Args:
        from_logits: the predictions are logits (no softmax at the end of the model).
        ignore_class: a target value whose steps do not count (an integer), or None.
        reduction: see `Loss`.
        axis: Keras's class axis: -1 only (maskwise reads the classes last).
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str = "mean",
        axis: int = -1,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_class_axis(type(self).__name__, axis)
        self.from_logits = from_logits
        self.ignore_class = _check_ignore_class(ignore_class, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            **super().get_config(),
        }

    def per_step(self, values, y_true, mask):
        scores, ids, real = class_targets(values, y_true, mask, self.name, self.ignore_class)
        log_prob = _log_probs(scores, self.from_logits, self.name)
        return -log_prob.gather(-1, ids.unsqueeze(-1)).squeeze(-1), real, ids

    def counted(self, y_true: Any, y_pred: Masked | torch.Tensor) -> torch.Tensor:
        if self.ignore_class is None:
            return super().counted(y_true, y_pred)
        if y_true is None:
            raise ConfigError(
                format_error(
                    f"{self.name}: with ignore_class the steps it counts depend on the targets.",
                    received="y_true=None",
                    fix="pass the targets: `loss.denominator(y_pred, y_true)`.",
                )
            )
        usage = f"{type(self).__name__}().counted(y_true, y_pred)"
        values, mask, targets = read_pair(y_true, y_pred, usage, self.labels)
        return class_targets(values, targets, mask, self.name, self.ignore_class)[2]


def _check_ignore_class(ignore_class: Any, reduction: str) -> int | None:
    """`ignore_class` checked to be an integer (or None), and not with `"keras2"`."""
    if ignore_class is None:
        return None
    if isinstance(ignore_class, bool) or not isinstance(ignore_class, int | np.integer):
        raise ConfigError(
            format_error(
                "ignore_class must be an integer target value, or None.",
                received=repr(ignore_class),
                fix="e.g. ignore_class=255 for a 'void' label in the targets.",
            )
        )
    if reduction == "keras2":
        raise ConfigError(
            format_error(
                "ignore_class has no Keras 2 form: Keras 2's weighted_masked_objective "
                "(reduction='keras2') predates it.",
                received=f"ignore_class={ignore_class}, reduction='keras2'",
                fix="use reduction='mean' (Keras 3's value with ignore_class), or pad "
                "those targets' steps out of the output's mask.",
            )
        )
    return int(ignore_class)


def _check_class_axis(owner: str, axis: Any) -> None:
    """Keras's `axis=` of a cross-entropy: maskwise reads the classes on the last axis,
    so -1 (the default) only."""
    if axis != -1 or isinstance(axis, bool):
        raise ConfigError(
            format_error(
                f"{owner} reads the classes on the last axis (axis=-1).",
                received=f"axis={axis!r}",
                fix="drop axis=, and put the class axis last (a `Permute` layer before "
                "the output, or `torch.movedim` on the scores).",
            )
        )


def _log_probs(scores: torch.Tensor, from_logits: bool, name: str) -> torch.Tensor:
    """Log-probabilities on the last axis, computed as Keras does."""
    if from_logits:
        return F.log_softmax(scores, dim=-1)
    require_probabilities(scores, name)
    probs = scores / scores.sum(dim=-1, keepdim=True)
    return probs.clamp(EPSILON, 1.0 - EPSILON).log()


class _SmoothedCrossentropy(Loss):
    """Shared arguments of the cross-entropies on dense targets: `from_logits` and
    `label_smoothing` (Keras's names and defaults)."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_class_axis(type(self).__name__, axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def get_config(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            **super().get_config(),
        }


class CategoricalCrossentropy(_SmoothedCrossentropy):
    """Cross-entropy between one-hot (or soft) targets and per-class scores, at real steps.

    Value rule: `-sum(target * log p)`, probabilities renormalised and clipped like
    Keras. Mask rule: only real steps count; padded target rows may hold anything.

    Example:
        >>> y = Masked(torch.full((1, 2, 2), 0.5), lengths_to_mask([1], 2))
        >>> float(CategoricalCrossentropy()(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), y))
        0.6931...

    Args:
        from_logits: the predictions are logits.
        label_smoothing: in [0, 1]; targets become `t * (1 - s) + s / classes`.
        axis: Keras's class axis: -1 only (maskwise reads the classes last).
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "categorical_crossentropy"

    def per_step(self, values, y_true, mask):
        _require_classes(values.shape[-1], values, self.name)
        if values.dim() >= 2 and y_true.shape == values.shape[:-1] and values.shape[-1] > 1:
            raise ShapeError(
                format_error(
                    f"{self.name} takes one-hot targets, but the targets look like class ids.",
                    expected=f"targets of shape {tuple(values.shape)}",
                    received=f"targets of shape {tuple(y_true.shape)}",
                    fix="use SparseCategoricalCrossentropy for class ids.",
                )
            )
        if (
            y_true.dim() >= 1
            and values.dim() >= 1
            and y_true.shape[:-1] == values.shape[:-1]
            and y_true.shape[-1] != values.shape[-1]
        ):
            raise ShapeError(
                format_error(
                    f"{self.name}: the targets and the predictions have different numbers "
                    "of classes.",
                    expected=f"{values.shape[-1]} classes (the predictions' last axis)",
                    received=f"{y_true.shape[-1]} classes in the targets",
                    fix="give the last Dense one unit per class.",
                )
            )
        preds, targets, real = dense_targets(values, y_true, mask, self.name)
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + (
                self.label_smoothing / targets.shape[-1]
            )
        loss = -(targets * _log_probs(preds, self.from_logits, self.name)).sum(-1)
        return loss, real, targets.argmax(-1)


class BinaryCrossentropy(_SmoothedCrossentropy):
    """Binary cross-entropy per output unit, averaged over units, at real steps.

    Value rule: Keras's `binary_crossentropy` (probabilities clipped to
    `[1e-7, 1 - 1e-7]`, or `binary_cross_entropy_with_logits`), mean over the last
    axis. Mask rule: only real steps count.

    Example:
        >>> y = Masked(torch.full((1, 2, 1), 0.5), lengths_to_mask([1], 2))
        >>> float(BinaryCrossentropy()(torch.tensor([[1.0, float("nan")]]), y))
        0.6931...

    Args:
        from_logits: the predictions are logits.
        label_smoothing: in [0, 1]; targets become `t * (1 - s) + s / 2`.
        axis: Keras's class axis: -1 only (maskwise reads the classes last).
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "binary_crossentropy"

    def per_step(self, values, y_true, mask):
        preds, targets, real = dense_targets(values, y_true, mask, self.name, probabilities=True)
        # Class ids (0 or 1) for class_weight, only with one output unit.
        class_ids = targets[..., 0].round().long().clamp(0, 1) if targets.shape[-1] == 1 else None
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            loss = F.binary_cross_entropy_with_logits(preds, targets, reduction="none")
        else:
            require_probabilities(preds, self.name)
            # Keras's clipped cross-entropy, written out rather than through
            # `F.binary_cross_entropy`, which raises on NaN: a NaN prediction at a real
            # step gives a NaN loss, which `fit`'s non-finite guard reports.
            p = preds.clamp(EPSILON, 1.0 - EPSILON)
            loss = -(targets * p.log() + (1.0 - targets) * (-p).log1p())
        return loss.mean(-1), real, class_ids


class _Regression(Loss):
    """A per-element error, averaged over the last axis (Keras's regression losses)."""

    labels = False

    def __init__(
        self, reduction: str | None = "mean", name: str | None = None, dtype: Any = None
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def error(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def per_step(self, values, y_true, mask):
        preds, targets, real = dense_targets(values, y_true, mask, self.name)
        return self.error(preds, targets).mean(-1), real, None


class MeanSquaredError(_Regression):
    """Mean over the last axis of `(y_pred - y_true) ** 2`, at real steps.

    Mask rule: only real steps count; NaN targets at padded steps are fine.

    Example:
        >>> y = Masked(torch.zeros(1, 2, 1), lengths_to_mask([1], 2))
        >>> float(MeanSquaredError()(torch.tensor([[[2.0], [float("nan")]]]), y))
        4.0

    Args:
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "mean_squared_error"

    def error(self, preds, targets):
        return (preds - targets).square()


class MeanAbsoluteError(_Regression):
    """Mean over the last axis of `|y_pred - y_true|`, at real steps.

    Mask rule: only real steps count (the masked MAE is over real steps).

    Example:
        >>> y = Masked(torch.zeros(1, 2, 1), lengths_to_mask([1], 2))
        >>> float(MeanAbsoluteError()(torch.tensor([[[2.0], [float("nan")]]]), y))
        2.0

    Args:
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "mean_absolute_error"

    def error(self, preds, targets):
        return (preds - targets).abs()


class MeanAbsolutePercentageError(_Regression):
    """`100 *` the mean over the last axis of `|y_pred - y_true| / max(|y_true|, 1e-7)`,
    at real steps (Keras's `mape`).

    Mask rule: only real steps count; NaN targets at padded steps are fine.

    Example:
        >>> y = Masked(torch.full((1, 2, 1), 3.0), lengths_to_mask([1], 2))
        >>> loss = MeanAbsolutePercentageError()
        >>> float(loss(torch.tensor([[[4.0], [float("nan")]]]), y))  # 100 * |3 - 4| / 4
        25.0

    Args:
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "mean_absolute_percentage_error"

    def error(self, preds, targets):
        return 100.0 * (preds - targets).abs() / targets.abs().clamp(min=EPSILON)


class MeanSquaredLogarithmicError(_Regression):
    """Mean over the last axis of `(log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2`
    at real steps (Keras's `msle`): values below `1e-7` count as `1e-7`, as in Keras.

    Mask rule: only real steps count; NaN targets at padded steps are fine.

    Example:
        >>> y = Masked(torch.full((1, 2, 1), 1.0), lengths_to_mask([1], 2))
        >>> loss = MeanSquaredLogarithmicError()
        >>> float(loss(torch.tensor([[[3.0], [float("nan")]]]), y))  # (log 4 - log 2) ** 2
        0.4804...

    Args:
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "mean_squared_logarithmic_error"

    def error(self, preds, targets):
        return (preds.clamp(min=EPSILON).log1p() - targets.clamp(min=EPSILON).log1p()).square()


class LogCosh(_Regression):
    """Mean over the last axis of `log(cosh(y_pred - y_true))`, at real steps (Keras's
    `log_cosh`), computed as Keras does, `x + softplus(-2x) - log(2)`, which stays finite
    where `cosh` overflows.

    Mask rule: only real steps count; NaN targets at padded steps are fine.

    Example:
        >>> y = Masked(torch.zeros(1, 2, 1), lengths_to_mask([1], 2))
        >>> float(LogCosh()(torch.tensor([[[1.0], [float("nan")]]]), y))  # log(cosh(1))
        0.4337...

    Args:
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "log_cosh"

    def error(self, preds, targets):
        x = preds - targets
        return x + F.softplus(-2.0 * x) - math.log(2.0)


class Huber(_Regression):
    """Huber loss: `0.5 e**2` where `|e| <= delta`, else `delta * |e| - 0.5 delta**2`.

    Mean over the last axis, at real steps (Keras's `huber`). Mask rule: only real
    steps count.

    Example:
        >>> y = Masked(torch.zeros(1, 2, 1), lengths_to_mask([1], 2))
        >>> float(Huber()(torch.tensor([[[3.0], [float("nan")]]]), y))
        2.5

    Args:
        delta: where the loss turns from quadratic to linear.
        reduction: see `Loss`.
        name: the loss's name.
        dtype: see `Loss`.
    """

    default_name = "huber_loss"

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str = "mean",
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = delta

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta, **super().get_config()}

    def error(self, preds, targets):
        error = (preds - targets).abs()
        return torch.where(
            error <= self.delta, 0.5 * error.square(), self.delta * error - 0.5 * self.delta**2
        )


LOSSES: dict[str, type[Loss]] = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
    "log_cosh": LogCosh,
    "logcosh": LogCosh,
    "huber": Huber,
}
"""Keras loss names (with its abbreviations, `"mse"`, `"MAPE"`, `"bce"`, ..., and the class
names) that `get_loss` resolves."""
LOSSES.update({cls.__name__: cls for cls in set(LOSSES.values())})


def get_loss(identifier: str | Loss) -> Loss:
    """A `Loss` from a Keras name (`"mse"`, `"sparse_categorical_crossentropy"`, ...) or
    a `Loss` object (returned as is).

    Example:
        >>> get_loss("mse")
        MeanSquaredError(reduction='mean', name='mean_squared_error')
        >>> loss = get_loss("sparse_categorical_crossentropy")
        >>> y_pred = Masked(torch.full((1, 2, 2), 0.5), lengths_to_mask([1], 2))
        >>> float(loss(torch.tensor([[1, -100]]), y_pred))  # -log(0.5) at the real step
        0.6931...
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in LOSSES:
            raise ConfigError(
                format_error(
                    f"Unknown loss {identifier!r}.",
                    expected="one of " + ", ".join(sorted(LOSSES)),
                    received=repr(identifier),
                    fix="or pass a maskwise.losses.Loss object.",
                )
            )
        return LOSSES[identifier]()
    raise MaskwiseTypeError(
        format_error(
            "A loss must be a name or a maskwise.losses.Loss.",
            received=type(identifier).__name__,
            fix=keras_object_fix(identifier, "losses", LOSSES)
            or "e.g. `loss='sparse_categorical_crossentropy'` or "
            "`loss=maskwise.losses.SparseCategoricalCrossentropy(from_logits=True)`.",
        )
    )


def keras_object_fix(identifier: Any, module: str, names: Mapping[str, type]) -> str | None:
    """For a Keras loss or metric object that maskwise has under the same class name:
    the fix naming maskwise's class; None for anything else.

    Example:
        >>> class Huber:  # stands for keras.losses.Huber
        ...     __module__ = "keras.src.losses.losses"
        >>> keras_object_fix(Huber(), "losses", LOSSES)
        'a Keras object is not a maskwise one: use `maskwise.losses.Huber(...)` ...'
        >>> keras_object_fix(object(), "losses", LOSSES) is None
        True
    """
    kind = type(identifier).__name__
    if not type(identifier).__module__.startswith("keras") or kind not in names:
        return None
    return (
        f"a Keras object is not a maskwise one: use `maskwise.{module}.{kind}(...)` with "
        "the same arguments (or its name in compile)."
    )
