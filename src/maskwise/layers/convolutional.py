"""Convolutions along time: `Conv1D`, `SeparableConv1D`, `DepthwiseConv1D`,
`Conv1DTranspose`, with Keras 3's arguments and weight layouts (a Keras kernel
copies in as it is stored), and an output mask that follows the window.

Keras 3 drops the mask at a convolution, and the padding then leaks into the real
steps near it. Here padded steps are read as zeros and each row is padded as Keras
pads the row alone, so a row's real outputs are those of the row run unpadded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError, format_error
from ..masked import fill_padding
from ._windows import (
    Window,
    check_3d,
    check_channels_last,
    check_padding,
    conv1d,
    positive_int,
    row_extents,
    row_starts,
    shift_rows,
)
from .base import Layer
from .core import get_activation

_WINDOW_RULES = """
    Windows: output step `j` reads the input steps `j * strides - left + t *
    dilation_rate` for `t < kernel_size`, with `left = 0` for `padding="valid"`,
    `dilation_rate * (kernel_size - 1)` for `"causal"`, and for `"same"` TensorFlow's
    left padding (`total // 2` of `total = max((ceil(n / strides) - 1) * strides +
    span - n, 0)`, `span = dilation_rate * (kernel_size - 1) + 1`) for a row of `n`
    steps, `n` being the row's last real step + 1 (its length under trailing
    padding): each row is padded as Keras pads it alone.

    Value rule: padded steps are read as zeros, whatever they hold (NaN included),
    and so are the positions the padding mode adds; padded output steps hold 0.

    Mask rule: `valid`: an output step is real iff every step its taps read is real
    (a real output never reads padding); `same` and `causal`: iff the step it is
    placed at, `j * strides`, is real. For trailing padding this gives each row
    Keras's output length for its own length `n` (`valid`: `(n - span) // strides +
    1`, none when `n < span`; `same`, `causal`: `ceil(n / strides)`), and its real
    outputs equal those of the row run alone, unpadded. Leading padding and holes: the
    windows stay on the batch's time axis (the stride grid starts at step 0) and read
    the padded steps they cover as zeros; with `strides=1`, leading padding again gives
    the unpadded row's outputs, in place.
"""


def _check_values(layer: Layer, values: torch.Tensor, channels: int) -> None:
    if values.dim() != 3 or values.shape[-1] != channels:
        raise ShapeError(
            format_error(
                f"{type(layer).__name__} {layer.name!r} was built for {channels} input "
                "channels and convolves along time.",
                expected=f"values (batch, time, {channels})",
                received=f"values {tuple(values.shape)}",
                fix="use one layer per input size; channels are the last axis.",
            )
        )


class _Convolution(Layer):
    """What every convolution shares: the arguments, the window, the bias and the
    activation. Subclasses create the kernels in `build` and convolve in `convolve`."""

    float_inputs = True
    bias: nn.Parameter | None
    input_channels: int

    def _setup(
        self,
        kernel_size: Any,
        strides: Any,
        padding: str,
        dilation_rate: Any,
        data_format: str | None,
        activation: str | None,
        use_bias: bool,
        paddings: tuple[str, ...],
    ) -> None:
        layer = type(self).__name__
        check_channels_last(layer, data_format)
        self.window = Window(
            positive_int(layer, "kernel_size", kernel_size),
            positive_int(layer, "strides", strides),
            positive_int(layer, "dilation_rate", dilation_rate),
            check_padding(layer, padding, paddings),
        )
        if self.window.stride > 1 and self.window.dilation > 1:
            raise ConfigError(
                format_error(
                    f"{layer} takes strides > 1 or dilation_rate > 1, not both (as Keras).",
                    received=f"strides={strides}, dilation_rate={dilation_rate}",
                    fix="stride with one layer and dilate with another.",
                )
            )
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.bias = None

    @property
    def label(self) -> str:
        """The layer as errors name it: class and name."""
        return f"{type(self).__name__} {self.name!r}"

    def _make_bias(self, size: int) -> None:
        if self.use_bias:
            self.add_weight("bias", (size,), "zeros")

    def _finish(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Bias, activation, and zeros at the padded output steps."""
        if self.bias is not None:
            out = out + self.bias
        out = self.activation(out)
        out_mask = self.compute_mask(out, mask)
        return out if out_mask is None else fill_padding(out, out_mask)

    def convolve(self, shifted: torch.Tensor) -> torch.Tensor:
        """A valid convolution of the shifted rows `(batch, length, channels)`."""
        raise NotImplementedError

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _check_values(self, values, self.input_channels)
        shifted = self.window.shifted_inputs(self.label, values, mask)
        return self._finish(self.convolve(shifted), mask)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return self.window.output_mask(mask)


class Conv1D(_Convolution):
    __doc__ = (
        """A convolution along time: `(batch, time, channels) -> (batch, outputs,
    filters)`, `activation(conv(x, kernel) + bias)`.
    """
        + _WINDOW_RULES
        + """
    Weights: `kernel (kernel_size, channels / groups, filters)` and `bias (filters,)`,
    Keras's layout; `groups` splits the channels and the filters into that many
    independent convolutions.

    Example:
        >>> x = Masked.pad([torch.ones(5, 2), torch.ones(3, 2)])
        >>> Conv1D(4, 3)(x).mask.tolist()
        [[True, True, True], [True, False, False]]

    Args:
        filters: output channels.
        kernel_size: taps per window.
        strides: step between windows.
        padding: `"valid"`, `"same"` or `"causal"`.
        data_format: `"channels_last"` (or None) only.
        dilation_rate: distance between taps.
        groups: channel groups; divides both the input channels and `filters`.
        activation: name of the activation or None.
        use_bias: add a bias vector.
        name: layer name.
        **keras_args: `kernel_*`, `bias_*` (`_initializer`, `_regularizer`, `_constraint`;
            Keras's defaults `"glorot_uniform"` kernels, `"zeros"` bias) and the
            arguments of every layer (`maskwise.layers.Layer`).
    """
    )

    weight_names = ("kernel", "bias")
    kernel: nn.Parameter

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int],
        strides: int | tuple[int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int] = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self._setup(
            kernel_size,
            strides,
            padding,
            dilation_rate,
            data_format,
            activation,
            use_bias,
            ("valid", "same", "causal"),
        )
        self.filters = positive_int("Conv1D", "filters", filters)
        self.groups = positive_int("Conv1D", "groups", groups)
        if self.filters % self.groups:
            raise ConfigError(
                format_error(
                    "Conv1D filters must be divisible by groups.",
                    received=f"filters={filters}, groups={groups}",
                    fix="choose groups dividing both the filters and the input channels.",
                )
            )

    def build(self, input_shape: Any) -> None:
        self.input_channels = check_3d(self.label, input_shape)
        if self.input_channels % self.groups:
            raise ShapeError(
                format_error(
                    f"Conv1D {self.name!r} has groups={self.groups}, which does not divide "
                    f"its {self.input_channels} input channels.",
                    expected=f"a channel count divisible by {self.groups}",
                    received=f"values shaped {tuple(input_shape)}",
                    fix="choose groups dividing both the filters and the input channels.",
                )
            )
        per_group = self.input_channels // self.groups
        self.add_weight("kernel", (self.window.size, per_group, self.filters), "glorot_uniform")
        self._make_bias(self.filters)

    def convolve(self, shifted: torch.Tensor) -> torch.Tensor:
        return conv1d(shifted, self.kernel.permute(2, 1, 0), self.window, self.groups)


class DepthwiseConv1D(_Convolution):
    __doc__ = (
        """A convolution of each channel on its own: `(batch, time, channels) ->
    (batch, outputs, channels * depth_multiplier)`; output channel `c *
    depth_multiplier + m` is channel `c` convolved with its `m`-th kernel.
    """
        + _WINDOW_RULES
        + """
    Weights: `kernel (kernel_size, channels, depth_multiplier)` and `bias (channels *
    depth_multiplier,)`, Keras's layout.

    Example:
        >>> x = Masked.pad([torch.ones(5, 2), torch.ones(3, 2)])
        >>> DepthwiseConv1D(3, padding="same")(x).mask.tolist()
        [[True, True, True, True, True], [True, True, True, False, False]]

    Args:
        kernel_size: taps per window.
        strides: step between windows.
        padding: `"valid"` or `"same"`.
        depth_multiplier: kernels per input channel.
        data_format: `"channels_last"` (or None) only.
        dilation_rate: distance between taps.
        activation: name of the activation or None.
        use_bias: add a bias vector.
        name: layer name.
        **keras_args: `depthwise_*`, `bias_*` (`_initializer`, `_regularizer`, `_constraint`;
            Keras's defaults `"glorot_uniform"` kernels, `"zeros"` bias) and the
            arguments of every layer (`maskwise.layers.Layer`).
    """
    )

    weight_names = ("depthwise", "bias")
    kernel: nn.Parameter

    def __init__(
        self,
        kernel_size: int | tuple[int],
        strides: int | tuple[int] = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: int | tuple[int] = 1,
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self._setup(
            kernel_size,
            strides,
            padding,
            dilation_rate,
            data_format,
            activation,
            use_bias,
            ("valid", "same"),
        )
        self.depth_multiplier = positive_int(
            "DepthwiseConv1D", "depth_multiplier", depth_multiplier
        )

    def build(self, input_shape: Any) -> None:
        self.input_channels = check_3d(self.label, input_shape)
        shape = (self.window.size, self.input_channels, self.depth_multiplier)
        self.add_weight("kernel", shape, "glorot_uniform", rule="depthwise")
        self._make_bias(self.input_channels * self.depth_multiplier)

    def convolve(self, shifted: torch.Tensor) -> torch.Tensor:
        return _depthwise(shifted, self.kernel, self.window)


def _depthwise(shifted: torch.Tensor, kernel: torch.Tensor, window: Window) -> torch.Tensor:
    """Each channel convolved with its own `depth_multiplier` kernels; a Keras depthwise
    kernel `(size, channels, multiplier)` read as torch's `(channels * multiplier, 1,
    size)`, channel-major as Keras orders the outputs."""
    size, channels, multiplier = kernel.shape
    weight = kernel.reshape(size, 1, channels * multiplier).permute(2, 1, 0)
    return conv1d(shifted, weight, window, groups=channels)


class SeparableConv1D(_Convolution):
    __doc__ = (
        """A depthwise convolution (each channel on its own, `depth_multiplier`
    kernels each) followed by a pointwise one (a linear map of the channels at each
    step): `(batch, time, channels) -> (batch, outputs, filters)`.
    """
        + _WINDOW_RULES
        + """
    Weights: `depthwise_kernel (kernel_size, channels, depth_multiplier)`,
    `pointwise_kernel (1, channels * depth_multiplier, filters)` and `bias (filters,)`,
    Keras's layout.

    Example:
        >>> x = Masked.pad([torch.ones(5, 2), torch.ones(3, 2)])
        >>> SeparableConv1D(4, 3, strides=2, padding="same")(x).mask.tolist()
        [[True, True, True], [True, True, False]]

    Args:
        filters: output channels.
        kernel_size: taps per window.
        strides: step between windows.
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` (or None) only.
        dilation_rate: distance between taps.
        depth_multiplier: depthwise kernels per input channel.
        activation: name of the activation or None.
        use_bias: add a bias vector.
        name: layer name.
        **keras_args: `depthwise_*`, `pointwise_*`, `bias_*` (`_initializer`,
            `_regularizer`, `_constraint`; Keras's defaults `"glorot_uniform"` kernels,
            `"zeros"` bias) and the arguments of every layer (`maskwise.layers.Layer`).
    """
    )

    weight_names = ("depthwise", "pointwise", "bias")
    depthwise_kernel: nn.Parameter
    pointwise_kernel: nn.Parameter

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int],
        strides: int | tuple[int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int] = 1,
        depth_multiplier: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self._setup(
            kernel_size,
            strides,
            padding,
            dilation_rate,
            data_format,
            activation,
            use_bias,
            ("valid", "same"),
        )
        self.filters = positive_int("SeparableConv1D", "filters", filters)
        self.depth_multiplier = positive_int(
            "SeparableConv1D", "depth_multiplier", depth_multiplier
        )

    def build(self, input_shape: Any) -> None:
        self.input_channels = check_3d(self.label, input_shape)
        depth = self.input_channels * self.depth_multiplier
        shape = (self.window.size, self.input_channels, self.depth_multiplier)
        self.add_weight("depthwise_kernel", shape, "glorot_uniform", rule="depthwise")
        self.add_weight(
            "pointwise_kernel", (1, depth, self.filters), "glorot_uniform", rule="pointwise"
        )
        self._make_bias(self.filters)

    def convolve(self, shifted: torch.Tensor) -> torch.Tensor:
        return _depthwise(shifted, self.depthwise_kernel, self.window) @ self.pointwise_kernel[0]


class Conv1DTranspose(_Convolution):
    """The transpose of a convolution (its gradient; upsampling by `strides`):
    `(batch, time, channels) -> (batch, outputs, filters)`.

    Output length for `n` input steps (Keras's): `valid`: `(n - 1) * strides + span +
    output_padding` (`output_padding` None: `max(span, strides) - span`); `same`: `n *
    strides` (`output_padding` given: `(n - 1) * strides + span % 2 +
    output_padding`), with `span = dilation_rate * (kernel_size - 1) + 1`.

    Value rule: each input step adds `kernel`-weighted copies of itself at the output
    steps `i * strides - crop + t * dilation_rate`, `crop` being what Keras cuts on the
    left (0 for `valid`); padded steps are read as zeros, so they add nothing whatever
    they hold; padded output steps hold 0.

    Mask rule: each row's span, from its first real step `a` to its last one `b`, is
    transposed as if alone: output step `u` is real iff `a * strides <= u < a * strides
    + outputs(b - a + 1)`; a row without real steps has none. For trailing padding
    (`a = 0`) and leading padding this gives each row Keras's output length for its own
    length, and real outputs equal those of the row run alone, unpadded (moved by `a *
    strides` steps for leading padding); holes inside the span are read as zero steps,
    and the outputs they reach stay real.

    Weights: `kernel (kernel_size, filters, channels)` (Keras's transposed layout) and
    `bias (filters,)`.

    Example:
        >>> x = Masked.pad([torch.ones(2, 3), torch.ones(1, 3)])
        >>> Conv1DTranspose(4, 2, strides=2)(x).mask.tolist()
        [[True, True, True, True], [True, True, False, False]]

    Args:
        filters: output channels.
        kernel_size: taps of the kernel.
        strides: upsampling factor.
        padding: `"valid"` or `"same"`.
        output_padding: extra steps at the end, below `strides`; None for Keras's default.
        data_format: `"channels_last"` (or None) only.
        dilation_rate: distance between taps.
        activation: name of the activation or None.
        use_bias: add a bias vector.
        name: layer name.
        **keras_args: `kernel_*`, `bias_*` (`_initializer`, `_regularizer`, `_constraint`;
            Keras's defaults `"glorot_uniform"` kernels, `"zeros"` bias) and the
            arguments of every layer (`maskwise.layers.Layer`).
    """

    weight_names = ("kernel", "bias")
    kernel: nn.Parameter

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int],
        strides: int | tuple[int] = 1,
        padding: str = "valid",
        output_padding: int | tuple[int] | None = None,
        data_format: str | None = None,
        dilation_rate: int | tuple[int] = 1,
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self._setup(
            kernel_size,
            strides,
            padding,
            dilation_rate,
            data_format,
            activation,
            use_bias,
            ("valid", "same"),
        )
        self.filters = positive_int("Conv1DTranspose", "filters", filters)
        self.output_padding: int | None = None
        if output_padding is not None:
            extra = positive_int("Conv1DTranspose", "output_padding", output_padding, minimum=0)
            if extra >= self.window.stride:
                raise ConfigError(
                    format_error(
                        "Conv1DTranspose output_padding must be smaller than strides.",
                        received=f"output_padding={output_padding}, strides={strides}",
                    )
                )
            self.output_padding = extra

    def build(self, input_shape: Any) -> None:
        self.input_channels = check_3d(self.label, input_shape)
        shape = (self.window.size, self.filters, self.input_channels)
        self.add_weight("kernel", shape, "glorot_uniform")
        self._make_bias(self.filters)

    def output_lengths(self, n: torch.Tensor) -> torch.Tensor:
        """Keras's output length for inputs of `n` steps (0 for `n = 0`)."""
        stride, span = self.window.stride, self.window.span
        if self.window.padding == "valid":
            extra = max(span, stride) - span if self.output_padding is None else self.output_padding
            length = (n - 1) * stride + span + extra
        elif self.output_padding is None:
            length = n * stride
        else:
            length = (n - 1) * stride + span % 2 + self.output_padding
        return torch.where(n > 0, length, 0)

    def crop(self) -> int:
        """The steps Keras cuts at the start of the full transposed convolution."""
        span, stride = self.window.span, self.window.stride
        if self.window.padding == "valid":
            return 0
        if self.output_padding is None:
            total = stride + span - 2
        else:
            total = span + span % 2 - 2 + self.output_padding
        return span - 1 - min(total // 2 + total % 2, span - 1)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _check_values(self, values, self.input_channels)
        time = values.shape[1]
        if time == 0:
            raise ShapeError(
                format_error(
                    f"Conv1DTranspose {self.name!r} got a time axis without steps.",
                    expected="values (batch, time >= 1, channels)",
                    received=f"values {tuple(values.shape)}",
                )
            )
        full = F.conv_transpose1d(
            values.transpose(1, 2),
            self.kernel.permute(2, 1, 0),
            stride=self.window.stride,
            dilation=self.window.dilation,
        ).transpose(1, 2)
        outputs = int(self.output_lengths(torch.tensor(time)))
        return self._finish(shift_rows(full, -self.crop(), outputs), mask)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        batch, time = mask.shape
        extents = row_extents(mask, batch, time, mask.device)
        starts = row_starts(mask, extents)
        first = starts * self.window.stride
        ends = first + self.output_lengths(extents - starts)
        steps = torch.arange(int(self.output_lengths(torch.tensor(time))), device=mask.device)
        return (steps >= first[:, None]) & (steps < ends[:, None])
