"""The functional API's recording side: `Input`, symbolic tensors, and the nodes that
calling a layer on them records.

`Input(shape=(None, 5))` stands for a batch not seen yet. Calling a layer (any maskwise
layer, a `Sequential`, a `Model`) on it records a `Node`: the layer, the arguments it
was called with (symbolic tensors and constants, in any list, tuple or dict) and the
symbolic tensors it returns, one per tensor of its output (`return_state=True` gives
three). `maskwise.Model(inputs, outputs)` then runs the nodes in order on real values
(`run_nodes`); each mask travels with its values, so nothing here knows about masks.

Shapes are found by example, as Keras's torch backend does with meta tensors: every
symbolic tensor holds two small example values (batch 1; an unknown dim is
`EXAMPLE_SIZES` steps long, 12 in the first and 13 in the second), and a call runs the
layer on them (evaluation mode, no gradients). An output dim that differs between the
two is unknown (None). The first example call builds the layer's weights, so a model
has its weights when it is made.

Example:
    >>> tokens = Input(shape=(None,), dtype="int64")
    >>> x = layers.Embedding(10, 4, mask_zero=True)(tokens)
    >>> x.shape, x.masked
    ((None, None, 4), True)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, MaskwiseTypeError, format_error
from .masked import Masked, refuse_tensor_habits

EXAMPLE_SIZES = (12, 13)
"""The lengths an unknown dim (the time axis of `Input(shape=(None, ...))`) takes in
the two example runs; dims that differ between them come out unknown."""

Shape = tuple[int | None, ...]


class SymbolicTensor:
    """A tensor of a model being built: its shape `(None, ...)` (None = unknown,
    the batch always), dtype, whether it carries a mask, and the node that made it.

    It is what `Input` and a layer called on symbolic tensors return; pass it to
    more layers, then to `Model(inputs, outputs)`. It holds no data: PyTorch
    functions refuse it (wrap them in `layers.Lambda`).

    Example:
        >>> features = Input(shape=(None, 5), name="features")
        >>> layers.Masking(0.0, name="masking")(features)
        <SymbolicTensor 'masking' shape=(None, None, 5) dtype=float32, masked>
        >>> torch.relu(features)
        Traceback (most recent call last):
        ...
        maskwise.errors.MaskwiseTypeError: The PyTorch function `relu` got a symbolic tensor ...
    """

    def __init__(
        self,
        shape: Shape | None,
        dtype: torch.dtype | None,
        masked: bool | None,
        name: str,
        node: Node | None = None,
        index: int = 0,
        examples: tuple[Any, Any] | None = None,
    ) -> None:
        self.shape = shape
        self.dtype = dtype
        self.masked = masked
        self.name = name
        self.node = node
        self.index = index
        self.examples = examples

    def __repr__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        mask = ", masked" if self.masked else ""
        return f"<SymbolicTensor {self.name!r} shape={self.shape} dtype={dtype}{mask}>"

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", str(func))
        raise MaskwiseTypeError(
            format_error(
                f"The PyTorch function `{name}` got a symbolic tensor (from maskwise.Input): "
                "a plain torch module or function was called on it, so maskwise cannot "
                "record it in the model or say what it does to the mask.",
                expected="a maskwise layer called on the symbolic tensor",
                received=f"torch `{name}` on {cls.__name__}",
                fix="use the maskwise layer (layers.Dense, layers.Activation, ...) or wrap "
                "the module or function: `layers.Lambda(nn.Linear(4, 2))(x)` (per step), "
                "`layers.Lambda(fn, mask=lambda inputs, mask: ...)` otherwise.",
            )
        )


def _symbolic_advice(use: str, name: str) -> str:
    if use == "index":
        what, fix = (
            "`x[...]`",
            "crop time with its mask rule: `layers.Lambda(lambda t: t[:, N:], "
            "mask=lambda inputs, mask: mask[:, N:])` or `layers.Cropping1D`; for the last "
            "real step, an RNN with `return_sequences=False`.",
        )
    elif use == "operator":
        what, fix = (
            f"`{name}`",
            "`layers.Add()([a, b])` (Subtract, Multiply, Average, ...) between two "
            "tensors; with a constant, `layers.Lambda(lambda t: t * 2)`.",
        )
    else:
        what, fix = (
            f"`.{name}`",
            f"`layers.Lambda(lambda t: t.{name}(...))` for a per-step operation (with "
            "`mask=` if it changes the time axis), or the maskwise layer "
            "(`GlobalAveragePooling1D` for a mean over time).",
        )
    return format_error(
        f"A symbolic tensor (from maskwise.Input) does not take {what}: maskwise would "
        "not record it in the model or know what it does to the mask.",
        fix=fix,
    )


refuse_tensor_habits(SymbolicTensor, _symbolic_advice)


@dataclass(eq=False)
class Node:
    """One recorded call: `layer(*args, **kwargs)` returned `outputs` (a
    `SymbolicTensor`, or a list, tuple or dict of them, as the layer's output)."""

    layer: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: Any = None
    inputs: list[SymbolicTensor] = field(default_factory=list)
    """The symbolic tensors among the arguments, in order."""


def Input(
    shape: Sequence[int | None] | None = None,
    batch_size: int | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    name: str | None = None,
    batch_shape: Sequence[int | None] | None = None,
) -> SymbolicTensor:
    """A model input (Keras's `keras.Input`): what `Model(inputs, outputs)` is called on.

    Example:
        >>> features = Input(shape=(None, 5), name="features")  # (batch, time, 5)
        >>> features
        <SymbolicTensor 'features' shape=(None, None, 5) dtype=float32>
        >>> model = Model(features, layers.Dense(2)(layers.Masking(0.0)(features)))
        >>> x = torch.zeros(2, 4, 5); x[0, :3] = 1; x[1, :1] = 1  # 3 and 1 real steps
        >>> model(x).mask.tolist()
        [[True, True, True, False], [True, False, False, False]]

    Args:
        shape: the dims after the batch axis, None where any size goes (the time
            axis): `(None, 5)` for `(batch, time, 5)` features, `(None,)` for tokens.
        batch_size: accepted for Keras code; the batch size is never fixed.
        dtype: `"float32"` (default: PyTorch's default float), `"int64"`, `"bool"`,
            ... or a `torch.dtype`.
        name: the input's name (the key of a dict of inputs); default `input`,
            `input_1`, ...
        batch_shape: `(batch, *shape)` instead of `shape`.
    """
    from .layers.base import unique_layer_name

    if (shape is None) == (batch_shape is None):
        raise ConfigError(
            format_error(
                "Input needs its shape: `shape` (without the batch axis) or `batch_shape`.",
                expected="e.g. Input(shape=(None, 5)) for (batch, time, 5) values",
                received=f"shape={shape!r}, batch_shape={batch_shape!r}",
            )
        )
    dims = tuple(shape) if shape is not None else tuple(batch_shape or ())[1:]
    if not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in dims
    ):
        raise ConfigError(
            format_error(
                "Input shape dims must be sizes (ints >= 0) or None.",
                expected="e.g. (None, 5): any number of steps of 5 features",
                received=repr(shape if shape is not None else batch_shape),
            )
        )
    resolved = _dtype(dtype)
    examples = (
        _example(dims, resolved, EXAMPLE_SIZES[0]),
        _example(dims, resolved, EXAMPLE_SIZES[1]),
    )
    return SymbolicTensor(
        (None, *dims), resolved, False, name or unique_layer_name("Input"), examples=examples
    )


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigError(
            format_error(
                f"Unknown Input dtype {dtype!r}.",
                expected='a torch dtype name: "float32", "int64", "int32", "bool", ...',
                received=repr(dtype),
            )
        )
    return resolved


