"""`from_keras`: a Keras 3 `Sequential` or functional `Model` as a maskwise model.

A Keras `Sequential` becomes a maskwise `Sequential`; a functional model (several
inputs, merges, several outputs) becomes a `Graph` with one node per layer, named
after it. Each layer goes through the converter registry (`convert/core.py`,
`convert/convolutional.py`, `convert/recurrent.py`), so the weights come along; a layer
maskwise cannot convert raises a `ConfigError` naming it. Nested Keras models are
converted recursively.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, MaskwiseTypeError, format_error
from ..layers.base import Layer
from ..models import Graph, Sequential
from . import attention, convolutional, core, recurrent  # noqa: F401  (importing registers converters)
from .registry import convert_layer, converts


@converts("Sequential", "Functional")
def from_keras(keras_model: Any) -> Sequential | Graph:
    """Convert a built Keras 3 model, weights included.

    Example:
        >>> keras_model = keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(),
        ...                                 keras.layers.Dense(2)])
        >>> model = from_keras(keras_model)          # maskwise Sequential, same weights
        >>> model(torch.zeros(3, 7, 5)).values.shape
        torch.Size([3, 7, 2])

    Args:
        keras_model: a `keras.Sequential` or a functional `keras.Model`, built (it has
            an `Input`, or was called once), made of layers maskwise supports.
    Returns:
        a maskwise `Sequential` for a Keras `Sequential`, else a `Graph` whose inputs are
        the Keras `Input`s (in order) and whose nodes are named after the Keras layers.
        It is returned in evaluation mode (dropout off), as Keras predicts; `fit`
        switches it to training mode by itself.
    """
    import keras

    kind = type(keras_model).__name__
    if not isinstance(keras_model, keras.Model) or kind not in ("Sequential", "Functional"):
        raise MaskwiseTypeError(
            format_error(
                "from_keras converts a Keras Sequential or functional Model.",
                received=kind,
                fix="a subclassed keras.Model holds Python code: rebuild it as a maskwise "
                "Module and copy the weights with `maskwise.convert.registry.convert_layer` "
                "layer by layer.",
            )
        )
    if not keras_model.built:
        raise ConfigError(
            format_error(
                f"Keras model {keras_model.name!r} is not built, so it has no weights yet.",
                fix="start it with `keras.Input(shape=(None, features))`, or call it once "
                "on a batch, before converting.",
            )
        )
    model: Sequential | Graph
    if kind == "Sequential":
        model = Sequential([convert_layer(k) for k in keras_model.layers], name=keras_model.name)
    else:
        model = _convert_functional(keras_model)
    return model.eval()


def _convert_functional(keras_model: Any) -> Graph:
    import keras

    input_names = [_input_name(t) for t in keras_model.inputs]
    nodes: list[tuple[str, Layer, list[str]]] = []
    names: dict[int, str] = {id(t): n for t, n in zip(keras_model.inputs, input_names)}

    def visit(tensor: Any) -> str:
        if id(tensor) in names:
            return names[id(tensor)]
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        if not isinstance(op, keras.layers.Layer):
            raise ConfigError(
                format_error(
                    f"from_keras cannot convert the operation {op.name!r} "
                    f"({type(op).__name__}): it is a `keras.ops` call, not a layer.",
                    fix="use the equivalent Keras layer (e.g. keras.layers.Add for "
                    "`keras.ops.add`), or build that part in maskwise.",
                )
            )
        inputs = [visit(t) for t in _call_inputs(op, node)]
        nodes.append((op.name, convert_layer(op), inputs))
        names[id(tensor)] = op.name
        return str(op.name)

    outputs = [visit(t) for t in keras_model.outputs]
    single = not isinstance(keras_model._outputs_struct, list | tuple | dict)
    return Graph(
        inputs=input_names,
        nodes=nodes,
        outputs=outputs[0] if single else outputs,
        name=keras_model.name,
    )


def _input_name(tensor: Any) -> str:
    return str(tensor._keras_history.operation.name)


_QUERY_VALUE_KEY = ("MultiHeadAttention", "GroupedQueryAttention")
"""Keras layers called as `layer(query, value, key=None)`: their node gets the inputs
in that order."""
_ATTENTION = (*_QUERY_VALUE_KEY, "Attention", "AdditiveAttention")
"""Keras layers whose key defaults to the value and value to the query: an input equal
to the one before it is left out (a Graph node names each input once)."""


def _call_inputs(layer: Any, node: Any) -> list[Any]:
    """The tensors a layer was called on: one, a list of them (merges, `Attention`),
    or `query, value(, key)` passed one by one (`MultiHeadAttention`).

    Refuses the calls a Graph node cannot express: a shared layer, several outputs,
    tensors passed in other arguments (`initial_state=`, a hand-made `mask=`). The
    `mask=` Keras fills in by itself (the input's own mask) is fine: the mask travels
    with the values in maskwise.
    """
    args = node.arguments.args
    first = args[0] if args else None
    inputs = list(first) if isinstance(first, list | tuple) else [first]
    options = dict(node.arguments.kwargs)
    if type(layer).__name__ in _QUERY_VALUE_KEY:
        options.update(zip(("query", "value", "key"), args))
        inputs = [options.pop(r) for r in ("query", "value", "key") if options.get(r) is not None]
        args = (inputs,)
    if type(layer).__name__ in _ATTENTION:
        while len(inputs) > 1 and inputs[-1] is inputs[-2]:
            inputs.pop()
    stated = sorted(
        k
        for k, v in options.items()
        if k not in ("mask", "training") and v is not None and v is not False
    )
    own_masks = [getattr(t, "_keras_mask", None) for t in inputs]
    extra = [
        t
        for t in node.input_tensors
        if not any(t is x for x in inputs) and not any(t is m for m in own_masks)
    ]
    problem = None
    if len(layer._inbound_nodes) != 1:
        problem = f"the layer is called {len(layer._inbound_nodes)} times (shared weights)"
    elif len(node.output_tensors) != 1:
        problem = f"it returns {len(node.output_tensors)} tensors (e.g. return_state=True)"
    elif extra or len(args) != 1:
        problem = "it gets tensors in other arguments than its input (initial_state=, mask=)"
    elif stated:
        problem = (
            f"it is called with {', '.join(f'{k}=' for k in stated)}, which a node cannot pass"
        )
    if problem is not None:
        raise ConfigError(
            format_error(
                f"from_keras cannot convert the call of layer {layer.name!r}: {problem}.",
                expected="a layer called once, on one tensor or a list of them (merges), "
                "or on query, value(, key) (attention), with no other call arguments",
                fix="build that part in a maskwise Module, where a layer's call is plain Python.",
            )
        )
    return inputs
