"""`Optimizer`: Keras 3's optimizer semantics as a `torch.optim.Optimizer`.

Made as in Keras, without parameters (`Adam(learning_rate=1e-3)`); `compile` takes it
and the first `fit` builds it on the model's weights once they exist (`build(params)`,
Keras's name), so it never sees an empty parameter list. Once built it is an ordinary
PyTorch optimizer (`step`, `zero_grad`, `state_dict`, `param_groups`).

One update does what Keras's `apply` does, in Keras's order: clip the gradients
(`clipnorm` per weight, `global_clipnorm` over all of them, or `clipvalue`), decay the
weights (`weight_decay`: `w -= w * weight_decay * learning_rate`, decoupled from the
gradient), then the subclass's rule (`update`) with the learning rate of this step (a
`LearningRateSchedule` is evaluated at the step count, 0 at the first update), and
count the step (`iterations`).
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import ConfigError, MaskwiseTypeError, format_error
from .schedules import SCHEDULES, LearningRateSchedule


def check_learning_rate(value: Any, where: str) -> None:
    """Refuse a learning rate that is not a finite number >= 0 (0 is allowed, as in
    Keras and PyTorch: the weights then stay put, e.g. to measure a model as is).

    Example:
        >>> check_learning_rate(0.0, "SGD")  # allowed: returns None
        >>> check_learning_rate(float("nan"), "SGD")
        Traceback (most recent call last):
        ...
        maskwise.errors.ConfigError: The learning rate of SGD must be a finite number >= 0.
        ...
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MaskwiseTypeError(
            format_error(
                f"The learning rate of {where} must be a number.",
                received=f"{type(value).__name__}: {value!r}",
                fix="e.g. `learning_rate=1e-3`.",
            )
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            format_error(
                f"The learning rate of {where} must be a finite number >= 0.",
                expected="e.g. 1e-3 (Adam, RMSprop) or 1e-2 (SGD); 0 freezes the weights",
                received=repr(value),
                fix="a NaN or infinite rate makes every weight NaN at the first step, and a "
                "negative one climbs the loss: pass a small positive rate.",
            )
        )


KERAS_OPTIONS = (
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "name",
)
"""Keras's arguments of every optimizer besides the learning rate, the weight decay and
the clipping; each optimizer takes them by keyword, with Keras's defaults."""


def _refuse_keras_only(name: str, loss_scale_factor: Any, gradient_accumulation_steps: Any) -> None:
    """A `ConfigError` for Keras's options that `fit` provides another way."""
    refused = {
        "loss_scale_factor": (
            loss_scale_factor,
            "leave it out: `fit(precision='fp16')` scales the loss and unscales the "
            "gradients before the optimizer sees them.",
        ),
        "gradient_accumulation_steps": (
            gradient_accumulation_steps,
            "`model.fit(..., steps_per_update=k)`: one update every k batches, the loss "
            "divided by the real steps of all k (Keras averages the k batches' mean "
            "gradients and carries a partial update into the next epoch).",
        ),
    }
    for option, (value, fix) in refused.items():
        if value:
            raise ConfigError(
                format_error(
                    f"{name}({option}={value!r}) is not supported by maskwise optimizers.",
                    fix=fix,
                )
            )


def _check_ema(name: str, momentum: Any, frequency: Any) -> None:
    """Keras's checks of `use_ema`'s options, as `ConfigError`s."""
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, int | float)
        or not 0 <= momentum <= 1
    ):
        raise ConfigError(
            format_error(
                f"{name}(ema_momentum=...) must be a number in [0, 1].",
                received=repr(momentum),
                fix="e.g. ema_momentum=0.99 (Keras's default).",
            )
        )
    if frequency is not None and (
        isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1
    ):
        raise ConfigError(
            format_error(
                f"{name}(ema_overwrite_frequency=...) must be an integer >= 1 or None.",
                received=repr(frequency),
                fix="None keeps the average aside until fit ends; k sets the weights "
                "to it every k updates.",
            )
        )


TORCH_NAMES = {
    "lr": "learning_rate=",
    "betas": "beta_1= and beta_2=",
    "eps": "epsilon=",
    "alpha": "rho= (RMSprop's decay)",
    "maximize": "nothing: minimize the negated loss",
    "foreach": "nothing: the rules already update a group's weights together",
    "fused": "nothing: the rules already update a group's weights together",
    "capturable": "nothing: use a torch.optim optimizer for CUDA graphs",
    "differentiable": "nothing: use a torch.optim optimizer to differentiate through a step",
}
"""PyTorch's optimizer arguments and what Keras's optimizers take instead."""