def _example(dims: Shape, dtype: torch.dtype, unknown: int) -> torch.Tensor:
    """Batch-1 values for the example runs: token 0 (in range of every embedding),
    True, or 1.0 (a real step for `Masking(0.0)`)."""
    size = (1, *(unknown if d is None else d for d in dims))
    if dtype == torch.bool or dtype.is_floating_point or dtype.is_complex:
        return torch.ones(size, dtype=dtype)
    return torch.zeros(size, dtype=dtype)


# ---------------------------------------------------------------------- structures
def map_structure(struct: Any, fn: Callable[[Any], Any]) -> Any:
    """`struct` with `fn` applied to each leaf (lists, tuples and dicts are walked)."""
    if isinstance(struct, list | tuple):
        return type(struct)(map_structure(x, fn) for x in struct)
    if isinstance(struct, dict):
        return {k: map_structure(v, fn) for k, v in struct.items()}
    return fn(struct)


def symbols_in(struct: Any) -> list[SymbolicTensor]:
    """The symbolic tensors in `struct`, in order."""
    found: list[SymbolicTensor] = []
    map_structure(struct, lambda x: found.append(x) if isinstance(x, SymbolicTensor) else None)
    return found


def has_symbols(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call's arguments hold a symbolic tensor (checked at every layer call:
    the top level and one list deep, where inputs are passed)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, SymbolicTensor):
            return True
        if isinstance(value, list | tuple) and any(isinstance(v, SymbolicTensor) for v in value):
            return True
    return False


