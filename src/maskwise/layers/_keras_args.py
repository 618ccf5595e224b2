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

A layer makes each weight with `add_weight` in Keras's shape; the weight may be stored
in another layout (a recurrent cell's are transposed, gates in PyTorch's order), which
its `Layout` records, so that the initializer draws, and the regularizer and the
constraint see, Keras's tensor.

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
    for key in [k for k in kwargs if k not in parameters]:
        if key in COMMON_ARGS or key in weight_args:
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
        args.given["dtype"] = dtype_name(layer_class.__name__, args.given["dtype"])
    trainable = args.given.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ConfigError(
            format_error(
                f"{layer_class.__name__} trainable must be True or False.",
                received=repr(trainable),
            )
        )
    return args


def refuse_extra_positional(
    layer_class: Any, parameters: Mapping[str, inspect.Parameter], args: Sequence[Any]
) -> None:
    """A `ConfigError` if `args` (the constructor's positional arguments, `self` left
    out) are more than the layer takes by position. A layer takes by position Keras's
    first arguments only, in Keras's order; the others (Keras's next ones included, as
    `kernel_initializer` after `Dense`'s `use_bias`) are keywords, so that a call in
    Keras's order fails here instead of giving an argument to the wrong parameter."""
    positional = [
        name
        for name, p in parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(args) <= len(positional):
        return
    keywords = [
        *(name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY and name != "name"),
        *(f"{w}_{rule}" for w in layer_class.weight_names for rule in RULES),
        "name",
    ]
    raise ConfigError(
        format_error(
            f"{layer_class.__name__} takes {len(positional)} argument(s) by position, "
            f"got {len(args)}.",
            expected=f"({', '.join(positional)}) by position, in Keras's order",
            received=f"argument {len(positional) + 1}: {args[len(positional)]!r}"[:100],
            fix="pass the others by keyword under Keras's names: "
            + ", ".join(f"{k}=" for k in keywords)
            + ", ...",
        )
    )


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
            expected="one of " + ", ".join(sorted(allowed)),
            received=f"{key}={value!r}"[:100],
            fix="drop it or correct its name; the table of Keras arguments in the guide "
            "'Coming from Keras' says which maskwise supports.",
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


def _declared(parameters: Mapping[str, inspect.Parameter]) -> set[str]:
    return {
        name
        for name, p in parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def dtype_name(owner: str, dtype: Any) -> str:
    """The name in `FLOAT_DTYPES` of `dtype` (a name or a torch dtype) given to `owner`
    (a layer, loss or metric class); anything else is a `ConfigError`.

    Example:
        >>> dtype_name("Dense", torch.float64)
        'float64'
    """
    for name, torch_dtype in FLOAT_DTYPES.items():
        if dtype in (name, torch_dtype):
            return name
    raise ConfigError(
        format_error(
            f"{owner} dtype {dtype!r} is not a float dtype maskwise computes in.",
            expected=f"one of {sorted(FLOAT_DTYPES)} (or the torch dtype)",
            received=repr(dtype),
            fix='for mixed precision, train with `fit(precision="bf16")`.'
            if isinstance(dtype, str) and dtype.startswith("mixed")
            else "pass a float dtype; integer inputs are cast to it.",
        )
    )


# ---------------------------------------------------------------------- weights
@dataclass(frozen=True)
class Layout:
    """How the parameters `attrs` of a layer hold one weight in Keras's layout, which
    the weight's rules see: Keras's tensor is the parameter (or the parameters stacked
    on a new first axis: GRU's bias `(2, 3*units)`), each transposed if `transpose`
    (PyTorch's `(out, in)`), with the gates of its last axis stored in `gates` order
    (stored gate j is Keras's gate `gates[j]`: GRU's r, z, n are Keras's z, r, h)."""

    rule: str
    attrs: tuple[str, ...]
    transpose: bool = False
    gates: tuple[int, ...] | None = None

    def to_keras(self, layer: Any) -> torch.Tensor:
        """The weight in Keras's layout (differentiable: penalties train it)."""
        parts = [getattr(layer, attr) for attr in self.attrs]
        parts = [p.T if self.transpose else p for p in parts]
        values = parts[0] if len(parts) == 1 else torch.stack(parts)
        if self.gates is None:
            return values
        return _gates_in(values, [self.gates.index(k) for k in range(len(self.gates))])

    def from_keras(self, values: torch.Tensor) -> list[torch.Tensor]:
        """The stored parameters for a weight in Keras's layout, one per attr."""
        if self.gates is not None:
            values = _gates_in(values, list(self.gates))
        parts = list(values.unbind(0)) if len(self.attrs) > 1 else [values]
        return [(p.T if self.transpose else p).contiguous() for p in parts]


def _gates_in(values: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """The last axis cut into `len(order)` gates, put in `order`."""
    chunks = values.chunk(len(order), dim=-1)
    return torch.cat([chunks[k] for k in order], dim=-1)


def rule_initializer(layer: Any, rule: str, default: Any) -> Any:
    """The initializer of the weight `rule`: the constructor's `<rule>_initializer`,
    else `default` (the layer's Keras default)."""
    given = layer.__dict__.get("_weight_rules", {}).get(rule)
    if given is not None and given.initializer is not None:
        return given.initializer
    return initializers.get(default)


def make_weight(
    layer: Any,
    attrs: str | tuple[str, ...],
    shape: Sequence[int],
    default: Any,
    rule: str,
    transpose: bool = False,
    gates: tuple[int, ...] | None = None,
    initializer: Any = None,
) -> list[nn.Parameter]:
    """See `Layer.add_weight`."""
    layout = Layout(rule, (attrs,) if isinstance(attrs, str) else attrs, transpose, gates)
    draw = initializer or rule_initializer(layer, rule, default)
    values = cast(Any, draw)(tuple(int(d) for d in shape), torch.get_default_dtype())
    params = [nn.Parameter(part) for part in layout.from_keras(values)]
    for attr, param in zip(layout.attrs, params, strict=True):
        setattr(layer, attr, param)
    layer.__dict__.setdefault("_weight_layout", {})[layout.attrs] = layout
    return params


@dataclass(frozen=True)
class KerasWeight:
    """One weight as Keras lists it in `get_weights`: the `state_dict` entries that hold
    it (several for GRU's stacked bias), in the layout of `layout` (None: stored as
    Keras stores it)."""

    name: str
    keys: tuple[str, ...]
    layer: nn.Module
    layout: Layout | None

    def value(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weight in Keras's layout."""
        return state[self.keys[0]] if self.layout is None else self.layout.to_keras(self.layer)

    def entries(self, values: torch.Tensor) -> dict[str, torch.Tensor]:
        """The `state_dict` entries for the weight given in Keras's layout."""
        parts = [values] if self.layout is None else self.layout.from_keras(values)
        return dict(zip(self.keys, parts, strict=True))


def keras_weights(module: nn.Module) -> list[KerasWeight]:
    """`module`'s weights and float state in `state_dict` order, each once, as Keras
    lists them: a recurrent kernel is one weight `(in, gates*units)` in Keras's gate
    order, GRU's two biases one `(2, 3*units)`.

    Example:
        >>> from maskwise.layers import GRU
        >>> gru = GRU(3, input_shape=(None, 2))
        >>> [(w.name, tuple(w.value(gru.state_dict()).shape)) for w in keras_weights(gru)]
        [('cell.kernel', (2, 9)), ('cell.recurrent', (3, 9)), ('cell.bias', (2, 9))]
    """
    modules = dict(module.named_modules())
    found: list[KerasWeight] = []
    claimed: set[str] = set()
    for key in module.state_dict():
        if key in claimed:
            continue
        prefix, _, attr = key.rpartition(".")
        layer = modules[prefix]
        layouts = layer.__dict__.get("_weight_layout", {}).values()
        layout = next((lay for lay in layouts if attr in lay.attrs), None)
        if layout is None:
            found.append(KerasWeight(key, (key,), layer, None))
            continue
        keys = tuple(f"{prefix}.{a}" if prefix else a for a in layout.attrs)
        claimed.update(keys)
        name = f"{prefix}.{layout.rule}" if prefix else layout.rule
        found.append(KerasWeight(name, keys, layer, layout))
    return found


@torch.no_grad()
def load_keras_weight(layer: Any, rule: str, values: torch.Tensor) -> None:
    """Copy a weight given in Keras's layout (`kernel (in, units)`, ...) into the
    built parameters of `layer` that hold the weight `rule`, in their layout."""
    for layout in layer.__dict__.get("_weight_layout", {}).values():
        if layout.rule == rule:
            params = [getattr(layer, attr) for attr in layout.attrs]
            for param, part in zip(params, layout.from_keras(values), strict=True):
                param.copy_(part)


def given_rules(layer: Any) -> dict[str, Any]:
    """The `<weight>_initializer`, `_regularizer` and `_constraint` arguments `layer`'s
    constructor got (resolved), for the layer that makes those weights (an `LSTM`'s
    cell)."""
    rules: dict[str, WeightRule] = layer.__dict__.get("_weight_rules", {})
    return {
        f"{weight}_{what}": getattr(rule, what)
        for weight, rule in rules.items()
        for what in RULES
        if getattr(rule, what) is not None
    }


def _ruled_weights(layer: Any, what: str) -> list[tuple[Any, Layout]]:
    """`(rule's regularizer or constraint, layout)` for each built weight of `layer`
    whose rule sets `what`. `fit` asks at every step, mostly of weights without one:
    whether a weight is built (a lookup per tensor) is asked only of those with one."""
    rules: dict[str, WeightRule] = layer.__dict__.get("_weight_rules", {})
    found = []
    for layout in layer.__dict__.get("_weight_layout", {}).values():
        fn = getattr(rules.get(layout.rule), what, None)
        if fn is not None and all(
            isinstance(getattr(layer, a, None), nn.Parameter) for a in layout.attrs
        ):
            found.append((fn, layout))
    return found


def collect_losses(module: nn.Module) -> list[torch.Tensor]:
    """Keras's `losses`: every weight penalty of `module`'s layers (computed now), then
    the activity penalties of their last calls (of the calls in the last `one_pass`)."""
    found = []
    for layer in module.modules():
        for penalty, layout in _ruled_weights(layer, "regularizer"):
            found.append(penalty(layout.to_keras(layer)))
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
        for constraint, layout in _ruled_weights(layer, "constraint"):
            params = [getattr(layer, attr) for attr in layout.attrs]
            if all(param.requires_grad for param in params):
                projected = layout.from_keras(constraint(layout.to_keras(layer)))
                for param, values in zip(params, projected, strict=True):
                    param.copy_(values)


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
