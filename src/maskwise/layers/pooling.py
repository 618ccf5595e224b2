"""Pooling over the real steps (global, and in windows: `MaxPooling1D`,
`AveragePooling1D`)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeError, format_error
from ..masked import fill_padding, per_step
from ._windows import Window, check_3d, check_channels_last, check_padding, positive_int
from .base import Layer


def _check_sequence(layer: Layer, values: torch.Tensor) -> None:
    if values.dim() < 3:
        raise ShapeError(
            format_error(
                f"{type(layer).__name__} {layer.name!r} needs values with a feature axis.",
                expected="(batch, time, features)",
                received=f"shape {tuple(values.shape)}",
                fix="add a feature axis, e.g. `x.unsqueeze(-1)`.",
            )
        )


def _real(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mask `(batch, time, 1, ...)`, broadcastable against values; all True
    without a mask."""
    if mask is None:
        mask = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    return per_step(mask, values)


def _lowest(values: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor below or equal to every value: `-inf`, an integer type's min (a
    finite float would beat real steps that are all `-inf`), or False for booleans."""
    if values.is_floating_point():
        return values.new_full((), float("-inf"))
    if values.dtype == torch.bool:
        return values.new_zeros(())
    return values.new_full((), torch.iinfo(values.dtype).min)


def mean_over_real(values: torch.Tensor, real: torch.Tensor, dim: int) -> torch.Tensor:
    """The float mean along `dim` of the steps where `real` (broadcastable, same size
    along `dim`) is True; 0 where there is none. Padded steps must hold zeros."""
    count = real.sum(dim=dim)
    return values.sum(dim=dim) / count.clamp(min=1)  # a float mean, of integers too


def max_over_real(values: torch.Tensor, real: torch.Tensor, dim: int) -> torch.Tensor:
    """The maximum along `dim` of the steps where `real` is True (padding never wins,
    `-inf` stays `-inf`, integers stay integers); 0 where there is none."""
    best = torch.where(real, values, _lowest(values)).amax(dim=dim)
    return torch.where(real.any(dim=dim), best, torch.zeros_like(best))


class GlobalAveragePooling1D(Layer):
    """The mean over the real steps of each sequence: `(batch, time, features) ->
    (batch, features)`.

    Value rule: padded steps are left out of the sum and of the count (they may hold
    anything, NaN included: they are read as zeros); a sequence without any real step,
    a batch of them included, gives 0 (Keras gives NaN). Integer values give the float
    mean. Mask rule: the input mask is consumed; the output has no time axis and no mask.

    Example:
        >>> x = Masked.pad([torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])])
        >>> GlobalAveragePooling1D()(x).values.tolist()
        [[2.0], [5.0]]

    Args:
        name: layer name.
    """

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _check_sequence(self, values)
        # padded steps hold zeros (`Layer.prepare_values`)
        return mean_over_real(values, _real(values, mask), dim=1)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None

    @property
    def consumes_mask(self) -> bool:
        return True


class GlobalMaxPooling1D(Layer):
    """The maximum over the real steps of each sequence: `(batch, time, features) ->
    (batch, features)`.

    Value rule: padded steps are never candidates (Keras 3 ignores the mask here and
    lets padding win); the maximum of real steps that are all `-inf` is `-inf`, of
    integers an integer of the same dtype; a sequence without any real step (a batch of
    them, or a time axis of length 0, included) gives 0. Mask rule: the input mask is
    consumed; the output has no time axis and no mask.

    Example:
        >>> x = Masked.pad([torch.tensor([[-1.0], [-3.0]]), torch.tensor([[-5.0]])])
        >>> GlobalMaxPooling1D()(x).values.tolist()
        [[-1.0], [-5.0]]

    Args:
        name: layer name.
    """

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _check_sequence(self, values)
        if values.shape[1] == 0:  # no step at all: every sequence is empty, max 0
            return values.sum(dim=1, dtype=values.dtype)  # zeros, on the graph
        return max_over_real(values, _real(values, mask), dim=1)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None

    @property
    def consumes_mask(self) -> bool:
        return True


class _WindowPooling1D(Layer):
    """Pooling in windows of `pool_size` steps moved by `strides`, over real steps only;
    the subclasses choose the reduction."""

    def __init__(
        self,
        pool_size: int = 2,
        strides: int | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        layer = type(self).__name__
        check_channels_last(layer, data_format)
        size = positive_int(layer, "pool_size", pool_size)
        stride = size if strides is None else positive_int(layer, "strides", strides)
        self.window = Window(size, stride, 1, check_padding(layer, padding, ("valid", "same")))

    def reduce(self, values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Pool `values (batch, outputs, features, pool_size)` over the last axis where
        `real (batch, outputs, 1, pool_size)` is True."""
        raise NotImplementedError

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        layer = f"{type(self).__name__} {self.name!r}"
        check_3d(layer, values.shape)
        shifted = self.window.shifted_inputs(layer, values, mask)
        batch, time = values.shape[:2]
        full_mask = torch.ones(batch, time, dtype=torch.bool, device=values.device)
        real = self.window.shifted_inputs(layer, full_mask if mask is None else mask, mask)
        # shifted steps outside the rows are zeros and not real, padded steps too
        out = self.reduce(self.window.taps(shifted), self.window.taps(real)[:, :, None, :])
        out_mask = self.window.output_mask(mask)
        return out if out_mask is None else fill_padding(out, out_mask)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return self.window.output_mask(mask)


