"""Reshaping layers: along the time axis (`Cropping1D`, `UpSampling1D`,
`ZeroPadding1D`, whose mask follows the steps), on the feature axes (`Reshape`,
`Permute`, `Flatten`, which pass the mask while the time axis stays where it is), and
`RepeatVector`, which makes a time axis.

A reshape that mixes the time axis into other axes (`Flatten` of `(batch, time,
features)`, a `Reshape` or `Permute` that moves or splits time) leaves no step for a
mask to describe. Keras 3 drops the mask there silently, and the padding then counts
as data downstream; maskwise refuses a masked input with a `MaskError` unless the
layer is told the mask rule, as with `Lambda`: `mask="drop"` (the time axis is
consumed on purpose; padded steps are read as zeros) or a callable
`mask(values, mask) -> new_mask`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, MaskError, ShapeError, format_error
from ._windows import check_3d, check_channels_last, positive_int
from .base import Layer
from .core import MaskRule, check_mask_rule


def _pair(layer: str, argument: str, value: Any) -> tuple[int, int]:
    """`value` as two non-negative ints (start, end); one int means both."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, Sequence)
        or isinstance(pair, str)
        or len(pair) != 2
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in pair)
    ):
        raise ConfigError(
            format_error(
                f"{layer} {argument} must be two non-negative integers (start, end).",
                expected="an int, or a pair (start, end) of ints >= 0",
                received=repr(value),
            )
        )
    return int(pair[0]), int(pair[1])


