"""The Keras arguments every layer takes besides its own, and the weights they rule.

Every layer accepts, as in Keras:
- `input_shape` (the dims after the batch axis), `input_dim` (the features of each
  step: `input_shape=(None, input_dim)`), `input_length` (the time axis),
  `batch_input_shape` (with the batch axis first), `batch_size`: when the input shape
  is known the layer builds its weights at construction (None dims build as 1);
- `dtype`: the float dtype of the weights (`"float32"`, `"float64"`, `torch.float16`,
  ...), which is also the one the layer computes in;
- `trainable`: False freezes the weights (`requires_grad=False`);
- `activity_regularizer`: a penalty on the layer's outputs (see `maskwise.regularizers`);
- for each weight the layer names in `weight_names` (`kernel`, `bias`, `recurrent`,
  `embeddings`, ...): `<weight>_initializer`, `<weight>_regularizer`,
  `<weight>_constraint` (see `maskwise.initializers`, `regularizers`, `constraints`).

Any other argument the layer's signature does not declare is a `ConfigError` that
names the layer and lists the arguments it supports. A layer's signature shows these
arguments as `**keras_args` (so type checkers accept them); they never reach its body.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from .. import constraints, initializers, regularizers
from ..errors import ConfigError, format_error
from ..masked import Masked, fill_padding

SHAPE_ARGS = ("input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size")
COMMON_ARGS = (*SHAPE_ARGS, "dtype", "trainable", "activity_regularizer", "name")
RULES = ("initializer", "regularizer", "constraint")
FLOAT_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


@dataclass
class WeightRule:
    """What the constructor said about one weight (`kernel`, ...); None: the default."""

    initializer: Any = None
    regularizer: Any = None
    constraint: Any = None


@dataclass
class KerasArgs:
    """The Keras arguments a constructor got that its signature does not declare."""

    given: dict[str, Any] = field(default_factory=dict)
    """As given, for the layer's config (a dtype as its name)."""
    rules: dict[str, WeightRule] = field(default_factory=dict)

    def shape(self) -> list[int | None] | None:
        """The input dims after the batch axis, if the arguments say them:
        `batch_input_shape[1:]`, else `input_shape`, else `(input_length, input_dim)`,
        else `(input_length,)` (token ids)."""
        given = self.given
        length = given.get("input_length")
        if given.get("batch_input_shape") is not None:
            return list(given["batch_input_shape"])[1:]
        if given.get("input_shape") is not None:
            return list(given["input_shape"])
        if given.get("input_dim") is not None:
            return [length, given["input_dim"]]
        return None if length is None else [length]


def split_keras_args(
    layer_class: type, parameters: Mapping[str, inspect.Parameter], kwargs: dict[str, Any]
) -> KerasArgs:
    """Take out of `kwargs` the Keras arguments the layer's signature does not declare
    (checked and resolved); any other undeclared argument is a `ConfigError`, unless the
    signature takes `**kwargs` (a subclass passing them on to `Layer.__init__`, which
    refuses them with `refuse_unknown`)."""
    weight_args = {f"{w}_{rule}" for w in layer_class.weight_names for rule in RULES}  # type: ignore[attr-defined]
    open_ended = any(
        p.kind is inspect.Parameter.VAR_KEYWORD and name != "keras_args"
        for name, p in parameters.items()
    )
    args = KerasArgs()
    fixed = layer_class.keras_defaults_only  # type: ignore[attr-defined]
    for key in [k for k in kwargs if k not in parameters]:
        if key in fixed:
            _check_default(layer_class, key, kwargs.pop(key), fixed[key])
        elif key in COMMON_ARGS or key in weight_args:
            args.given[key] = kwargs.pop(key)
        elif not open_ended:
            refuse_unknown(layer_class, parameters, {key: kwargs[key]})
    for weight in layer_class.weight_names:  # type: ignore[attr-defined]
        args.rules[weight] = WeightRule(
            initializers.get(args.given.get(f"{weight}_initializer")),
            regularizers.get(args.given.get(f"{weight}_regularizer")),
            constraints.get(args.given.get(f"{weight}_constraint")),
        )
    if "dtype" in args.given:
        args.given["dtype"] = _dtype_name(layer_class, args.given["dtype"])
    trainable = args.given.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ConfigError(
            format_error(
                f"{layer_class.__name__} trainable must be True or False.",
                received=repr(trainable),
            )
        )
    return args


def refuse_unknown(
    layer_class: Any, parameters: Mapping[str, inspect.Parameter], unknown: dict[str, Any]
) -> None:
    """A `ConfigError` naming the layer and the first of `unknown`, listing the arguments
    the layer takes (its own, those of every layer, its weights' rules)."""
    key, value = next(iter(unknown.items()))
    weight_args = {f"{w}_{rule}" for w in layer_class.weight_names for rule in RULES}
    allowed = _declared(parameters) | set(COMMON_ARGS) | weight_args
    raise ConfigError(
        format_error(
            f"{layer_class.__name__} does not take the argument {key}=.",
            expected="one of " + ", ".join(sorted(allowed | set(layer_class.keras_defaults_only))),
            received=f"{key}={value!r}"[:100],
            fix="drop it or correct its name; the README's table of Keras arguments says "
            "which maskwise supports.",
        )
    )


