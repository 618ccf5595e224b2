"""The update rules of Keras 3's optimizers, with Keras's names, arguments and defaults.

Each rule is Keras's `update_step`, written once per weight; `Optimizer` (base.py) does
the clipping, the weight decay and the schedule around it. Epsilon sits where Keras
puts it, which is not where PyTorch does: Adam divides by `sqrt(v) + epsilon` with the
bias correction folded into the rate (`lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`),
RMSprop and Adagrad by `sqrt(v + epsilon)`, so the same weights and gradients give the
same weights as Keras, step after step.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, format_error
from .base import Optimizer
from .schedules import LearningRateSchedule

Rate = float | LearningRateSchedule


def _bias_corrected_rate(
    lr: float, beta_1: float, beta_2: float, t: int, dtype: torch.dtype
) -> float:
    """`lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)` in the weights' precision, as Keras
    computes it (in float32, `1 - beta_2**t` differs from its float64 value in the 5th
    digit), on the CPU: no device transfer per weight."""
    rate, step, b1, b2 = (torch.tensor(v, dtype=dtype) for v in (lr, t, beta_1, beta_2))
    return float(rate * (1 - b2.pow(step)).sqrt() / (1 - b1.pow(step)))


class Adam(Optimizer):
    """Adam, as `keras.optimizers.Adam`.

    `m = beta_1 * m + (1 - beta_1) * g`, `v = beta_2 * v + (1 - beta_2) * g**2` (with `amsgrad`, `v`
    is the running maximum), `w -= m * lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) /
    (sqrt(v) + epsilon)` at update `t` (1 at the first).

    Example:
        >>> model = Sequential([layers.Dense(1)])
        >>> model.compile(optimizer=Adam(learning_rate=1e-3, clipnorm=1.0), loss="mse")
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))  # by hand, on one weight:
        >>> adam = Adam(learning_rate=0.1).build([w])
        >>> w.grad = torch.tensor([3.0]); adam.step()
        >>> w.detach()  # the first step is lr * sign(g), whatever the size of g
        tensor([0.9000])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
        )

    def update_all(self, params, grads, states, group, lr):
        """Every weight of the group at once, in multi-tensor ops (the same arithmetic
        per element as one weight at a time: `fit`'s default optimizer, `"adam"`,
        costs no more than PyTorch's own)."""
        for param, state in zip(params, states, strict=True):
            if not state:
                state["m"] = torch.zeros_like(param)
                state["v"] = torch.zeros_like(param)
                if group["amsgrad"]:
                    state["v_hat"] = torch.zeros_like(param)
        beta_1, beta_2, step = group["beta_1"], group["beta_2"], group["iterations"] + 1
        rates = {p.dtype: 0.0 for p in params}  # the rate in each weight's precision
        for dtype in rates:
            rates[dtype] = _bias_corrected_rate(lr, beta_1, beta_2, step, dtype)
        ms, vs = [s["m"] for s in states], [s["v"] for s in states]
        torch._foreach_mul_(ms, beta_1)
        torch._foreach_add_(ms, grads, alpha=1 - beta_1)
        torch._foreach_mul_(vs, beta_2)
        torch._foreach_add_(vs, torch._foreach_mul(grads, grads), alpha=1 - beta_2)
        if group["amsgrad"]:
            v_hats = [s["v_hat"] for s in states]
            torch._foreach_maximum_(v_hats, vs)
            vs = v_hats
        denominators = torch._foreach_sqrt(vs)
        torch._foreach_add_(denominators, group["epsilon"])
        steps = torch._foreach_mul(ms, [rates[p.dtype] for p in params])
        torch._foreach_div_(steps, denominators)
        torch._foreach_sub_(params, steps)


class AdamW(Adam):
    """`Adam` with decoupled weight decay (`keras.optimizers.AdamW`, default 0.004):
    before each update `w -= w * weight_decay * lr`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> adamw = AdamW(learning_rate=0.1, weight_decay=0.5).build([w])
        >>> w.grad = torch.tensor([3.0]); adamw.step()
        >>> w.detach()  # decay: 1 - 1 * 0.5 * 0.1 = 0.95; Adam's first step: 0.95 - 0.1
        tensor([0.8500])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
        )


class SGD(Optimizer):
    """Gradient descent with optional momentum, as `keras.optimizers.SGD`.

    Without momentum `w -= lr * g`; with it `m = momentum * m - lr * g`, then `w += m`,
    or with `nesterov` `w += momentum * m - lr * g`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> sgd = SGD(learning_rate=0.1, momentum=0.9).build([w])
        >>> for _ in range(2):
        ...     w.grad = torch.tensor([1.0])
        ...     sgd.step()
        >>> w.detach()  # m = -0.1, w = 0.9; then m = 0.9 * -0.1 - 0.1 = -0.19, w = 0.71
        tensor([0.7100])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            momentum=momentum,
            nesterov=nesterov,
        )

    def update(self, param, grad, state, group, lr):
        momentum = group["momentum"]
        if not momentum:
            param.sub_(grad * lr)
            return
        if not state:
            state["m"] = torch.zeros_like(param)
        m = state["m"]
        m.mul_(momentum).sub_(grad * lr)
        param.add_(m * momentum - grad * lr if group["nesterov"] else m)