def _leaves(output: Any) -> list[Any]:
    """The tensors (`Masked` or plain) of a layer's output, in order."""
    if isinstance(output, Masked | torch.Tensor):
        return [output]
    if isinstance(output, list | tuple):
        return [leaf for x in output for leaf in _leaves(x)]
    if isinstance(output, dict):
        return [leaf for x in output.values() for leaf in _leaves(x)]
    raise MaskwiseTypeError(
        format_error(
            f"A layer in a functional model returned a {type(output).__name__}.",
            expected="a Masked, a tensor, or a list, tuple or dict of them",
            received=repr(output)[:80],
        )
    )


# ---------------------------------------------------------------------- recording
def record_call(layer: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Record `layer(*args, **kwargs)` on symbolic tensors: run it on their examples
    and return symbolic tensors shaped like its output."""
    name = getattr(layer, "name", type(layer).__name__)
    runs = [_example_call(layer, args, kwargs, which) for which in range(len(EXAMPLE_SIZES))]
    node = Node(layer, args, kwargs, inputs=symbols_in((args, kwargs)))
    leaves = [_leaves(run) for run in runs]
    symbols = [
        SymbolicTensor(
            _shape(first, second),
            _values(first).dtype,
            isinstance(first, Masked) and first.mask is not None,
            name if len(leaves[0]) == 1 else f"{name}:{i}",
            node,
            i,
            (first, second),
        )
        for i, (first, second) in enumerate(zip(*leaves, strict=True))
    ]
    node.outputs = _rebuild(runs[0], iter(symbols))
    return node.outputs


def _rebuild(output: Any, leaves: Iterator[Any]) -> Any:
    """`output`'s structure with its tensors replaced by the next `leaves`."""
    if isinstance(output, Masked | torch.Tensor | SymbolicTensor):
        return next(leaves)
    if isinstance(output, list | tuple):
        return type(output)(_rebuild(x, leaves) for x in output)
    return {k: _rebuild(v, leaves) for k, v in output.items()}


def _example_call(
    layer: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], which: int
) -> Any:
    def example(x: Any) -> Any:
        if isinstance(x, SymbolicTensor):
            if x.examples is None:
                raise ConfigError(
                    format_error(
                        f"Symbolic tensor {x.name!r} has no shape to call a layer on.",
                        fix="start the model from maskwise.Input(shape=...).",
                    )
                )
            return x.examples[which]
        return x

    with _evaluation(layer), torch.no_grad():
        return layer(*map_structure(args, example), **map_structure(kwargs, example))


