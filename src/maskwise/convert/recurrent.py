"""Converters for Keras's recurrent layers and cells (`RNN`, `LSTM`, `GRU`,
`SimpleRNN`, `Bidirectional`, `LSTMCell`, `GRUCell`, `SimpleRNNCell`,
`StackedRNNCells`). Importing this module registers them. A stateful layer keeps the
states Keras holds, so the converted layer continues its streams.

maskwise keeps recurrent weights in PyTorch's layout, so a converter transposes
Keras's `kernel (in, gates*units)` and `recurrent_kernel (units, gates*units)` once,
here; for GRU it also reorders the gates from Keras's (z, r, h) to PyTorch's (r, z, n).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from ..layers import cells, recurrent
from ..layers.base import Layer
from .core import _activation_name, _refuse
from .registry import convert_layer, converts, to_tensor

PENALTIES = (
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)


def _check_penalties(k: Any, cell: Any) -> None:
    for option in PENALTIES:
        if getattr(cell, option, None) is not None or getattr(k, option, None) is not None:
            raise _refuse(
                k,
                f"{option}",
                "drop it in the Keras model and add the penalty to the maskwise loss "
                "(or use the optimizer's weight_decay).",
            )


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
    _check_penalties(owner, kc)
    args: dict[str, Any] = {
        "units": int(kc.units),
        "activation": _activation_name(kc),
        "use_bias": bool(kc.use_bias),
        "dropout": float(kc.dropout),
        "recurrent_dropout": float(kc.recurrent_dropout),
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


GATE_ORDERS = {"LSTMCell": [0, 1, 2, 3], "GRUCell": [1, 0, 2], "SimpleRNNCell": [0]}
"""Keras's gates in PyTorch's order: LSTM i, f, c, o in both; GRU z, r, h -> r, z, n."""


def _load(cell: cells._BuiltinCell, kc: Any) -> None:
    """Build `cell` for the Keras cell's inputs and copy its weights, transposed."""
    order = GATE_ORDERS[type(kc).__name__]
    cell.build_from_config_shape([int(kc.kernel.shape[0])])
    with torch.no_grad():
        cell.weight_ih.copy_(_reorder(kc.kernel, order).T)
        cell.weight_hh.copy_(_reorder(kc.recurrent_kernel, order).T)
        if cell.bias is None:
            return
        bias = to_tensor(kc.bias)
        if cell.recurrent_bias is not None:  # GRU reset_after: (2, 3*units)
            cell.recurrent_bias.copy_(_reorder(bias[1], order))
            bias = bias[0]
        cell.bias.copy_(_reorder(bias, order))


def _reorder(weight: Any, order: list[int]) -> torch.Tensor:
    """Split the last axis into gates and put them in `order`."""
    chunks = to_tensor(weight).chunk(len(order), dim=-1)
    return torch.cat([chunks[i] for i in order], dim=-1)


def _carry_states(layer: recurrent.RNN, k: Any) -> None:
    """A stateful Keras layer's current states become the maskwise layer's, so that the
    converted layer continues its streams."""
    import keras

    if k.stateful and k.states is not None:
        layer.reset_states([to_tensor(s) for s in keras.tree.flatten(k.states)])


@converts("LSTMCell", "GRUCell", "SimpleRNNCell")
def convert_cell(kc: Any) -> Layer:
    cell = getattr(cells, type(kc).__name__)(name=kc.name, **_cell_args(kc, kc))
    _load(cell, kc)
    return cell


@converts("StackedRNNCells")
def convert_stacked_cells(k: Any) -> Layer:
    return cells.StackedRNNCells([convert_layer(c) for c in k.cells], name=k.name)


@converts("RNN")
def convert_rnn(k: Any) -> Layer:
    layer = recurrent.RNN(convert_layer(k.cell), **_rnn_args(k))
    _carry_states(layer, k)
    return layer


@converts("LSTM", "GRU", "SimpleRNN")
def convert_cell_layer(k: Any) -> Layer:
    layer_class = getattr(recurrent, type(k).__name__)
    layer = layer_class(**_cell_args(k.cell, k), **_rnn_args(k))
    _load(layer.cell, k.cell)
    layer.build_from_config_shape([int(k.cell.kernel.shape[0])])
    _carry_states(layer, k)
    return cast(Layer, layer)


@converts("Bidirectional")
def convert_bidirectional(k: Any) -> Layer:
    forward = cast(recurrent.RNN, convert_layer(k.forward_layer))
    backward = cast(recurrent.RNN, convert_layer(k.backward_layer))
    layer = recurrent.Bidirectional(
        forward, merge_mode=k.merge_mode, backward_layer=backward, name=k.name
    )
    layer.forward_layer.load_state_dict(forward.state_dict())
    layer.forward_layer.states = forward.states
    return layer
