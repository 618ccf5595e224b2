"""Converters for Keras's recurrent layers (`LSTM`, `GRU`, `SimpleRNN`,
`Bidirectional`). Importing this module registers them.

maskwise keeps recurrent weights in PyTorch's layout, so a converter transposes
Keras's `kernel (in, gates*units)` and `recurrent_kernel (units, gates*units)` once,
here; for GRU it also reorders the gates from Keras's (z, r, h) to PyTorch's (r, z, n).
"""

from __future__ import annotations

from typing import Any

import torch

from ..layers import recurrent
from ..layers.base import Layer
from .core import _activation_name, _refuse, keras_rules
from .registry import convert_layer, converts, to_tensor


def _common(k: Any) -> dict[str, Any]:
    """The constructor arguments every recurrent layer shares, from a Keras layer."""
    for option in ("stateful", "unroll"):
        if getattr(k, option):
            raise _refuse(k, f"{option}=True", f"use {option}=False in the Keras model.")
    return {
        "units": int(k.cell.units),
        "activation": _activation_name(k),
        "use_bias": bool(k.cell.use_bias),
        "dropout": float(k.cell.dropout),
        "recurrent_dropout": float(k.cell.recurrent_dropout),
        "return_sequences": bool(k.return_sequences),
        "return_state": bool(k.return_state),
        "go_backwards": bool(k.go_backwards),
        "zero_output_for_mask": bool(k.zero_output_for_mask),
        "input_dim": int(k.cell.kernel.shape[0]),
        "name": k.name,
        **keras_rules(k, recurrent.LSTM.weight_names),  # the same for GRU and SimpleRNN
    }


def _recurrent_activation(k: Any) -> str:
    name = k.get_config()["recurrent_activation"]
    if not isinstance(name, str):
        raise _refuse(k, f"the custom recurrent activation {name!r}", "use a built-in name.")
    return name


def _load(layer: recurrent._Recurrent, k: Any, order: list[int]) -> None:
    cell = k.cell
    with torch.no_grad():
        layer.weight_ih.copy_(_reorder(cell.kernel, order).T)
        layer.weight_hh.copy_(_reorder(cell.recurrent_kernel, order).T)
        if layer.bias is None:
            return
        bias = to_tensor(cell.bias)
        if layer.recurrent_bias is not None:  # GRU reset_after: (2, 3*units)
            layer.recurrent_bias.copy_(_reorder(bias[1], order))
            bias = bias[0]
        layer.bias.copy_(_reorder(bias, order))


def _reorder(weight: Any, order: list[int]) -> torch.Tensor:
    """Split the last axis into gates and put them in `order`."""
    chunks = to_tensor(weight).chunk(len(order), dim=-1)
    return torch.cat([chunks[i] for i in order], dim=-1)


@converts("LSTM")
def convert_lstm(k: Any) -> Layer:
    layer = recurrent.LSTM(
        recurrent_activation=_recurrent_activation(k),
        unit_forget_bias=bool(k.cell.unit_forget_bias),
        **_common(k),
    )
    _load(layer, k, [0, 1, 2, 3])  # i, f, c, o in both
    return layer


@converts("GRU")
def convert_gru(k: Any) -> Layer:
    layer = recurrent.GRU(
        recurrent_activation=_recurrent_activation(k),
        reset_after=bool(k.cell.reset_after),
        **_common(k),
    )
    _load(layer, k, [1, 0, 2])  # Keras z, r, h -> PyTorch r, z, n
    return layer


@converts("SimpleRNN")
def convert_simple_rnn(k: Any) -> Layer:
    layer = recurrent.SimpleRNN(**_common(k))
    _load(layer, k, [0])
    return layer


@converts("Bidirectional")
def convert_bidirectional(k: Any) -> Layer:
    forward = convert_layer(k.forward_layer)
    backward = convert_layer(k.backward_layer)
    layer = recurrent.Bidirectional(
        forward, merge_mode=k.merge_mode, backward_layer=backward, name=k.name
    )
    layer.forward_layer.load_state_dict(forward.state_dict())
    return layer