class RMSprop(Optimizer):
    """RMSprop, as `keras.optimizers.RMSprop`.

    `v = rho * v + (1 - rho) * g**2`; the step is `lr * g / sqrt(v + epsilon)` (with
    `centered`, `v - a**2 + epsilon` where `a` is the running mean gradient); with
    `momentum`, `m = momentum * m + step` and `w -= m`, else `w -= step`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> rmsprop = RMSprop(learning_rate=0.01, rho=0.75).build([w])
        >>> w.grad = torch.tensor([2.0]); rmsprop.step()
        >>> w.detach()  # v = 0.25 * 2**2 = 1, step = 0.01 * 2 / sqrt(1)
        tensor([0.9800])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            rho=rho,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
        )

    def update(self, param, grad, state, group, lr):
        rho, momentum = group["rho"], group["momentum"]
        if not state:
            state["v"] = torch.zeros_like(param)
            if momentum:
                state["m"] = torch.zeros_like(param)
            if group["centered"]:
                state["a"] = torch.zeros_like(param)
        v = state["v"]
        v.mul_(rho).add_(grad.square(), alpha=1 - rho)
        denominator = v + group["epsilon"]
        if group["centered"]:
            a = state["a"]
            a.mul_(rho).add_(grad, alpha=1 - rho)
            denominator = v - a.square() + group["epsilon"]
        increment = lr * grad / denominator.sqrt()
        if momentum:
            state["m"].mul_(momentum).add_(increment)
            increment = state["m"]
        param.sub_(increment)


class Adagrad(Optimizer):
    """Adagrad, as `keras.optimizers.Adagrad`: `acc += g**2`, `w -= lr * g / sqrt(acc +
    epsilon)`, the accumulator starting at `initial_accumulator_value`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> adagrad = Adagrad(learning_rate=0.1, initial_accumulator_value=3.0).build([w])
        >>> w.grad = torch.tensor([1.0]); adagrad.step()
        >>> w.detach()  # acc = 3 + 1**2 = 4, w = 1 - 0.1 * 1 / sqrt(4)
        tensor([0.9500])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            initial_accumulator_value=initial_accumulator_value,
            epsilon=epsilon,
        )

    def update(self, param, grad, state, group, lr):
        if not state:
            state["acc"] = torch.full_like(param, group["initial_accumulator_value"])
        acc = state["acc"]
        acc.add_(grad.square())
        param.sub_(lr * grad / (acc + group["epsilon"]).sqrt())


def _scalars(dtype: torch.dtype, *values: float) -> tuple[torch.Tensor, ...]:
    """`values` as CPU scalars of the weights' precision, for step-count powers that
    Keras computes in that precision."""
    return tuple(torch.tensor(v, dtype=dtype) for v in values)


