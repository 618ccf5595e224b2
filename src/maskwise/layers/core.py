"""Core layers: a mask is created (`Masking`), passed on by per-step
transforms (`Dense`, `TimeDistributed`, `Dropout`, `SpatialDropout1D`, `Activation`),
or transformed by a rule you state (`Lambda`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import (
    ConfigError,
    MaskError,
    MaskWarning,
    MaskwiseTypeError,
    ShapeError,
    format_error,
)
from ..masked import Masked
from .base import Layer

MaskRule = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor | None]


class Masking(Layer):
    """Create a mask from a padding value: a step is masked iff ALL its features equal it.

    Value rule: the values at masked steps are set to 0 (as Keras does); real steps are
    unchanged. Mask rule: the output mask is computed from the values, True where any
    feature differs from `mask_value`. A NaN `mask_value` masks the steps whose
    features are all NaN. An input that already carries a mask gets a `MaskWarning`:
    its mask is replaced (seed 003: after an `Embedding` the padded steps are no longer
    zeros, so a second `Masking` unmasks them).

    Example:
        >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [0.0, 3.0]]])
        >>> Masking(0.0)(x).mask.tolist()
        [[True, False, True]]

    Args:
        mask_value: the padding value (a float, NaN allowed).
        name: layer name.
    Input `(batch, time, ...)`; output the same shape, mask `(batch, time)`.
    """

    def __init__(self, mask_value: float = 0.0, name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(mask_value, int | float) or isinstance(mask_value, bool):
            raise ConfigError(
                format_error("Masking mask_value must be a number.", received=repr(mask_value))
            )
        self.mask_value = float(mask_value)

    def _real_steps(self, values: torch.Tensor) -> torch.Tensor:
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        if math.isnan(self.mask_value):
            return ~torch.isnan(flat).all(dim=-1)
        return (flat != self.mask_value).any(dim=-1)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:
            warnings.warn(
                f"Masking layer {self.name!r} got an input that already has a mask; it "
                "replaces that mask with one computed from the values. After an "
                "Embedding or another Masking the padded steps are no longer "
                f"{self.mask_value}, so they would count as real. Fix: remove this "
                "Masking (the mask already travels with the values), or drop the old "
                "mask on purpose with `x.with_mask(None)`.",
                MaskWarning,
                stacklevel=3,
            )
        keep = self._real_steps(values)
        keep = keep.reshape(keep.shape + (1,) * (values.dim() - 2))
        return torch.where(keep, values, torch.zeros_like(values))

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return self._real_steps(values)


class Dense(Layer):
    """A linear map on the last axis, applied to every step: `activation(x @ W + b)`.

    Value rule: each step is transformed on its own, so padding cannot leak into real
    steps; padded steps are read as zeros (their output is `activation(b)`), so NaN
    padding cannot reach the gradients. Mask rule: the mask is passed on unchanged.

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

    kernel: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        input_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(
                format_error("Dense units must be a positive integer.", received=repr(units))
            )
        self.units = units
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.bias = None
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
        if values.shape[-1] != self.kernel.shape[0]:
            raise ShapeError(
                format_error(
                    f"Dense layer {self.name!r} was built for {self.kernel.shape[0]} input "
                    "features.",
                    expected=f"values (batch, time, {self.kernel.shape[0]})",
                    received=f"values {tuple(values.shape)}",
                    fix="use one Dense per input size; features are the last axis.",
                )
            )
        # Padded steps are read as zeros: NaN padding cannot reach the kernel's gradient.
        out = Masked(values, mask).fill_padding().values @ self.kernel
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)


