"""Attention layers: every query step attends to the real steps of a value sequence.

Mask rule of every attention layer: the output has the query's time axis and carries
the QUERY's mask (padded query steps stay padded; the value's mask is used up inside
the attention). Value rule, shared: a query step attends only to the key/value steps
that are real in both the value's and the key's mask, and that `attention_mask` and
`use_causal_mask` allow; the inputs' padded steps are read as zeros, so whatever the
padding holds (NaN included) changes no real output and gets no gradient. A real query
step with nothing to attend to (its keys all padded or forbidden) gets all-zero
attention weights and a zero attended value, never NaN, forward and backward; the
attention weights of padded query steps are 0 too (as in Keras).

Called with `[query, value]` or `[query, value, key]` (as Keras's `Attention` is),
and `MultiHeadAttention` / `GroupQueryAttention` also as `mha(query, value, key)`. A
single input means self-attention (query = value = key), so the layers also fit in a
`Sequential` (Keras has no such form: its `value` is required). A `Sequential` passes
no call arguments: for causal self-attention, an `attention_mask`, cross-attention or
the attention scores, call the layer in the `forward` of a `Module`
(`self.mha(x, x, use_causal_mask=True)`), or give a `Graph` node both inputs
(`("att", mha, ["x", "context"])`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, MaskError, MaskwiseTypeError, ShapeError, format_error
from ..initializers import GlorotUniform
from ..masked import Masked, as_masked, combine_masks
from ._keras_args import make_weight
from ._random import SeededGenerator
from .base import CallOutput, Layer
from .core import _check_rate

_ROLES = ("query", "value", "key")


class _Plan(NamedTuple):
    """Which key steps each query step attends to, in the forms the kernels take.

    `allowed`: bool `(batch | 1, 1, query time | 1, key time)`, or None for "every key"
    (or causal only, see `is_causal`); a row with no allowed key is opened to every key
    so that no kernel sees a fully masked row (NaN in some), and its result is then
    dropped by `has_key`.
    `has_key`: bool `(batch | 1, 1, query time | 1, 1)`, the rows with an allowed key,
    or None when every row has one.
    `query`: bool `(batch, 1, query time, 1)`, the query's mask, or None.
    `is_causal`: the only restriction is the causal one (kernels have a fast path).
    """

    allowed: torch.Tensor | None
    has_key: torch.Tensor | None
    query: torch.Tensor | None
    is_causal: bool


def _causal(query_time: int, key_time: int, device: torch.device) -> torch.Tensor:
    """Keras's causal mask `(query_time, key_time)`: step t attends to key steps <= t."""
    return torch.ones(query_time, key_time, dtype=torch.bool, device=device).tril()


def _plan(
    query_mask: torch.Tensor | None,
    key_mask: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    use_causal_mask: bool,
    query_time: int,
    key_time: int,
) -> _Plan:
    """Combine the masks as Keras's `MultiHeadAttention` does (`&` of all of them); the
    query's mask is kept apart, so that a key-padding mask stays a cheap broadcast
    `(batch, 1, 1, key time)` for `scaled_dot_product_attention`."""
    query = None if query_mask is None else query_mask[:, None, :, None]
    allowed = None if key_mask is None else key_mask[:, None, None, :]
    if attention_mask is not None:
        given = attention_mask[:, None]
        allowed = given if allowed is None else allowed & given
    if use_causal_mask:
        if allowed is None:
            return _Plan(None, None, query, True)  # every row may attend its first step
        allowed = allowed & _causal(query_time, key_time, allowed.device)
    if allowed is None:
        return _Plan(None, None, query, False)
    has_key = allowed.any(dim=-1, keepdim=True)
    return _Plan(allowed | ~has_key, has_key, query, False)