class Optimizer(torch.optim.Optimizer):
    """Base class of the Keras-rule optimizers (see the module docstring).

    Subclasses pass their hyper-parameters to `__init__` and implement
    `update(param, grad, state, group, lr)`, which changes `param` in place.

    Example:
        >>> class SignSGD(Optimizer):
        ...     def __init__(self, learning_rate=0.01, **options):
        ...         super().__init__(learning_rate, **options)
        ...     def update(self, param, grad, state, group, lr):
        ...         param.sub_(lr * grad.sign())
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
        >>> sign_sgd = SignSGD(learning_rate=0.1).build([w])
        >>> w.grad = torch.tensor([5.0, -0.5]); sign_sgd.step()
        >>> w.detach()
        tensor([0.9000, 1.1000])

    Args:
        learning_rate: a number >= 0 or a `maskwise.optimizers.schedules` schedule.
        weight_decay: decoupled weight decay (None: none).
        clipnorm: clip each weight's gradient to this L2 norm.
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`.
        global_clipnorm: clip all gradients together to this global L2 norm.
        use_ema: keep an exponential moving average of the weights, `a = ema_momentum *
            a + (1 - ema_momentum) * w` after each update (`a = w` after the first);
            `fit` ends by setting the weights to it (`finalize_variable_values`), and
            with `ema_overwrite_frequency=k` so does every k-th update, as in Keras.
        loss_scale_factor, gradient_accumulation_steps: Keras's; their defaults only
            (others are a `ConfigError` naming `fit`'s way: `precision="fp16"`,
            `steps_per_update=`).
        name: Keras's optimizer name, kept in the config.
        **hyper: the subclass's hyper-parameters (in `param_groups`).
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **hyper: Any,
    ) -> None:
        if not isinstance(learning_rate, LearningRateSchedule | int | float) or isinstance(
            learning_rate, bool
        ):
            name = type(self).__name__
            raise MaskwiseTypeError(
                format_error(
                    f"{name} takes Keras's arguments: a learning rate, not the parameters.",
                    expected="a number or a maskwise.optimizers.schedules schedule",
                    received=type(learning_rate).__name__,
                    fix=f"`model.compile(optimizer=maskwise.optimizers.{name}(learning_rate="
                    f"1e-3), ...)`; fit builds it on the weights (or call "
                    f"`{name}(...).build(model.parameters())`).",
                )
            )
        self._check_hyper(hyper)
        _refuse_keras_only(type(self).__name__, loss_scale_factor, gradient_accumulation_steps)
        if use_ema:
            _check_ema(type(self).__name__, ema_momentum, ema_overwrite_frequency)
        self.ema: dict[str, Any] = (
            {
                "use_ema": True,
                "ema_momentum": ema_momentum,
                "ema_overwrite_frequency": ema_overwrite_frequency,
            }
            if use_ema
            else {}
        )
        self.name = name
        name = type(self).__name__
        if isinstance(learning_rate, LearningRateSchedule):
            self.schedule: LearningRateSchedule | None = learning_rate
            rate = learning_rate(0)
        else:
            self.schedule, rate = None, learning_rate
        check_learning_rate(rate, f"{name}(learning_rate=...)")
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(value is not None for value in clips.values()) > 1:
            raise ConfigError(
                format_error(
                    f"{name}: only one of clipnorm, clipvalue and global_clipnorm can be set.",
                    received=", ".join(f"{k}={v}" for k, v in clips.items() if v is not None),
                    fix="keep one of them.",
                )
            )
        self.learning_rate = learning_rate
        self.clips = clips
        self.hyper = {"weight_decay": weight_decay, **hyper}
        self.built = False
        # torch wraps a class's `step` with hooks read from the instance: give an
        # unbuilt one empty hooks, so that its `step` reaches `_require_built`.
        self._optimizer_step_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict = OrderedDict()

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        """Refuse a hyper-parameter the subclass does not declare (a misspelt keyword
        passed on by a subclass's `**options`), naming those it takes."""
        declared = [
            name
            for name, parameter in inspect.signature(type(self)).parameters.items()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        unknown = [key for key in hyper if key not in declared]
        if unknown:
            torch_names = [f"{k}: {TORCH_NAMES[k]}" for k in unknown if k in TORCH_NAMES]
            instead = (
                f"PyTorch's names, Keras's instead ({'; '.join(torch_names)}); "
                if torch_names
                else ""
            )
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} does not take the argument {unknown[0]}=.",
                    received=", ".join(f"{k}={hyper[k]!r}" for k in unknown),
                    fix=instead + "use one of " + ", ".join([*declared, *KERAS_OPTIONS]) + ".",
                )
            )

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the hooks, for `copy.deepcopy` and pickling (of the
        optimizer or of a compiled model): PyTorch's keeps only the param groups and
        the state, which would lose the Keras arguments and the schedule."""
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_hooks")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("built"):
            super().__setstate__(state)
            return
        self.__dict__.update(state)
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({options})"

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON; a schedule as `{"class_name", "config"}`)."""
        rate: Any = self.learning_rate
        if isinstance(rate, LearningRateSchedule):
            rate = {"class_name": type(rate).__name__, "config": rate.get_config()}
        named = {} if self.name is None else {"name": self.name}
        return {"learning_rate": rate, **self.hyper, **self.clips, **self.ema, **named}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """An unbuilt optimizer from `get_config()`'s output."""
        config = dict(config)
        rate = config.pop("learning_rate")
        if isinstance(rate, dict):
            rate = SCHEDULES[rate["class_name"]].from_config(rate["config"])
        return cls(rate, **config)

    # ------------------------------------------------------------------ build
    def build(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]]) -> Optimizer:
        """Attach the weights (a model's `parameters()`, or param groups); returns self."""
        if self.built:
            raise ConfigError(
                format_error(
                    f"This {type(self).__name__} is already built on a model's weights.",
                    fix="make a new optimizer for another model (as in Keras, one "
                    "optimizer instance trains one set of weights).",
                )
            )
        rate = self.schedule(0) if self.schedule is not None else self.learning_rate
        defaults = {"lr": rate, "iterations": 0, **self.hyper}
        torch.optim.Optimizer.__init__(self, params, defaults)
        self.built = True
        return self

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """`torch.optim.Optimizer.add_param_group`; a group's own `lr` is refused when
        the rate follows a schedule, which sets every group's rate at each step."""
        if self.schedule is not None and "lr" in param_group:
            raise ConfigError(
                format_error(
                    f"A param group's own lr cannot be kept by a {type(self).__name__} "
                    "whose learning rate follows a schedule.",
                    received=f"lr={param_group['lr']!r} with {self.schedule!r}",
                    fix="drop the group's lr, or give the optimizer a number as "
                    "learning_rate and set each group's lr (a torch.optim.lr_scheduler "
                    "then schedules them).",
                )
            )
        super().add_param_group(param_group)

    def _follow_schedule(self, schedule: LearningRateSchedule) -> None:
        """Set each group's rate to the schedule's at its step count, first refusing a
        rate changed since the schedule set it (a `torch.optim.lr_scheduler`, the
        `ReduceLROnPlateau` callback, a hand-written `group["lr"] = ...`), which the
        schedule would silently undo."""
        for group in self.param_groups:
            last = schedule(max(group["iterations"] - 1, 0))
            if group["lr"] != last:
                raise ConfigError(
                    format_error(
                        f"The learning rate of this {type(self).__name__} follows a "
                        "schedule; something else changed it.",
                        expected=f"lr={last!r}, set by {schedule!r}",
                        received=f"lr={group['lr']!r}",
                        fix="give the optimizer a number as learning_rate to let a "
                        "torch.optim.lr_scheduler or a callback set it, or drop them and "
                        "keep the schedule.",
                    )
                )
            group["lr"] = schedule(group["iterations"])

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ConfigError(
                format_error(
                    f"{type(self).__name__}.{what}() needs the optimizer built on weights.",
                    fix="compile the model with it and call fit (which builds it), or "
                    "call `optimizer.build(model.parameters())` once the model is built.",
                )
            )

    @property
    def iterations(self) -> int:
        """Updates done so far (Keras's `optimizer.iterations`)."""
        return int(self.param_groups[0]["iterations"]) if self.built else 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._require_built("zero_grad")
        super().zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        self._require_built("state_dict")
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._require_built("load_state_dict")
        super().load_state_dict(state_dict)

    # ------------------------------------------------------------------ step
    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        group: dict[str, Any],
        lr: float,
    ) -> None:
        """Change `param` in place by the optimizer's rule (`state` is its own)."""
        raise NotImplementedError

    def update_all(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        states: list[dict[str, Any]],
        group: dict[str, Any],
        lr: float,
    ) -> None:
        """`update` each weight of one group with its gradient and state. A rule may
        override this instead, to update them all at once with PyTorch's multi-tensor
        (`torch._foreach_*`) ops, which run the same arithmetic per element in a few
        kernel calls rather than a few per weight (Adam does)."""
        for param, grad, state in zip(params, grads, states, strict=True):
            self.update(param, grad, state, group, lr)

    def _clip(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Keras's clipping: each gradient to `clipnorm`, all together to
        `global_clipnorm`, or each element to `clipvalue` (at most one is set)."""
        clips = self.clips
        if clips["clipnorm"]:
            limit = clips["clipnorm"]
            return [g * limit / g.norm().clamp(min=limit) for g in grads]
        if clips["global_clipnorm"]:
            limit = clips["global_clipnorm"]
            norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
            return [g * (limit / norm.clamp(min=limit)) for g in grads]
        if clips["clipvalue"]:
            return [g.clamp(-clips["clipvalue"], clips["clipvalue"]) for g in grads]
        return grads

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every weight that has a gradient (see the module docstring)."""
        self._require_built("step")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pairs = [(p, group) for group in self.param_groups for p in group["params"]]
        pairs = [(p, group) for p, group in pairs if p.grad is not None]
        # a sparse gradient (`nn.Embedding(sparse=True)`) as the dense one it stands
        # for: Keras's rules update every row, the moments of the unused ones decay
        grads = [p.grad.to_dense() if p.grad.is_sparse else p.grad for p, _ in pairs]
        grads = self._clip(grads) if pairs else []
        if self.schedule is not None:
            self._follow_schedule(self.schedule)
        by_group: dict[int, tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]] = {}
        for (param, group), grad in zip(pairs, grads, strict=True):
            _, params, group_grads = by_group.setdefault(id(group), (group, [], []))
            params.append(param)
            group_grads.append(grad)
        for group, params, group_grads in by_group.values():
            lr = group["lr"]
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["weight_decay"] * lr)
            states = [self.state[param] for param in params]
            self.update_all(params, group_grads, states, group, lr)
        if self.ema:
            self._average()
        for group in self.param_groups:
            group["iterations"] += 1
        return loss

    def _average(self) -> None:
        """Keras's moving average of every weight, after an update (`use_ema`); every
        `ema_overwrite_frequency`-th update also sets the weights to it."""
        iterations = self.param_groups[0]["iterations"]
        momentum = self.ema["ema_momentum"] if iterations else 0.0
        frequency = self.ema["ema_overwrite_frequency"]
        overwrite = bool(frequency) and (iterations + 1) % frequency == 0
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state[param]
                if "average" not in state:
                    state["average"] = torch.zeros_like(param)
                state["average"].mul_(momentum).add_(param, alpha=1 - momentum)
                if overwrite:
                    param.copy_(state["average"])

    @torch.no_grad()
    def finalize_variable_values(self) -> None:
        """With `use_ema`, set every weight to its moving average (Keras's name; `fit`
        calls it once its epochs are done, before `on_train_end`); otherwise nothing.

        Example:
            >>> w = torch.nn.Parameter(torch.tensor([1.0]))
            >>> sgd = mw.optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5).build([w])
            >>> for _ in range(2):
            ...     w.grad = torch.tensor([1.0]); sgd.step()
            >>> w.detach(), sgd.state[w]["average"]  # w: 1, 0, -1; average: 0, -0.5
            (tensor([-1.]), tensor([-0.5000]))
            >>> sgd.finalize_variable_values(); w.detach()
            tensor([-0.5000])
        """
        if not self.ema or not self.built:
            return
        for group in self.param_groups:
            for param in group["params"]:
                if "average" in self.state[param]:
                    param.copy_(self.state[param]["average"])
