"""Merge layers: combine several masked inputs step by step (`Dot`: its own rule).

Mask rule of every merge: a step is real only where it is real in every input
(`combine_masks`; inputs without a mask count as all real). Value rule: the inputs'
padded steps are read as zeros, so NaN padding in one input cannot reach the
gradients of another input's real steps. Keras 3 uses the opposite
rule (a step real in ANY input is real; an input without a mask counts as all real in
`Concatenate` and drops the mask in the element-wise merges), which lets the padding of
one input into the output; Keras 2's `Concatenate` used ours.

Inputs without a time axis, `(batch, features)` without a mask (e.g. the final states
of a `return_state=True` recurrent layer), merge as in Keras: row by row, with no mask
on the output. Mixing them with sequences is a `ShapeError` (pool the sequences, or
repeat the vectors along time first).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, MaskError, ShapeError, format_error
from ..masked import Masked, combine_masks
from .base import Layer
from .normalization import l2_normalize


class _Merge(Layer):
    """Base of the merge layers: called with a list of inputs (`takes_list`); `forward`
    fills the padding of each (NaN padding reaches no gradient), `call` checks the
    shapes and applies `merge`, `compute_mask` applies the mask rule."""

    takes_list = True
    min_inputs = 1
    max_inputs: int | None = None

    def call(  # type: ignore[override]
        self, values: list[torch.Tensor], mask: list[torch.Tensor | None]
    ) -> torch.Tensor:
        self._check_shapes(values, mask)
        return self.merge(values)

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def compute_mask(  # type: ignore[override]
        self, values: list[torch.Tensor], mask: list[torch.Tensor | None]
    ) -> torch.Tensor | None:
        """The mask rule: a step is real where it is real in every input."""
        return combine_masks(mask)

    def input_list(self, inputs: Any, mask: Any) -> list[Masked]:
        """The base's list of inputs, refusing a wrong number of them."""
        count = len(inputs) if isinstance(inputs, list | tuple) else None
        if count is not None and (
            count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs)
        ):
            wanted = (
                f"exactly {self.max_inputs}"
                if self.max_inputs == self.min_inputs
                else f"at least {self.min_inputs}"
            )
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} got the wrong number of inputs.",
                    expected=f"{wanted} inputs",
                    received=f"{count}",
                )
            )
        return super().input_list(inputs, mask)

    def _check_shapes(self, values: list[torch.Tensor], mask: list[torch.Tensor | None]) -> None:
        paired = _paired_axes(self, values, mask)
        axes = "(batch, time)" if paired == 2 else "(batch,)"
        first = values[0]
        for i, v in enumerate(values[1:], start=1):
            if v.shape[:paired] != first.shape[:paired]:
                raise ShapeError(
                    format_error(
                        f"{type(self).__name__} layer {self.name!r}: input {i} does not "
                        f"have the {axes} axes of input 0, so their "
                        f"{'steps' if paired == 2 else 'rows'} cannot be paired.",
                        expected=f"{axes} = {tuple(first.shape[:paired])} for every input",
                        received=f"input 0 {tuple(first.shape)}, input {i} {tuple(v.shape)}",
                        fix="pad every input to the same number of steps (e.g. "
                        "`Masked.pad(seqs, max_len=T)`), so step t means the same moment "
                        "in each."
                        if paired == 2
                        else "give every input the same batch.",
                    )
                )
            self._check_features(0, first, i, v, paired)

    def _check_features(
        self, i: int, a: torch.Tensor, j: int, b: torch.Tensor, paired: int
    ) -> None:
        """Refuse feature axes (those after the `paired` leading axes) that differ."""
        if a.shape[paired:] != b.shape[paired:]:
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} combines inputs element "
                    "by element, so their feature axes must agree.",
                    expected=f"input {j} shaped like input {i}: {tuple(a.shape)}",
                    received=f"input {j} {tuple(b.shape)}",
                    fix="project the inputs to one size first, e.g. with Dense, or use "
                    "Concatenate.",
                )
            )


def _paired_axes(layer: Layer, values: list[torch.Tensor], mask: list[torch.Tensor | None]) -> int:
    """The leading axes whose entries pair up across the inputs: 2, `(batch, time)`, for
    sequences; 1, `(batch,)`, when no input has a time axis (each is `(batch,
    features)` without a mask). A mix is a `ShapeError`."""
    timeless = [v.dim() == 2 and m is None for v, m in zip(values, mask, strict=True)]
    if all(timeless):
        return 1
    if not any(timeless):
        return 2
    vector, sequence = timeless.index(True), timeless.index(False)
    raise ShapeError(
        format_error(
            f"{type(layer).__name__} layer {layer.name!r} got input {vector} without a time "
            f"axis and input {sequence} with one, so its rows and the other's steps cannot "
            "be paired.",
            expected="every input (batch, time, ...), or every input (batch, features) "
            "without a mask",
            received=f"input {vector} {tuple(values[vector].shape)}, input {sequence} "
            f"{tuple(values[sequence].shape)}",
            fix="pool the sequence first (GlobalAveragePooling1D, or an LSTM without "
            "return_sequences), or repeat the vector along time (RepeatVector).",
        )
    )