def _drop_keyless_rows(values: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Zero the rows without an allowed key (a `where`: no gradient flows to them).
    Skipped when every row has a key and asking costs nothing (tensors on the CPU)."""
    has_key = plan.has_key
    if has_key is None or (has_key.device.type == "cpu" and bool(has_key.all())):
        return values
    return torch.where(has_key, values, values.new_zeros(()))


def _softmax_attend(
    scores: torch.Tensor,
    value: torch.Tensor,
    plan: _Plan,
    dropout: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masked softmax of `scores (batch, heads, query time, key time)`, then the
    weighted sum of `value (batch, heads, key time, features)`.

    Returns the output, the weights (after masking and softmax; 0 on padded query rows
    and rows without an allowed key) and the weights after dropout (`dropout` is 0
    outside training; its draws come from `generator`, PyTorch's global one when None).
    Forbidden scores are filled with the dtype's lowest finite number, not -inf.
    """
    allowed = plan.allowed
    if plan.is_causal:
        allowed = _causal(scores.shape[-2], scores.shape[-1], scores.device)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = _drop_keyless_rows(torch.softmax(scores, dim=-1), plan)
    if plan.query is not None:
        weights = torch.where(plan.query, weights, weights.new_zeros(()))
    dropped = _drop(weights, dropout, generator)
    return dropped @ value, weights, dropped


def _drop(weights: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """Dropout of the attention weights at `rate`, drawn from `generator` (a seeded
    layer's own) or from PyTorch's global generator when None."""
    if rate == 0.0:
        return weights
    if generator is None:
        return F.dropout(weights, rate)
    draws = torch.rand(weights.shape, generator=generator, device=weights.device)
    return torch.where(draws >= rate, weights / (1.0 - rate), weights.new_zeros(()))


def _dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    plan: _Plan,
    dropout: float,
    return_weights: bool,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention of `query (batch, heads, query time, key_dim)` on
    `key`/`value (batch, key/value heads, key time, ...)`; key/value heads are shared by
    consecutive query heads (Keras's `repeat`). Without `return_weights` (and without a
    seeded dropout, `generator`, which `scaled_dot_product_attention` cannot draw
    from), one call to `scaled_dot_product_attention` with the boolean mask."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    repeats = query.shape[1] // key.shape[1]
    if repeats > 1:
        key = key.repeat_interleave(repeats, dim=1)
        value = value.repeat_interleave(repeats, dim=1)
    if not return_weights and (generator is None or dropout == 0.0):
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=plan.allowed,
            dropout_p=dropout,
            is_causal=plan.is_causal,
            scale=scale,
        )
        return _drop_keyless_rows(out, plan), None
    scores = (query * scale) @ key.transpose(-2, -1)
    out, weights, _ = _softmax_attend(scores, value, plan, dropout, generator)
    return out, weights if return_weights else None


class _Projection(nn.Module):
    """Keras's `EinsumDense` as used by the attention layers: a linear map from the
    trailing `in_dims` of the values to `out_dims`, with the kernel `(*in_dims,
    *out_dims)` and bias `out_dims` laid out as Keras's (so Keras weights copy in).
    `rules`: the attention layer's `kernel` and `bias` rules (`kernel_initializer`, ...)."""

    kernel: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self, in_dims: Sequence[int], out_dims: Sequence[int], use_bias: bool, rules: Any
    ) -> None:
        super().__init__()
        self.in_dims, self.out_dims = tuple(in_dims), tuple(out_dims)
        self.__dict__["_weight_rules"] = rules
        make_weight(self, "kernel", self.in_dims + self.out_dims, "glorot_uniform", "kernel")
        self.bias = None
        if use_bias:
            make_weight(self, "bias", self.out_dims, "zeros", "bias")

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        lead = values.shape[: values.dim() - len(self.in_dims)]
        flat = values.reshape(-1, math.prod(self.in_dims))  # one matrix product
        kernel = self.kernel.reshape(flat.shape[1], -1)
        if self.bias is None:
            out = flat @ kernel
        else:
            out = torch.addmm(self.bias.reshape(-1), flat, kernel)
        return out.view(*lead, *self.out_dims)


def _positive_int(layer: str, argument: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            format_error(
                f"{layer} `{argument}` must be a positive integer.",
                expected="an int >= 1",
                received=f"{argument}={value!r}",
            )
        )
    return value