@contextmanager
def _evaluation(layer: nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout, no running statistics updated) for the example
    runs; each submodule's mode is restored after."""
    modes = [(m, m.training) for m in layer.modules()]
    layer.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _values(x: Any) -> torch.Tensor:
    return x.values if isinstance(x, Masked) else x


def _shape(first: Any, second: Any) -> Shape:
    a, b = _values(first).shape, _values(second).shape
    if len(a) != len(b):
        return (None,) * len(a)
    return (None, *(x if x == y else None for x, y in zip(a[1:], b[1:], strict=True)))


# ---------------------------------------------------------------------- running
def topological_nodes(outputs: list[SymbolicTensor], inputs: list[SymbolicTensor]) -> list[Node]:
    """The nodes that compute `outputs` from `inputs`, each after the nodes it reads;
    a `ConfigError` when an output needs a tensor that is not among `inputs`."""
    given = {id(x) for x in inputs}
    order: list[Node] = []
    seen: set[int] = set()

    def visit(tensor: SymbolicTensor) -> None:
        if id(tensor) in given:
            return
        node = tensor.node
        if node is None:
            raise ConfigError(
                format_error(
                    f"The model's outputs need the input {tensor.name!r}, which is not "
                    "among its inputs.",
                    expected=f"inputs including {tensor.name!r}",
                    received=f"inputs {[x.name for x in inputs]}",
                    fix="add it to Model(inputs=[...]).",
                )
            )
        if id(node) in seen:
            return
        seen.add(id(node))
        for x in node.inputs:
            visit(x)
        order.append(node)

    for tensor in outputs:
        visit(tensor)
    return order


def run_nodes(
    nodes: Sequence[Node],
    inputs: Sequence[SymbolicTensor],
    values: Sequence[Any],
    outputs: Any,
    check: Callable[[nn.Module, Any], Any],
) -> Any:
    """Run `nodes` on real `values` for `inputs`; `outputs`' structure, filled in.

    `check(layer, output)` sees each layer's output first (and may refuse it)."""
    known: dict[int, Any] = {id(x): v for x, v in zip(inputs, values, strict=True)}

    def value(x: Any) -> Any:
        return known[id(x)] if isinstance(x, SymbolicTensor) else x

    for node in nodes:
        out = check(
            node.layer,
            node.layer(*map_structure(node.args, value), **map_structure(node.kwargs, value)),
        )
        for symbol, result in zip(symbols_in(node.outputs), _match(node.outputs, out), strict=True):
            known[id(symbol)] = result
    return map_structure(outputs, value)


def _match(struct: Any, output: Any) -> list[Any]:
    """The parts of a layer's `output` at the places of `struct`'s symbolic tensors."""
    if isinstance(struct, SymbolicTensor):
        return [output]
    if isinstance(struct, dict):
        return [leaf for k, v in struct.items() for leaf in _match(v, output[k])]
    return [leaf for s, o in zip(struct, output, strict=True) for leaf in _match(s, o)]


# ---------------------------------------------------------------------- config
def graph_config(
    inputs: Any, nodes: Sequence[Node], outputs: Any, layers: Sequence[nn.Module]
) -> dict[str, Any]:
    """The JSON description of a graph (`inputs` and `outputs` as given to `Model`);
    layers are named by their index in `layers`, tensors by `[node, index]` (node
    -1: the inputs)."""
    position = {id(layer): i for i, layer in enumerate(layers)}
    given = symbols_in(inputs)
    refs: dict[int, list[int]] = {id(x): [-1, i] for i, x in enumerate(given)}
    described = []
    for n, node in enumerate(nodes):
        for i, x in enumerate(symbols_in(node.outputs)):
            refs[id(x)] = [n, i]
        described.append(
            {
                "layer": position[id(node.layer)],
                "args": _to_json(node.args, refs),
                "kwargs": _to_json(node.kwargs, refs),
                "outputs": _to_json(node.outputs, None),
            }
        )
    return {
        "inputs": _to_json(inputs, None),
        "nodes": described,
        "outputs": _to_json(outputs, refs),
    }


