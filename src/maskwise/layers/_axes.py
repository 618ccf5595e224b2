"""Axis arguments after the batch axis (`Softmax`, `UnitNormalization`): checked when
the layer is made, resolved against the values' rank when it is called."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, ShapeError, format_error


def check_axes(layer: str, axis: Any) -> list[int]:
    """`axis` (an int or a list of ints, none of them 0, the batch axis) as a list."""
    axes = [axis] if isinstance(axis, int) else list(axis) if isinstance(axis, Sequence) else []
    if not axes or any(isinstance(a, bool) or not isinstance(a, int) or a == 0 for a in axes):
        raise ConfigError(
            format_error(
                f"{layer} axis must be one or more axes after the batch axis.",
                expected="an int like -1 or 1 (not 0, the batch axis), or a list of them",
                received=repr(axis),
            )
        )
    return axes


def resolve_axes(layer: str, axes: list[int], values: torch.Tensor) -> tuple[int, ...]:
    """The axes as sorted non-negative dims of `values`; the batch axis is refused."""
    dims = tuple(sorted({a % values.dim() for a in axes})) if values.dim() else (0,)
    if 0 in dims or any(not -values.dim() <= a < values.dim() for a in axes):
        raise ShapeError(
            format_error(
                f"{layer}: axis {axes} does not name axes after the batch axis of values "
                f"{tuple(values.shape)}.",
                expected=f"axes within 1..{values.dim() - 1} (or -1..-{values.dim() - 1})",
                received=f"values {tuple(values.shape)}",
            )
        )
    return dims