class _AttentionLayer(Layer):
    """What the attention layers share: reading the query, value and key inputs,
    checking their shapes, the masks that decide who attends to what, and the mask
    rule. `call` and `compute_mask` get the values and masks of `[query, value, key]`."""

    float_inputs = True
    takes_list = True

    def _unpack(self, query: Any, value: Any, key: Any) -> list[Masked]:
        """`[query, value, key]` as `Masked`, from `(query, value, key)` or a list in
        `query`; a missing key is the value, a missing value the query."""
        kind = type(self).__name__
        if isinstance(query, list | tuple):
            extra = value is not None or key is not None
            if extra or not 2 <= len(query) <= 3:
                raise ConfigError(
                    format_error(
                        f"{kind} layer {self.name!r} got its inputs in a form it cannot read.",
                        expected="a list [query, value] or [query, value, key], or the "
                        "inputs one by one",
                        received=f"a list of {len(query)} input(s)"
                        + (" and more inputs after it" if extra else ""),
                        fix="pass `[query, value]` (self-attention: `[x, x]`).",
                    )
                )
            query, value, key = (*query, None)[:3]
        inputs = [query, value if value is not None else query]
        inputs.append(key if key is not None else inputs[1])
        return [self._as_input(role, x) for role, x in zip(_ROLES, inputs, strict=True)]

    def _as_input(self, role: str, x: Any) -> Masked:
        if not isinstance(x, Masked | torch.Tensor):
            raise MaskwiseTypeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r}: the {role} must be a "
                    "Masked or a tensor.",
                    received=type(x).__name__,
                    fix="wrap padded values with their mask: `Masked(values, mask)`.",
                )
            )
        return as_masked(x)

    def check_inputs(self, inputs: list[Masked]) -> None:  # type: ignore[override]
        """3-D inputs, one batch size, value and key on one time axis, and the feature
        sizes the weights were built for (checked before building, so that a wrong
        first call builds nothing)."""
        kind = type(self).__name__
        for role, x in zip(_ROLES, inputs, strict=True):
            if x.values.dim() != 3:
                raise ShapeError(
                    format_error(
                        f"{kind} layer {self.name!r}: the {role} must be 3-D.",
                        expected="(batch, time, features)",
                        received=f"{role} shape {tuple(x.values.shape)}",
                        fix="attention runs over one time axis; reshape extra axes into "
                        "the features or the batch first.",
                    )
                )
        query, value, key = inputs
        shapes = ", ".join(f"{r} {tuple(x.values.shape)}" for r, x in zip(_ROLES, inputs))
        if not value.values.shape[0] == key.values.shape[0] == query.values.shape[0]:
            raise ShapeError(
                format_error(
                    f"{kind} layer {self.name!r}: the query, value and key hold different "
                    "numbers of sequences.",
                    expected="one batch size for all of them (sequence i attends to sequence i)",
                    received=shapes,
                )
            )
        if value.values.shape[1] != key.values.shape[1]:
            raise ShapeError(
                format_error(
                    f"{kind} layer {self.name!r}: the value and the key must have the same "
                    "time axis (step s of the key scores step s of the value).",
                    expected=f"key time = value time = {value.values.shape[1]}",
                    received=shapes,
                    fix="pad the key and the value to the same number of steps.",
                )
            )
        sizes = self._feature_sizes() if self.built else (None, None, None)
        for role, x, size in zip(_ROLES, inputs, sizes, strict=True):
            if size is not None and x.values.shape[-1] != size:
                raise ShapeError(
                    format_error(
                        f"{kind} layer {self.name!r} was built for {size} {role} features.",
                        expected=f"{role} (batch, time, {size})",
                        received=shapes,
                        fix="use one layer per input size; features are the last axis.",
                    )
                )

    def _feature_sizes(self) -> tuple[int | None, int | None, int | None]:
        """The feature sizes of query, value and key the built layer requires (None: any)."""
        raise NotImplementedError

    def compute_mask(  # type: ignore[override]
        self, values: list[torch.Tensor], mask: list[torch.Tensor | None]
    ) -> torch.Tensor | None:
        """The query's mask."""
        return mask[0]

    def _attention_plan(
        self,
        values: list[torch.Tensor],
        masks: list[torch.Tensor | None],
        attention_mask: Any,
        use_causal_mask: bool,
    ) -> _Plan:
        query, value, _ = values
        query_mask, value_mask, key_mask = masks
        batch, query_time = query.shape[:2]
        key_time = value.shape[1]
        given = self._attention_mask(attention_mask, (batch, query_time, key_time), query.device)
        keys = combine_masks([value_mask, key_mask])
        return _plan(query_mask, keys, given, bool(use_causal_mask), query_time, key_time)

    def _attention_mask(
        self, mask: Any, target: tuple[int, int, int], device: torch.device
    ) -> torch.Tensor | None:
        """`attention_mask` as a bool `(batch | 1, query time | 1, key time)` tensor;
        `target` is `(batch, query time, key time)`."""
        if mask is None:
            return None
        good = (
            isinstance(mask, torch.Tensor)
            and mask.dtype == torch.bool
            and mask.device == device
            and 2 <= mask.dim() <= 3
            and all(m in (1, t) for m, t in zip(mask.shape[::-1], target[::-1]))
        )
        if not good:
            received = (
                f"{mask.dtype} tensor of shape {tuple(mask.shape)} on {mask.device}"
                if isinstance(mask, torch.Tensor)
                else type(mask).__name__
            )
            raise MaskError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r}: `attention_mask` says which "
                    "query step may attend to which key step.",
                    expected=f"a bool tensor (batch, query time, key time) = {target} "
                    f"on {device} (or (query time, key time); axes of size 1 broadcast)",
                    received=received,
                    fix="True = may attend; convert 0/1 masks with `.bool()`. The "
                    "inputs' own masks are applied already, no need to repeat them here.",
                )
            )
        return mask if mask.dim() == 3 else mask[None]


