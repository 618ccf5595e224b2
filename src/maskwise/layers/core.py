"""Core layers: per-step transforms that pass the mask on, and `Lambda`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, MaskError, format_error
from .base import Layer

MaskRule = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor | None]


class Dense(Layer):
    """A linear map on the last axis, applied to every step: `activation(x @ W + b)`.

    Value rule: each step is transformed on its own, so padding cannot leak into real
    steps. Mask rule: the mask is passed on unchanged.

    Example:
        >>> y = Dense(3)(Masked.pad([torch.ones(4, 5), torch.ones(2, 5)]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 3]), [4, 2])

    Args:
        units: output features.
        activation: name of the activation (`"relu"`, `"softmax"`, ...) or None.
        use_bias: add a bias vector.
        input_dim: input features; inferred at the first call when None.
        name: layer name.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        input_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(units, int) or units <= 0:
            raise ConfigError(
                format_error("Dense units must be a positive integer.", received=repr(units))
            )
        self.units = units
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.kernel: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if input_dim is not None:
            self.maybe_build_from_dim(input_dim)

    def maybe_build_from_dim(self, input_dim: int) -> None:
        self.build(torch.Size((1, 1, input_dim)))
        self.build_shape = [input_dim]
        self.built = True

    def build(self, input_shape: Any) -> None:
        fan_in = int(input_shape[-1])
        # Keras's default initialisers: glorot_uniform kernel, zero bias.
        limit = math.sqrt(6.0 / (fan_in + self.units))
        self.kernel = nn.Parameter(torch.empty(fan_in, self.units).uniform_(-limit, limit))
        if self.use_bias:
            self.bias = nn.Parameter(torch.zeros(self.units))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        assert self.kernel is not None
        out = values @ self.kernel
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)


class Lambda(Layer):
    """Wrap a function or plain `nn.Module` so it can sit between maskwise layers.

    Value rule: `fn(values)`. Mask rule, chosen by `mask`:
    - `None` (default): the mask passes on unchanged when the output keeps the input's
      batch and time axes. If `fn` changes the time axis, the first call raises a
      `MaskError` naming the layer: Keras would drop the mask silently here (seed 001),
      and the loss would then count the padding.
    - a callable `mask(inputs, mask) -> new_mask` (Keras's signature), e.g.
      `Lambda(lambda x: x[:, 5:], mask=lambda inputs, mask: mask[:, 5:])`.
    - the string `"drop"`: the output has no mask, on purpose (e.g. a pooling `fn`).

    Example:
        >>> crop = Lambda(lambda x: x[:, 2:], mask=lambda inputs, mask: mask[:, 2:])
        >>> crop(Masked.pad([torch.ones(5, 1), torch.ones(3, 1)])).lengths.tolist()
        [3, 1]

    Args:
        function: a callable or `nn.Module` taking values `(batch, time, ...)`.
        mask: the mask rule, as above.
        name: layer name.
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor], torch.Tensor],
        mask: MaskRule | str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not callable(function):
            raise ConfigError(
                format_error("Lambda needs a callable.", received=type(function).__name__)
            )
        if isinstance(mask, str) and mask != "drop":
            raise ConfigError(
                format_error(
                    "Unknown Lambda mask rule.",
                    expected="None, 'drop', or a callable (inputs, mask) -> mask",
                    received=repr(mask),
                )
            )
        self.function = function
        self.mask_rule = mask

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.function(values)
        if mask is not None and self.mask_rule is None and not _keeps_steps(values, out):
            raise MaskError(
                format_error(
                    f"Lambda layer {self.name!r} changed the time axis but has no mask rule, "
                    "so the mask would be lost and padding would count in the loss.",
                    expected=f"an output shaped (batch, time) = {tuple(values.shape[:2])}, ...",
                    received=f"output shape {tuple(out.shape)}",
                    fix="say what happens to the mask, e.g. "
                    "`Lambda(fn, mask=lambda inputs, mask: mask[:, N:])` for `x[:, N:]`, "
                    "or `mask='drop'` if the output really has no time axis.",
                )
            )
        return out

    def compute_mask(
        self, values: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        if mask is None or self.mask_rule == "drop":
            return None
        if self.mask_rule is None:
            return mask
        assert callable(self.mask_rule)
        return self.mask_rule(values, mask)


def _keeps_steps(values: torch.Tensor, out: Any) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() >= 2 and out.shape[:2] == values.shape[:2]


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "gelu": nn.functional.gelu,
    "elu": nn.functional.elu,
    "selu": nn.functional.selu,
    "softplus": nn.functional.softplus,
    "softsign": nn.functional.softsign,
    "swish": nn.functional.silu,
    "silu": nn.functional.silu,
    "hard_sigmoid": lambda x: torch.clamp(x / 6.0 + 0.5, 0.0, 1.0),
    "exponential": torch.exp,
}


def get_activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function for a Keras activation name (None = linear)."""
    if name is None:
        return _ACTIVATIONS["linear"]
    if name not in _ACTIVATIONS:
        raise ConfigError(
            format_error(
                "Unknown activation.",
                expected=f"one of {sorted(_ACTIVATIONS)}",
                received=repr(name),
            )
        )
    return _ACTIVATIONS[name]