def apply_keras_args(layer: Any, args: KerasArgs) -> None:
    """After the layer's own constructor: build it if the shape is known, then set the
    dtype, `trainable` and the activity penalty."""
    if "name" in args.given:
        layer.name = args.given["name"]
    shape = args.shape()
    if shape is not None:
        layer.keras_input_shape = shape
        layer.build_from_config_shape(shape)
    dtype = args.given.get("dtype")
    if dtype is not None:
        if layer.built:
            layer.to(FLOAT_DTYPES[dtype])
        else:
            layer.requested_dtype = FLOAT_DTYPES[dtype]
    if "trainable" in args.given:
        layer.trainable = args.given["trainable"]
    penalty = regularizers.get(args.given.get("activity_regularizer"))
    if penalty is not None:
        layer.activity_regularizer = penalty
        layer.register_forward_hook(_record_activity_penalty)


def _check_default(layer_class: type, key: str, value: Any, default: Any) -> None:
    if value == default:
        return
    raise ConfigError(
        format_error(
            f"{layer_class.__name__} does not support the Keras argument {key}={value!r}.",
            expected=f"{key}={default!r} (Keras's default) or nothing",
            received=f"{key}={value!r}",
            fix="drop it; the README's table of Keras arguments says why maskwise does not "
            "support it.",
        )
    )


def _declared(parameters: Mapping[str, inspect.Parameter]) -> set[str]:
    return {
        name
        for name, p in parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _dtype_name(layer_class: type, dtype: Any) -> str:
    for name, torch_dtype in FLOAT_DTYPES.items():
        if dtype in (name, torch_dtype):
            return name
    raise ConfigError(
        format_error(
            f"{layer_class.__name__} dtype {dtype!r} is not a float dtype maskwise layers "
            "compute in.",
            expected=f"one of {sorted(FLOAT_DTYPES)} (or the torch dtype)",
            received=repr(dtype),
            fix='for mixed precision, train with `fit(precision="bf16")`.'
            if isinstance(dtype, str) and dtype.startswith("mixed")
            else "pass a float dtype; integer inputs are cast to it.",
        )
    )


# ---------------------------------------------------------------------- weights
def make_weight(
    layer: Any, attr: str, shape: Sequence[int], default: Any, rule: str, transpose: bool = False
) -> nn.Parameter:
    """See `Layer.add_weight`."""
    given = layer.__dict__.get("_weight_rules", {}).get(rule)
    initializer = initializers.get(default)
    if given is not None and given.initializer is not None:
        initializer = given.initializer
    values = cast(Any, initializer)(tuple(int(d) for d in shape), torch.get_default_dtype())
    param = nn.Parameter(values.T.contiguous() if transpose else values)
    setattr(layer, attr, param)
    layer.__dict__.setdefault("_weight_layout", {})[attr] = (rule, transpose)
    return param


def _ruled_weights(layer: Any, what: str) -> list[tuple[Any, nn.Parameter, bool]]:
    """`(rule's regularizer or constraint, weight, transposed)` for each weight of
    `layer` whose rule sets `what`."""
    rules: dict[str, WeightRule] = layer.__dict__.get("_weight_rules", {})
    found = []
    for attr, (rule, transpose) in layer.__dict__.get("_weight_layout", {}).items():
        fn = getattr(rules.get(rule), what, None)
        param = getattr(layer, attr, None)
        if fn is not None and isinstance(param, nn.Parameter):
            found.append((fn, param, transpose))
    return found


def collect_losses(module: nn.Module) -> list[torch.Tensor]:
    """Keras's `losses`: every weight penalty of `module`'s layers (computed now), then
    the activity penalties of their last calls (of the calls in the last `one_pass`)."""
    found = []
    for layer in module.modules():
        for penalty, param, transpose in _ruled_weights(layer, "regularizer"):
            found.append(penalty(param.T if transpose else param))
        found.extend(layer.__dict__.get("_activity_penalties", []))
    return found


class _Pass:
    adding = False
    """Inside `one_pass`: the calls' activity penalties add up."""


@contextmanager
def one_pass(module: nn.Module) -> Iterator[None]:
    """One forward pass of `module`, as `fit` and `evaluate` run each batch: the
    penalties recorded before are forgotten, and those of the calls inside add up (a
    shared layer called twice counts twice, as in Keras). Outside such a pass each call
    of a layer replaces what it recorded, so repeated calls keep only the last."""
    for layer in module.modules():
        layer.__dict__.pop("_activity_penalties", None)
    previous, _Pass.adding = _Pass.adding, True
    try:
        yield
    finally:
        _Pass.adding = previous


@torch.no_grad()
def apply_constraints(module: nn.Module) -> None:
    """Replace each constrained trainable weight by its projection (Keras does it after
    each optimizer step), in Keras's layout."""
    for layer in module.modules():
        for constraint, param, transpose in _ruled_weights(layer, "constraint"):
            if param.requires_grad:
                projected = constraint(param.T if transpose else param)
                param.copy_(projected.T if transpose else projected)


def _record_activity_penalty(layer: Any, inputs: Any, output: Any) -> None:
    """Forward hook: the activity penalty of each output tensor, over its real steps
    only (padded steps count as zeros; Keras counts their outputs), divided by the batch
    size as in Keras."""
    outputs = output if isinstance(output, tuple) else (output,)
    if not _Pass.adding:
        layer.__dict__.pop("_activity_penalties", None)
    penalties = layer.__dict__.setdefault("_activity_penalties", [])
    for out in outputs:
        if isinstance(out, Masked):
            values = out.values if out.mask is None else fill_padding(out.values, out.mask)
        elif isinstance(out, torch.Tensor):
            values = out
        else:
            continue
        penalty = layer.activity_regularizer(values)
        penalties.append(penalty / values.shape[0] if values.dim() and len(values) else penalty)