class MultiHeadAttention(_AttentionLayer):
    """Multi-head scaled dot-product attention (Keras's `MultiHeadAttention`).

    Value rule: the query, value and key are projected to `num_heads` heads
    (`query_dense`, `key_dense`: `key_dim` features per head; `value_dense`:
    `value_dim`), each head computes `softmax(q k^T / sqrt(key_dim)) v` over the key
    steps the query step may attend to, and `output_dense` maps the concatenated heads
    to `output_shape` (default: the query's features). A query step may attend to key
    step s when s is real in the value's and the key's masks, and `attention_mask` and
    `use_causal_mask` allow it: the masks combine as in Keras, by AND. Built on
    `torch.nn.functional.scaled_dot_product_attention` with a boolean mask. Dropout
    (training only) drops attention weights. A real query step with nothing to attend
    to (its keys all padded or forbidden) attends to nothing: its attended value is 0
    and its output is `output_dense`'s bias (Keras 3's fast path gives the projected
    mean of all the value steps there, padding included). Padded input steps are read
    as zeros; the outputs at padded query steps are finite and mean nothing.

    Mask rule: the output carries the query's mask (None if the query has none).

    Example:
        >>> x = Masked.pad([torch.ones(4, 8), torch.ones(2, 8)])
        >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
        >>> y = mha(x, x)  # self-attention; also mha([x, x]) or mha(x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])

    Args:
        num_heads: number of attention heads.
        key_dim: features per head of the query and key projections.
        value_dim: features per head of the value projection (default: `key_dim`).
        dropout: probability of dropping an attention weight in training, in `[0, 1)`.
        use_bias: the projections add biases.
        output_shape: the output features, an int or a tuple (the output is then
            `(batch, query time, *output_shape)`); default: the query's features.
        name: layer name.
        **keras_args: `kernel_*` and `bias_*` (`_initializer`, Keras's defaults
            `"glorot_uniform"` and `"zeros"`; `_regularizer`; `_constraint`) for the four
            projections, and the arguments of every layer (`maskwise.layers.Layer`).
        seed: an int gives the dropout its own generator (the draws repeat from run to
            run, each call drawing new ones, as Keras's `seed`); None draws from
            PyTorch's global generator.
    Not supported: `attention_axes` (attention runs over the time axis of 3-D inputs),
    `sliding_window`, `use_gate` and `flash_attention`.

    Call: `mha(query, value, key=None, attention_mask=None, use_causal_mask=False,
    return_attention_scores=False)`, or `mha([query, value(, key)], ...)`:
        query: `(batch, query time, query features)`, a `Masked` or a tensor.
        value: `(batch, key time, value features)`; default: the query (self-attention).
        key: `(batch, key time, key features)`; default: the value.
        attention_mask: bool `(batch, query time, key time)` or `(query time, key time)`,
            True where a query step may attend to a key step.
        use_causal_mask: query step t attends to key steps <= t only (a decoder).
        return_attention_scores: also return the weights, `(batch, num_heads, query
            time, key time)` (before dropout; 0 on padded query steps and on rows with
            nothing to attend to).
    Returns a `Masked` `(batch, query time, output features)`, or `(output, scores)`.
    """

    weight_names = ("kernel", "bias")

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: int | Sequence[int] | None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.draws = SeededGenerator(kind, seed)
        self.num_heads = _positive_int(kind, "num_heads", num_heads)
        self.key_dim = _positive_int(kind, "key_dim", key_dim)
        self.value_dim = (
            key_dim if value_dim is None else _positive_int(kind, "value_dim", value_dim)
        )
        self.key_value_heads = self.num_heads
        self.dropout = _check_rate(kind, dropout)
        self.use_bias = bool(use_bias)
        self.output_dims = _output_dims(kind, output_shape)

    def build(self, input_shape: Any) -> None:
        query_dim, value_dim, key_dim = (int(shape[-1]) for shape in input_shape)
        heads, kv_heads = self.num_heads, self.key_value_heads
        args = (self.use_bias, self.__dict__.get("_weight_rules", {}))
        self.query_dense = _Projection((query_dim,), (heads, self.key_dim), *args)
        self.key_dense = _Projection((key_dim,), (kv_heads, self.key_dim), *args)
        self.value_dense = _Projection((value_dim,), (kv_heads, self.value_dim), *args)
        outputs = self.output_dims or (query_dim,)
        self.output_dense = _Projection((heads, self.value_dim), outputs, *args)

    def _feature_sizes(self) -> tuple[int | None, int | None, int | None]:
        return (
            self.query_dense.in_dims[0],
            self.value_dense.in_dims[0],
            self.key_dense.in_dims[0],
        )

    def read_inputs(  # type: ignore[override]
        self, query: Any, value: Any = None, key: Any = None, **options: Any
    ) -> tuple[list[Masked], dict[str, Any]]:
        """`mha(query, value=None, key=None, **options)` or `mha([query, value(, key)],
        **options)`."""
        return self._unpack(query, value, key), options

    def call(  # type: ignore[override]
        self,
        values: list[torch.Tensor],
        mask: list[torch.Tensor | None],
        *,
        attention_mask: torch.Tensor | None = None,
        use_causal_mask: bool = False,
        return_attention_scores: bool = False,
    ) -> CallOutput:
        """The output values, and with `return_attention_scores` the scores after them."""
        plan = self._attention_plan(values, mask, attention_mask, use_causal_mask)
        q, v, k = values
        heads_first = (0, 2, 1, 3)  # (batch, time, heads, dim) <-> (batch, heads, time, dim)
        attended, scores = _dot_product_attention(
            self.query_dense(q).permute(heads_first),
            self.key_dense(k).permute(heads_first),
            self.value_dense(v).permute(heads_first),
            plan,
            self.dropout if self.training else 0.0,
            return_attention_scores,
            self.draws(q.device),
        )
        output = self.output_dense(attended.permute(heads_first))
        return output if scores is None else (output, scores)


