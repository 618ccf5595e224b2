"""Converters for Keras's recurrent layers and cells (`RNN`, `LSTM`, `GRU`,
`SimpleRNN`, `Bidirectional`, `LSTMCell`, `GRUCell`, `SimpleRNNCell`,
`StackedRNNCells`). Importing this module registers them. A stateful layer keeps the
states Keras holds, so the converted layer continues its streams.

maskwise keeps recurrent weights in PyTorch's layout: Keras's `kernel (in,
gates*units)` and `recurrent_kernel (units, gates*units)` are stored transposed, GRU's
gates reordered from Keras's (z, r, h) to PyTorch's (r, z, n); the cell's weight
layouts say how, so a converter hands it Keras's tensors. The weights' regularizers and
constraints, the activity regularizer and `trainable` come along (`keras_rules`).
"""

from __future__ import annotations

from typing import Any, cast

from ..layers import cells, recurrent
from ..layers._keras_args import load_keras_weight
from ..layers.base import Layer
from .core import _activation_name, _refuse, keras_rules
from .registry import convert_layer, converts, to_tensor


def _rnn_args(k: Any) -> dict[str, Any]:
    """The `RNN` arguments of a Keras recurrent layer."""
    if k.unroll:
        raise _refuse(k, "unroll=True", "use unroll=False in the Keras model.")
    return {
        "return_sequences": bool(k.return_sequences),
        "return_state": bool(k.return_state),
        "go_backwards": bool(k.go_backwards),
        "stateful": bool(k.stateful),
        "zero_output_for_mask": bool(k.zero_output_for_mask),
        "name": k.name,
    }


def _cell_args(kc: Any, owner: Any) -> dict[str, Any]:
    """The constructor arguments of a maskwise cell, from a Keras cell (`owner`, the
    layer named in errors)."""
    args: dict[str, Any] = {
        "units": int(kc.units),
        "activation": _activation_name(kc),
        "use_bias": bool(kc.use_bias),
        "dropout": float(kc.dropout),
        "recurrent_dropout": float(kc.recurrent_dropout),
        "seed": kc.seed,
    }
    kind = type(kc).__name__
    if kind in ("LSTMCell", "GRUCell"):
        name = kc.get_config()["recurrent_activation"]
        if not isinstance(name, str):
            raise _refuse(
                owner, f"the custom recurrent activation {name!r}", "use a built-in name."
            )
        args["recurrent_activation"] = name
    if kind == "LSTMCell":
        args["unit_forget_bias"] = bool(kc.unit_forget_bias)
    if kind == "GRUCell":
        args["reset_after"] = bool(kc.reset_after)
    return args


def _load(cell: cells._BuiltinCell, kc: Any) -> None:
    """Build `cell` for the Keras cell's inputs and copy its weights (the cell stores
    them in its own layout: see `_keras_args.Layout`)."""
    cell.build_from_config_shape([int(kc.kernel.shape[0])])
    weights = {"kernel": kc.kernel, "recurrent": kc.recurrent_kernel, "bias": kc.bias}
    for rule, weight in weights.items():
        if weight is not None:
            load_keras_weight(cell, rule, to_tensor(weight))


def _carry_states(layer: recurrent.RNN, k: Any) -> None:
    """A stateful Keras layer's current states become the maskwise layer's, so that the
    converted layer continues its streams."""
    import keras

    if k.stateful and k.states is not None:
        layer.reset_states([to_tensor(s) for s in keras.tree.flatten(k.states)])


@converts("LSTMCell", "GRUCell", "SimpleRNNCell")
def convert_cell(kc: Any) -> Layer:
    kind = getattr(cells, type(kc).__name__)
    cell = kind(name=kc.name, **_cell_args(kc, kc), **keras_rules(kc, kind.weight_names))
    _load(cell, kc)
    return cell


@converts("StackedRNNCells")
def convert_stacked_cells(k: Any) -> Layer:
    return cells.StackedRNNCells([convert_layer(c) for c in k.cells], name=k.name)


@converts("RNN")
def convert_rnn(k: Any) -> Layer:
    layer = recurrent.RNN(convert_layer(k.cell), **_rnn_args(k), **keras_rules(k, ()))
    _carry_states(layer, k)
    return layer


@converts("LSTM", "GRU", "SimpleRNN")
def convert_cell_layer(k: Any) -> Layer:
    layer_class = getattr(recurrent, type(k).__name__)
    layer = layer_class(
        **_cell_args(k.cell, k),
        **_rnn_args(k),
        **({"use_cudnn": k.use_cudnn} if hasattr(k, "use_cudnn") else {}),
        **keras_rules(k, layer_class.weight_names),
    )
    _load(layer.cell, k.cell)
    layer.build_from_config_shape([int(k.cell.kernel.shape[0])])
    _carry_states(layer, k)
    return cast(Layer, layer)


@converts("Bidirectional")
def convert_bidirectional(k: Any) -> Layer:
    forward = cast(recurrent.RNN, convert_layer(k.forward_layer))
    backward = cast(recurrent.RNN, convert_layer(k.backward_layer))
    layer = recurrent.Bidirectional(
        forward,
        merge_mode=k.merge_mode,
        backward_layer=backward,
        name=k.name,
        **keras_rules(k, ()),
    )
    layer.forward_layer.load_state_dict(forward.state_dict())
    layer.forward_layer.states = forward.states
    return layer
