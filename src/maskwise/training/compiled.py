"""What `compile` fixed: how to make the optimizer, each output's loss and metrics.

`Compiled` resolves `compile`'s arguments (optimizer names with Keras's defaults,
losses and metrics by name) and gives them back as the JSON config checkpoints keep;
`compile_args` turns that config back into `compile`'s arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..errors import ConfigError, MaskwiseTypeError, format_error
from ..optimizers import OPTIMIZER_CLASSES, check_learning_rate
from ..optimizers.schedules import SCHEDULES, LearningRateSchedule
from .outputs import OUTPUT, make_heads, split_outputs, split_targets

OPTIMIZERS: dict[str, type[optimizers_module.Optimizer]] = {
    name.lower(): cls for name, cls in OPTIMIZER_CLASSES.items()
}
"""Optimizer names, as Keras's `compile` takes them: each is the `maskwise.optimizers`
class of that name, with Keras's defaults and update rule (`"rmsprop"` divides by
`sqrt(v + epsilon)` as Keras does, not by `sqrt(v) + epsilon` as `torch.optim.RMSprop`)."""

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


COMPILE_ARGUMENTS = "optimizer, loss, loss_weights, metrics, learning_rate"
"""What maskwise's `compile` takes, besides Keras's options of `check_keras_options`."""


def check_loss_weights(loss_weights: Any) -> None:
    """`compile`'s third argument is Keras 3's `loss_weights` (Keras 2's was `metrics`):
    weights that are not numbers (metric names or objects) are a `ConfigError` saying
    to pass them as `metrics=`; None (no weight) is fine.

    Example:
        >>> check_loss_weights([1.0, 0.5])
        >>> check_loss_weights(["accuracy"])
        Traceback (most recent call last):
        ...
        maskwise.errors.ConfigError: compile's loss_weights must be numbers (one per output).
          received: ['accuracy']
          fix: Keras 3's compile takes (optimizer, loss, loss_weights, metrics) ...
    """
    if loss_weights is None:
        return
    values = loss_weights.values() if isinstance(loss_weights, dict) else loss_weights
    if not isinstance(values, Iterable) or isinstance(values, str):
        values = [values]
    if all(w is None or (isinstance(w, int | float) and not isinstance(w, bool)) for w in values):
        return
    raise ConfigError(
        format_error(
            "compile's loss_weights must be numbers (one per output).",
            received=repr(loss_weights)[:100],
            fix="Keras 3's compile takes (optimizer, loss, loss_weights, metrics) in that "
            f"order (Keras 2's third argument was metrics): pass metrics={loss_weights!r}.",
        )
    )


def check_keras_options(options: dict[str, Any]) -> None:
    """Keras's other `compile` arguments: those that change nothing here pass (the
    defaults, `run_eagerly`: maskwise always runs eagerly; `auto_scale_loss`: loss
    scaling comes with `fit(precision="fp16")`; Keras 2's
    `sample_weight_mode="temporal"`: per-step weights are read from their shape); any
    other value, or an unknown name, is a `ConfigError` naming the maskwise way.

    Example:
        >>> check_keras_options({"run_eagerly": True, "jit_compile": "auto"})
        >>> check_keras_options({"jit_compile": True})
        Traceback (most recent call last):
        ...
        maskwise.errors.ConfigError: compile does not take jit_compile=True.
          fix: compile the model when training: `fit(..., jit_compile=True)`.
    """
    fixes = {
        "weighted_metrics": f"pass them as `metrics={options.get('weighted_metrics')!r}`: "
        "maskwise's metrics count the real steps only (the mask, what Keras's "
        "weighted_metrics were mostly for with padded data); for metrics weighted by "
        "sample_weight, update a `maskwise.metrics` metric yourself: "
        "`metric.update(y, model(x), sample_weight)`.",
        "jit_compile": "compile the model when training: `fit(..., jit_compile=True)`.",
        "steps_per_execution": "leave it out: maskwise runs one batch per step "
        "(steps_per_execution=1).",
        "run_eagerly": "pass True or False (maskwise always runs eagerly).",
        "auto_scale_loss": "pass True or False (the loss is scaled with `fit(precision='fp16')`).",
        "sample_weight_mode": "leave it out: `fit` reads per-step sample weights "
        "`(N, time)` from their shape (Keras 2's 'temporal' needs nothing more).",
    }
    harmless = {
        "weighted_metrics": lambda v: not v,
        "jit_compile": lambda v: v in ("auto", False, None),
        "steps_per_execution": lambda v: v == 1,
        "run_eagerly": lambda v: v in (True, False, None),
        "auto_scale_loss": lambda v: v in (True, False),
        "sample_weight_mode": lambda v: v in (None, "temporal"),
    }
    for name, value in options.items():
        if name not in fixes:
            raise ConfigError(
                format_error(
                    f"compile does not take the argument {name}=.",
                    received=f"{name}={value!r}",
                    fix=f"use one of {COMPILE_ARGUMENTS} (or Keras's {', '.join(fixes)}).",
                )
            )
        if not harmless[name](value):
            raise ConfigError(
                format_error(f"compile does not take {name}={value!r}.", fix=fixes[name])
            )


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


def _named(
    cls: type[optimizers_module.Optimizer],
    config: dict[str, Any],
    parameters: Iterable[torch.nn.Parameter],
) -> optimizers_module.Optimizer:
    """A new optimizer `cls(**config)` built on `parameters`: what an optimizer name
    makes at each `fit` that starts without one."""
    return cls.from_config(config).build(parameters)


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
        cls = OPTIMIZERS[key]
        rate: dict[str, Any] = {} if learning_rate is None else {"learning_rate": learning_rate}
        made = cls(**rate)  # the class's default rate, Keras's, unless given
        return functools.partial(_named, cls, made.get_config()), _keras_spec(made)
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


def _require_trainable_weights(
    optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter]
) -> None:
    """A `ConfigError` when a torch optimizer given to `compile` misses trainable weights
    of the model: made before the model was built, it holds none of the weights its
    layers made at their first call, which would then never train."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = [p for p in parameters if p.requires_grad]
    missing = [p for p in trainable if id(p) not in held]
    if missing:
        raise ConfigError(
            format_error(
                f"The {type(optimizer).__name__} given to compile misses {len(missing)} of "
                f"the model's {len(trainable)} trainable weights: they would never train.",
                expected="an optimizer over every trainable weight",
                received=f"weights of shapes {[tuple(p.shape) for p in missing][:4]} missing",
                fix="make the optimizer once the model is built (`model.build(input_shape)` "
                "or `model(x)` first), or give compile a name or a callable that makes it "
                "(`'sgd'`, `functools.partial(torch.optim.SGD, lr=0.1)`); to train only some "
                "weights, freeze the others (`layer.trainable = False`).",
            )
        )