class GroupQueryAttention(MultiHeadAttention):
    """Grouped-query attention (Keras's `GroupQueryAttention`): `num_query_heads`
    query heads share `num_key_value_heads` key and value heads.

    Value rule: as `MultiHeadAttention`'s, with `head_dim` features per head for the
    query, key and value; query head h uses key/value head `h // (num_query_heads //
    num_key_value_heads)` (Keras's `repeat`); the output has the query's features.
    `num_key_value_heads=1` is multi-query attention, `= num_query_heads` multi-head
    attention. A real query step with nothing to attend to gives the output bias,
    never NaN.

    Mask rule: the output carries the query's mask.

    Example:
        >>> x = Masked.pad([torch.ones(4, 8), torch.ones(2, 8)])
        >>> gqa = GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)
        >>> y = gqa(x, x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])

    Args:
        head_dim: features per head.
        num_query_heads: query heads, a multiple of `num_key_value_heads`.
        num_key_value_heads: key and value heads.
        dropout: probability of dropping an attention weight in training, in `[0, 1)`.
        use_bias: the projections add biases.
        name: layer name.
        seed: as `MultiHeadAttention`'s.
    Not supported: `sliding_window`, `use_gate`, `flash_attention`, initializers,
    regularizers and constraints.

    Call: as `MultiHeadAttention`; attention scores are `(batch, num_query_heads,
    query time, key time)`.
    """

    def __init__(
        self,
        head_dim: int,
        num_query_heads: int,
        num_key_value_heads: int,
        dropout: float = 0.0,
        use_bias: bool = True,
        *,
        name: str | None = None,
        seed: int | None = None,
        **keras_args: Any,
    ) -> None:
        kind = type(self).__name__
        _positive_int(kind, "head_dim", head_dim)
        query_heads = _positive_int(kind, "num_query_heads", num_query_heads)
        kv_heads = _positive_int(kind, "num_key_value_heads", num_key_value_heads)
        if query_heads % kv_heads:
            raise ConfigError(
                format_error(
                    f"{kind}: each key/value head serves the same number of query heads.",
                    expected="num_query_heads a multiple of num_key_value_heads",
                    received=f"num_query_heads={query_heads}, num_key_value_heads={kv_heads}",
                    fix=f"e.g. num_key_value_heads={_largest_divisor(query_heads, kv_heads)}.",
                )
            )
        super().__init__(
            query_heads, head_dim, dropout=dropout, use_bias=use_bias, name=name, seed=seed
        )
        self.head_dim = self.key_dim
        self.key_value_heads = kv_heads