class Concatenate(_Merge):
    """Join the inputs along a feature axis, step by step.

    Value rule: `torch.cat(values, dim=axis)`. Mask rule: a step masked in any input is
    masked in the output (see the module docstring for Keras 3's rule).

    Example:
        >>> a = Masked.pad([torch.ones(3, 2), torch.ones(2, 2)])
        >>> b = Masked.pad([torch.ones(3, 4), torch.ones(1, 4)], max_len=3)
        >>> y = Concatenate()([a, b])
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 6]), [3, 1])
        >>> Concatenate()([torch.ones(2, 3), torch.ones(2, 4)])  # no time axis
        Masked(values=(2, 7) torch.float32, mask=None)

    Args:
        axis: a feature axis (default -1, the last); not the batch or time axis.
        name: layer name.
    Inputs `(batch, time, ...)`, or all `(batch, features)` without a mask, equal except
    on `axis`.
    """

    def __init__(self, axis: int = -1, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise self._not_a_feature_axis(axis)
        self.axis = axis

    def _not_a_feature_axis(self, axis: Any) -> ConfigError:
        return ConfigError(
            format_error(
                "Concatenate joins feature axes only.",
                expected="axis=-1 or another axis after (batch, time); axis=1 for "
                "inputs without a time axis, (batch, features)",
                received=f"axis={axis!r}",
                fix="to join along time, pad the sequences together instead.",
            )
        )

    def _check_shapes(self, values: list[torch.Tensor], mask: list[torch.Tensor | None]) -> None:
        if self.axis % values[0].dim() < _paired_axes(self, values, mask):
            raise self._not_a_feature_axis(self.axis)
        super()._check_shapes(values, mask)

    def _check_features(
        self, i: int, a: torch.Tensor, j: int, b: torch.Tensor, paired: int
    ) -> None:
        axis = self.axis % a.dim()
        if a.dim() != b.dim() or (
            a.shape[paired:axis] + a.shape[axis + 1 :] != b.shape[paired:axis] + b.shape[axis + 1 :]
        ):
            raise ShapeError(
                format_error(
                    f"Concatenate layer {self.name!r}: the inputs must agree on every axis "
                    f"but axis {self.axis} (a feature axis).",
                    expected=f"input {j} shaped like input {i} {tuple(a.shape)} except on "
                    f"axis {self.axis}",
                    received=f"input {j} {tuple(b.shape)}",
                )
            )

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(values, dim=self.axis)


class Add(_Merge):
    """The element-wise sum of the inputs.

    Value rule: `x1 + x2 + ...`. Mask rule: a step masked in any input is masked.

    Example:
        >>> a = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Add()([a, a]).values[0, 0].tolist()
        [2.0, 2.0, 2.0]

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).sum(dim=0)


class Subtract(_Merge):
    """The difference of exactly two inputs.

    Value rule: `x1 - x2`. Mask rule: a step masked in either input is masked.

    Example:
        >>> a = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Subtract()([a, a]).values.abs().sum().item()
        0.0

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    min_inputs = 2
    max_inputs = 2

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return values[0] - values[1]


class Multiply(_Merge):
    """The element-wise product of the inputs.

    Value rule: `x1 * x2 * ...`. Mask rule: a step masked in any input is masked.

    Example:
        >>> a = Masked.pad([2 * torch.ones(2, 3), torch.ones(1, 3)])
        >>> Multiply()([a, a]).values[0, 0].tolist()
        [4.0, 4.0, 4.0]

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).prod(dim=0)


class Average(_Merge):
    """The element-wise mean of the inputs.

    Value rule: `(x1 + ... + xn) / n`. Mask rule: a step masked in any input is masked.

    Example:
        >>> a = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Average()([a, a.with_values(3 * a.values)]).values[0, 0].tolist()
        [2.0, 2.0, 2.0]

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).mean(dim=0)