class Compiled:
    """What `compile` fixed: each output's loss, loss weight and metrics (`heads`, one
    per output of `names`; see `maskwise.training.outputs`), and how to make the
    optimizer.

    Example:
        >>> compiled = Compiled("sgd", loss="mse", metrics=["mae"], learning_rate=0.1)
        >>> compiled.loss
        MeanSquaredError(reduction='mean', name='mean_squared_error')
        >>> compiled.metrics
        [MeanAbsoluteError(name='mae')]
        >>> optimizer = compiled.make_optimizer([torch.nn.Parameter(torch.zeros(1))])
        >>> type(optimizer).__name__, optimizer.defaults["lr"]
        ('SGD', 0.1)
        >>> two = Compiled("sgd", loss=["mse", None], metrics=None, learning_rate=None,
        ...                names=["volume", "label"])
        >>> [(head.name, head.loss is not None) for head in two.heads]
        [('volume', True), ('label', False)]
    """

    def __init__(
        self,
        optimizer: Any,
        loss: Any,
        metrics: Any,
        learning_rate: Any,
        loss_weights: Any = None,
        names: Sequence[str] = (OUTPUT,),
    ) -> None:
        self.optimizer, self.optimizer_spec = _resolve_optimizer(optimizer, learning_rate)
        self.names = list(names)
        self.heads = make_heads(self.names, loss, loss_weights, metrics)

    @property
    def loss(self) -> losses_module.Loss | None:
        """The loss of a model with one output (None for several outputs)."""
        return self.heads[0].loss if len(self.heads) == 1 else None

    @property
    def metrics(self) -> list[metrics_module.Metric]:
        """Every output's metrics, in output order."""
        return [metric for head in self.heads for metric in head.metrics]

    def output_losses(
        self,
        y: Any,
        out: Any,
        sample_weight: torch.Tensor | None,
        class_weight: Any = None,
        normalizers: Sequence[float | torch.Tensor | None] | None = None,
    ) -> list[torch.Tensor | None]:
        """Each output's loss against its targets, over its own real steps (None for an
        output compiled without a loss), divided by its entry of `normalizers` (one per
        output; see `Loss.__call__`) when given."""
        parts: list[torch.Tensor | None] = []
        outputs, targets = split_outputs(out, self.names), split_targets(y, self.names)
        divisors = [None] * len(self.heads) if normalizers is None else normalizers
        for head, output, target, normalizer in zip(
            self.heads, outputs, targets, divisors, strict=True
        ):
            if head.loss is None:
                parts.append(None)
                continue
            if target is None:
                raise ConfigError(
                    format_error(
                        f"The targets hold none for the output {head.name!r}, which "
                        "compile gave a loss.",
                        expected=f"targets for each of {self.names} with a loss",
                        received=f"targets for {sorted(y) if isinstance(y, dict) else y!r}",
                        fix=f"pass {head.name!r}'s targets, or compile it with loss None.",
                    )
                )
            value = head.loss(target, output, sample_weight, class_weight, normalizer)
            # compile refuses reduction="none" (make_heads): the loss is a scalar tensor.
            parts.append(cast(torch.Tensor, value))
        return parts

    def total(self, parts: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The loss trained: the outputs' losses `parts`, weighted and summed."""
        pairs = zip(self.heads, parts, strict=True)
        return functools.reduce(torch.add, [h.weight * p for h, p in pairs if p is not None])

    def make_optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer over `parameters` (the one given to `compile` if it was made
        already), its learning rates checked."""
        made = self.optimizer
        if isinstance(made, optimizers_module.Optimizer):
            return _built_on(made, list(parameters))
        if isinstance(made, torch.optim.Optimizer):
            _require_trainable_weights(made, list(parameters))
        else:
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
        `optimizer` when it is a `torch.optim` class), the loss and the metrics (for
        several outputs, a list of each, and the loss weights; the loss None when one
        is a loss of your own)."""
        spec = self.optimizer_spec
        if isinstance(optimizer, optimizers_module.Optimizer):
            spec = _keras_spec(optimizer)
        elif optimizer is not None and hasattr(torch.optim, type(optimizer).__name__):
            cls = type(optimizer)
            spec = {"class": cls.__name__, "options": _json_options(optimizer.defaults, cls)}
        losses = [_loss_config(head.loss) for head in self.heads]
        metrics = [
            [_metric_config(m, i) for m, i in zip(h.metrics, h.metric_specs, strict=True)]
            for h in self.heads
        ]
        custom = any(c is None and h.loss is not None for c, h in zip(losses, self.heads))
        if len(self.heads) == 1:
            return {"optimizer": spec, "loss": losses[0], "metrics": metrics[0]}
        return {
            "optimizer": spec,
            "loss": None if custom else losses,
            "loss_weights": [head.weight for head in self.heads],
            "metrics": metrics,
        }


def _loss_config(loss: losses_module.Loss | None) -> dict[str, Any] | None:
    """A built-in loss's class and config (None for none, or a loss of your own)."""
    if loss is None or type(loss).__name__ not in losses_module.LOSSES:
        return None
    return {"class": type(loss).__name__, "config": loss.get_config()}


def _keras_optimizer(spec: dict[str, Any]) -> optimizers_module.Optimizer:
    """The unbuilt optimizer of a saved `maskwise.optimizers` spec."""
    if spec["class"] not in OPTIMIZER_CLASSES:
        raise TypeError(f"maskwise.optimizers.{spec['class']} is not an optimizer")
    return OPTIMIZER_CLASSES[spec["class"]].from_config(spec["options"])


def _torch_factory(spec: dict[str, Any]) -> OptimizerFactory:
    """The factory of a saved `torch.optim` optimizer spec."""
    cls = getattr(torch.optim, spec["class"])
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"torch.optim.{spec['class']} is not an optimizer")
    return _multi_tensor(cls, spec["options"])