def _largest_divisor(number: int, at_most: int) -> int:
    return max(d for d in range(1, min(number, at_most) + 1) if number % d == 0)


def _output_dims(layer: str, output_shape: Any) -> tuple[int, ...] | None:
    if output_shape is None:
        return None
    dims = (output_shape,) if isinstance(output_shape, int) else output_shape
    if (
        not isinstance(dims, list | tuple)
        or not dims
        or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims)
    ):
        raise ConfigError(
            format_error(
                f"{layer} `output_shape` gives the output features.",
                expected="None, a positive int, or a tuple of positive ints",
                received=f"output_shape={output_shape!r}",
            )
        )
    return tuple(dims)


class _ScoreAttention(_AttentionLayer):
    """Keras's `Attention` and `AdditiveAttention`: no projections; scores from a score
    function, a masked softmax over the keys, a weighted sum of the values."""

    def __init__(self, use_scale: bool, dropout: float, name: str | None, seed: int | None) -> None:
        super().__init__(name=name)
        self.use_scale = bool(use_scale)
        self.dropout = _check_rate(type(self).__name__, dropout)
        self.draws = SeededGenerator(type(self).__name__, seed)

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """`(batch, query time, key time)` scores from `query` and `key`."""
        raise NotImplementedError

    def _feature_sizes(self) -> tuple[int | None, int | None, int | None]:
        return self._query_features(), None, self._query_features()

    def _query_features(self) -> int | None:
        return None

    def check_inputs(self, inputs: list[Masked]) -> None:  # type: ignore[override]
        super().check_inputs(inputs)
        query, _, key = (x.values for x in inputs)
        if query.shape[-1] != key.shape[-1]:
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} scores a query step against "
                    "a key step feature by feature, so they need the same features.",
                    expected=f"key (batch, time, {query.shape[-1]}) like the query",
                    received=f"query {tuple(query.shape)}, key {tuple(key.shape)}",
                    fix="project one of them first, e.g. with Dense, or use "
                    "MultiHeadAttention, which projects both.",
                )
            )

    def read_inputs(
        self, inputs: Any, mask: Any = None, **options: Any
    ) -> tuple[list[Masked], dict[str, Any]]:
        """`inputs`: `[query, value]`, `[query, value, key]`, or one input for
        self-attention; `mask`: None or one mask per input (replacing their own)."""
        items = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        if mask is not None:
            items = [self._as_input(f"input {i}", x) for i, x in enumerate(items)]
            items = self.input_list(items, mask)
        return self._unpack(items if len(items) > 1 else items[0], None, None), options

    def call(  # type: ignore[override]
        self,
        values: list[torch.Tensor],
        mask: list[torch.Tensor | None],
        *,
        return_attention_scores: bool = False,
        use_causal_mask: bool = False,
    ) -> CallOutput:
        """The output values, and with `return_attention_scores` the scores after them."""
        plan = self._attention_plan(values, mask, None, use_causal_mask)
        query, value, key = (v.to(values[0].dtype) for v in values)
        scores = self.scores(query, key)[:, None]  # one head: (batch, 1, query, key)
        dropout = self.dropout if self.training else 0.0
        generator = self.draws(query.device)
        out, _, dropped = _softmax_attend(scores, value[:, None], plan, dropout, generator)
        return (out[:, 0], dropped[:, 0]) if return_attention_scores else out[:, 0]


