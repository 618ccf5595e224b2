"""A model's outputs as `compile` trains them: one loss, loss weight and metrics each.

A model with several outputs (a functional `Model(inputs, [a, b])` or
`Model(inputs, {"a": a, "b": b})`) trains as in Keras. `compile(loss=...)` takes one
loss for every output, a list (one per output, in order; None: that output is not
trained) or a dict keyed by output name (an output left out is not trained);
`loss_weights` a list or a dict (1 where not given); `metrics` a list with one entry per
output (a metric, a list of them, or None) or a dict. The loss trained is the weighted
sum of the outputs' losses, each counted over the real steps of its own output's mask
(a tagger's per-step output and a classifier's per-sequence output side by side).

`fit` and `evaluate` take the targets as a list (in output order) or a dict keyed by
output name; the batches carry them as a dict. The logs hold `loss` (the weighted sum)
and, when several outputs have a loss, `<output>_loss` (each output's own, unweighted);
metrics are named `<output>_<metric>`. `predict` returns a list (or a dict) of each
output's results.

A model with one output is the one-element case of the same code, its logs without
prefixes. Output names are Keras's `model.output_names`: a dict's keys, else each
output's layer name; a `Module` with several outputs sets `output_names` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import losses as losses_module
from .. import metrics as metrics_module
from ..errors import ConfigError, format_error
from ..masked import Masked

Output = Masked | torch.Tensor
OUTPUT = "output"
"""The name of the output of a model that names none (one output)."""


@dataclass
class Head:
    """One output as compiled.

    Args:
        name: the output's name (the logs' prefix when the model has several).
        loss: its loss, or None when the output is not trained.
        weight: the loss's weight in the total.
        metrics: its metrics.
        metric_specs: the metrics as `compile` received them (names or objects).
    """

    name: str
    loss: losses_module.Loss | None
    weight: float = 1.0
    metrics: list[metrics_module.Metric] = field(default_factory=list)
    metric_specs: list[Any] = field(default_factory=list)


def output_names(model: Any) -> list[str]:
    """The names of `model`'s outputs (`model.output_names`; one unnamed output else)."""
    names = getattr(model, "output_names", None)
    return list(names) if names else [OUTPUT]


def _structure_error(what: str, names: list[str], received: str, fix: str) -> ConfigError:
    return ConfigError(
        format_error(
            f"{what} must match the model's {len(names)} outputs {names}.",
            expected="one entry per output, in order, or a dict keyed by output name",
            received=received,
            fix=fix,
        )
    )


def spread(spec: Any, names: list[str], what: str, example: str) -> list[Any]:
    """`spec` (a list with one entry per output, or a dict by output name: None where
    it names no entry) as one entry per output of `names`."""
    fix = f"e.g. `{what}={{{', '.join(f'{n!r}: {example}' for n in names)}}}`."
    if isinstance(spec, dict):
        unknown = [key for key in spec if key not in names]
        if unknown:
            received = f"unknown output name(s) {unknown}"
            raise _structure_error(f"compile({what}=...)", names, received, fix)
        return [spec.get(name) for name in names]
    if isinstance(spec, list | tuple) and len(spec) == len(names):
        return list(spec)
    received = f"{len(spec)} entries" if isinstance(spec, list | tuple) else repr(spec)[:80]
    raise _structure_error(f"compile({what}=...)", names, received, fix)


def make_heads(names: list[str], loss: Any, loss_weights: Any, metrics: Any) -> list[Head]:
    """The compiled outputs of a model with outputs `names` (see the module docstring)."""
    several = len(names) > 1
    if not isinstance(loss, list | tuple | dict):
        losses = [loss] * len(names)  # one loss for every output
    else:
        losses = spread(loss, names, "loss", "'mse'")
    if all(entry is None for entry in losses):
        raise ConfigError(
            format_error(
                "compile needs a loss.",
                received=f"loss={loss!r}",
                fix="e.g. `loss='sparse_categorical_crossentropy'` for class ids per "
                "step, `loss='mse'` for regression"
                + (f"; one per output of {names} as a list or a dict." if several else "."),
            )
        )
    weights = [1.0] * len(names)
    if loss_weights is not None:
        given = spread(loss_weights, names, "loss_weights", "1.0")
        weights = [1.0 if w is None else float(w) for w in given]
    if metrics is None:
        per_output: list[Any] = [None] * len(names)
    elif several or isinstance(metrics, dict):
        per_output = spread(metrics, names, "metrics", "['accuracy']")
    else:
        per_output = [metrics]
    heads = []
    for name, entry, weight, specs in zip(names, losses, weights, per_output, strict=True):
        specs = [] if specs is None else specs
        specs = list(specs) if isinstance(specs, list | tuple) else [specs]
        made = None if entry is None else losses_module.get_loss(entry)
        if made is not None and made.reduction == "none":
            raise ConfigError(
                format_error(
                    f"{made.name}: compile needs a loss reduced to one number, but its "
                    "reduction is 'none'.",
                    received=f"output {name!r}: {made!r}",
                    fix="use reduction='mean' (Keras's 'sum_over_batch_size') to train; "
                    "call the loss yourself with reduction='none' for the per-step losses.",
                )
            )
        metric_objects = [metrics_module.get_metric(m) for m in specs]
        heads.append(Head(name, made, weight, metric_objects, specs))
    return heads


