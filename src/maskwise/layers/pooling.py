"""Layers over the time axis: global pooling over the real steps, and `Cropping1D`."""

from __future__ import annotations

import torch

from ..errors import ConfigError, ShapeError, format_error
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
    """The mask broadcastable against values, all True without a mask."""
    if mask is None:
        return torch.ones((1,) * values.dim(), dtype=torch.bool, device=values.device)
    return mask.reshape(mask.shape + (1,) * (values.dim() - 2))


def _lowest(values: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor below or equal to every value: `-inf`, or an integer type's min
    (a finite float would beat real steps that are all `-inf`)."""
    if values.is_floating_point():
        return values.new_full((), float("-inf"))
    return values.new_full((), torch.iinfo(values.dtype).min)


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
        real = _real(values, mask)
        total = values.sum(dim=1)  # padded steps hold zeros (`Layer.prepare_values`)
        count = real.expand(values.shape[:2] + (1,) * (values.dim() - 2)).sum(dim=1)
        return total / count.clamp(min=1)  # a float mean, of integers too

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
        real = _real(values, mask)
        best = torch.where(real, values, _lowest(values)).amax(dim=1)
        any_real = real.any(dim=1)
        return torch.where(any_real, best, torch.zeros_like(best))

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None

    @property
    def consumes_mask(self) -> bool:
        return True


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
        self, cropping: int | tuple[int, int] | list[int] = (1, 1), name: str | None = None
    ) -> None:
        super().__init__(name=name)
        pair = (cropping, cropping) if isinstance(cropping, int) else tuple(cropping)
        if len(pair) != 2 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in pair
        ):
            raise ConfigError(
                format_error(
                    "Cropping1D cropping must be two non-negative integers (start, end).",
                    received=repr(cropping),
                )
            )
        self.cropping = pair

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
