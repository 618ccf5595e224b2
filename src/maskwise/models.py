"""Containers: `Sequential` and `Module`. They route `Masked` values; no masking logic.

A plain `torch.nn.Module` cannot slip a mask away inside a container: the per-step
modules PyTorch users reach for (activations, `Linear`, `Dropout`, `LayerNorm`,
`Identity`) are wrapped with the pass-through rule, because they act on each step
alone; any other plain module is refused with a message that shows how to give it a
mask rule (`Lambda(module, mask=...)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .errors import MaskwiseTypeError, format_error
from .layers.base import Layer
from .layers.core import Lambda
from .masked import Masked, as_masked
from .training import TrainingMixin

PER_STEP_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Dropout,
    nn.LayerNorm,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Mish,
)


def as_layer(module: nn.Module, position: int | None = None) -> nn.Module:
    """The module itself if it is mask-aware, a per-step `Lambda` if it is a known
    per-step PyTorch module, else a `MaskwiseTypeError` that shows the fix."""
    if isinstance(module, Layer | Module):
        return module
    if isinstance(module, PER_STEP_MODULES) and not (
        isinstance(module, nn.Softmax | nn.LogSoftmax) and module.dim not in (-1, None)
    ):
        return Lambda(module, name=type(module).__name__.lower())
    where = "" if position is None else f" at position {position}"
    hint = ""
    if isinstance(module, nn.RNNBase):
        hint = f" Use maskwise.layers.{type(module).__name__} instead: it reads the mask."
    raise MaskwiseTypeError(
        format_error(
            f"A plain torch.nn.Module `{type(module).__name__}`{where} cannot take a mask: "
            "maskwise does not know what it does to the time axis." + hint,
            expected="a maskwise layer, or a per-step module (Linear, Dropout, activations)",
            received=repr(module)[:100],
            fix=f"wrap it with its mask rule: `Lambda({type(module).__name__}(...), "
            "mask=lambda inputs, mask: ...)`, or `mask='drop'` if its output has no time axis.",
        )
    )


class Module(nn.Module, TrainingMixin):
    """Base for your own models: compose maskwise layers in `forward`, freely.

    Use it for several inputs and merges (seed 003). It adds the training API
    (`compile`, `fit`, `evaluate`, `predict`, `save`) to a plain `nn.Module`.

    Example:
        >>> class Tagger(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embed = layers.Embedding(100, 8, mask_zero=True)
        ...         self.out = layers.Dense(3)
        ...     def forward(self, tokens):
        ...         return self.out(self.embed(tokens))
    """


class Sequential(Layer, TrainingMixin):
    """A stack of layers, each fed the previous one's `Masked` output.

    Calling it on a padded tensor (no mask), an array, or a `Masked` returns a `Masked`.

    Example:
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(2)])
        >>> model(torch.zeros(2, 4, 3)).mask.any().item()
        False

    Args:
        layers: maskwise layers (or per-step PyTorch modules, wrapped automatically).
        name: model name.
    """

    def __init__(self, layers: Iterable[nn.Module] = (), name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = nn.ModuleList(as_layer(m, i) for i, m in enumerate(layers))
        self._config["layers"] = list(self.layers)

    def add(self, layer: nn.Module) -> None:
        """Append a layer (Keras's `Sequential.add`)."""
        self.layers.append(as_layer(layer, len(self.layers)))
        self._config["layers"] = list(self.layers)

    def forward(self, inputs: Any, mask: torch.Tensor | None = None) -> Masked:
        x = as_masked(inputs, mask)
        if not self.built:
            self.build_shape = list(x.values.shape[2:])
            self.built = True
        for layer in self.layers:
            x = layer(x)
            if not isinstance(x, Masked):
                raise MaskwiseTypeError(
                    format_error(
                        f"Layer {getattr(layer, 'name', type(layer).__name__)!r} returned "
                        f"a {type(x).__name__}, not a Masked; Sequential passes one value "
                        "with its mask from layer to layer.",
                        fix="return a Masked from custom layers (return_state=True belongs "
                        "in a Module, not a Sequential).",
                    )
                )
        return x

    def build_from_config_shape(self, trailing: Any) -> None:
        self.build_shape = trailing
        self.built = trailing is not None
