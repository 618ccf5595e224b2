"""Converters for Keras's non-recurrent layers (core, activations, noise, embedding,
normalization, pooling, reshaping, merges). Importing this module registers them.

Each converter reads the Keras layer's config and weights and returns the built
maskwise layer with the same name and a copy of the weights. Keras options that
maskwise does not implement are refused with a `ConfigError`, never ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import constraints, regularizers
from ..errors import ConfigError, format_error
from ..layers import activation, core, embedding, merge, normalization, pooling, reshaping
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


def keras_rules(k: Any, weight_names: Sequence[str]) -> dict[str, Any]:
    """The Keras layer's weight regularizers and constraints, its activity regularizer
    and its `trainable` flag, as maskwise arguments (`{"kernel_regularizer": L2(...),
    ..., "trainable": False}`), for the weights maskwise's layer names (its
    `weight_names`): a converted model trains with the same penalties and projections.
    Initializers need no converting: the weights are copied."""
    options = [f"{w}_{rule}" for w in weight_names for rule in ("regularizer", "constraint")]
    found: dict[str, Any] = {}
    for option in [*options, "activity_regularizer"]:
        value = getattr(k, option, getattr(k, f"_{option}", None))
        if value is not None:
            found[option] = _rule(k, option, value)
    if not k.trainable:
        found["trainable"] = False
    return found


def _rule(k: Any, option: str, value: Any) -> Any:
    module = regularizers if option.endswith("_regularizer") else constraints
    name = type(value).__name__
    try:
        return module.get({"class_name": name, "config": value.get_config()})
    except (ConfigError, AttributeError, TypeError):
        raise _refuse(
            k,
            f"{option}={name}",
            f"use one of {module.__name__}'s classes ({', '.join(sorted(module.NAMES))}) in "
            "the Keras model.",
        ) from None


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
        **keras_rules(k, core.Dense.weight_names),
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
    layer = embedding.Embedding(
        k.input_dim,
        k.output_dim,
        mask_zero=k.mask_zero,
        name=k.name,
        **keras_rules(k, embedding.Embedding.weight_names),
    )
    _copy(layer.embeddings, k.embeddings)
    return layer


@converts("TimeDistributed")
def convert_time_distributed(k: Any) -> Layer:
    return core.TimeDistributed(convert_layer(k.layer), name=k.name)


@converts("Dropout")
def convert_dropout(k: Any) -> Layer:
    if k.noise_shape is not None:
        raise _refuse(k, "Dropout's noise_shape", "use SpatialDropout1D to drop channels.")
    return core.Dropout(float(k.rate), name=k.name, seed=k.seed)


@converts("SpatialDropout1D")
def convert_spatial_dropout(k: Any) -> Layer:
    return core.SpatialDropout1D(float(k.rate), name=k.name, seed=k.seed)


@converts("Activation")
def convert_activation(k: Any) -> Layer:
    return core.Activation(_activation_name(k), name=k.name)


@converts("GaussianNoise")
def convert_gaussian_noise(k: Any) -> Layer:
    return core.GaussianNoise(float(k.stddev), name=k.name, seed=k.seed)


@converts("GaussianDropout")
def convert_gaussian_dropout(k: Any) -> Layer:
    return core.GaussianDropout(float(k.rate), name=k.name, seed=k.seed)


@converts("AlphaDropout")
def convert_alpha_dropout(k: Any) -> Layer:
    if k.noise_shape is not None:
        raise _refuse(k, "AlphaDropout's noise_shape", "drop the noise_shape argument.")
    return core.AlphaDropout(float(k.rate), name=k.name, seed=k.seed)


@converts("Softmax")
def convert_softmax(k: Any) -> Layer:
    axis = int(k.axis) if isinstance(k.axis, int) else [int(a) for a in k.axis]
    return activation.Softmax(axis, name=k.name)


@converts("ReLU")
def convert_relu(k: Any) -> Layer:
    return activation.ReLU(
        max_value=None if k.max_value is None else float(k.max_value),
        negative_slope=float(k.negative_slope),
        threshold=float(k.threshold),
        name=k.name,
    )


@converts("LeakyReLU")
def convert_leaky_relu(k: Any) -> Layer:
    return activation.LeakyReLU(float(k.negative_slope), name=k.name)


@converts("ELU")
def convert_elu(k: Any) -> Layer:
    return activation.ELU(float(k.alpha), name=k.name)


@converts("PReLU")
def convert_prelu(k: Any) -> Layer:
    layer = activation.PReLU(
        shared_axes=k.shared_axes,
        name=k.name,
        **keras_rules(k, activation.PReLU.weight_names),
    )
    layer.build_from_config_shape([int(n) for n in k.alpha.shape])
    _copy(layer.alpha, k.alpha)
    return layer


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
        **keras_rules(k, normalization.LayerNormalization.weight_names),  # gamma and beta
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
        **keras_rules(k, normalization.LayerNormalization.weight_names),  # gamma and beta
    )
    _build_normalization(layer, k)
    _copy(layer.moving_mean, k.moving_mean)
    _copy(layer.moving_variance, k.moving_variance)
    return layer


@converts("UnitNormalization")
def convert_unit_normalization(k: Any) -> Layer:
    axis = int(k.axis) if isinstance(k.axis, int) else [int(a) for a in k.axis]
    return normalization.UnitNormalization(axis, name=k.name)


@converts("GroupNormalization")
def convert_group_normalization(k: Any) -> Layer:
    layer = normalization.GroupNormalization(
        groups=int(k.groups),
        axis=_feature_axis(k),
        epsilon=float(k.epsilon),
        center=k.center,
        scale=k.scale,
        name=k.name,
        **keras_rules(k, normalization.LayerNormalization.weight_names),  # gamma and beta
    )
    return _build_normalization(layer, k)


@converts("Normalization")
def convert_normalization(k: Any) -> Layer:
    axis = _normalization_axis(k)
    invert = bool(k.invert)
    if k.input_mean is not None:  # given: no weights, the statistics are in the config
        mean, variance = (np.asarray(v).tolist() for v in (k.input_mean, k.input_variance))
        return normalization.Normalization(axis, mean, variance, invert, name=k.name)
    layer = normalization.Normalization(axis, invert=invert, name=k.name)
    if not k.built:
        return layer  # neither adapted nor built: builds lazily
    layer.build_from_config_shape(list(k._build_input_shape[1:]))
    _copy(layer.mean, k.adapt_mean)
    _copy(layer.variance, k.adapt_variance)
    layer.count.fill_(int(np.asarray(k.count)))
    return layer


def _normalization_axis(k: Any) -> int | None:
    """A Keras `Normalization`'s axes (a tuple) as maskwise's `axis`: -1 or None."""
    if k.axis == ():
        return None
    ndim = len(k._build_input_shape) if k.built else None
    if len(k.axis) == 1 and (k.axis[0] == -1 or (ndim is not None and k.axis[0] == ndim - 1)):
        return -1
    raise _refuse(
        k,
        f"normalization over axis={k.axis!r}",
        "normalize the last (feature) axis, axis=-1, or every value, axis=None.",
    )


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
    return reshaping.Cropping1D([int(n) for n in k.cropping], name=k.name)


@converts("UpSampling1D")
def convert_up_sampling(k: Any) -> Layer:
    return reshaping.UpSampling1D(int(k.size), name=k.name)


@converts("ZeroPadding1D")
def convert_zero_padding(k: Any) -> Layer:
    padding = [int(n) for n in k.padding]
    return reshaping.ZeroPadding1D(padding, data_format=k.data_format, name=k.name)


@converts("RepeatVector")
def convert_repeat_vector(k: Any) -> Layer:
    return reshaping.RepeatVector(int(k.n), name=k.name)


@converts("Reshape")
def convert_reshape(k: Any) -> Layer:
    return reshaping.Reshape([int(n) for n in k.target_shape], name=k.name)


@converts("Permute")
def convert_permute(k: Any) -> Layer:
    return reshaping.Permute([int(n) for n in k.dims], name=k.name)


@converts("Flatten")
def convert_flatten(k: Any) -> Layer:
    return reshaping.Flatten(data_format=k.data_format, name=k.name)


@converts("Concatenate")
def convert_concatenate(k: Any) -> Layer:
    return merge.Concatenate(axis=int(k.axis), name=k.name)


_MERGES = {
    "Add": merge.Add,
    "Subtract": merge.Subtract,
    "Multiply": merge.Multiply,
    "Average": merge.Average,
    "Maximum": merge.Maximum,
    "Minimum": merge.Minimum,
}


@converts(*_MERGES)
def convert_elementwise_merge(k: Any) -> Layer:
    return _MERGES[type(k).__name__](name=k.name)


@converts("Dot")
def convert_dot(k: Any) -> Layer:
    axes = int(k.axes) if isinstance(k.axes, int) else [int(a) for a in k.axes]
    return merge.Dot(axes, normalize=bool(k.normalize), name=k.name)


@converts("Lambda")
def convert_lambda(k: Any) -> Layer:
    """A Keras `Lambda` reuses its Python function, which computes on torch tensors when
    Keras runs on the torch backend. Its mask rule: Keras's `mask=` callable if given
    (same signature); else maskwise `Lambda`'s default (the mask passes on, and a
    function that changes the time axis raises), where Keras drops the mask. A function
    taking `mask` or `training` gets them as in Keras (maskwise's `Lambda` passes them)."""
    import keras

    backend = keras.backend.backend()
    if backend != "torch":
        raise ConfigError(
            format_error(
                f"from_keras cannot convert Lambda layer {k.name!r}: its function computes "
                f"on {backend} tensors (Keras runs on the {backend} backend).",
                expected="Keras on the torch backend (KERAS_BACKEND=torch)",
                received=f"backend {backend!r}",
                fix="load the model with KERAS_BACKEND=torch (the Python function then runs "
                "on torch tensors; a .keras file needs keras.saving.load_model(path, "
                "safe_mode=False) to hold it), or rebuild that part in maskwise with "
                "`Lambda(fn, mask=lambda inputs, mask: ...)`.",
            )
        )
    if k.mask is not None and not callable(k.mask):
        raise _refuse(k, "a constant mask= tensor", "give `mask=` as a function (inputs, mask).")
    function = functools.partial(k.function, **k.arguments) if k.arguments else k.function
    return core.Lambda(function, mask=k.mask, name=k.name)
