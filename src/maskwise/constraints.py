"""Weight constraints with Keras's names, arguments and formulas.

A layer's `kernel_constraint=`, `recurrent_constraint=`, `bias_constraint=` and
`embeddings_constraint=` take a Keras name (`"max_norm"`, `"non_neg"`, `"unit_norm"`,
`"min_max_norm"`), an object of this module (`MaxNorm(2.0, axis=0)`), or a function
`fn(weights) -> weights`. After each optimizer step of `fit`, every constrained
weight is replaced by its projection, as Keras does. The norms are taken along
`axis` of the weight in Keras's layout (a `Dense` kernel is `(input_dim, units)`, so
`axis=0` bounds the weights into each unit), whatever layout maskwise stores.

Example:
    >>> MaxNorm(1.0)(torch.tensor([[3.0], [4.0]])).squeeze().tolist()
    [0.6000000238418579, 0.800000011920929]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._keras_objects import KerasObject, lookup

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "get",
]

EPSILON = 1e-7
"""Keras's `backend.epsilon()`, added to the norms before dividing."""

Axis = int | list[int] | tuple[int, ...]


class Constraint(KerasObject):
    """Base class: `constraint(weights)` returns the projected weights.

    Example:
        >>> class Clip(Constraint):
        ...     def __call__(self, w):
        ...         return w.clamp(-1, 1)
        >>> Clip()(torch.tensor([-3.0, 0.5, 2.0])).tolist()
        [-1.0, 0.5, 1.0]
    """

    kind = "constraints"

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class NonNeg(Constraint):
    """Negative weights become 0.

    Example:
        >>> NonNeg()(torch.tensor([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 2.0]
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w.clamp_min(0)


class _NormConstraint(Constraint):
    """A constraint that rescales the weights by their norms along `axis`."""

    def __init__(self, axis: Axis = 0) -> None:
        self.axis = list(axis) if isinstance(axis, list | tuple) else axis

    def norms(self, w: torch.Tensor) -> torch.Tensor:
        dims = self.axis if isinstance(self.axis, list) else [self.axis]
        return w.square().sum(dim=dims, keepdim=True).sqrt()

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class UnitNorm(_NormConstraint):
    """Norm 1 along `axis`: `w / (epsilon + norms)`.

    Example:
        >>> w = UnitNorm(axis=0)(torch.tensor([[3.0, 0.0], [4.0, 2.0]]))
        >>> [round(n, 4) for n in w.norm(dim=0).tolist()]  # each column scaled to norm 1
        [1.0, 1.0]
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (EPSILON + self.norms(w))


class MaxNorm(_NormConstraint):
    """Norm at most `max_value` along `axis`: `w * clip(norms, 0, max_value) /
    (epsilon + norms)`.

    Example:
        >>> w = MaxNorm(1.0, axis=0)(torch.tensor([[3.0, 0.3], [4.0, 0.4]]))
        >>> [round(n, 4) for n in w.norm(dim=0).tolist()]  # norm 5 -> 1; norm 0.5 kept
        [1.0, 0.5]
    """

    def __init__(self, max_value: float = 2.0, axis: Axis = 0) -> None:
        super().__init__(axis)
        self.max_value = float(max_value)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = self.norms(w)
        return w * (norms.clamp(0, self.max_value) / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, **super().get_config()}


class MinMaxNorm(_NormConstraint):
    """Norm moved into `[min_value, max_value]` along `axis` at `rate`: `w * desired /
    (epsilon + norms)`, `desired = rate * clip(norms, min, max) + (1 - rate) * norms`.

    Example:
        >>> project = MinMaxNorm(min_value=1.0, max_value=2.0, axis=0)
        >>> w = project(torch.tensor([[0.3, 6.0], [0.4, 8.0]]))
        >>> [round(n, 4) for n in w.norm(dim=0).tolist()]  # norm 0.5 -> 1, norm 10 -> 2
        [1.0, 2.0]
    """

    def __init__(
        self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Axis = 0
    ) -> None:
        super().__init__(axis)
        self.min_value, self.max_value, self.rate = float(min_value), float(max_value), float(rate)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = self.norms(w)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            **super().get_config(),
        }


NAMES: dict[str, Callable[[], KerasObject]] = {
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
}
"""Keras's names of the constraints."""


def get(identifier: Any) -> Constraint | Callable[[torch.Tensor], torch.Tensor] | None:
    """The constraint a layer argument names (see the module's docstring).

    Example:
        >>> type(get("max_norm")).__name__, get("max_norm").max_value
        ('MaxNorm', 2.0)
    """
    return lookup("constraints", identifier, Constraint, NAMES)  # type: ignore[no-any-return]