class TimeDistributed(Layer):
    """Apply `layer` to every step on its own, as a batch of `batch * time` items.

    Value rule: the values `(batch, time, ...)` are reshaped to `(batch * time, ...)`,
    passed through `layer` (without a mask: each item is one step; padded steps are
    read as zeros), and reshaped back to `(batch, time, ...)`. Mask rule: the mask
    passes on unchanged.

    Example:
        >>> td = TimeDistributed(Dense(3, activation="sigmoid"))
        >>> td(Masked.pad([torch.ones(4, 5), torch.ones(2, 5)])).lengths.tolist()
        [4, 2]

    Args:
        layer: a maskwise layer for one step's values `(...)`, e.g. `Dense`.
        name: layer name.
    Input `(batch, time, features, ...)` (at least 3 axes).
    """

    def __init__(self, layer: Layer, name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(layer, Layer):
            raise MaskwiseTypeError(
                format_error(
                    "TimeDistributed wraps a maskwise layer.",
                    received=type(layer).__name__,
                    fix="wrap a plain function or module first: `TimeDistributed(Lambda(fn))`.",
                )
            )
        self.layer = layer

    def build(self, input_shape: Any) -> None:
        if len(input_shape) < 3:
            raise ShapeError(
                format_error(
                    f"TimeDistributed {self.name!r} needs a feature axis after time.",
                    expected="values (batch, time, features, ...)",
                    received=f"shape {tuple(input_shape)}",
                )
            )
        self.layer.maybe_build(Masked(torch.zeros(1, *input_shape[2:])))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, time = values.shape[:2]
        steps = Masked(values, mask).fill_padding().values  # padding read as zeros
        out = self.layer(Masked(steps.reshape(batch * time, *values.shape[2:])))
        return out.values.reshape(batch, time, *out.values.shape[1:])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["layer"]["build_shape"] = None  # the wrapper builds it from its own shape
        return config


class Dropout(Layer):
    """Randomly zero features of real steps in training, scaling the rest by
    `1 / (1 - rate)`; the identity in evaluation (`model.eval()`).

    Value rule: each feature of each real step is dropped with probability `rate`;
    padded steps pass through unchanged. Mask rule: the mask passes on unchanged.

    Example:
        >>> Dropout(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        rate: drop probability in `[0, 1)`.
        name: layer name.
    """

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name=name)
        self.rate = _check_rate(type(self).__name__, rate)

    def noise_shape(self, values: torch.Tensor) -> tuple[int, ...]:
        return tuple(values.shape)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return values
        keep = torch.rand(self.noise_shape(values), device=values.device) >= self.rate
        dropped = torch.where(keep, values / (1.0 - self.rate), torch.zeros_like(values))
        if mask is None:
            return dropped
        real = mask.reshape(mask.shape + (1,) * (values.dim() - 2))
        return torch.where(real, dropped, values)


class SpatialDropout1D(Dropout):
    """Dropout of whole feature channels: a dropped feature is zero at every real step
    of that sequence (scaled by `1 / (1 - rate)` otherwise); the identity in evaluation.

    Mask rule: the mask passes on unchanged; padded steps pass through unchanged.

    Example:
        >>> SpatialDropout1D(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        rate: drop probability in `[0, 1)`.
        name: layer name.
    Input `(batch, time, features)`.
    """

    def noise_shape(self, values: torch.Tensor) -> tuple[int, ...]:
        if values.dim() != 3:
            raise ShapeError(
                format_error(
                    f"SpatialDropout1D {self.name!r} needs 3-D values.",
                    expected="(batch, time, features)",
                    received=f"shape {tuple(values.shape)}",
                )
            )
        return (values.shape[0], 1, values.shape[2])


def _check_rate(layer: str, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
        raise ConfigError(
            format_error(
                f"{layer} rate must be a probability.",
                expected="a number in [0, 1)",
                received=repr(rate),
            )
        )
    return float(rate)


class Activation(Layer):
    """Apply an activation function to every step: `activation(x)`.

    Value rule: per step (softmax-like activations act on the last axis). Mask rule:
    the mask passes on unchanged.

    Example:
        >>> Activation("relu")(torch.tensor([[[-1.0, 2.0]]])).values.tolist()
        [[[0.0, 2.0]]]

    Args:
        activation: a Keras activation name (`"relu"`, `"tanh"`, `"softmax"`, ...).
        name: layer name.
    """

    def __init__(self, activation: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.activation = get_activation(activation)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activation(values)


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

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None or self.mask_rule == "drop":
            return None
        if callable(self.mask_rule):
            return self.mask_rule(values, mask)
        return mask


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
