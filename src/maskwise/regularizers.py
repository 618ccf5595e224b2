"""Weight and activity penalties with Keras's names, arguments and formulas.

A layer's `kernel_regularizer=`, `recurrent_regularizer=`, `bias_regularizer=`,
`embeddings_regularizer=` and `activity_regularizer=` take a Keras name (`"l1"`,
`"l2"`, `"l1_l2"`, each with Keras's default factor 0.01), an object of this module
(`L2(1e-4)`), or a function `fn(tensor) -> scalar`. `fit` and `evaluate` add every
penalty to the loss, as Keras does (`maskwise.layers.Layer.losses` lists them).

An activity penalty is Keras's, divided by the batch size, with one deliberate
difference: it is computed over the real steps only (padded steps count as zeros),
where Keras includes the outputs at padded steps.

Example:
    >>> L1L2(l1=0.5, l2=0.25)(torch.tensor([1.0, -2.0])).item()
    2.75
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._keras_objects import KerasObject, lookup
from .errors import ConfigError, format_error

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "Regularizer",
    "get",
]


class Regularizer(KerasObject):
    """Base class: `regularizer(weights)` returns a scalar penalty.

    Example:
        >>> class Count(Regularizer):
        ...     def __call__(self, x):
        ...         return 0.5 * (x != 0).sum()  # half per non-zero weight
        >>> Count()(torch.tensor([0.0, 2.0, -1.0])).item()
        1.0
    """

    kind = "regularizers"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x ** 2)`.

    Example:
        >>> L1L2(l1=0.5, l2=0.25)(torch.tensor([1.0, -2.0])).item()  # 0.5 * 3 + 0.25 * 5
        2.75
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        self.l1 = _factor(self, "l1", l1, 0.0)
        self.l2 = _factor(self, "l2", l2, 0.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """`l1 * sum(|x|)`.

    Example:
        >>> L1(0.5)(torch.tensor([1.0, -2.0])).item()  # 0.5 * (1 + 2)
        1.5
    """

    def __init__(self, l1: float | None = 0.01) -> None:
        super().__init__(l1=_factor(self, "l1", l1, 0.01))

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """`l2 * sum(x ** 2)`.

    Example:
        >>> L2(0.5)(torch.tensor([1.0, -2.0])).item()  # 0.5 * (1 + 4)
        2.5
        >>> layer = mw.layers.Dense(1, kernel_initializer="ones", kernel_regularizer=L2(0.5),
        ...                         input_shape=(None, 2))
        >>> [p.item() for p in layer.losses]  # what fit and evaluate add to the loss
        [1.0]
    """

    def __init__(self, l2: float | None = 0.01) -> None:
        super().__init__(l2=_factor(self, "l2", l2, 0.01))

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


def _factor(regularizer: Regularizer, arg: str, value: Any, default: float) -> float:
    """Keras's check: a finite number >= 0; None means the default."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    raise ConfigError(
        format_error(
            f"{type(regularizer).__name__} {arg} must be a finite number >= 0.",
            received=repr(value),
        )
    )


NAMES: dict[str, Callable[[], KerasObject]] = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": lambda: L1L2(l1=0.01, l2=0.01),
}
"""Keras's names of the regularizers, with Keras's default factors: `"l1l2"` is
Keras 3's (`L1L2()`, both factors 0), `"l1_l2"` Keras 2's (both 0.01; Keras 3's
docstring shows it, its lookup refuses it)."""


def get(identifier: Any) -> Regularizer | Callable[[torch.Tensor], torch.Tensor] | None:
    """The regularizer a layer argument names (see the module's docstring).

    Example:
        >>> get("l2").l2, get(None)
        (0.01, None)
    """
    return lookup("regularizers", identifier, Regularizer, NAMES)  # type: ignore[no-any-return]