class Maximum(_Merge):
    """The element-wise maximum of the inputs.

    Value rule: `max(x1, x2, ...)`. Mask rule: a step masked in any input is masked.

    Example:
        >>> a = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Maximum()([a, a.with_values(-a.values)]).values[0, 0].tolist()
        [1.0, 1.0, 1.0]

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).amax(dim=0)


class Minimum(_Merge):
    """The element-wise minimum of the inputs.

    Value rule: `min(x1, x2, ...)`. Mask rule: a step masked in any input is masked.

    Example:
        >>> a = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Minimum()([a, a.with_values(-a.values)]).values[0, 0].tolist()
        [-1.0, -1.0, -1.0]

    Args:
        name: layer name.
    Inputs of one shape `(batch, time, ...)`, or `(batch, features)` without a mask.
    """

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).amin(dim=0)


class Dot(_Merge):
    """The dot product of two inputs along one axis of each, per sample (Keras's
    `batch_dot`): `(batch, *A, k)` and `(batch, k, *B)`, the `k` axes wherever they
    are, give `(batch, *A, *B)` (`(batch, 1)` when nothing is left).

    Value rule: as Keras; with `normalize=True` both inputs are first scaled to unit
    L2 norm along their dot axis (cosine similarity). Padded steps are read as zeros.
    Mask rule:
    - input 0's time axis kept (its dot axis is not 1): the output's axis 1 is input
      0's time axis and carries input 0's mask (Keras 3 gives no mask);
    - a time axis contracted (dot axis 1): the sum runs over the steps real in both
      inputs (padded steps hold zeros and add nothing, to the sum or to the norms of
      `normalize`), and that time axis is consumed: no output mask;
    - input 1's time axis kept while input 1 has a mask: a `MaskError`. Its padded
      steps would become output positions holding 0 that no mask can describe (a
      softmax over them would give padding weight): use `Attention` or
      `MultiHeadAttention`, which mask the padded keys.

    Example:
        >>> q = Masked.pad([torch.ones(3, 4), torch.ones(2, 4)])
        >>> k = torch.ones(2, 5, 4)
        >>> y = Dot(axes=(2, 2))([q, k])
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 5]), [3, 2])

    Args:
        axes: the dot axis of both inputs (an int), or one per input (a pair); not 0.
        normalize: L2-normalize both inputs along their dot axis first.
        name: layer name.
    """

    min_inputs = 2
    max_inputs = 2

    def __init__(
        self,
        axes: int | tuple[int, int] | list[int],
        normalize: bool = False,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        pair = [axes, axes] if isinstance(axes, int) else axes
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or any(isinstance(a, bool) or not isinstance(a, int) or a == 0 for a in pair)
        ):
            raise ConfigError(
                format_error(
                    "Dot axes must be one axis, or one per input, after the batch axis.",
                    expected="an int like -1 or 2, or a pair like (2, 2); not 0 (batch)",
                    received=repr(axes),
                )
            )
        self.axes = axes
        self.normalize = bool(normalize)
        self.pair = (int(pair[0]), int(pair[1]))
        self._resolved: tuple[int, int] = self.pair

    @property
    def consumes_mask(self) -> bool:
        return self.pair[0] == 1

    def _check_shapes(self, values: list[torch.Tensor], mask: list[torch.Tensor | None]) -> None:
        a, b = values
        self._resolved = (self.pair[0] % a.dim(), self.pair[1] % b.dim())
        first, second = self._resolved
        if a.shape[0] != b.shape[0] or 0 in self._resolved or a.shape[first] != b.shape[second]:
            raise ShapeError(
                format_error(
                    f"Dot layer {self.name!r} cannot take the dot product of inputs "
                    f"{tuple(a.shape)} and {tuple(b.shape)} along axes {self._resolved}.",
                    expected="one batch size, and dot axes (not the batch axis) of one size",
                    received=f"axis {first} of size {a.shape[first]}, axis {second} of "
                    f"size {b.shape[second]}",
                )
            )

    def merge(self, values: list[torch.Tensor]) -> torch.Tensor:
        first, second = self._resolved
        a, b = values
        if self.normalize:
            a = l2_normalize(a, (first,), epsilon=1e-7)
            b = l2_normalize(b, (second,), epsilon=1e-7)
        left = a.movedim(first, -1)
        right = b.movedim(second, 1)
        batch, size = left.shape[0], left.shape[-1]
        out = left.reshape(batch, -1, size) @ right.reshape(batch, size, -1)
        out = out.reshape(batch, *left.shape[1:-1], *right.shape[2:])
        return out.unsqueeze(-1) if out.dim() == 1 else out

    def compute_mask(  # type: ignore[override]
        self, values: list[torch.Tensor], mask: list[torch.Tensor | None]
    ) -> torch.Tensor | None:
        first, second = self._resolved
        if mask[1] is not None and second != 1:
            raise MaskError(
                format_error(
                    f"Dot layer {self.name!r} keeps the time axis of input 1, which has a "
                    "mask: its padded steps would become output positions no mask can "
                    "describe, and a softmax over them would give the padding weight.",
                    expected="input 1 without a mask, or its time axis as its dot axis "
                    "(axes=(..., 1))",
                    received=f"axes {self._resolved} with input 1 masked",
                    fix="use Attention or MultiHeadAttention (they mask the padded keys), "
                    "or pool input 1 first (GlobalAveragePooling1D).",
                )
            )
        return None if first == 1 else mask[0]
