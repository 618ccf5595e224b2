"""Activation layers with Keras's names and arguments: `Softmax`, `ReLU`, `LeakyReLU`,
`PReLU`, `ELU`.

Each acts element by element (or, for `Softmax`, along its axes), so padding cannot
reach real steps; padded steps are read as zeros and the mask passes on. The one
exception is a `Softmax` over the time axis, which normalizes over the real steps of
each sequence only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import initializers
from ..errors import ConfigError, ShapeError, format_error
from ..masked import per_step
from ._axes import check_axes, resolve_axes
from .base import Layer


def _non_negative(layer: str, argument: str, value: Any) -> float:
    """`value` as a float >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(
            format_error(
                f"{layer} {argument} must be a non-negative number.",
                expected="a number >= 0",
                received=repr(value),
            )
        )
    return float(value)


class Softmax(Layer):
    """`exp(x) / sum(exp(x))` along `axis`.

    Value rule: along feature axes, every step on its own (as Keras; padded steps are
    read as zeros). Along the time axis (`axis=1`) of a masked input, the sum runs over
    the real steps of each sequence only: padded steps get 0, and a sequence without
    any real step gives 0 everywhere (never NaN), which is what Keras's `Softmax`
    gives when the sequence mask is passed as its `mask` argument. Mask rule: the mask
    passes on unchanged. (Keras 3 hands a masked input's `(batch, time)` mask to that
    argument, which fails on `(batch, time, features)` values.)

    Example:
        >>> x = Masked(torch.zeros(1, 3, 1), torch.tensor([[True, True, False]]))
        >>> Softmax(axis=1)(x).values[0, :, 0].tolist()
        [0.5, 0.5, 0.0]

    Args:
        axis: an axis after the batch axis (default -1, the features), or a list of them.
        name: layer name.
    """

    float_inputs = True

    def __init__(
        self, axis: int | Sequence[int] = -1, *, name: str | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        axes = check_axes("Softmax", axis)
        self.axis = axis
        self.axes = axes

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        dims = resolve_axes(f"Softmax {self.name!r}", self.axes, values)
        if mask is None or 1 not in dims:
            return _softmax(values, dims)
        real = per_step(mask, values)
        lowest = torch.finfo(values.dtype).min
        out = _softmax(torch.where(real, values, values.new_full((), lowest)), dims)
        return torch.where(real, out, torch.zeros_like(out))


def _softmax(values: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    if len(dims) == 1:
        return torch.softmax(values, dim=dims[0])
    return torch.exp(values - torch.logsumexp(values, dim=dims, keepdim=True))


class ReLU(Layer):
    """Keras's rectifier: `x` above `threshold`, else `negative_slope * (x -
    threshold)`, clipped at `max_value`.

    Value rule: element by element, as `keras.activations.relu`. Mask rule: the mask
    passes on unchanged.

    Example:
        >>> ReLU(max_value=1.0)(torch.tensor([[[-1.0, 0.5, 3.0]]])).values.tolist()
        [[[0.0, 0.5, 1.0]]]

    Args:
        max_value: the largest output (None: no limit), >= 0.
        negative_slope: the slope below the threshold, >= 0.
        threshold: values up to it give 0 (or the negative slope's line), >= 0.
        name: layer name.
    """

    float_inputs = True

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        if max_value is not None:
            max_value = _non_negative("ReLU", "max_value", max_value)
        self.max_value = max_value
        self.negative_slope = _non_negative("ReLU", "negative_slope", negative_slope)
        self.threshold = _non_negative("ReLU", "threshold", threshold)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = torch.where(values > self.threshold, values, torch.zeros_like(values))
        if self.max_value is not None:
            out = out.clamp(0.0, self.max_value)
        if self.negative_slope != 0.0:
            out = out - self.negative_slope * torch.relu(self.threshold - values)
        return out


class LeakyReLU(Layer):
    """`x` where positive, `negative_slope * x` elsewhere.

    Value rule: element by element. Mask rule: the mask passes on unchanged.

    Example:
        >>> LeakyReLU(0.5)(torch.tensor([[[-2.0, 3.0]]])).values.tolist()
        [[[-1.0, 3.0]]]

    Args:
        negative_slope: the slope for negative values, >= 0 (Keras's default 0.3).
        name: layer name.
    """

    float_inputs = True

    def __init__(
        self, negative_slope: float = 0.3, *, name: str | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        self.negative_slope = _non_negative("LeakyReLU", "negative_slope", negative_slope)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return nn.functional.leaky_relu(values, self.negative_slope)


class ELU(Layer):
    """`x` where positive, `alpha * (exp(x) - 1)` elsewhere.

    Value rule: element by element. Mask rule: the mask passes on unchanged.

    Example:
        >>> ELU()(torch.tensor([[[0.0, 2.0]]])).values.tolist()
        [[[0.0, 2.0]]]

    Args:
        alpha: the scale of the negative part.
        name: layer name.
    """

    float_inputs = True

    def __init__(self, alpha: float = 1.0, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float):
            raise ConfigError(format_error("ELU alpha must be a number.", received=repr(alpha)))
        self.alpha = float(alpha)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return nn.functional.elu(values, self.alpha)


class PReLU(Layer):
    """A leaky rectifier with a learned slope: `x` where positive, `alpha * x` elsewhere.

    Value rule: element by element; `alpha` has the input's shape after the batch axis,
    with size 1 on the `shared_axes` (as Keras). Without `shared_axes=[1]` it has one
    slope per time step, so the layer only takes sequences of the length it was built
    for: with variable-length batches, share the time axis. Mask rule: the mask passes
    on unchanged.

    Example:
        >>> PReLU(shared_axes=[1])(torch.tensor([[[-2.0, 3.0]]])).values.tolist()
        [[[0.0, 3.0]]]

    Args:
        alpha_initializer: a Keras initializer (`"zeros"`, Keras's default; see
            `maskwise.initializers`) or a number, the slopes' first value.
        shared_axes: axes (counted from 1, after the batch axis) sharing one slope.
        name: layer name.
        **keras_args: `alpha_regularizer`, `alpha_constraint`, and the arguments of
            every layer (`maskwise.layers.Layer`).
    """

    float_inputs = True
    weight_names = ("alpha",)
    alpha: nn.Parameter

    def __init__(
        self,
        alpha_initializer: Any = "zeros",
        *,
        shared_axes: int | Sequence[int] | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self.initial_alpha: Any
        if isinstance(alpha_initializer, int | float) and not isinstance(alpha_initializer, bool):
            self.initial_alpha = initializers.Constant(alpha_initializer)
        else:
            self.initial_alpha = initializers.get(alpha_initializer)
        shared = [shared_axes] if isinstance(shared_axes, int) else list(shared_axes or [])
        if any(isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in shared):
            raise ConfigError(
                format_error(
                    "PReLU shared_axes must be axes after the batch axis, counted from 1.",
                    expected="e.g. [1] (one slope for every time step)",
                    received=repr(shared_axes),
                )
            )
        self.alpha_initializer = alpha_initializer
        self.shared_axes = shared_axes
        self.shared = shared

    def build(self, input_shape: Any) -> None:
        shape = list(input_shape[1:])
        for axis in self.shared:
            if axis > len(shape):
                raise ShapeError(
                    format_error(
                        f"PReLU {self.name!r}: shared axis {axis} is not an axis of values "
                        f"{tuple(input_shape)}.",
                        expected=f"shared_axes within 1..{len(shape)}",
                        received=f"shared_axes={self.shared_axes!r}",
                    )
                )
            shape[axis - 1] = 1
        self.add_weight("alpha", shape, self.initial_alpha)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        expected = self.alpha.shape
        if values.dim() != len(expected) + 1 or any(
            a not in (1, v) for a, v in zip(expected, values.shape[1:], strict=True)
        ):
            raise ShapeError(
                format_error(
                    f"PReLU {self.name!r} was built for values (batch, "
                    f"{', '.join(str(n) for n in expected)}) (1: shared).",
                    received=f"values {tuple(values.shape)}",
                    fix="share the time axis, `PReLU(shared_axes=[1])`, so that sequences "
                    "of any length fit.",
                )
            )
        return torch.relu(values) - self.alpha * torch.relu(-values)