def _multi_tensor(cls: type[torch.optim.Optimizer], options: dict[str, Any]) -> OptimizerFactory:
    """`cls` with `options`, updating all the weights in one multi-tensor pass per
    operation (`foreach=True`) unless `options` say otherwise. PyTorch takes that pass
    by default on GPUs only; on CPU it does the same arithmetic (bit for bit for Adam,
    AdamW, RMSprop and SGD) in fewer calls: a third less time per step for a small
    recurrent model, whose step is mostly the cost of the calls."""
    return functools.partial(cls, **{"foreach": True, **options})


def compile_args(config: dict[str, Any]) -> dict[str, Any] | None:
    """`compile` keyword arguments from a saved compile config (None if incomplete).

    Example:
        >>> config = Compiled("sgd", "mse", ["mae"], learning_rate=0.1).config(None)
        >>> config["optimizer"]["class"], config["metrics"]  # JSON, as a checkpoint keeps it
        ('SGD', ['mae'])
        >>> args = compile_args(config)
        >>> args["optimizer"]
        SGD(learning_rate=0.1, momentum=0.0, nesterov=False)
        >>> args["loss"]
        MeanSquaredError(...)
        >>> compile_args({"optimizer": None, "loss": None, "metrics": []}) is None
        True
    """
    spec, loss = config.get("optimizer"), config.get("loss")
    if spec is None or loss is None:
        return None
    try:
        if spec.get("module") == "maskwise.optimizers":
            optimizer: Any = _keras_optimizer(spec)
        else:
            optimizer = _torch_factory(spec)
        if isinstance(loss, list):  # several outputs
            return {
                "optimizer": optimizer,
                "loss": [None if c is None else _loss_from_config(c) for c in loss],
                "metrics": [[_metric_from_config(m) for m in ms] for ms in config["metrics"]],
                "loss_weights": config["loss_weights"],
            }
        return {
            "optimizer": optimizer,
            "loss": _loss_from_config(loss),
            "metrics": [_metric_from_config(m) for m in config["metrics"]],
            "loss_weights": None,
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


def _loss_from_config(config: dict[str, Any]) -> losses_module.Loss:
    return losses_module.LOSSES[config["class"]](**config["config"])