def split_outputs(out: Any, names: list[str]) -> list[Output]:
    """The model's output as one tensor per output of `names`: a dict by name, a list or
    tuple in order, a single `Masked` or tensor for one output."""
    if isinstance(out, dict):
        missing = [name for name in names if name not in out]
        if not missing:
            return [out[name] for name in names]
        received = f"a dict with keys {sorted(out)}"
    elif isinstance(out, list | tuple):
        if len(out) == len(names):
            return list(out)
        received = f"{len(out)} outputs"
    else:
        if len(names) == 1:
            return [out]
        received = "one output"
    raise ConfigError(
        format_error(
            f"The model's output does not match the outputs compile knows, {names}.",
            received=received,
            fix="compile the model it returns the outputs of; a Module returning several "
            "outputs sets `output_names` (a list of names, in the order it returns them).",
        )
    )


def split_targets(y: Any, names: list[str]) -> list[torch.Tensor | None]:
    """A batch's targets as one per output of `names` (None: none for that output)."""
    if isinstance(y, dict):
        return [y.get(name) for name in names]
    return [y] if len(names) == 1 else [None] * len(names)


def targets_by_name(y: Any, names: list[str], door: str) -> Any:
    """The targets a door received, as the loaders take them: unchanged for one output
    (a dict with its one name gives its value), a dict keyed by output name for several
    (from a list in output order, or a dict)."""
    if y is None:
        return None
    if len(names) == 1:
        return y[names[0]] if isinstance(y, dict) and list(y) == names else y
    if isinstance(y, dict):
        unknown = [key for key in y if key not in names]
        if not unknown:
            return y
        received = f"unknown output name(s) {unknown}"
    elif isinstance(y, list | tuple) and len(y) == len(names):
        return dict(zip(names, y, strict=True))
    else:
        received = f"{len(y)} entries" if isinstance(y, list | tuple) else type(y).__name__
    raise _structure_error(
        f"The targets given to {door}()",
        names,
        received,
        f"pass `{door}(x, [{', '.join(f'y_{n}' for n in names)}])` or a dict keyed by output name.",
    )


def validation_targets(data: Any, names: list[str]) -> Any:
    """`fit`'s `validation_data` with its targets as `targets_by_name` gives them."""
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        return (data[0], targets_by_name(data[1], names, "fit"), *data[2:])
    return data


def check_class_weight(class_weight: Any, names: list[str]) -> None:
    """Refuse `class_weight` for several outputs (as Keras does): which output's
    classes it weighs is not said."""
    if class_weight is not None and len(names) > 1:
        raise ConfigError(
            format_error(
                f"fit(class_weight=...) weighs the classes of one output; the model has "
                f"{len(names)}: {names}.",
                fix="weigh the sequences with sample_weight, or give the loss of the "
                "output whose classes need it a weight per class yourself.",
            )
        )


def pack(out: Any, values: list[Any], names: list[str]) -> Any:
    """`values` (one per output of `names`) in the structure of the model's output
    `out`: a dict by name, a list, or the one value."""
    if isinstance(out, dict):
        return dict(zip(names, values, strict=True))
    if isinstance(out, list | tuple):
        return list(values)
    return values[0]


def map_outputs(out: Any, fn: Callable[[Output], Output]) -> Any:
    """The model's output with `fn` applied to each of its tensors (structure kept)."""
    if isinstance(out, dict):
        return {key: fn(value) for key, value in out.items()}
    if isinstance(out, list | tuple):
        return type(out)(fn(value) for value in out)
    return fn(out)


def counted(
    heads: Sequence[Head], outputs: Sequence[Output], targets: Sequence[Any]
) -> torch.Tensor | int:
    """The steps the losses count in a batch: each trained output's real steps, less
    those whose target its loss leaves out (`Loss.counted`)."""
    return sum(
        (
            h.loss.counted(t, o).sum()
            for h, o, t in zip(heads, outputs, targets, strict=True)
            if h.loss is not None
        ),
        start=0,
    )
