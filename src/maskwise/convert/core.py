"""Converters for Keras's non-recurrent layers (core, embedding, normalization,
pooling, cropping, merges). Importing this module registers them.

Each converter reads the Keras layer's config and weights and returns the built
maskwise layer with the same name and a copy of the weights. Keras options that
maskwise does not implement are refused with a `ConfigError`, never ignored.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, format_error
from ..layers import core, embedding, merge, normalization, pooling
from ..layers.base import Layer
from .registry import convert_layer, converts, to_tensor


def _refuse(keras_layer: Any, option: str, fix: str) -> ConfigError:
    return ConfigError(
        format_error(
            f"from_keras cannot convert layer {keras_layer.name!r} "
            f"({type(keras_layer).__name__}): maskwise does not implement {option}.",
            received=option,
            fix=fix,
        )
    )


def _copy(parameter: torch.Tensor | None, keras_weight: Any) -> None:
    if parameter is None:
        return
    with torch.no_grad():
        parameter.copy_(to_tensor(keras_weight).reshape(parameter.shape))


def _activation_name(keras_layer: Any) -> str:
    name = keras_layer.get_config()["activation"]
    if not isinstance(name, str):
        raise _refuse(
            keras_layer,
            f"the custom activation {name!r}",
            "use a built-in activation name in the Keras model.",
        )
    return name


@converts("Dense")
def convert_dense(k: Any) -> Layer:
    kernel = k.kernel
    layer = core.Dense(
        k.units,
        activation=_activation_name(k),
        use_bias=k.use_bias,
        input_dim=int(kernel.shape[0]),
        name=k.name,
    )
    _copy(layer.kernel, kernel)
    if k.use_bias:
        _copy(layer.bias, k.bias)
    return layer


@converts("Masking")
def convert_masking(k: Any) -> Layer:
    return core.Masking(float(k.mask_value), name=k.name)


@converts("Embedding")
def convert_embedding(k: Any) -> Layer:
    layer = embedding.Embedding(k.input_dim, k.output_dim, mask_zero=k.mask_zero, name=k.name)
    _copy(layer.embeddings, k.embeddings)
    return layer


@converts("TimeDistributed")
def convert_time_distributed(k: Any) -> Layer:
    return core.TimeDistributed(convert_layer(k.layer), name=k.name)


@converts("Dropout")
def convert_dropout(k: Any) -> Layer:
    if k.noise_shape is not None:
        raise _refuse(k, "Dropout's noise_shape", "use SpatialDropout1D to drop channels.")
    return core.Dropout(float(k.rate), name=k.name)


@converts("SpatialDropout1D")
def convert_spatial_dropout(k: Any) -> Layer:
    return core.SpatialDropout1D(float(k.rate), name=k.name)


@converts("Activation")
def convert_activation(k: Any) -> Layer:
    return core.Activation(_activation_name(k), name=k.name)


def _feature_axis(k: Any) -> int:
    axis = k.axis[0] if isinstance(k.axis, list | tuple) and len(k.axis) == 1 else k.axis
    ndim = getattr(k.input_spec, "ndim", None)
    if axis == -1 or (ndim is not None and axis == ndim - 1):
        return -1
    raise _refuse(
        k, f"normalization over axis={k.axis!r}", "normalize the last (feature) axis, axis=-1."
    )


@converts("LayerNormalization")
def convert_layer_normalization(k: Any) -> Layer:
    if k.rms_scaling:
        raise _refuse(k, "rms_scaling=True", "use rms_scaling=False in the Keras model.")
    layer = normalization.LayerNormalization(
        axis=_feature_axis(k),
        epsilon=float(k.epsilon),
        center=k.center,
        scale=k.scale,
        name=k.name,
    )
    return _build_normalization(layer, k)


@converts("BatchNormalization")
def convert_batch_normalization(k: Any) -> Layer:
    if k.renorm:
        raise _refuse(k, "batch renormalization (renorm=True)", "use renorm=False.")
    layer = normalization.BatchNormalization(
        axis=_feature_axis(k),
        momentum=float(k.momentum),
        epsilon=float(k.epsilon),
        center=k.center,
        scale=k.scale,
        name=k.name,
    )
    _build_normalization(layer, k)
    _copy(layer.moving_mean, k.moving_mean)
    _copy(layer.moving_variance, k.moving_variance)
    return layer


def _build_normalization(layer: Layer, k: Any) -> Layer:
    weights = [w for w in (k.gamma, k.beta, getattr(k, "moving_mean", None)) if w is not None]
    if not weights:
        return layer  # nothing to copy: builds lazily
    layer.build_from_config_shape([int(weights[0].shape[0])])
    _copy(getattr(layer, "gamma", None), k.gamma)
    _copy(getattr(layer, "beta", None), k.beta)
    return layer


def _check_pooling(k: Any) -> None:
    if k.data_format != "channels_last":
        raise _refuse(
            k, f"data_format={k.data_format!r}", "use channels_last, (batch, time, features)."
        )
    if k.keepdims:
        raise _refuse(k, "keepdims=True", "add the axis back after pooling with a Lambda.")


@converts("GlobalAveragePooling1D")
def convert_global_average_pooling(k: Any) -> Layer:
    _check_pooling(k)
    return pooling.GlobalAveragePooling1D(name=k.name)


@converts("GlobalMaxPooling1D")
def convert_global_max_pooling(k: Any) -> Layer:
    _check_pooling(k)
    return pooling.GlobalMaxPooling1D(name=k.name)


@converts("Cropping1D")
def convert_cropping(k: Any) -> Layer:
    return pooling.Cropping1D([int(n) for n in k.cropping], name=k.name)


@converts("Concatenate")
def convert_concatenate(k: Any) -> Layer:
    return merge.Concatenate(axis=int(k.axis), name=k.name)


_MERGES = {
    "Add": merge.Add,
    "Subtract": merge.Subtract,
    "Multiply": merge.Multiply,
    "Average": merge.Average,
    "Maximum": merge.Maximum,
}


@converts(*_MERGES)
def convert_elementwise_merge(k: Any) -> Layer:
    return _MERGES[type(k).__name__](name=k.name)


@converts("Lambda")
def convert_lambda(k: Any) -> Layer:
    raise ConfigError(
        format_error(
            f"from_keras cannot convert Lambda layer {k.name!r}: a Keras Lambda holds "
            "Python code, which maskwise cannot translate (and Keras drops the mask there "
            "silently unless `mask=` is given).",
            fix="rebuild that part in maskwise with `Lambda(fn, mask=lambda inputs, mask: "
            "...)` (torch code for `fn`), or `mask='drop'` if its output has no time axis.",
        )
    )
