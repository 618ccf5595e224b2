"""Weight initializers with Keras's names, arguments and formulas.

A layer's `kernel_initializer=`, `recurrent_initializer=`, `bias_initializer=`,
`embeddings_initializer=` (and the other `*_initializer` arguments) take a Keras name
(`"glorot_uniform"`, `"orthogonal"`, `"zeros"`, ...), an object of this module
(`GlorotUniform(seed=1)`), or a function `fn(shape, dtype) -> tensor`. Shapes are
Keras's: a `Dense` kernel is `(input_dim, units)`, a `Conv1D` kernel `(kernel_size,
in, filters)`, so the fans, and the draws, are Keras's.

A seeded initializer draws the same values at every call (as in Keras); the values
are not Keras's own, since the random generators differ, but the distributions are.

Example:
    >>> init = GlorotUniform(seed=0)
    >>> bool((init((4, 6)).abs() <= (6 / (4 + 6)) ** 0.5).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._keras_objects import KerasObject, lookup
from .errors import ConfigError, format_error

Shape = Sequence[int]

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "get",
]


class Initializer(KerasObject):
    """Base class: `initializer(shape, dtype=None)` returns a new tensor of `shape`.

    Example:
        >>> class Halves(Initializer):
        ...     def __call__(self, shape, dtype=None):
        ...         return torch.full(tuple(shape), 0.5, dtype=dtype)
        >>> mw.layers.Dense(2, kernel_initializer=Halves(), input_shape=(None, 3)).kernel.tolist()
        [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]
    """

    kind = "initializers"

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class Constant(Initializer):
    """Every value `value`.

    Example:
        >>> Constant(0.25)((2, 3)).tolist()
        [[0.25, 0.25, 0.25], [0.25, 0.25, 0.25]]
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.full(tuple(shape), self.value, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class Zeros(Constant):
    """Every value 0.

    Example:
        >>> mw.layers.Dense(2, bias_initializer=Zeros(), input_shape=(None, 3)).bias.tolist()
        [0.0, 0.0]
    """

    def __init__(self) -> None:
        super().__init__(0.0)

    def get_config(self) -> dict[str, Any]:
        return {}


class Ones(Constant):
    """Every value 1.

    Example:
        >>> Ones()((3,)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self) -> None:
        super().__init__(1.0)

    def get_config(self) -> dict[str, Any]:
        return {}


class Identity(Initializer):
    """`gain` times the identity matrix (2-D shapes only).

    Example:
        >>> Identity(gain=2.0)((2, 2)).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        _require_matrix(self, shape, exactly=True)
        return self.gain * torch.eye(*shape, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    """Base of the random initializers; `seed` (an int) makes every call draw the same
    values, None draws from PyTorch's global generator (`torch.manual_seed`)."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} seed must be an integer or None.",
                    received=repr(seed),
                )
            )
        self.seed = seed

    def empty(self, shape: Shape, dtype: torch.dtype | None) -> torch.Tensor:
        return torch.empty(tuple(shape), dtype=dtype or torch.get_default_dtype())

    def generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    """Normal draws with `mean` and `stddev`.

    Example:
        >>> w = RandomNormal(mean=1.0, stddev=0.1, seed=0)((200, 50))
        >>> round(w.mean().item(), 1), round(w.std().item(), 1)
        (1.0, 0.1)
        >>> torch.equal(w, RandomNormal(mean=1.0, stddev=0.1, seed=0)((200, 50)))  # seeded
        True
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.empty(shape, dtype).normal_(self.mean, self.stddev, generator=self.generator())

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """Normal draws with `mean` and `stddev`, redrawn beyond two `stddev`s of the mean.

    Example:
        >>> w = TruncatedNormal(stddev=0.5, seed=0)((100, 100))
        >>> bool(w.abs().max() <= 1.0)  # nothing beyond two standard deviations
        True
    """

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return _truncated_normal(self.empty(shape, dtype), self.mean, self.stddev, self.generator())


class RandomUniform(RandomInitializer):
    """Uniform draws in `[minval, maxval)`.

    Example:
        >>> w = RandomUniform(minval=-0.1, maxval=0.1, seed=0)((50, 50))
        >>> bool(w.min() >= -0.1 and w.max() < 0.1)
        True
    """

    def __init__(
        self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.empty(shape, dtype).uniform_(
            self.minval, self.maxval, generator=self.generator()
        )

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")


class VarianceScaling(RandomInitializer):
    """Draws of variance `scale / n`, `n` the fan in, the fan out or their mean (`mode`).

    `distribution="uniform"`: in `[-sqrt(3 scale / n), sqrt(3 scale / n)]`;
    `"truncated_normal"` (`"normal"` means it too): a normal truncated at two standard
    deviations, its standard deviation `sqrt(scale / n) / 0.8796...` so that the
    truncated draws have variance `scale / n`; `"untruncated_normal"`: a normal of
    standard deviation `sqrt(scale / n)`. The fans are Keras's (`compute_fans`).

    Example:
        >>> w = VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform", seed=0)((50, 8))
        >>> limit = (3 * 2.0 / 50) ** 0.5  # fan_in = 50
        >>> bool(w.abs().max() <= limit), round(w.var().item() * 50 / 2.0, 1)
        (True, 1.0)
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        distribution = "truncated_normal" if distribution == "normal" else distribution
        checks = (("mode", mode, MODES), ("distribution", distribution, DISTRIBUTIONS))
        for arg, value, allowed in checks:
            if value not in allowed:
                raise ConfigError(
                    format_error(
                        f"VarianceScaling {arg} {value!r} is not one of Keras's.",
                        expected=f"one of {list(allowed)}",
                        received=repr(value),
                    )
                )
        if not scale > 0:
            raise ConfigError(
                format_error("VarianceScaling scale must be positive.", received=repr(scale))
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        out, generator = self.empty(shape, dtype), self.generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return out.uniform_(-limit, limit, generator=generator)
        if self.distribution == "untruncated_normal":
            return out.normal_(0.0, math.sqrt(variance), generator=generator)
        return _truncated_normal(out, 0.0, math.sqrt(variance) / TRUNCATED_STD, generator)

    def get_config(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            **super().get_config(),
        }


TRUNCATED_STD = 0.87962566103423978
"""Standard deviation of a standard normal truncated at +-2 (Keras's constant)."""


class _Preset(VarianceScaling):
    """A `VarianceScaling` with fixed arguments; its config is its seed alone."""

    preset: tuple[float, str, str]

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(*self.preset, seed=seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """Uniform in `[-limit, limit]`, `limit = sqrt(6 / (fan_in + fan_out))`.

    Example:
        >>> w = GlorotUniform(seed=0)((4, 6))
        >>> bool(w.abs().max() <= (6 / (4 + 6)) ** 0.5)
        True
    """

    preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal of variance `2 / (fan_in + fan_out)`.

    Example:
        >>> w = GlorotNormal(seed=0)((300, 500))
        >>> round(w.var().item() * (300 + 500) / 2, 1)
        1.0
    """

    preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """Uniform in `[-limit, limit]`, `limit = sqrt(6 / fan_in)`.

    Example:
        >>> w = HeUniform(seed=0)((24, 5))
        >>> bool(w.abs().max() <= (6 / 24) ** 0.5)
        True
    """

    preset = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """Truncated normal of variance `2 / fan_in`.

    Example:
        >>> w = HeNormal(seed=0)((400, 300))
        >>> round(w.var().item() * 400 / 2, 1)
        1.0
    """

    preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """Uniform in `[-limit, limit]`, `limit = sqrt(3 / fan_in)`.

    Example:
        >>> w = LecunUniform(seed=0)((12, 5))
        >>> bool(w.abs().max() <= (3 / 12) ** 0.5)
        True
    """

    preset = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal of variance `1 / fan_in`.

    Example:
        >>> w = LecunNormal(seed=0)((400, 300))
        >>> round(w.var().item() * 400, 1)
        1.0
    """

    preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """`gain` times an orthogonal matrix: the Q of the QR decomposition of normal draws,
    signs fixed by R's diagonal. Shapes of more than two axes are drawn as
    `(prod(shape[:-1]), shape[-1])` and reshaped; with fewer rows than columns, the
    rows are orthonormal, else the columns (Keras's rule).

    Example:
        >>> w = Orthogonal(seed=0)((4, 4))
        >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
        True
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        _require_matrix(self, shape, exactly=False)
        rows, cols = math.prod(shape[:-1]), shape[-1]
        draws = self.empty((max(rows, cols), min(rows, cols)), dtype)
        q, r = torch.linalg.qr(draws.normal_(generator=self.generator()))
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(tuple(shape))

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **super().get_config()}


def compute_fans(shape: Shape) -> tuple[int, int]:
    """Keras's fans: a vector's size for both; a matrix `(in, out)`; a kernel
    `(*window, in, out)` multiplies both by the window's size."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    window = math.prod(shape[:-2])
    return int(shape[-2] * window), int(shape[-1] * window)


def _truncated_normal(
    out: torch.Tensor, mean: float, std: float, generator: torch.Generator | None
) -> torch.Tensor:
    return torch.nn.init.trunc_normal_(
        out, mean, std, mean - 2 * std, mean + 2 * std, generator=generator
    )


def _require_matrix(init: Initializer, shape: Shape, *, exactly: bool) -> None:
    if len(shape) == 2 or (not exactly and len(shape) > 2):
        return
    raise ConfigError(
        format_error(
            f"{type(init).__name__} makes matrices; it cannot fill a weight of shape "
            f"{tuple(shape)}.",
            expected="a 2-D shape" if exactly else "a shape of 2 or more axes",
            received=f"shape {tuple(shape)}",
            fix="use it for kernels only, e.g. `kernel_initializer=...`.",
        )
    )


NAMES: dict[str, Callable[[], KerasObject]] = {
    "zeros": Zeros,
    "ones": Ones,
    "zero": Zeros,
    "one": Ones,
    "constant": Constant,
    "identity": Identity,
    "random_normal": RandomNormal,
    "normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "random_uniform": RandomUniform,
    "uniform": RandomUniform,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
}
"""Keras's names of the initializers."""


def get(identifier: Any) -> Initializer | Callable[..., torch.Tensor] | None:
    """The initializer a layer argument names (see the module's docstring).

    Example:
        >>> type(get("glorot_uniform")).__name__, get(None)
        ('GlorotUniform', None)
    """
    return lookup("initializers", identifier, Initializer, NAMES)  # type: ignore[no-any-return]