class Attention(_ScoreAttention):
    """Dot-product (Luong-style) attention without projections (Keras's `Attention`).

    Value rule: scores `q . k` (`score_mode="dot"`, times the learned scalar `scale` if
    `use_scale`) or `concat_score_weight * sum(tanh(scale * (q + k)))` (`"concat"`),
    then a softmax over the key steps the query step may attend to, and the weighted
    sum of the values. A key step counts when it is real in the value's and the key's
    masks (Keras reads only the value's) and, with `use_causal_mask`, is not after the
    query step. Dropout (training only) drops weights. Outputs at padded query steps
    and at query steps with nothing to attend to are 0 (Keras gives the mean of all the
    value steps at the latter, padding included).

    Mask rule: the output carries the query's mask.

    Example:
        >>> query = Masked.pad([torch.ones(3, 4), torch.ones(1, 4)])
        >>> value = Masked.pad([torch.ones(5, 4), torch.ones(2, 4)])
        >>> y = Attention()([query, value])
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 4]), [3, 1])

    Args:
        use_scale: learn a scalar `scale` for the scores (starts at 1).
        score_mode: `"dot"` or `"concat"` (adds the scalar `concat_score_weight`).
        dropout: probability of dropping an attention weight in training, in `[0, 1)`.
        name: layer name.
        seed: as `MultiHeadAttention`'s.

    Call: `attention([query, value(, key)], mask=None, return_attention_scores=False,
    use_causal_mask=False)`: query `(batch, query time, dim)`, value `(batch, key time,
    value features)`, key `(batch, key time, dim)` (default: the value); a single input
    is self-attention. Returns a `Masked` `(batch, query time, value features)`, or with
    the scores `(batch, query time, key time)` (after softmax and dropout, as Keras).
    """

    def __init__(
        self,
        use_scale: bool = False,
        score_mode: str = "dot",
        dropout: float = 0.0,
        seed: int | None = None,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(use_scale, dropout, name, seed)
        if score_mode not in ("dot", "concat"):
            raise ConfigError(
                format_error(
                    "Attention `score_mode` names the score function.",
                    expected="'dot' or 'concat'",
                    received=f"score_mode={score_mode!r}",
                )
            )
        self.score_mode = score_mode
        self.scale = nn.Parameter(torch.ones(())) if self.use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if score_mode == "concat" else None

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.score_mode == "dot":
            scores = query @ key.transpose(-2, -1)
            return scores if self.scale is None else scores * self.scale
        summed = query[:, :, None] + key[:, None]
        if self.scale is not None:
            summed = self.scale * summed
        return cast(nn.Parameter, self.concat_score_weight) * torch.tanh(summed).sum(dim=-1)


class AdditiveAttention(_ScoreAttention):
    """Additive (Bahdanau-style) attention without projections (Keras's
    `AdditiveAttention`).

    Value rule: scores `sum(scale * tanh(q + k))` over the features (`scale`: a learned
    vector of the query's size if `use_scale`, else 1), then as `Attention`: a softmax
    over the key steps real in the value's and the key's masks (and not after the query
    step with `use_causal_mask`), the weighted sum of the values, dropout on the weights
    in training, 0 at padded query steps and where nothing may be attended to.

    Mask rule: the output carries the query's mask.

    Example:
        >>> query = Masked.pad([torch.ones(3, 4), torch.ones(1, 4)])
        >>> value = Masked.pad([torch.ones(5, 4), torch.ones(2, 4)])
        >>> y = AdditiveAttention()([query, value])
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 4]), [3, 1])

    Args:
        use_scale: learn the vector `scale` (shape `(dim,)`, glorot-uniform start).
        dropout: probability of dropping an attention weight in training, in `[0, 1)`.
        name: layer name.
        seed: as `MultiHeadAttention`'s.

    Call: as `Attention`.
    """

    scale: nn.Parameter | None

    def __init__(
        self,
        use_scale: bool = True,
        dropout: float = 0.0,
        *,
        name: str | None = None,
        seed: int | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(use_scale, dropout, name, seed)
        self.scale = None

    def build(self, input_shape: Any) -> None:
        if self.use_scale:
            dim = int(input_shape[0][-1])
            self.scale = nn.Parameter(GlorotUniform()((dim,)))

    def _query_features(self) -> int | None:
        return None if self.scale is None else self.scale.shape[0]

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        tanh = torch.tanh(query[:, :, None] + key[:, None])
        return (tanh if self.scale is None else self.scale * tanh).sum(dim=-1)
