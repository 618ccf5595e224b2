"""Transformer blocks with KerasHub's names and arguments: `PositionEmbedding`,
`TokenAndPositionEmbedding` and `TransformerEncoder`.

Positions count the real steps: a sequence's first real step is position 0 whatever
padding precedes it, and a hole (a padded step between real ones) does not advance the
count, so a sequence's outputs never depend on its padding. For sequences padded at the
end (the usual layout, and KerasHub's) this is KerasHub's rule, step t of the padded
tensor at position t. `skip_padding=False` applies that rule to every layout: a
pre-padded sequence then starts at the position after its padding, its outputs depend
on how much padding it has, and a `MaskWarning` says so (`fit`'s padding check stops at
such a layer, too).

The encoder is built from maskwise's `MultiHeadAttention`, `Dense`,
`LayerNormalization` and `Dropout`: the input's mask is the padding mask (KerasHub's
`padding_mask`), each sublayer reads the padded steps as zeros, and the output
carries the input's mask.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .. import initializers
from ..errors import ConfigError, MaskWarning, ShapeError, format_error
from ..masked import Masked
from .attention import MultiHeadAttention, _positive_int
from .base import CallOutput, Layer
from .core import Dense, Dropout, _check_rate, _first_steps, get_activation
from .embedding import Embedding
from .normalization import LayerNormalization


def _check_bool(layer: str, argument: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            format_error(
                f"{layer} `{argument}` is a switch.",
                expected="True or False",
                received=f"{argument}={value!r}",
            )
        )
    return value


class PositionEmbedding(Layer):
    """A learned vector per position (KerasHub's `PositionEmbedding`): returns the
    position embeddings of the input's steps, to be added to the input.

    Value rule: a real step gets row p of the learned table `(sequence_length,
    features)`, where p is the number of real steps before it (padding-invariant; for
    padding at the end, p is the step's index t, as KerasHub) or, with
    `skip_padding=False`, its index t in the padded tensor whatever the mask (KerasHub's
    rule). The output has the input's shape and does not depend on the input's values;
    padded steps hold some row or zeros, never read. A real step at a position `>=
    sequence_length` raises a `ShapeError`; padded steps may lie beyond it, so a batch
    may be padded longer than `sequence_length`. With `skip_padding=False`, a real step
    after a padded one (pre-padding, holes) raises a `MaskWarning`: that sequence's
    positions depend on its padding. Mask rule: the mask passes on unchanged (KerasHub
    drops it).

    Example:
        >>> x = Masked.pad([torch.ones(3, 4), torch.ones(1, 4)])
        >>> y = PositionEmbedding(sequence_length=8)(x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 4]), [3, 1])

    Args:
        sequence_length: the number of positions learned (the longest sequence).
        initializer: the table's initializer, a Keras name or object (KerasHub's
            default `"glorot_uniform"`; see `maskwise.initializers`).
        skip_padding: positions count the real steps only (the default); False: every
            step of the padded tensor, as KerasHub.
        name: layer name.
    Not supported: `seq_axis` (time is axis 1), the call arguments `start_index` and
    `positions`.

    Input `(batch, time, features)`; output the same shape, in the table's dtype.
    """

    position_embeddings: nn.Parameter

    def __init__(
        self,
        sequence_length: int,
        initializer: Any = "glorot_uniform",
        skip_padding: bool = True,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.sequence_length = _positive_int(kind, "sequence_length", sequence_length)
        initializers.get(initializer)  # an unknown name fails here
        self.initializer = initializer
        self.skip_padding = _check_bool(kind, "skip_padding", skip_padding)

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[-1])
        self.add_weight("position_embeddings", (self.sequence_length, features), self.initializer)

    def check_inputs(self, inputs: Masked) -> None:  # type: ignore[override]
        """3-D values, with the features the table was built for."""
        values = inputs.values
        features = self.position_embeddings.shape[1] if self.built else None
        if values.dim() != 3 or features not in (None, values.shape[-1]):
            raise ShapeError(
                format_error(
                    f"PositionEmbedding layer {self.name!r} needs (batch, time, features) "
                    "values" + ("" if features is None else f" with {features} features") + ".",
                    expected=f"(batch, time, {features or 'features'})",
                    received=f"values {tuple(values.shape)}",
                    fix="use one PositionEmbedding per feature size; features are the last axis.",
                )
            )

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        table = self.position_embeddings
        batch, time, features = values.shape
        if self.skip_padding and mask is not None:
            positions = mask.long().cumsum(dim=1) - 1  # real steps before, at real steps
            if time > self.sequence_length:  # else every position fits
                self._check_positions(positions.masked_fill(~mask, -1))
            return nn.functional.embedding(positions.clamp(min=0), table)
        if mask is not None:
            self._warn_if_padding_comes_first(mask)
        if time <= self.sequence_length:
            return table[:time].expand(batch, time, features)
        index = torch.arange(time, device=values.device).expand(batch, time)
        self._check_positions(index if mask is None else index.masked_fill(~mask, -1))
        beyond = table.new_zeros(time - self.sequence_length, features)
        return torch.cat([table, beyond]).expand(batch, time, features)

    def _check_positions(self, positions: torch.Tensor) -> None:
        """`positions (batch, time)`: the real steps' positions, -1 at padded steps."""
        if positions.numel() == 0 or int(positions.max()) < self.sequence_length:
            return
        furthest = positions.max(dim=1).values
        sequence = int((furthest >= self.sequence_length).nonzero()[0])
        longest = int(furthest[sequence])
        raise ShapeError(
            format_error(
                f"PositionEmbedding layer {self.name!r} learns {self.sequence_length} "
                f"positions, but sequence {sequence} has a real step at position {longest}.",
                expected=f"real steps at positions < sequence_length={self.sequence_length}",
                received=f"position {longest}"
                + (" (counting real steps only)" if self.skip_padding else ""),
                fix="set sequence_length to the longest sequence, or truncate the sequences"
                + ("." if self.skip_padding else "; padding at the end does not count."),
            )
        )

    def _warn_if_padding_comes_first(self, mask: torch.Tensor) -> None:
        previous = nn.functional.pad(mask[:, :-1], (1, 0), value=True)
        after_padding = mask & ~previous
        if not bool(after_padding.any()):
            return
        warnings.warn(
            f"PositionEmbedding layer {self.name!r}: real steps follow padded ones "
            f"({_first_steps(after_padding)}); positions "
            "count every step of the padded tensor (as KerasHub), so these sequences' "
            "positions, and outputs, depend on their padding. Fix: "
            "`skip_padding=True` (the default) to count the real steps only, or pad at "
            "the end.",
            MaskWarning,
            stacklevel=2,
        )


