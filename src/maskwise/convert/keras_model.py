"""`from_keras`: a Keras 3 `Sequential` or functional `Model` as a maskwise model.

A Keras `Sequential` becomes a maskwise `Sequential`; a functional model becomes a
maskwise `Model` built the same way: its Keras graph is replayed on maskwise `Input`s,
each layer called as Keras called it (several inputs and outputs, shared layers,
`return_state=True`, `initial_state=`, attention's query/value/key, a `mask=` given in
the model). Each layer goes through the converter registry (`convert/core.py`,
`convert/convolutional.py`, `convert/recurrent.py`, `convert/attention.py`), so the
weights come along; a layer or call argument maskwise cannot convert raises a
`ConfigError` naming it. Nested Keras models are converted recursively.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ConfigError, MaskwiseTypeError, format_error
from ..functional import Input, map_structure, symbols_in
from ..layers.base import Layer
from ..models import Model, Sequential
from . import attention, convolutional, core, recurrent  # noqa: F401  (importing registers converters)
from .registry import convert_layer, converts


@converts("Sequential", "Functional")
def from_keras(keras_model: Any) -> Sequential | Model:
    """Convert a built Keras 3 model, weights included.

    Example:
        >>> keras_model = keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(),
        ...                                 keras.layers.Dense(2)])
        >>> model = from_keras(keras_model)          # maskwise Sequential, same weights
        >>> model(torch.zeros(3, 7, 5)).values.shape
        torch.Size([3, 7, 2])

    Args:
        keras_model: a `keras.Sequential` or a functional `keras.Model`, built (it has
            an `Input`, or was called once), made of layers maskwise supports; or the
            path of a `.keras` file holding one.
    Returns:
        a maskwise `Sequential` for a Keras `Sequential`, else a `Model` with the Keras
        model's inputs (same names, shapes and dtypes), layers (same names) and outputs.
        It is returned in evaluation mode (dropout off), as Keras predicts; `fit`
        switches it to training mode by itself.
    """
    import keras

    if isinstance(keras_model, str | os.PathLike):
        keras_model = _load_keras_file(keras_model)
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
    model: Sequential | Model
    if kind == "Sequential":
        model = Sequential([convert_layer(k) for k in keras_model.layers], name=keras_model.name)
    else:
        model = _convert_functional(keras_model)
    return model.eval()


def _load_keras_file(path: str | os.PathLike) -> Any:
    """The model in a `.keras` file, loaded by Keras (safe mode: no code from the file)."""
    import keras

    try:
        return keras.saving.load_model(path)
    except ValueError as error:
        if "Lambda" not in str(error) and "safe_mode" not in str(error):
            raise
        raise ConfigError(
            format_error(
                f"from_keras cannot convert {os.fspath(path)!r}: it holds a Lambda layer, "
                "whose Python function Keras loads only with safe_mode=False (that runs "
                "code stored in the file).",
                fix="if you trust the file: `from_keras(keras.saving.load_model(path, "
                "safe_mode=False))` (with KERAS_BACKEND=torch, the function is reused); "
                "else rebuild that layer in maskwise with `Lambda(fn, mask=...)`.",
            )
        ) from error


def _convert_functional(keras_model: Any) -> Model:
    """Replay the Keras graph on maskwise symbolic tensors: each Keras layer is
    converted once (a shared layer stays shared) and called as Keras called it."""
    symbols: dict[int, Any] = {id(t): _input(t) for t in keras_model.inputs}
    converted: dict[int, Layer] = {}

    def visit(tensor: Any) -> Any:
        if id(tensor) in symbols:
            return symbols[id(tensor)]
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        _check_is_layer(op)
        if id(op) not in converted:
            converted[id(op)] = convert_layer(op)
        layer = converted[id(op)]
        args, kwargs = _call_arguments(op, node, layer, visit)
        produced = symbols_in(layer(*args, **kwargs))
        if len(produced) != len(node.output_tensors):
            raise ConfigError(
                format_error(
                    f"from_keras: layer {op.name!r} returns {len(produced)} tensor(s) in "
                    f"maskwise and {len(node.output_tensors)} in Keras.",
                    fix="report this model: the conversion of this layer is incomplete.",
                )
            )
        symbols.update((id(k), x) for k, x in zip(node.output_tensors, produced, strict=True))
        return symbols[id(tensor)]

    outputs = map_structure(keras_model._outputs_struct, visit)
    inputs = map_structure(keras_model._inputs_struct, visit)
    return Model(inputs, outputs, name=keras_model.name)


def _input(tensor: Any) -> Any:
    """The maskwise `Input` of a Keras input tensor: its shape, dtype and name."""
    name = str(tensor._keras_history.operation.name)
    return Input(batch_shape=tuple(tensor.shape), dtype=str(tensor.dtype), name=name)


def _check_is_layer(op: Any) -> None:
    import keras

    if not isinstance(op, keras.layers.Layer):
        raise ConfigError(
            format_error(
                f"from_keras cannot convert the operation {op.name!r} "
                f"({type(op).__name__}): it is a `keras.ops` call, not a layer.",
                fix="use the equivalent Keras layer (e.g. keras.layers.Add for "
                "`keras.ops.add`), or build that part in maskwise.",
            )
        )


_DROPPED = ("training",)
"""Keras call arguments maskwise layers do not take: the mode is the model's."""


def _call_parameters(layer: nn.Module) -> set[str]:
    """The names a layer's call takes: a maskwise layer's inputs and call options, or
    a module's `forward` parameters."""
    if isinstance(layer, Layer):
        return set(inspect.signature(layer.read_inputs).parameters) | set(layer.call_options)
    return set(inspect.signature(layer.forward).parameters)


def _call_arguments(
    keras_layer: Any, node: Any, layer: nn.Module, symbol: Callable[[Any], Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of a Keras call, with maskwise symbolic tensors for Keras's.

    A `mask=` that Keras filled in itself (the inputs' own masks) is left out: the
    mask travels with the values in maskwise. A `mask=` given in the model (another
    tensor) is passed on. A keyword the maskwise layer does not take is refused.
    """
    args = tuple(node.arguments.args)
    kwargs = {
        k: v
        for k, v in node.arguments.kwargs.items()
        if k not in _DROPPED and v is not None and v is not False
    }
    if "mask" in kwargs and _own_masks(kwargs["mask"], args):
        del kwargs["mask"]
    accepted = _call_parameters(layer)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ConfigError(
            format_error(
                f"from_keras cannot convert the call of layer {keras_layer.name!r}: maskwise's "
                f"{type(layer).__name__} does not take {', '.join(f'{k}=' for k in unknown)}.",
                expected=f"call arguments among {sorted(k for k in accepted if k != 'self')}",
                fix="drop that argument in the Keras model, or build that part in maskwise.",
            )
        )

    def convert(x: Any) -> Any:
        return symbol(x) if _is_keras_tensor(x) else x

    return map_structure(args, convert), map_structure(kwargs, convert)


def _is_keras_tensor(x: Any) -> bool:
    import keras

    return isinstance(x, keras.KerasTensor)


def _own_masks(mask: Any, args: tuple[Any, ...]) -> bool:
    """Whether `mask` holds only the masks Keras attached to the call's inputs."""
    first = args[0] if args else None
    inputs = list(first) if isinstance(first, list | tuple) else list(args)
    own = [getattr(t, "_keras_mask", None) for t in inputs]
    masks = list(mask) if isinstance(mask, list | tuple) else [mask]
    return all(m is None or any(m is o for o in own) for m in masks)