class Nadam(Optimizer):
    """Nadam, as `keras.optimizers.Nadam`: Adam with Nesterov momentum, whose momentum
    factor at update `t` is `u_t = beta_1 * (1 - 0.5 * 0.96**t)` (Keras's schedule;
    PyTorch's `NAdam` uses `0.96**(0.004 * t)`), `U_t` the product of `u_1..u_t`:
    `w -= lr * (u_{t+1} * m / (1 - U_{t+1}) + (1 - u_t) * g / (1 - U_t)) /
    (sqrt(v / (1 - beta_2**t)) + epsilon)`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> nadam = Nadam(learning_rate=0.1).build([w])
        >>> w.grad = torch.tensor([3.0]); nadam.step()
        >>> round(w.item(), 4)  # near Adam's first step, lr * sign(g)
        0.8937
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
        )

    def update(self, param, grad, state, group, lr):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        if not state:
            state["m"] = torch.zeros_like(param)
            state["v"] = torch.zeros_like(param)
            state["u_product"] = 1.0  # a number: no device read at each step
        t = group["iterations"] + 1
        b1, b2, decay, step, u_product = _scalars(
            param.dtype, beta_1, beta_2, 0.96, t, state["u_product"]
        )
        u_t = b1 * (1 - 0.5 * decay.pow(step))
        u_next = b1 * (1 - 0.5 * decay.pow(step + 1))
        u_product = u_product * u_t
        state["u_product"] = float(u_product)
        m, v = state["m"], state["v"]
        m.add_((grad - m) * (1 - beta_1))
        v.add_((grad.square() - v) * (1 - beta_2))
        m_hat = m * float(u_next / (1 - u_product * u_next)) + grad * float(
            (1 - u_t) / (1 - u_product)
        )
        v_hat = v / float(1 - b2.pow(step))
        param.sub_(m_hat * lr / (v_hat.sqrt() + group["epsilon"]))


class Adamax(Optimizer):
    """Adamax, as `keras.optimizers.Adamax`: Adam with the infinity norm,
    `u = max(beta_2 * u, |g|)`, `w -= lr * m / ((1 - beta_1**t) * (u + epsilon))`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> adamax = Adamax(learning_rate=0.1).build([w])
        >>> w.grad = torch.tensor([3.0]); adamax.step()
        >>> w.detach()  # m = 0.3, u = 3: 1 - 0.1 * 0.3 / (0.1 * 3)
        tensor([0.9000])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
        )

    def update(self, param, grad, state, group, lr):
        beta_1 = group["beta_1"]
        if not state:
            state["m"] = torch.zeros_like(param)
            state["u"] = torch.zeros_like(param)
        (b1, step) = _scalars(param.dtype, beta_1, group["iterations"] + 1)
        m, u = state["m"], state["u"]
        m.add_((grad - m) * (1 - beta_1))
        torch.maximum(u * group["beta_2"], grad.abs(), out=u)
        param.sub_(lr * m / (float(1 - b1.pow(step)) * (u + group["epsilon"])))


class Adadelta(Optimizer):
    """Adadelta, as `keras.optimizers.Adadelta` (learning rate 0.001 by default, where
    PyTorch's is 1.0): `a = rho * a + (1 - rho) * g**2`, `d = -sqrt(s + epsilon) * g /
    sqrt(a + epsilon)`, `s = rho * s + (1 - rho) * d**2`, `w += lr * d`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> adadelta = Adadelta(learning_rate=1.0, rho=0.0, epsilon=1.0).build([w])
        >>> w.grad = torch.tensor([3.0]); adadelta.step()
        >>> w.detach()  # d = -sqrt(0 + 1) * 3 / sqrt(9 + 1)
        tensor([0.0513])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            rho=rho,
            epsilon=epsilon,
        )

    def update(self, param, grad, state, group, lr):
        rho, epsilon = group["rho"], group["epsilon"]
        if not state:
            state["accumulated_grad"] = torch.zeros_like(param)
            state["accumulated_delta"] = torch.zeros_like(param)
        accumulated, deltas = state["accumulated_grad"], state["accumulated_delta"]
        accumulated.mul_(rho).add_(grad.square() * (1 - rho))
        delta = -((deltas + epsilon).sqrt() * grad) / (accumulated + epsilon).sqrt()
        deltas.mul_(rho).add_(delta.square() * (1 - rho))
        param.add_(delta * lr)


class Lion(Optimizer):
    """Lion, as `keras.optimizers.Lion`: `w -= lr * sign(beta_1 * m + (1 - beta_1) *
    g)`, then `m = beta_2 * m + (1 - beta_2) * g`.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
        >>> lion = Lion(learning_rate=0.1).build([w])
        >>> w.grad = torch.tensor([3.0, -0.5]); lion.step()
        >>> w.detach()  # a step of lr against the sign of each gradient
        tensor([0.9000, 1.1000])
    """

    def __init__(
        self,
        learning_rate: Rate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **options: Any,
    ) -> None:
        if isinstance(beta_1, bool) or not isinstance(beta_1, int | float) or not 0 < beta_1 <= 1:
            raise ConfigError(
                format_error(
                    "Lion's beta_1 must be in (0, 1].",
                    received=repr(beta_1),
                    fix="e.g. beta_1=0.9 (with 0 the optimizer is sign descent).",
                )
            )
        super().__init__(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            **options,
            beta_1=beta_1,
            beta_2=beta_2,
        )

    def update(self, param, grad, state, group, lr):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        if not state:
            state["m"] = torch.zeros_like(param)
        m = state["m"]
        param.sub_(lr * (m * beta_1 + grad * (1 - beta_1)).sign())
        m.mul_(beta_2).add_(grad * (1 - beta_2))