class TokenAndPositionEmbedding(Layer):
    """Token embedding plus position embedding (KerasHub's `TokenAndPositionEmbedding`):
    `embeddings[tokens] + position_embeddings[positions]`.

    Value rule: the sum of an `Embedding` of the token ids and a `PositionEmbedding` of
    the steps (their rules: ids at padded steps are never read; positions count the
    real steps of the mask below, or are step indices with `skip_padding=False`).
    Mask rule: as `Embedding`'s: with `mask_zero=True` a step is real iff its token is
    not 0, ANDed with an incoming mask; otherwise the incoming mask passes on.

    Example:
        >>> emb = TokenAndPositionEmbedding(10, sequence_length=6, embedding_dim=4,
        ...                                 mask_zero=True)
        >>> y = emb(torch.tensor([[3, 5, 0], [2, 0, 0]]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 4]), [2, 1])

    Args:
        vocabulary_size: ids must lie in `[0, vocabulary_size)`.
        sequence_length: the number of positions learned.
        embedding_dim: size of each vector.
        embeddings_initializer: for both tables, a Keras name or object (KerasHub's
            default `"uniform"`; see `maskwise.initializers`).
        mask_zero: token 0 is padding and is masked.
        skip_padding: positions count the real steps only (the default; see
            `PositionEmbedding`); False: KerasHub's step indices.
        name: layer name.
    Not supported: `tie_weights` and the reverse projection, the call arguments
    `start_index` and `positions`.

    Input: integer ids `(batch, time)`; output `(batch, time, embedding_dim)`.
    """

    def __init__(
        self,
        vocabulary_size: int,
        sequence_length: int,
        embedding_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        skip_padding: bool = True,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.vocabulary_size = _positive_int(kind, "vocabulary_size", vocabulary_size)
        self.sequence_length = _positive_int(kind, "sequence_length", sequence_length)
        self.embedding_dim = _positive_int(kind, "embedding_dim", embedding_dim)
        self.token_embedding = Embedding(
            vocabulary_size,
            embedding_dim,
            mask_zero=_check_bool(kind, "mask_zero", mask_zero),
            name=f"{self.name}/token_embedding",
            embeddings_initializer=embeddings_initializer,
        )
        self.position_embedding = PositionEmbedding(
            sequence_length,
            initializer=embeddings_initializer,
            skip_padding=skip_padding,
            name=f"{self.name}/position_embedding",
        )
        self.position_embedding.build_from_config_shape([sequence_length, embedding_dim])
        self.built = True
        self.build_shape = []

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if values.dim() != 2:
            raise ShapeError(
                format_error(
                    f"TokenAndPositionEmbedding layer {self.name!r} takes token ids.",
                    expected="ids (batch, time)",
                    received=f"values {tuple(values.shape)}",
                    fix="pass one integer id per step; features come from the embedding.",
                )
            )
        tokens = self.token_embedding.call(values, mask)
        positions = self.position_embedding.call(tokens, self.compute_mask(values, mask))
        return tokens + positions

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return self.token_embedding.compute_mask(values, mask)


"""KerasHub arguments of `TransformerEncoder` accepted only at their default values."""


class TransformerEncoder(Layer):
    """A Transformer encoder block (KerasHub's `TransformerEncoder`): self-attention
    and a feed-forward network, each with a residual connection and layer norm.

    Value rule, as KerasHub's (with `normalize_first=False`, BERT's layout):
    `h = norm1(x + dropout(attention(x)))`, `out = norm2(h + dropout(W2 relu(W1 h)))`;
    with `normalize_first=True` (GPT-2's) each block normalizes its input instead:
    `h = x + dropout(attention(norm1(x)))`, `out = h + dropout(W2 relu(W1 norm2(h)))`.
    The attention is a `MultiHeadAttention` with `num_heads` heads of `features //
    num_heads` dimensions: a real step attends to the real steps (the input's mask is
    the padding mask), also restricted by `attention_mask` if given (KerasHub's
    merge: both must allow). Every sublayer reads padded steps as zeros, so what the
    padding holds (NaN included) changes no real output and gets no gradient; a fully
    padded sequence gives finite values. A real step with nothing to attend to (all
    forbidden by `attention_mask`) gets a zero attended value (KerasHub: the mean of
    all values). Dropout (training only) acts on the attention weights and after the
    attention and the feed-forward network. Mask rule: the output carries the input's
    mask.

    Example:
        >>> x = Masked.pad([torch.ones(3, 8), torch.ones(1, 8)])
        >>> y = TransformerEncoder(intermediate_dim=16, num_heads=2)(x)
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 3, 8]), [3, 1])

    Args:
        intermediate_dim: hidden size of the feed-forward network.
        num_heads: attention heads; at most the number of features.
        dropout: rate of every dropout, in `[0, 1)`.
        activation: Keras name of the feed-forward activation (`"relu"`).
        layer_norm_epsilon: added to the variance in the layer norms.
        normalize_first: normalize each block's input (pre-norm) instead of its output.
        kernel_initializer, bias_initializer: the initializers of the attention's and
            the feed-forward network's kernels and biases (KerasHub's defaults
            `"glorot_uniform"`, `"zeros"`; see `maskwise.initializers`).
        name: layer name.

    Call: `encoder(x, mask=None, attention_mask=None, return_attention_scores=False)`:
    `x` a `Masked` or `(batch, time, features)` tensor (KerasHub's `padding_mask` is its
    mask, or `mask`); `attention_mask` a bool `(batch, time, time)` tensor, True where
    a step may attend. Returns a `Masked` of `x`'s shape, or with the attention scores
    `(batch, num_heads, time, time)`.
    """

    float_inputs = True
    self_attention_layer: MultiHeadAttention
    self_attention_layer_norm: LayerNormalization
    self_attention_dropout: Dropout
    feedforward_layer_norm: LayerNormalization
    feedforward_intermediate_dense: Dense
    feedforward_output_dense: Dense
    feedforward_dropout: Dropout

    def __init__(
        self,
        intermediate_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        activation: str = "relu",
        layer_norm_epsilon: float = 1e-5,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        normalize_first: bool = False,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.intermediate_dim = _positive_int(kind, "intermediate_dim", intermediate_dim)
        self.num_heads = _positive_int(kind, "num_heads", num_heads)
        self.dropout = _check_rate(kind, dropout)
        get_activation(activation)  # an unknown name fails here, not at the first call
        self.activation = activation
        if (
            isinstance(layer_norm_epsilon, bool)
            or not isinstance(layer_norm_epsilon, int | float)
            or not layer_norm_epsilon > 0
        ):
            raise ConfigError(
                format_error(
                    f"{kind} `layer_norm_epsilon` must be a positive number.",
                    received=f"layer_norm_epsilon={layer_norm_epsilon!r}",
                )
            )
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.weight_initializers: dict[str, Any] = {
            "kernel_initializer": initializers.get(kernel_initializer),
            "bias_initializer": initializers.get(bias_initializer),
        }
        self.normalize_first = _check_bool(kind, "normalize_first", normalize_first)

    def build(self, input_shape: Any) -> None:
        hidden = int(input_shape[-1])
        key_dim = hidden // self.num_heads
        if key_dim == 0:
            raise ConfigError(
                format_error(
                    f"TransformerEncoder layer {self.name!r} splits its {hidden} features "
                    f"among {self.num_heads} heads: no feature is left per head.",
                    expected=f"num_heads <= features ({hidden})",
                    received=f"num_heads={self.num_heads}",
                    fix="use fewer heads, or embed into more features first.",
                )
            )

        def named(part: str) -> str:
            return f"{self.name}/{part}"

        self.self_attention_layer = MultiHeadAttention(
            self.num_heads,
            key_dim,
            dropout=self.dropout,
            name=named("self_attention_layer"),
            **self.weight_initializers,
        )
        self.self_attention_layer.build_from_config_shape([[hidden]] * 3)
        self.self_attention_layer_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, name=named("self_attention_layer_norm")
        )
        self.self_attention_layer_norm.build_from_config_shape([hidden])
        self.self_attention_dropout = Dropout(self.dropout, name=named("self_attention_dropout"))
        self.feedforward_layer_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, name=named("feedforward_layer_norm")
        )
        self.feedforward_layer_norm.build_from_config_shape([hidden])
        self.feedforward_intermediate_dense = Dense(
            self.intermediate_dim,
            activation=self.activation,
            input_dim=hidden,
            name=named("feedforward_intermediate_dense"),
            **self.weight_initializers,
        )
        self.feedforward_output_dense = Dense(
            hidden,
            input_dim=self.intermediate_dim,
            name=named("feedforward_output_dense"),
            **self.weight_initializers,
        )
        self.feedforward_dropout = Dropout(self.dropout, name=named("feedforward_dropout"))
        self.train(self.training)  # a block put in evaluation before building stays there

    def call(
        self,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        attention_mask: torch.Tensor | None = None,
        return_attention_scores: bool = False,
    ) -> CallOutput:
        """The encoded values, and with `return_attention_scores` the scores after them."""
        encoded, scores = self._encode(values, mask, attention_mask, return_attention_scores)
        return encoded if scores is None else (encoded, scores)

    def check_inputs(self, inputs: Masked) -> None:  # type: ignore[override]
        """3-D values, with the features the block was built for."""
        values = inputs.values
        hidden = self.feedforward_output_dense.units if self.built else None
        if values.dim() != 3 or hidden not in (None, values.shape[-1]):
            raise ShapeError(
                format_error(
                    f"TransformerEncoder layer {self.name!r} needs (batch, time, features) "
                    "values" + ("" if hidden is None else f" with {hidden} features") + ".",
                    expected=f"(batch, time, {hidden or 'features'})",
                    received=f"values {tuple(values.shape)}",
                    fix="embed tokens first (TokenAndPositionEmbedding); use one encoder "
                    "per feature size.",
                )
            )

    def _encode(
        self,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        return_scores: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """KerasHub's `TransformerEncoder.call`, on maskwise layers."""
        x = Masked(values, mask)
        normalize_first = self.normalize_first
        attention_input = self.self_attention_layer_norm(x) if normalize_first else x
        attended = self.self_attention_layer(
            attention_input,
            attention_mask=attention_mask,
            return_attention_scores=return_scores,
        )
        scores = None
        if isinstance(attended, tuple):
            attended, scores = attended
        x = _add(self.self_attention_dropout(attended), x)
        if not normalize_first:
            x = self.self_attention_layer_norm(x)
        feedforward_input = self.feedforward_layer_norm(x) if normalize_first else x
        hidden = self.feedforward_intermediate_dense(feedforward_input)
        x = _add(self.feedforward_dropout(self.feedforward_output_dense(hidden)), x)
        if not normalize_first:
            x = self.feedforward_layer_norm(x)
        return x.values, scores


def _add(x: Masked, residual: Masked) -> Masked:
    """A residual connection: the sum of two outputs that share one mask."""
    return x.with_values(x.values + residual.values)
