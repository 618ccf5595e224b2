"""Learning-rate schedules with Keras's names, arguments and formulas.

A schedule maps the optimizer's step count (0 at the first update) to a learning rate;
pass it as `learning_rate` to a `maskwise.optimizers` optimizer, which evaluates it
before every update, as Keras does:

    >>> from maskwise.optimizers import SGD, schedules
    >>> decay = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> round(decay(10), 6)
    0.05
    >>> optimizer = SGD(learning_rate=decay)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, format_error

__all__ = [
    "SCHEDULES",
    "CosineDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
]


def _positive(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(
            format_error(
                f"{what} must be a number > 0.", received=repr(value), fix=f"e.g. {what}=1000."
            )
        )


class LearningRateSchedule:
    """Base class: `__call__(step) -> learning rate` and `get_config()`; a subclass
    with both is a schedule any optimizer of `maskwise.optimizers` takes.

    Example:
        >>> class Halving(LearningRateSchedule):
        ...     def __call__(self, step):
        ...         return 0.1 / 2 ** (step // 100)
        ...     def get_config(self):
        ...         return {}
        >>> Halving()(250)
        0.025
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as Keras's `get_config`."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        """`ExponentialDecay(initial_learning_rate=0.1, ...)`: the class and its config,
        as errors and `Optimizer`'s repr show it."""
        try:
            arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            arguments = ""
        return f"{type(self).__name__}({arguments})"


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`; with `staircase`,
    the exponent is floored (the rate drops every `decay_steps` steps).

    Example:
        >>> decay = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
        >>> round(decay(5), 4), round(decay(10), 4)
        (0.0707, 0.05)
        >>> ExponentialDecay(0.1, 10, 0.5, staircase=True)(5)
        0.1
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ) -> None:
        _positive(decay_steps, "ExponentialDecay decay_steps")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while `boundaries[i-1] <
    step <= boundaries[i]`, `values[-1]` after the last boundary.

    Example:
        >>> rates = PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001])
        >>> rates(100), rates(101), rates(500)
        (0.1, 0.01, 0.001)

    Args:
        boundaries: increasing step counts.
        values: one more rate than boundaries.
    """

    def __init__(
        self,
        boundaries: Sequence[int],
        values: Sequence[float],
        name: str = "PiecewiseConstant",
    ) -> None:
        if len(values) != len(boundaries) + 1:
            raise ConfigError(
                format_error(
                    "PiecewiseConstantDecay needs one more value than boundaries.",
                    expected=f"{len(boundaries) + 1} values for {len(boundaries)} boundaries",
                    received=f"{len(values)} values",
                    fix="give the rate before the first boundary, between each pair, and "
                    "after the last.",
                )
            )
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from the initial rate (or, after a linear warm-up of
    `warmup_steps` steps to `warmup_target`, from that target) to `alpha` times it over
    `decay_steps` steps, then constant: `rate * ((1 - alpha) * 0.5 * (1 + cos(pi *
    min(step, decay_steps) / decay_steps)) + alpha)`.

    Example:
        >>> cosine = CosineDecay(0.1, decay_steps=100)
        >>> cosine(0), round(cosine(50), 6), cosine(100)
        (0.1, 0.05, 0.0)
        >>> warm = CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10)
        >>> round(warm(5), 6), warm(10)  # halfway up the warm-up, then the decay's start
        (0.05, 0.1)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        _positive(decay_steps, "CosineDecay decay_steps")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * step / self.warmup_steps + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`; with
    `staircase`, `step / decay_steps` is floored.

    Example:
        >>> InverseTimeDecay(0.1, decay_steps=10, decay_rate=1.0)(10)
        0.05
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ) -> None:
        _positive(decay_steps, "InverseTimeDecay decay_steps")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PolynomialDecay(LearningRateSchedule):
    """From the initial rate to `end_learning_rate` over `decay_steps` steps:
    `(initial - end) * (1 - step / decay_steps) ** power + end`, then constant; with
    `cycle`, `decay_steps` grows to the first multiple of it above the step (the decay
    starts again from a higher rate).

    Example:
        >>> decay = PolynomialDecay(0.1, decay_steps=4, end_learning_rate=0.02)
        >>> [round(decay(step), 3) for step in (0, 2, 4, 8)]
        [0.1, 0.06, 0.02, 0.02]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ) -> None:
        _positive(decay_steps, "PolynomialDecay decay_steps")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: int) -> float:
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= max(1, math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        span = self.initial_learning_rate - self.end_learning_rate
        return span * (1 - step / decay_steps) ** self.power + self.end_learning_rate

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): a cosine decay to `alpha` times the
    rate over `first_decay_steps`, then again over `t_mul` times as many steps from
    `m_mul` times the rate, and so on.

    Example:
        >>> sgdr = CosineDecayRestarts(0.1, first_decay_steps=2, m_mul=0.5)
        >>> [round(sgdr(step), 3) for step in (0, 1, 2, 4, 6)]  # restarts at 2 and 6
        [0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str = "SGDRDecay",
    ) -> None:
        _positive(first_decay_steps, "CosineDecayRestarts first_decay_steps")
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step: int) -> float:
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1 - fraction * (1 - self.t_mul)) / math.log(self.t_mul))
            done = (1 - self.t_mul**restart) / (1 - self.t_mul)
            fraction = (fraction - done) / self.t_mul**restart
        cosine = 0.5 * self.m_mul**restart * (1 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        CosineDecay,
        InverseTimeDecay,
        PolynomialDecay,
        CosineDecayRestarts,
    )
}
"""The schedules by class name (how an optimizer's config names its schedule)."""
