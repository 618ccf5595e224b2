"""Padding of targets and weights, and the dtype rules of the data pipeline.

Integer (class) targets are padded with `IGNORE_INDEX` (-100): no class id can equal it,
so padding can never be learned as a class. Float targets are padded with
NaN, so a loss that read a padded step would turn NaN instead of silently learning it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import MaskwiseTypeError, ShapeError, format_error
from ..masked import IGNORE_INDEX, Masked, lengths_to_mask, per_step

NUMERIC_KINDS = "biufc"
"""numpy's dtype kinds of bools, integers, unsigned integers, floats and complex numbers, read by a
string test, as `to_tensor` runs once per sequence."""

KEPT_DTYPES = (torch.float32, torch.int64)
"""The dtypes `to_tensor` gives: a tensor of one of them is returned as it is."""


def to_tensor(array: Any, name: str) -> torch.Tensor:
    """A numpy array, tensor or nested list as a tensor: floats and bools as float32,
    integers as int64 (what `Embedding` and the losses take).

    It runs once per sequence, so the common cases take the shortest path: a numpy
    array is wrapped without a copy (`torch.from_numpy`, what `torch.as_tensor` does
    for it, at a third of the call's cost), and a float32 or int64 tensor is returned
    as it is (what `.to` would return)."""
    if not isinstance(array, torch.Tensor):
        try:
            array = np.asarray(array)
        except ValueError:  # items of different shapes: numpy's "inhomogeneous shape"
            raise ShapeError(
                format_error(
                    f"{name} is not one array: it holds items of different shapes.",
                    expected="one array per sequence, (time, features) or (time,)",
                    received=f"a {type(array).__name__} of {len(array)} items",
                    fix="pass a list of sequences for one input; several inputs are "
                    "passed as a tuple `(x1, x2)` of such lists, not as a list.",
                )
            ) from None
        if array.dtype.kind not in NUMERIC_KINDS:
            raise MaskwiseTypeError(
                format_error(
                    f"{name} must hold numbers.",
                    received=f"dtype {array.dtype}",
                    fix="ragged data is passed as a list of arrays, one per sequence.",
                )
            )
        array = torch.from_numpy(array)
    if array.dtype in KEPT_DTYPES:
        return array
    if array.dtype == torch.bool or array.is_floating_point():
        return array.to(torch.float32)
    if array.is_complex():
        raise MaskwiseTypeError(
            format_error(f"{name} cannot be complex.", received=str(array.dtype))
        )
    return array.to(torch.int64)


def target_fill(dtype: torch.dtype) -> float:
    """The padding value of targets of `dtype`: `IGNORE_INDEX` for integers, else NaN.

    Example:
        >>> target_fill(torch.int64), target_fill(torch.float32)
        (-100, nan)
    """
    return float("nan") if dtype.is_floating_point else IGNORE_INDEX


def pad_targets(
    targets: Sequence[torch.Tensor], max_len: int, fill: float | None = None
) -> torch.Tensor:
    """Per-step targets `(length_i, ...)` padded to `(batch, max_len, ...)`.

    `fill` defaults to `target_fill` of their dtype (IGNORE_INDEX or NaN).

    Example:
        >>> pad_targets([torch.tensor([1, 2, 0]), torch.tensor([3])], max_len=3)
        tensor([[   1,    2,    0],
                [   3, -100, -100]])
        >>> pad_targets([torch.tensor([0.5]), torch.tensor([1.5, 2.5])], max_len=2)
        tensor([[0.5000,    nan],
                [1.5000, 2.5000]])
    """
    value = target_fill(targets[0].dtype) if fill is None else fill
    return pad_rows(targets, max_len, value)


def pad_rows(rows: Sequence[torch.Tensor], time: int, value: float = 0.0) -> torch.Tensor:
    """`(length_i, ...)` rows padded with `value` to `(len(rows), time, ...)`: the
    values of `Masked.pad(rows, value=value, max_len=time)`.

    The loader pads every batch this way, so the common case, rows of one dtype, one
    device and one trailing shape, none longer than `time`, takes one look at each
    row's dtype, device and shape and one `pad_sequence` call (what `Masked.pad` ends
    with, after its conversions and checks of every row and its mask, which the loader
    makes from the lengths). Any other rows go through `Masked.pad`, which promotes their
    dtypes, moves them to the first row's device, or names what is wrong
    (`pad_sequence` would cast every row to the first one's dtype).

    Example:
        >>> pad_rows([torch.tensor([1, 2]), torch.tensor([3])], time=3)
        tensor([[1, 2, 0],
                [3, 0, 0]])
        >>> pad_rows([torch.tensor([1, 2]), torch.tensor([0.5])], time=2)  # promoted
        tensor([[1.0000, 2.0000],
                [0.5000, 0.0000]])
    """
    first = rows[0] if len(rows) else None
    if isinstance(first, torch.Tensor) and first.dim():
        layout = (first.dtype, first.device, first.shape[1:])
        if all(
            isinstance(row, torch.Tensor) and (row.dtype, row.device, row.shape[1:]) == layout
            for row in rows
        ):
            values = pad_sequence(list(rows), batch_first=True, padding_value=value)
            short = time - values.shape[1]
            if short == 0:
                return values
            if short > 0:
                extra = values.new_full((len(rows), short, *values.shape[2:]), value)
                return torch.cat([values, extra], dim=1)
    return Masked.pad(rows, value=value, max_len=time).values


def fill_after(
    values: torch.Tensor, lengths: torch.Tensor, fill: float | None = None
) -> torch.Tensor:
    """`values (batch, time, ...)` with every step at or after `lengths[i]` set to `fill`.

    `fill` defaults to `target_fill` of their dtype (IGNORE_INDEX or NaN).

    Example:
        >>> fill_after(torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([3, 1]))
        tensor([[   1,    2,    3],
                [   4, -100, -100]])
        >>> fill_after(torch.ones(1, 3, 2), torch.tensor([2]), fill=0.0)[..., 0]
        tensor([[1., 1., 0.]])
    """
    value = target_fill(values.dtype) if fill is None else fill
    keep = lengths_to_mask(lengths, values.shape[1], device=values.device)
    keep = per_step(keep, values)
    return torch.where(keep, values, values.new_full((), value))
