"""What `compile` fixed: how to make the optimizer, the loss and the metrics.

`Compiled` resolves `compile`'s arguments (optimizer names with Keras's defaults,
losses and metrics by name) and gives them back as the JSON config checkpoints keep;
`compile_args` turns that config back into `compile`'s arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..errors import ConfigError, MaskwiseTypeError, format_error
from ..optimizers import OPTIMIZER_CLASSES, check_learning_rate
from ..optimizers.schedules import SCHEDULES, LearningRateSchedule

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "sgd": (torch.optim.SGD, {"lr": 0.01}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.004, "eps": 1e-7}),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adamax": (torch.optim.Adamax, {"lr": 1e-3, "eps": 1e-7}),
    "nadam": (torch.optim.NAdam, {"lr": 1e-3, "eps": 1e-7}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}),
}
"""Optimizer names with Keras's default hyper-parameters (learning rate, epsilon, rho).

The update rules are PyTorch's (Keras's Adam folds epsilon in slightly differently);
`maskwise.optimizers` has Keras's classes with Keras's update rules."""

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


def _json_options(options: dict[str, Any], cls: type) -> dict[str, Any]:
    accepted = inspect.signature(cls).parameters
    out = {}
    for key, value in options.items():
        if key not in accepted:
            continue
        if isinstance(value, torch.Tensor):
            value = value.item()
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _metric_config(metric: Any, identifier: Any) -> Any:
    if isinstance(identifier, str):
        return identifier
    params = inspect.signature(type(metric)).parameters
    config = {
        key: getattr(metric, key)
        for key in params
        if key != "self"
        and isinstance(getattr(metric, key, None), str | int | float | bool | type(None))
    }
    return {"class": type(metric).__name__, "config": config}


def _metric_from_config(config: Any) -> Any:
    if isinstance(config, str):
        return metrics_module.get_metric(config)
    classes = {cls.__name__: cls for cls in metrics_module.METRICS.values()}
    return classes[config["class"]](**config["config"])


def _keras_spec(optimizer: optimizers_module.Optimizer) -> dict[str, Any] | None:
    """The JSON spec of a `maskwise.optimizers` optimizer (its Keras config); None with
    a schedule of your own (compile by hand before loading or resuming, as with a loss
    of your own)."""
    rate = optimizer.learning_rate
    if isinstance(rate, LearningRateSchedule) and type(rate) not in SCHEDULES.values():
        return None
    return {
        "module": "maskwise.optimizers",
        "class": type(optimizer).__name__,
        "options": optimizer.get_config(),
    }


def _built_on(
    optimizer: optimizers_module.Optimizer, parameters: list[torch.nn.Parameter]
) -> optimizers_module.Optimizer:
    """`optimizer` built on `parameters`, or already built on them (compiled again);
    built on other weights, it would train those, so it is refused."""
    if not optimizer.built:
        return optimizer.build(parameters)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if held != {id(p) for p in parameters}:
        name = type(optimizer).__name__
        raise ConfigError(
            format_error(
                f"This {name} is already built on another model's weights.",
                fix=f"give each model its own optimizer: `compile(optimizer="
                f"maskwise.optimizers.{name}(...))` with a new instance.",
            )
        )
    return optimizer


def _resolve_optimizer(optimizer: Any, learning_rate: float | None) -> tuple[Any, Any]:
    """(factory or instance, JSON spec or None)."""
    if learning_rate is not None:
        check_learning_rate(learning_rate, "compile(learning_rate=...)")
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ConfigError(
                format_error(
                    f"Unknown optimizer {optimizer!r}.",
                    expected="one of " + ", ".join(sorted(OPTIMIZERS)),
                    received=repr(optimizer),
                    fix="or pass a callable that takes the parameters, e.g. "
                    "`functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)`.",
                )
            )
        cls, options = OPTIMIZERS[key]
        options = {**options, **({} if learning_rate is None else {"lr": learning_rate})}
        return functools.partial(cls, **options), {"class": cls.__name__, "options": options}
    if learning_rate is not None:
        raise ConfigError(
            format_error(
                "compile(learning_rate=...) applies to optimizer names only.",
                received=f"optimizer={optimizer!r}",
                fix="set the learning rate in your optimizer, e.g. "
                "`functools.partial(torch.optim.SGD, lr=0.1)`.",
            )
        )
    if isinstance(optimizer, optimizers_module.Optimizer):
        return optimizer, _keras_spec(optimizer)
    if isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer):
        return optimizer, None
    raise MaskwiseTypeError(
        format_error(
            "compile(optimizer=...) takes a name, a callable or a torch optimizer.",
            received=type(optimizer).__name__,
            fix="e.g. 'adam', or `functools.partial(torch.optim.SGD, lr=0.1)`.",
        )
    )


class Compiled:
    """What `compile` fixed: the loss, the metrics, and how to make the optimizer."""

    def __init__(self, optimizer: Any, loss: Any, metrics: Any, learning_rate: Any) -> None:
        self.optimizer, self.optimizer_spec = _resolve_optimizer(optimizer, learning_rate)
        if loss is None:
            raise ConfigError(
                format_error(
                    "compile needs a loss.",
                    fix="e.g. `loss='sparse_categorical_crossentropy'` for class ids per "
                    "step, `loss='mse'` for regression.",
                )
            )
        self.loss = losses_module.get_loss(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, str | metrics_module.Metric):
            metrics = [metrics]
        self.metrics = [metrics_module.get_metric(m) for m in metrics]
        self.metric_configs = [
            _metric_config(m, i) for m, i in zip(self.metrics, metrics, strict=True)
        ]

    def make_optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer over `parameters` (the one given to `compile` if it was made
        already), its learning rates checked."""
        made = self.optimizer
        if isinstance(made, optimizers_module.Optimizer):
            return _built_on(made, list(parameters))
        if not isinstance(made, torch.optim.Optimizer):
            made = made(parameters)
        if not isinstance(made, torch.optim.Optimizer):
            raise MaskwiseTypeError(
                format_error(
                    "The optimizer callable given to compile did not return a "
                    "torch.optim.Optimizer.",
                    received=type(made).__name__,
                )
            )
        return made

    def config(self, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
        """The JSON a checkpoint keeps: the optimizer's class and hyper-parameters (of
        `optimizer` when it is a `torch.optim` class), the loss and the metrics."""
        spec = self.optimizer_spec
        if isinstance(optimizer, optimizers_module.Optimizer):
            spec = _keras_spec(optimizer)
        elif optimizer is not None and hasattr(torch.optim, type(optimizer).__name__):
            cls = type(optimizer)
            spec = {"class": cls.__name__, "options": _json_options(optimizer.defaults, cls)}
        loss = None
        if type(self.loss).__name__ in losses_module.LOSSES:
            loss = {"class": type(self.loss).__name__, "config": self.loss.get_config()}
        return {"optimizer": spec, "loss": loss, "metrics": self.metric_configs}


def _torch_factory(spec: dict[str, Any]) -> OptimizerFactory:
    """The factory of a saved `torch.optim` optimizer spec."""
    cls = getattr(torch.optim, spec["class"])
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"torch.optim.{spec['class']} is not an optimizer")
    return functools.partial(cls, **spec["options"])


def compile_args(config: dict[str, Any]) -> dict[str, Any] | None:
    """`compile` keyword arguments from a saved compile config (None if incomplete)."""
    spec, loss = config.get("optimizer"), config.get("loss")
    if spec is None or loss is None:
        return None
    try:
        if spec.get("module") == "maskwise.optimizers":
            optimizer: Any = OPTIMIZER_CLASSES[spec["class"]].from_config(spec["options"])
        else:
            optimizer = _torch_factory(spec)
        return {
            "optimizer": optimizer,
            "loss": losses_module.LOSSES[loss["class"]](**loss["config"]),
            "metrics": [_metric_from_config(m) for m in config["metrics"]],
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(
            format_error(
                "The saved compile config cannot be rebuilt.",
                expected="an optimizer class of torch.optim or maskwise.optimizers with its "
                "options, a maskwise loss and metrics, as `model.save` writes them",
                received=f"{type(error).__name__}: {error}",
                fix="compile the model yourself before loading or resuming, or save it again.",
            )
        ) from error