def graph_from_config(config: dict[str, Any], layers: Sequence[nn.Module]) -> tuple[Any, Any]:
    """`(inputs, outputs)` as symbolic tensors, with the nodes of `graph_config`'s
    description calling `layers`."""
    tensors: dict[tuple[int, int], SymbolicTensor] = {}

    def made(n: int, node: Node | None) -> Callable[[dict[str, Any]], SymbolicTensor]:
        """Makes the tensors described for node `n` (-1: the inputs), in order."""
        counter = itertools.count()

        def make(meta: dict[str, Any]) -> SymbolicTensor:
            index = next(counter)
            if node is None:
                x = Input(shape=meta["shape"][1:], dtype=meta["dtype"], name=meta["name"])
            else:
                shape = None if meta["shape"] is None else tuple(meta["shape"])
                dtype = None if meta["dtype"] is None else _dtype(meta["dtype"])
                x = SymbolicTensor(shape, dtype, meta["masked"], meta["name"], node, index)
            tensors[(n, index)] = x
            return x

        return make

    def ref(position: list[int]) -> SymbolicTensor:
        return tensors[(position[0], position[1])]

    inputs = _from_json(config["inputs"], made(-1, None))
    for n, described in enumerate(config["nodes"]):
        node = Node(
            layers[described["layer"]],
            tuple(_from_json(described["args"], ref)),
            _from_json(described["kwargs"], ref),
        )
        node.inputs = symbols_in((node.args, node.kwargs))
        node.outputs = _from_json(described["outputs"], made(n, node))
    return inputs, _from_json(config["outputs"], ref)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _to_json(struct: Any, refs: dict[int, list[int]] | None) -> Any:
    """`struct` as JSON: a symbolic tensor is `{"tensor": ref}` (with `refs`) or its
    description (without); a tuple is `{"tuple": [...]}`."""
    if isinstance(struct, SymbolicTensor):
        if refs is not None:
            return {"tensor": refs[id(struct)]}
        dtype = None if struct.dtype is None else str(struct.dtype).removeprefix("torch.")
        shape = None if struct.shape is None else list(struct.shape)
        return {
            "symbol": {"name": struct.name, "shape": shape, "dtype": dtype, "masked": struct.masked}
        }
    if isinstance(struct, tuple):
        return {"tuple": [_to_json(x, refs) for x in struct]}
    if isinstance(struct, list):
        return [_to_json(x, refs) for x in struct]
    if isinstance(struct, dict):
        return {"dict": {str(k): _to_json(v, refs) for k, v in struct.items()}}
    if isinstance(struct, _JSON_SCALARS):
        return struct
    raise ConfigError(
        format_error(
            f"A functional model cannot be saved as JSON: a layer is called with a "
            f"{type(struct).__name__} argument.",
            expected="symbolic tensors, numbers, strings, None, or lists of them",
            received=repr(struct)[:80],
            fix="save the weights only (`torch.save(model.state_dict(), path)`) and "
            "rebuild the model in code.",
        )
    )


def _from_json(struct: Any, leaf: Callable[[Any], Any]) -> Any:
    """The inverse of `_to_json`; `leaf` makes the tensor of a ref or a description."""
    if isinstance(struct, list):
        return [_from_json(x, leaf) for x in struct]
    if isinstance(struct, dict):
        if "tensor" in struct:
            return leaf(struct["tensor"])
        if "symbol" in struct:
            return leaf(struct["symbol"])
        if "tuple" in struct:
            return tuple(_from_json(x, leaf) for x in struct["tuple"])
        return {k: _from_json(v, leaf) for k, v in struct["dict"].items()}
    return struct