class Cropping1D(Layer):
    """Remove `cropping[0]` steps at the start and `cropping[1]` at the end.

    Value rule: `x[:, a:time - b]`. Mask rule: the mask is cropped the same way (Keras 3
    drops it with a warning).

    Example:
        >>> x = Masked.pad([torch.ones(5, 1), torch.ones(3, 1)])
        >>> Cropping1D((1, 1))(x).mask.tolist()
        [[True, True, True], [True, True, False]]

    Args:
        cropping: `(a, b)` steps to remove at the start and the end, or one int for both.
        name: layer name.
    Input `(batch, time, ...)`; output `(batch, time - a - b, ...)`.
    """

    def __init__(
        self,
        cropping: int | tuple[int, int] | list[int] = (1, 1),
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self.cropping = _pair("Cropping1D", "cropping", cropping)

    def _crop(self, tensor: torch.Tensor) -> torch.Tensor:
        start, end = self.cropping
        return tensor[:, start : tensor.shape[1] - end]

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if sum(self.cropping) >= values.shape[1]:
            raise ShapeError(
                format_error(
                    f"Cropping1D {self.name!r} would remove every step.",
                    expected=f"cropping {self.cropping} summing to less than the time axis",
                    received=f"values {tuple(values.shape)} with time {values.shape[1]}",
                )
            )
        return self._crop(values)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None if mask is None else self._crop(mask)


class UpSampling1D(Layer):
    """Repeat every step `size` times along the time axis.

    Value rule: `x.repeat_interleave(size, dim=1)`, as Keras. Mask rule: the mask is
    repeated with the steps, so each copy of a real step is real and each copy of a
    padded step is padding (Keras 3 drops the mask).

    Example:
        >>> x = Masked.pad([torch.ones(2, 1), torch.ones(1, 1)])
        >>> UpSampling1D(2)(x).mask.tolist()
        [[True, True, True, True], [True, True, False, False]]

    Args:
        size: how many times each step is repeated.
        name: layer name.
    Input `(batch, time, features)`; output `(batch, time * size, features)`.
    """

    def __init__(self, size: int = 2, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        self.size = positive_int("UpSampling1D", "size", size)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        check_3d(f"UpSampling1D {self.name!r}", values.shape)
        return values.repeat_interleave(self.size, dim=1)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None if mask is None else mask.repeat_interleave(self.size, dim=1)


class ZeroPadding1D(Layer):
    """Add `padding[0]` steps of zeros at the start and `padding[1]` at the end.

    Value rule: the new steps hold zeros, as in Keras. Mask rule: on a masked input the
    new steps are padding (masked), the others keep their mask; an input without a
    mask gives an output without one, as in Keras (the zeros then count as data, the
    usual reason for this layer before a `valid` convolution).

    Example:
        >>> x = Masked.pad([torch.ones(2, 1), torch.ones(1, 1)])
        >>> ZeroPadding1D((1, 0))(x).mask.tolist()
        [[False, True, True], [False, True, False]]

    Args:
        padding: `(a, b)` steps to add at the start and the end, or one int for both.
        data_format: only `"channels_last"` (or None): values `(batch, time, features)`.
        name: layer name.
    Input `(batch, time, features)`; output `(batch, a + time + b, features)`.
    """

    def __init__(
        self,
        padding: int | tuple[int, int] | list[int] = 1,
        data_format: str | None = None,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self.padding = _pair("ZeroPadding1D", "padding", padding)
        check_channels_last("ZeroPadding1D", data_format)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        check_3d(f"ZeroPadding1D {self.name!r}", values.shape)
        start, end = self.padding
        return torch.nn.functional.pad(values, (0, 0, start, end))

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        start, end = self.padding
        return torch.nn.functional.pad(mask, (start, end), value=False)


class RepeatVector(Layer):
    """Repeat a per-sequence vector `n` times, making a time axis: `(batch, features)
    -> (batch, n, features)` (the decoder input of a sequence-to-sequence model).

    Value rule: `x[:, None].expand(batch, n, features)`. Mask rule: the input has no
    time axis and no mask; the output has no mask, meaning all `n` steps are real (to
    give each sequence its own length, pair it with a mask: `Masked(y.values, mask)`).

    Example:
        >>> RepeatVector(3)(torch.ones(2, 4)).values.shape
        torch.Size([2, 3, 4])

    Args:
        n: the number of steps.
        name: layer name.
    Input `(batch, features)`, e.g. an RNN's last state or a global pooling's output.
    """

    def __init__(self, n: int, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        self.n = positive_int("RepeatVector", "n", n)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if values.dim() != 2 or mask is not None:
            raise ShapeError(
                format_error(
                    f"RepeatVector {self.name!r} repeats one vector per sequence.",
                    expected="values (batch, features) without a mask",
                    received=f"values {tuple(values.shape)}"
                    + ("" if mask is None else f" with a mask {tuple(mask.shape)}"),
                    fix="summarize the sequence first, e.g. `GlobalAveragePooling1D()` or "
                    "an RNN without return_sequences.",
                )
            )
        return values.unsqueeze(1).expand(values.shape[0], self.n, values.shape[1])

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None


class _FeatureReshape(Layer):
    """A reshape that passes the mask while the time axis stays axis 1 with its steps
    (`keeps_time`), and otherwise refuses a masked input unless a mask rule is given."""

    def __init__(self, mask: MaskRule | str | None, name: str | None, **keras_args: Any) -> None:
        super().__init__(name=name)
        self.mask_rule = check_mask_rule(type(self).__name__, mask)

    def keeps_time(self, values: torch.Tensor) -> bool:
        raise NotImplementedError

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mixing_fix(self) -> str:
        """How to keep the time axis: shown when a masked input is refused."""
        raise NotImplementedError

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None and self.mask_rule is None and not self.keeps_time(values):
            kind = type(self).__name__
            raise MaskError(
                format_error(
                    f"{kind} layer {self.name!r} mixes the time axis of a masked input "
                    "with other axes, so no step is left for the mask to describe and the "
                    "padding would count as data (Keras 3 drops the mask here silently).",
                    expected=f"{self.mixing_fix()}, or an input without a mask",
                    received=f"values {tuple(values.shape)} with a mask",
                    fix="summarize the time axis first (`GlobalAveragePooling1D()`, or an "
                    f"RNN without return_sequences), or state the rule: `{kind}(..., "
                    "mask='drop')` if the time axis is consumed on purpose (padded steps "
                    "then read as zeros), or `mask=lambda values, mask: new_mask`.",
                )
            )
        return self.reshape(values)

    @property
    def consumes_mask(self) -> bool:
        return self.mask_rule == "drop"

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None or self.mask_rule == "drop":
            return None
        if callable(self.mask_rule):
            return self.mask_rule(values, mask)
        return mask


class Reshape(_FeatureReshape):
    """Reshape every sequence to `target_shape` (the batch axis excluded), as Keras.

    Value rule: `x.reshape(batch, *target_shape)`; one entry may be -1 (inferred).
    Mask rule: when the first entry resolves to the time length, every step keeps its
    own features (only the feature axes are reshaped) and the mask passes on. Any
    other target mixes the time axis: a masked input is refused with a `MaskError`
    unless `mask` states the rule (`"drop"`: no output mask, the padded steps read as
    zeros; or a callable `mask(values, mask) -> new_mask`). Without a mask, as Keras.

    Example:
        >>> x = Masked.pad([torch.ones(3, 6), torch.ones(2, 6)])
        >>> y = Reshape((-1, 2, 3))(x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 2, 3]), [3, 2])

    Args:
        target_shape: the output shape without the batch axis.
        mask: the mask rule when the time axis is mixed: None (refuse), `"drop"`, or a
            callable.
        name: layer name.
    """

    def __init__(
        self,
        target_shape: Sequence[int],
        *,
        mask: MaskRule | str | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(mask=mask, name=name)
        shape = tuple(target_shape) if isinstance(target_shape, Sequence) else None
        if (
            not shape
            or any(isinstance(n, bool) or not isinstance(n, int) or n == 0 or n < -1 for n in shape)
            or shape.count(-1) > 1
        ):
            raise ConfigError(
                format_error(
                    "Reshape target_shape must be positive integers, one of them at most "
                    "-1 (inferred).",
                    expected="a tuple like (time, 2, 3) or (-1, 6), without the batch axis",
                    received=repr(target_shape),
                )
            )
        self.target_shape = shape

    def _resolved(self, values: torch.Tensor) -> tuple[int, ...]:
        size = math.prod(values.shape[1:])
        known = math.prod(n for n in self.target_shape if n != -1)
        inferred = -1 in self.target_shape
        if (inferred and size % known != 0) or (not inferred and size != known):
            raise ShapeError(
                format_error(
                    f"Reshape {self.name!r} cannot reshape a sequence of "
                    f"{tuple(values.shape[1:])} ({size} values) to {self.target_shape}.",
                    expected=f"target_shape holding {size} values per sequence",
                    received=f"values {tuple(values.shape)}",
                )
            )
        return tuple(size // known if n == -1 else n for n in self.target_shape)

    def keeps_time(self, values: torch.Tensor) -> bool:
        return values.dim() >= 2 and self._resolved(values)[0] == values.shape[1]

    def mixing_fix(self) -> str:
        return "a target_shape whose first entry is the time length (or -1 with it)"

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        return values.reshape(values.shape[0], *self._resolved(values))


class Permute(_FeatureReshape):
    """Permute the axes after the batch axis: `dims` lists them from 1, as Keras.

    Value rule: `x.permute(0, *dims)`. Mask rule: when `dims[0] == 1` the time axis
    stays first and the mask passes on. A permutation that moves the time axis on a
    masked input is refused with a `MaskError` unless `mask` states the rule
    (`"drop"` or a callable, as in `Reshape`). Without a mask, as Keras.

    Example:
        >>> x = Masked.pad([torch.ones(3, 2, 4), torch.ones(1, 2, 4)])
        >>> y = Permute((1, 3, 2))(x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 4, 2]), [3, 1])

    Args:
        dims: a permutation of `1, ..., n` (n: the input's axes after the batch axis).
        mask: the mask rule when the time axis moves: None (refuse), `"drop"`, or a
            callable.
        name: layer name.
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        mask: MaskRule | str | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(mask=mask, name=name)
        order = tuple(dims) if isinstance(dims, Sequence) and not isinstance(dims, str) else ()
        if (
            not order
            or any(isinstance(n, bool) or not isinstance(n, int) for n in order)
            or (sorted(order) != list(range(1, len(order) + 1)))
        ):
            raise ConfigError(
                format_error(
                    "Permute dims must be a permutation of the axes after the batch axis, "
                    "counted from 1.",
                    expected="e.g. (2, 1) or (1, 3, 2)",
                    received=repr(dims),
                )
            )
        self.dims = order

    def keeps_time(self, values: torch.Tensor) -> bool:
        return self.dims[0] == 1

    def mixing_fix(self) -> str:
        return "dims starting with 1 (the time axis stays first)"

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        if values.dim() != len(self.dims) + 1:
            raise ShapeError(
                format_error(
                    f"Permute {self.name!r} has dims {self.dims} for "
                    f"{len(self.dims)} axes after the batch axis.",
                    expected=f"values with {len(self.dims) + 1} axes",
                    received=f"values {tuple(values.shape)}",
                )
            )
        return values.permute(0, *self.dims)


class Flatten(_FeatureReshape):
    """Flatten every sequence to one vector: `(batch, ...) -> (batch, size)`, as Keras.

    Value rule: `x.reshape(batch, -1)`. Mask rule: values `(batch, time)` keep their
    time axis and their mask. With feature axes after time, the steps are mixed into
    one vector: a masked input is refused with a `MaskError` (pool over the real steps
    first, e.g. `GlobalAveragePooling1D()`), unless `mask` states the rule (`"drop"`:
    no output mask, the padded steps read as zeros, so the output still depends on how
    many padded steps there are; or a callable). Without a mask, as Keras.

    Example:
        >>> Flatten()(torch.ones(2, 3, 4)).values.shape
        torch.Size([2, 12])

    Args:
        data_format: only `"channels_last"` (or None).
        mask: the mask rule for a masked input with feature axes: None (refuse),
            `"drop"`, or a callable.
        name: layer name.
    """

    def __init__(
        self,
        data_format: str | None = None,
        *,
        mask: MaskRule | str | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(mask=mask, name=name)
        check_channels_last("Flatten", data_format)

    def keeps_time(self, values: torch.Tensor) -> bool:
        return values.dim() <= 2

    def mixing_fix(self) -> str:
        return "values (batch, time) without feature axes"

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        return values.reshape(values.shape[0], -1)
