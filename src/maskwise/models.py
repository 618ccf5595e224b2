"""Containers: `Sequential`, `Graph` and `Module`. They route `Masked` values; no
masking logic.

A plain `torch.nn.Module` cannot slip a mask away inside a container: the per-step
modules PyTorch users reach for (activations, `Linear`, `Dropout`, `LayerNorm`,
`Identity`) are wrapped with the pass-through rule, because they act on each step
alone; any other plain module is refused with a message that shows how to give it a
mask rule (`Lambda(module, mask=...)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, MaskwiseTypeError, format_error
from .layers.base import Layer
from .layers.core import Lambda
from .masked import Masked, as_masked
from .training import TrainingMixin

PER_STEP_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Dropout,
    nn.LayerNorm,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Mish,
)


def as_layer(module: nn.Module, position: int | None = None) -> nn.Module:
    """The module itself if it is mask-aware, a per-step `Lambda` if it is a known
    per-step PyTorch module, else a `MaskwiseTypeError` that shows the fix."""
    if isinstance(module, Layer | Module):
        return module
    if isinstance(module, PER_STEP_MODULES) and not (
        isinstance(module, nn.Softmax | nn.LogSoftmax) and module.dim not in (-1, None)
    ):
        return Lambda(module, name=type(module).__name__.lower())
    where = "" if position is None else f" at position {position}"
    hint = ""
    if isinstance(module, nn.RNNBase):
        hint = f" Use maskwise.layers.{type(module).__name__} instead: it reads the mask."
    raise MaskwiseTypeError(
        format_error(
            f"A plain torch.nn.Module `{type(module).__name__}`{where} cannot take a mask: "
            "maskwise does not know what it does to the time axis." + hint,
            expected="a maskwise layer, or a per-step module (Linear, Dropout, activations)",
            received=repr(module)[:100],
            fix=f"wrap it with its mask rule: `Lambda({type(module).__name__}(...), "
            "mask=lambda inputs, mask: ...)`, or `mask='drop'` if its output has no time axis.",
        )
    )


class Module(TrainingMixin, nn.Module):
    """Base for your own models: compose maskwise layers in `forward`, freely.

    Use it for several inputs and merges (seed 003). It adds the training API
    (`compile`, `fit`, `evaluate`, `predict`, `save`) to a plain `nn.Module`.

    Example:
        >>> class Tagger(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embed = layers.Embedding(100, 8, mask_zero=True)
        ...         self.out = layers.Dense(3)
        ...     def forward(self, tokens):
        ...         return self.out(self.embed(tokens))
    """


class Container(TrainingMixin, Layer):
    """Base of `Sequential` and `Graph`: a layer that only routes its layers' values.

    It has no weights of its own; its layers build themselves. It records the input
    dims (after the batch axis) of its first call as `build_shape`, as every layer does.
    """

    def record_input_shape(self, trailing: Any) -> None:
        if not self.built:
            self.build_shape = trailing
            self.built = True

    def build_from_config_shape(self, trailing: Any) -> None:
        self.build_shape = trailing
        self.built = trailing is not None


class Sequential(Container):
    """A stack of layers, each fed the previous one's `Masked` output.

    Calling it on a padded tensor (no mask), an array, or a `Masked` returns a `Masked`.

    Example:
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(2)])
        >>> model(torch.zeros(2, 4, 3)).mask.any().item()
        False

    Args:
        layers: maskwise layers (or per-step PyTorch modules, wrapped automatically).
        name: model name.
    """

    def __init__(self, layers: Iterable[nn.Module] = (), name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = nn.ModuleList(as_layer(m, i) for i, m in enumerate(layers))
        self._config["layers"] = list(self.layers)

    def add(self, layer: nn.Module) -> None:
        """Append a layer (Keras's `Sequential.add`)."""
        self.layers.append(as_layer(layer, len(self.layers)))
        self._config["layers"] = list(self.layers)

    def forward(self, inputs: Any, mask: torch.Tensor | None = None) -> Masked:
        x = as_masked(inputs, mask)
        self.record_input_shape(list(x.values.shape[1:]))
        for layer in self.layers:
            x = _checked_output(layer, layer(x), "Sequential")
        return x


def _checked_output(layer: nn.Module, output: Any, container: str) -> Masked:
    """`output` if it is a `Masked`, else a `MaskwiseTypeError` naming the layer."""
    if isinstance(output, Masked):
        return output
    raise MaskwiseTypeError(
        format_error(
            f"Layer {getattr(layer, 'name', type(layer).__name__)!r} returned a "
            f"{type(output).__name__}, not a Masked; {container} passes one value with its "
            "mask from layer to layer.",
            fix="return a Masked from custom layers (return_state=True belongs in a Module, "
            f"not a {container}).",
        )
    )


Node = tuple[str, nn.Module, list[str]]


class Graph(Container):
    """A graph of layers with several inputs and outputs (what `from_keras` builds for
    a Keras functional model).

    Each node `(name, layer, input_names)` calls `layer` on the `Masked` values named
    (one value, or a list of them for a merge) and names its output `name`. Calling
    the graph routes the values in topological order; each mask travels with its
    values, so the graph holds no masking logic. The graph is checked when built:
    unknown names, cycles, and nodes or inputs that reach no output are errors.

    Example:
        >>> g = Graph(
        ...     inputs=["a", "b"],
        ...     nodes=[
        ...         ("cat", layers.Concatenate(), ["a", "b"]),
        ...         ("out", layers.Dense(2), ["cat"]),
        ...     ],
        ...     outputs="out",
        ... )
        >>> g(torch.ones(2, 3, 4), torch.ones(2, 3, 1)).values.shape
        torch.Size([2, 3, 2])

    Args:
        inputs: the names of the inputs, in the order the graph is called with.
        nodes: `(name, layer, input_names)` triples, in any order; a layer may appear
            in one node only (call a shared layer in a `Module` instead).
        outputs: an output name (the graph returns a `Masked`) or a list of names (it
            returns a tuple of `Masked`, in that order).
        name: model name.
    Inputs `(batch, time, ...)` each, as tensors, arrays or `Masked`.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        nodes: Sequence[Sequence[Any]],
        outputs: str | Sequence[str],
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.input_names = _names("inputs", inputs)
        self.output_names = _names("outputs", [outputs] if isinstance(outputs, str) else outputs)
        self.single_output = isinstance(outputs, str)
        parsed = [_parse_node(i, node) for i, node in enumerate(nodes)]
        self.node_names = [n for n, _, _ in parsed]
        self.node_inputs = [ins for _, _, ins in parsed]
        self.layers = nn.ModuleList(layer for _, layer, _ in parsed)
        self.order = _validate_graph(self.input_names, parsed, self.output_names)
        self._config["nodes"] = [list(node) for node in parsed]

    def forward(self, *inputs: Any) -> Masked | tuple[Masked, ...]:  # type: ignore[override]
        given = self._named_inputs(inputs)
        self.record_input_shape([list(given[n].values.shape[1:]) for n in self.input_names])
        values = dict(given)
        for i in self.order:
            args = [values[n] for n in self.node_inputs[i]]
            layer = self.layers[i]
            values[self.node_names[i]] = _checked_output(
                layer, layer(args[0] if len(args) == 1 else args), "Graph"
            )
        if self.single_output:
            return values[self.output_names[0]]
        return tuple(values[n] for n in self.output_names)

    def _named_inputs(self, inputs: tuple[Any, ...]) -> dict[str, Masked]:
        expected = len(self.input_names)
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            missing = sorted(set(self.input_names) - set(inputs[0]))
            if missing:
                raise ConfigError(
                    format_error(
                        f"Graph {self.name!r} is missing inputs {missing}.",
                        expected=f"a dict with keys {self.input_names}",
                        received=f"keys {sorted(inputs[0])}",
                    )
                )
            return {n: as_masked(inputs[0][n]) for n in self.input_names}
        if len(inputs) == 1 and isinstance(inputs[0], list | tuple) and expected > 1:
            inputs = tuple(inputs[0])
        if len(inputs) != expected:
            raise ConfigError(
                format_error(
                    f"Graph {self.name!r} takes {expected} input(s): {self.input_names}.",
                    expected=f"{expected} values (or one list or dict of them)",
                    received=f"{len(inputs)} values",
                )
            )
        return {n: as_masked(x) for n, x in zip(self.input_names, inputs, strict=True)}


def _names(what: str, names: Any) -> list[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            format_error(
                f"Graph {what} must be a list of names.",
                expected='e.g. ["features", "tokens"]',
                received=repr(names)[:80],
            )
        )
    if len(set(names)) != len(names):
        raise ConfigError(
            format_error(f"Graph {what} repeat a name.", received=repr(list(names))[:120])
        )
    return list(names)


def _parse_node(position: int, node: Any) -> Node:
    if (
        not isinstance(node, list | tuple)
        or len(node) != 3
        or not isinstance(node[0], str)
        or not isinstance(node[1], nn.Module)
    ):
        raise ConfigError(
            format_error(
                f"Graph node {position} is not a (name, layer, input_names) triple.",
                expected='e.g. ("dense", layers.Dense(4), ["features"])',
                received=repr(node)[:100],
            )
        )
    name, layer, inputs = node
    inputs = [inputs] if isinstance(inputs, str) else inputs
    return name, as_layer(layer, position), _names(f"node {name!r} inputs", inputs)


def _validate_graph(inputs: list[str], nodes: list[Node], outputs: list[str]) -> list[int]:
    """The nodes' indices in topological order, or a `ConfigError` naming the problem."""
    names = [n for n, _, _ in nodes]
    duplicates = sorted({n for n in inputs + names if (inputs + names).count(n) > 1})
    if duplicates:
        raise ConfigError(
            format_error(
                f"Graph names {duplicates} are used more than once.",
                fix="give every input and every node its own name.",
            )
        )
    layer_ids = [id(layer) for _, layer, _ in nodes]
    shared = sorted({n for n, layer, _ in nodes if layer_ids.count(id(layer)) > 1})
    if shared:
        raise ConfigError(
            format_error(
                f"Graph nodes {shared} share one layer object.",
                expected="one layer per node",
                fix="call a shared layer from the forward of a maskwise Module.",
            )
        )
    known = set(inputs) | set(names)
    for node_name, _, node_inputs in nodes:
        unknown = [n for n in node_inputs if n not in known]
        if unknown:
            raise ConfigError(
                format_error(
                    f"Graph node {node_name!r} reads unknown names {unknown}.",
                    expected=f"names of inputs or nodes: {sorted(known)}",
                )
            )
    unknown_outputs = [n for n in outputs if n not in known]
    if unknown_outputs:
        raise ConfigError(
            format_error(
                f"Graph outputs {unknown_outputs} are not inputs or nodes.",
                expected=f"names among {sorted(known)}",
            )
        )
    index = {n: i for i, n in enumerate(names)}
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(nodes[index[n]][2] if n in index else [])
    unused = [n for n in inputs + names if n not in needed]
    if unused:
        raise ConfigError(
            format_error(
                f"Graph inputs or nodes {unused} reach no output.",
                fix="remove them, or add them to the graph's outputs.",
            )
        )
    order: list[int] = []
    ready = set(inputs)
    pending = list(range(len(nodes)))
    while pending:
        runnable = [i for i in pending if all(n in ready for n in nodes[i][2])]
        if not runnable:
            raise ConfigError(
                format_error(
                    f"Graph nodes {[names[i] for i in pending]} form or follow a cycle.",
                    fix="a node may only read inputs or nodes computed before it.",
                )
            )
        order.extend(runnable)
        ready.update(names[i] for i in runnable)
        pending = [i for i in pending if i not in runnable]
    return order
