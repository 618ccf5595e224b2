"""Layout checks: every per-sequence array is `(time, features)` (or `(time,)` for tokens).

A `(features, time)` array is the most common silent mistake with ragged data (e.g.
a `(5, 20)` array of 5 features x 20 steps read as 5 steps of 20 features). These
checks find it from the shapes, or from where the padding sits, and name the fix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from ..errors import MaskWarning, ShapeError, format_error


def padded_steps(values: torch.Tensor, mask_value: float) -> torch.Tensor:
    """Bool `(batch, time)`: True where every feature of the step equals `mask_value`.

    The rule of a `Masking(mask_value)` layer (NaN matches NaN).
    """
    flat = values.flatten(2) if values.dim() > 2 else values.unsqueeze(-1)
    if math.isnan(mask_value):
        return torch.isnan(flat).all(dim=-1)
    return (flat == mask_value).all(dim=-1)


def trailing_lengths(values: torch.Tensor, mask_value: float | None) -> torch.Tensor:
    """Per sequence, the index of its last step that is not all `mask_value`, plus one.

    `values (batch, time, ...)`; returns int64 `(batch,)`. `mask_value=None`: every step
    is real, so every length is `time`.
    """
    batch, time = values.shape[:2]
    if mask_value is None or time == 0:
        return torch.full((batch,), time, dtype=torch.long)
    real = ~padded_steps(values, mask_value)
    steps = torch.arange(1, time + 1, device=values.device).expand(batch, time)
    return torch.where(real, steps, torch.zeros_like(steps)).amax(dim=1).cpu()


def check_sequences(
    arrays: Sequence[torch.Tensor],
    num_features: int | None = None,
    mask_value: float | None = 0.0,
    name: str = "x",
) -> None:
    """Check that every array of a ragged input is `(time, features)`, or `(time,)` tokens.

    Raises a `ShapeError` that names the fix when the arrays look transposed: their
    first axis equals `num_features` but the second does not; or their first axis is
    constant while the second varies; or they all have one shape and the padding
    (trailing `mask_value` columns) runs along axis 1 instead of axis 0.
    """
    dims = {a.dim() for a in arrays}
    if dims == {1}:
        if any(a.is_floating_point() for a in arrays):
            raise ShapeError(
                format_error(
                    f"{name}: 1-D float sequences are ambiguous; maskwise reads 1-D "
                    "sequences as token ids.",
                    expected="(time, features) float arrays, or (time,) integer token ids",
                    received=f"float arrays such as {tuple(arrays[0].shape)}",
                    fix="for one feature per step pass `[a[:, None] for a in arrays]`.",
                )
            )
        return
    if dims != {2}:
        shapes = sorted({tuple(a.shape) for a in arrays}, key=len)[:4]
        raise ShapeError(
            format_error(
                f"{name}: each sequence must be one array (time, features).",
                expected="2-D arrays (time_i, features), or 1-D integer token ids (time_i,)",
                received=f"shapes such as {shapes}",
                fix="a padded batch (batch, time, features) is passed as one array, "
                "not in a list; several inputs are passed as a tuple.",
            )
        )
    firsts = {a.shape[0] for a in arrays}
    seconds = {a.shape[1] for a in arrays}
    if num_features is None and len(seconds) == 1:
        num_features = next(iter(seconds))
    if num_features is not None:
        for i, a in enumerate(arrays):
            if a.shape[1] == num_features:
                continue
            if a.shape[0] == num_features:
                raise _transposed(name, i, a, f"its first axis is {num_features}, the features")
            raise ShapeError(
                format_error(
                    f"{name}[{i}] has a different number of features.",
                    expected=f"(time, {num_features})",
                    received=f"shape {tuple(a.shape)}",
                )
            )
        if len(firsts) == 1 and len(arrays) > 1:
            _check_padding_axis(arrays, mask_value, name)
        return
    if len(firsts) == 1:
        raise _transposed(
            name, 0, arrays[0], "the first axis is the same in every array while the second varies"
        )
    raise ShapeError(
        format_error(
            f"{name}: the sequences disagree on the number of features.",
            expected="every array (time_i, features) with the same features",
            received=f"shapes such as {sorted({tuple(a.shape) for a in arrays})[:4]}",
        )
    )


def _transposed(name: str, index: int, array: torch.Tensor, why: str, fix: str = ".") -> ShapeError:
    f, t = array.shape
    return ShapeError(
        format_error(
            f"{name}: the sequences look transposed ({why}).",
            expected="each array (time, features)",
            received=f"each array is (features, time) = ({f}, {t}), e.g. {name}[{index}]",
            fix=f"pass `[a.T for a in arrays]`{fix}",
        )
    )


def _check_padding_axis(
    arrays: Sequence[torch.Tensor], mask_value: float | None, name: str
) -> None:
    """Equal-shape arrays: find padding along the wrong axis, or padding inside a list."""
    if mask_value is None or arrays[0].shape[0] == 0:  # no steps: no padding to place
        return
    stacked = torch.stack(list(arrays))
    rows_padded = bool((trailing_lengths(stacked, mask_value) < stacked.shape[1]).any())
    # Two or more trailing padded columns: one all-zero last feature is not enough.
    columns = trailing_lengths(stacked.transpose(1, 2), mask_value)
    columns_padded = bool((columns <= stacked.shape[2] - 2).any())
    if columns_padded and not rows_padded:
        raise _transposed(
            name,
            int(torch.argmin(columns)),
            arrays[0],
            f"their last columns are all {mask_value}: the padding runs along axis 1; "
            "if they really are (time, features), pass `mask_value=None`",
            "; as they are padded, better `np.stack([a.T for a in arrays])`, one padded "
            "array (batch, time, features) whose padding is inferred from `mask_value`.",
        )
    if rows_padded:
        warnings.warn(
            f"{name}: every sequence has the same shape {tuple(arrays[0].shape)} and some "
            f"end in steps that are all {mask_value}: they look padded already, but in a "
            "list each array's length is its number of rows, so those steps count as real. "
            "Fix: pass the unpadded arrays, or one padded array `np.stack(arrays)` (its "
            "padding is then inferred from `mask_value`).",
            MaskWarning,
            stacklevel=4,
        )
