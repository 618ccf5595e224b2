"""Converters for Keras's convolutions and window pooling (`Conv1D`,
`SeparableConv1D`, `DepthwiseConv1D`, `Conv1DTranspose`, `MaxPooling1D`,
`AveragePooling1D`). Importing this module registers them.

maskwise keeps Keras's weight layouts, so the kernels copy in as Keras stores them.
Options maskwise does not implement are refused with a `ConfigError`.
"""

from __future__ import annotations

from typing import Any

from ..layers import convolutional, pooling
from ..layers.base import Layer
from .core import _activation_name, _copy, _refuse, keras_rules
from .registry import converts


def _arguments(k: Any, ours: type[Layer]) -> dict[str, Any]:
    """The arguments every Keras convolution shares, checked, with the rules of the
    weights of `ours`, the maskwise class (`keras_rules`)."""
    if k.data_format != "channels_last":
        raise _refuse(
            k, f"data_format={k.data_format!r}", "use channels_last, (batch, time, channels)."
        )
    if getattr(k, "lora_enabled", False):
        raise _refuse(k, "LoRA", "merge the LoRA weights into the kernel first.")
    return {
        "kernel_size": int(k.kernel_size[0]),
        "strides": int(k.strides[0]),
        "padding": k.padding,
        "dilation_rate": int(k.dilation_rate[0]),
        "activation": _activation_name(k),
        "use_bias": k.use_bias,
        "name": k.name,
        **keras_rules(k, ours.weight_names),
    }


def _built(layer: Layer, channels: int) -> Layer:
    layer.build_from_config_shape([1, channels])
    return layer


@converts("Conv1D")
def convert_conv1d(k: Any) -> Layer:
    groups = int(k.groups)
    layer = convolutional.Conv1D(k.filters, groups=groups, **_arguments(k, convolutional.Conv1D))
    _built(layer, int(k.kernel.shape[1]) * groups)
    _copy(layer.kernel, k.kernel)
    if k.use_bias:
        _copy(layer.bias, k.bias)
    return layer


@converts("DepthwiseConv1D")
def convert_depthwise_conv1d(k: Any) -> Layer:
    layer = convolutional.DepthwiseConv1D(
        depth_multiplier=k.depth_multiplier, **_arguments(k, convolutional.DepthwiseConv1D)
    )
    _built(layer, int(k.kernel.shape[1]))
    _copy(layer.kernel, k.kernel)
    if k.use_bias:
        _copy(layer.bias, k.bias)
    return layer


@converts("SeparableConv1D")
def convert_separable_conv1d(k: Any) -> Layer:
    layer = convolutional.SeparableConv1D(
        k.filters,
        depth_multiplier=k.depth_multiplier,
        **_arguments(k, convolutional.SeparableConv1D),
    )
    _built(layer, int(k.depthwise_kernel.shape[1]))
    _copy(layer.depthwise_kernel, k.depthwise_kernel)
    _copy(layer.pointwise_kernel, k.pointwise_kernel)
    if k.use_bias:
        _copy(layer.bias, k.bias)
    return layer


@converts("Conv1DTranspose")
def convert_conv1d_transpose(k: Any) -> Layer:
    extra = None if k.output_padding is None else int(k.output_padding[0])
    layer = convolutional.Conv1DTranspose(
        k.filters, output_padding=extra, **_arguments(k, convolutional.Conv1DTranspose)
    )
    _built(layer, int(k.kernel.shape[2]))
    _copy(layer.kernel, k.kernel)
    if k.use_bias:
        _copy(layer.bias, k.bias)
    return layer


@converts("MaxPooling1D", "AveragePooling1D")
def convert_pooling1d(k: Any) -> Layer:
    if k.data_format != "channels_last":
        raise _refuse(
            k, f"data_format={k.data_format!r}", "use channels_last, (batch, time, features)."
        )
    cls = pooling.MaxPooling1D if type(k).__name__ == "MaxPooling1D" else pooling.AveragePooling1D
    return cls(int(k.pool_size[0]), int(k.strides[0]), k.padding, name=k.name)
