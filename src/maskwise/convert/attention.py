"""Converters for Keras's attention layers (`MultiHeadAttention`,
`GroupedQueryAttention`, `Attention`, `AdditiveAttention`). Importing this module
registers them.

maskwise's attention layers keep Keras's weight layouts (the `EinsumDense` kernels
`(inputs, heads, head features)` and `(heads, head features, outputs)`), so the weights
copy in as Keras stores them. Options maskwise does not implement are refused with a
`ConfigError`.
"""

from __future__ import annotations

from typing import Any

from ..layers import attention
from ..layers.base import Layer
from .core import _copy, _refuse, keras_rules
from .registry import converts


def _check_projections(k: Any) -> None:
    """Refuse the `MultiHeadAttention` options maskwise's layer does not have."""
    axes = getattr(k, "_attention_axes", None)  # GroupedQueryAttention has none
    if axes is not None and tuple(axes) != (1,):
        raise _refuse(
            k,
            f"attention_axes={axes!r}",
            "attend over the time axis of 3-D inputs (the default), reshaping other "
            "axes into the batch first.",
        )
    for option in ("use_gate", "sliding_window"):
        if getattr(k, f"_{option}", getattr(k, option, None)):
            raise _refuse(k, option, f"drop `{option}` in the Keras model.")


def _copy_projections(layer: attention.MultiHeadAttention, k: Any) -> Layer:
    dense = (k._query_dense, k._value_dense, k._key_dense)
    layer.build_from_config_shape([[int(d.kernel.shape[0])] for d in dense])
    pairs = [
        (layer.query_dense, k._query_dense),
        (layer.key_dense, k._key_dense),
        (layer.value_dense, k._value_dense),
        (layer.output_dense, k._output_dense),
    ]
    for mine, theirs in pairs:
        _copy(mine.kernel, theirs.kernel)
        if mine.bias is not None:
            _copy(mine.bias, theirs.bias)
    return layer


@converts("MultiHeadAttention")
def convert_multi_head_attention(k: Any) -> Layer:
    _check_projections(k)
    output_shape = k._output_shape
    layer = attention.MultiHeadAttention(
        k._num_heads,
        k._key_dim,
        value_dim=k._value_dim,
        dropout=float(k._dropout),
        use_bias=k._use_bias,
        output_shape=list(output_shape) if isinstance(output_shape, tuple) else output_shape,
        name=k.name,
        seed=k.seed,
        **keras_rules(k, attention.MultiHeadAttention.weight_names),
    )
    return _copy_projections(layer, k)


@converts("GroupedQueryAttention")
def convert_group_query_attention(k: Any) -> Layer:
    _check_projections(k)
    layer = attention.GroupQueryAttention(
        k.head_dim,
        k.num_query_heads,
        k.num_key_value_heads,
        dropout=float(k.dropout),
        use_bias=k.use_bias,
        name=k.name,
        seed=k.seed,
        **keras_rules(k, attention.MultiHeadAttention.weight_names),
    )
    return _copy_projections(layer, k)


@converts("Attention")
def convert_attention(k: Any) -> Layer:
    layer = attention.Attention(
        use_scale=k.use_scale,
        score_mode=k.score_mode,
        dropout=float(k.dropout),
        name=k.name,
        seed=k.seed,
    )
    _copy(layer.scale, getattr(k, "scale", None))
    _copy(layer.concat_score_weight, getattr(k, "concat_score_weight", None))
    return layer


@converts("AdditiveAttention")
def convert_additive_attention(k: Any) -> Layer:
    layer = attention.AdditiveAttention(
        use_scale=k.use_scale, dropout=float(k.dropout), name=k.name, seed=k.seed
    )
    if k.use_scale:
        dim = int(k.scale.shape[0])
        layer.build_from_config_shape([[dim], [dim]])
        _copy(layer.scale, k.scale)
    return layer