_POOLING_RULES = """
    Windows: output step `j` covers input steps `j * strides - left + [0, pool_size)`,
    with `left = 0` for `padding="valid"` and, for `"same"`, TensorFlow's left padding
    (`total // 2` of `total = max((ceil(n / strides) - 1) * strides + pool_size - n,
    0)`) for a row of `n` steps, `n` being the row's last real step + 1 (its length
    under trailing padding): each row is padded as Keras pads it alone.

    Mask rule: `valid`: an output step is real iff every step of its window is real;
    `same`: iff the step it is placed at, `j * strides`, is real. Padded output steps
    hold 0. For trailing padding this gives each row Keras's output length for its
    own length (`valid`: `(n - pool_size) // strides + 1`, `same`: `ceil(n /
    strides)`), and its real outputs equal those of the row run alone, unpadded,
    whatever the padding holds. Leading padding and holes: the windows stay on the
    batch's time axis (the stride grid starts at step 0), and a real output pools the
    real steps its window covers (holes are skipped, never read as zeros); with
    `strides=1`, leading padding again gives the unpadded row's outputs, in place.
"""


class MaxPooling1D(_WindowPooling1D):
    __doc__ = (
        """The maximum over the real steps of each window: `(batch, time, features) ->
    (batch, outputs, features)`.

    Value rule: padded steps and the positions `same` padding adds are never
    candidates (padding never wins the max, whatever it holds; Keras 3 drops the mask
    and lets it win); integers stay integers.
    """
        + _POOLING_RULES
        + """
    Example:
        >>> x = Masked.pad([torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([[-5.0]])])
        >>> y = MaxPooling1D(2, padding="same")(x)
        >>> y.values[..., 0].tolist(), y.mask.tolist()
        ([[3.0, 2.0], [-5.0, 0.0]], [[True, True], [True, False]])

    Args:
        pool_size: window length.
        strides: step between windows; None means `pool_size`.
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` (or None) only.
        name: layer name.
    """
    )

    def reduce(self, values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return max_over_real(values, real, dim=-1)


class AveragePooling1D(_WindowPooling1D):
    __doc__ = (
        """The mean over the real steps of each window: `(batch, time, features) ->
    (batch, outputs, features)`.

    Value rule: padded steps and the positions `same` padding adds are left out of the
    sum and of the count (`count_include_pad=False`, TensorFlow's rule; Keras 3 on the
    torch backend counts copies of the edge step where `same` pads unevenly, and,
    dropping the mask, averages the padding in); integers give the float mean.
    """
        + _POOLING_RULES
        + """
    Example:
        >>> x = Masked.pad([torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([[-5.0]])])
        >>> y = AveragePooling1D(2, padding="same")(x)
        >>> y.values[..., 0].tolist(), y.mask.tolist()
        ([[2.0, 2.0], [-5.0, 0.0]], [[True, True], [True, False]])

    Args:
        pool_size: window length.
        strides: step between windows; None means `pool_size`.
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` (or None) only.
        name: layer name.
    """
    )

    def reduce(self, values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return mean_over_real(values, real, dim=-1)
