"""Sliding windows along the time axis, shared by the convolutions and window pooling.

A window has a `size` (kernel or pool size), a `stride`, a `dilation` and a Keras
`padding` mode. This module holds its arithmetic, once: Keras's output lengths, the
zeros each row gets on the left (`same` pads like TensorFlow, asymmetrically, and
with strides > 1 the amount depends on the row's length, so it is computed per row
from the row's extent), the shifted rows a plain valid convolution then runs on, and
the output mask. The layers state the resulting rules in their docstrings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError, format_error


def positive_int(layer: str, argument: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int of at least `minimum`; Keras also accepts a one-element tuple
    or list."""
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            format_error(
                f"{layer} {argument} must be an integer of at least {minimum}.",
                expected=f"an int >= {minimum} (or a one-element tuple of it)",
                received=repr(value),
            )
        )
    return value


def check_padding(layer: str, padding: Any, allowed: Sequence[str]) -> str:
    """The padding mode, lower-cased (Keras accepts any case); refuses other modes."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in allowed:
        raise ConfigError(
            format_error(
                f"{layer} padding must be one of {list(allowed)}.",
                received=repr(padding),
            )
        )
    return str(mode)


def check_channels_last(layer: str, data_format: Any) -> None:
    """maskwise values are `(batch, time, channels)`: only `channels_last` exists."""
    if data_format not in (None, "channels_last"):
        raise ConfigError(
            format_error(
                f"{layer} supports data_format='channels_last' only.",
                expected="None or 'channels_last': values (batch, time, channels)",
                received=repr(data_format),
                fix="move the channels last (`x.transpose(1, 2)`) and drop data_format.",
            )
        )


def check_3d(layer: str, shape: Any) -> int:
    """The channels of a `(batch, time, channels)` shape; `layer` names the layer."""
    if len(shape) != 3:
        raise ShapeError(
            format_error(
                f"{layer} needs 3-D values.",
                expected="(batch, time, channels)",
                received=f"shape {tuple(shape)}",
                fix="add a channel axis (`x.unsqueeze(-1)`) or merge the extra axes "
                "into the channels.",
            )
        )
    return int(shape[-1])


def row_extents(mask: torch.Tensor | None, batch: int, time: int, device: Any) -> torch.Tensor:
    """Per row, its last real step + 1 (0 for a row without real steps); `time` for
    every row without a mask. For trailing padding this is the row's length."""
    if mask is None:
        return torch.full((batch,), time, dtype=torch.long, device=device)
    steps = torch.arange(1, time + 1, device=device)
    return torch.where(mask, steps, 0).amax(dim=1) if time else mask.new_zeros(batch).long()


def row_starts(mask: torch.Tensor, extents: torch.Tensor) -> torch.Tensor:
    """Per row, its first real step (its extent, 0, when it has none)."""
    time = mask.shape[1]
    steps = torch.arange(time, device=mask.device)
    first = torch.where(mask, steps, time).amin(dim=1) if time else extents
    return torch.minimum(first, extents)


def shift_rows(values: torch.Tensor, left: int, length: int) -> torch.Tensor:
    """`out[:, u] = values[:, u - left]`, zero (False) outside the rows, for `u` in
    `[0, length)`: the rows padded on the left by `left` steps (negative = cropped)."""
    batch, _, *rest = values.shape
    body = values[:, max(-left, 0) :]
    front = max(left, 0)
    back = max(length - front - body.shape[1], 0)
    zeros = [values.new_zeros((batch, n, *rest)) for n in (front, back)]
    return torch.cat([zeros[0], body, zeros[1]], dim=1)[:, :length]


@dataclass(frozen=True)
class Window:
    """A window of `size` taps, `dilation` apart, moved by `stride` along time.

    `padding` is Keras's: `valid` (no padding), `same` (TensorFlow's asymmetric
    zeros, the extra one on the right; output length `ceil(n / stride)`), `causal`
    (`dilation * (size - 1)` zeros on the left, then valid).
    """

    size: int
    stride: int
    dilation: int
    padding: str

    @property
    def span(self) -> int:
        """The steps the window covers, first tap to last."""
        return (self.size - 1) * self.dilation + 1

    def output_length(self, n: int) -> int:
        """Keras's output length for an input of `n` steps (0 when none fits)."""
        if self.padding == "valid":
            return max((n - self.span) // self.stride + 1, 0)
        return -(-n // self.stride)

    def same_left_pads(self, extents: torch.Tensor) -> torch.Tensor:
        """The zeros `same` padding puts before a row of `extents` steps, per row."""
        outputs = -(-extents // self.stride)
        total = ((outputs - 1) * self.stride + self.span - extents).clamp(min=0)
        return total // 2

    def left_pad_range(self) -> range:
        """Every left padding a row can get. For `same`, `total` is `span - strides +
        r` for a row of `k * strides - r` steps (`0 <= r < strides`), so rows differ
        only when `strides > 1`."""
        if self.padding == "valid":
            return range(1)
        if self.padding == "causal":
            return range(self.span - 1, self.span)
        return range(max(self.span - self.stride, 0) // 2, (self.span - 1) // 2 + 1)

    def taps(self, shifted: torch.Tensor) -> torch.Tensor:
        """`(batch, length, ...) -> (batch, outputs, ..., size)`: each output's taps."""
        return shifted.unfold(1, self.span, self.stride)[..., :: self.dilation]

    def shifted_inputs(
        self, layer: str, values: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Each row padded on the left as Keras pads the row alone (zeros), cut to the
        length a valid window pass needs for `output_length(time)` outputs."""
        batch, time = values.shape[:2]
        outputs = self.output_length(time)
        if outputs < 1:
            raise ShapeError(
                format_error(
                    f"{layer} has no output step: its window spans {self.span} steps "
                    f"(kernel {self.size}, dilation {self.dilation}) with "
                    f"padding={self.padding!r}, longer than the time axis.",
                    expected=f"a time axis of at least {self.span} steps",
                    received=f"values {tuple(values.shape)}",
                    fix="use padding='same' or 'causal', a smaller kernel, or longer sequences.",
                )
            )
        length = (outputs - 1) * self.stride + self.span
        amounts = self.left_pad_range()
        shifted = shift_rows(values, amounts[-1], length)
        if len(amounts) == 1:
            return shifted
        # `same` with strides: a few left pads, each row takes its own (no host sync)
        left = self.same_left_pads(row_extents(mask, batch, time, values.device))
        left = left.reshape(batch, *(1,) * (values.dim() - 1))
        for amount in amounts[:-1]:
            shifted = torch.where(left == amount, shift_rows(values, amount, length), shifted)
        return shifted

    def output_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """`valid`: an output is real iff every step its taps read is real. `same` and
        `causal`: iff the step it is placed at (`j * stride`) is real."""
        if mask is None:
            return None
        if self.padding == "valid":
            outputs = self.output_length(mask.shape[1])
            if outputs < 1:
                return mask[:, :0]
            length = (outputs - 1) * self.stride + self.span
            return self.taps(mask[:, :length]).all(dim=-1)
        return mask[:, :: self.stride]


def conv1d(
    values: torch.Tensor, weight: torch.Tensor, window: Window, groups: int = 1
) -> torch.Tensor:
    """A valid convolution of shifted rows `(batch, length, in)` with a torch-layout
    weight `(out, in / groups, size)`: `(batch, outputs, out)`."""
    out = F.conv1d(
        values.transpose(1, 2),
        weight,
        stride=window.stride,
        dilation=window.dilation,
        groups=groups,
    )
    return out.transpose(1, 2)
