"""The registry of Keras-layer converters used by `from_keras`.

Each converter turns one Keras 3 layer (already built, with weights) into the
equivalent maskwise layer with the same weights. Converters live next to each other
by layer family (`convert/core.py`, `convert/recurrent.py`) and register themselves
with `@converts("KerasClassName")`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, format_error
from ..layers.base import Layer

Converter = Callable[[Any], Layer]
CONVERTERS: dict[str, Converter] = {}


def converts(*keras_class_names: str) -> Callable[[Converter], Converter]:
    """Register a converter for the Keras layer classes named."""

    def register(fn: Converter) -> Converter:
        for name in keras_class_names:
            CONVERTERS[name] = fn
        return fn

    return register


def convert_layer(keras_layer: Any) -> Layer:
    """The maskwise equivalent of one Keras layer, weights included."""
    class_name = type(keras_layer).__name__
    if class_name not in CONVERTERS:
        raise ConfigError(
            format_error(
                f"from_keras cannot convert layer {keras_layer.name!r}: maskwise has no "
                f"equivalent of Keras's `{class_name}`.",
                expected=f"one of {sorted(CONVERTERS)}",
                received=class_name,
                fix="replace that layer in the Keras model, or build this part in maskwise "
                "and copy its weights by hand.",
            )
        )
    return CONVERTERS[class_name](keras_layer)


def to_tensor(weight: Any) -> torch.Tensor:
    """A Keras variable (any backend) as a float32 torch tensor."""
    return torch.as_tensor(np.asarray(weight)).to(torch.float32)
