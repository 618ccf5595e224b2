"""Keep a built-in cell's weights in one buffer of cuDNN's layout on CUDA.

cuDNN's recurrent kernels read every weight of a call from one buffer in their own
layout. PyTorch's fused kernels (`torch._VF.lstm`, ...) hand it the weights as they
are when they already are views of such a buffer, in order (`weight_ih`, `weight_hh`,
the input-side bias, the recurrent-side bias); otherwise they copy them into a new
buffer at every call, forwards, and the gradient out of it backwards
(`nn.LSTM.flatten_parameters` is PyTorch's way to avoid that copy). A built-in cell
does the same after each move or dtype change (`_BuiltinCell._apply`, which building
calls too) and after loading weights by assignment: its parameters become views of one
buffer that cuDNN lays out (`torch._cudnn_rnn_flatten_weight`). They stay the same
`nn.Parameter` objects, so an optimizer made before keeps them, and the values are
unchanged.

Keras's LSTM and SimpleRNN (and GRU without `reset_after`) have one bias where the
kernel takes two, so the cell keeps a zero recurrent-side bias in the buffer too
(`kernel_recurrent_bias`, not a weight: never trained, never saved). Anywhere else (the
CPU, where oneDNN takes the weights as they are; a dtype or tensor cuDNN does not take)
nothing changes and the kernels get a zero bias made per call, as before.
"""

from __future__ import annotations

from typing import Any

import torch

CUDNN_MODES = {"lstm": "LSTM", "gru": "GRU", "tanh": "RNN_TANH", "relu": "RNN_RELU"}
"""cuDNN's name of each fused kernel's recurrence (`FusedCell.kernel_name`)."""


def keep_in_one_buffer(cell: Any) -> None:
    """Make `cell`'s weights (a built `_BuiltinCell` with a fused kernel) views of one
    buffer of cuDNN's layout where cuDNN will run them; elsewhere drop the zero
    recurrent bias kept for it, so that the kernels' weights follow the cell's."""
    cell.kernel_recurrent_bias = None
    name = cell.kernel_name
    if not cell.built or name is None or torch.compiler.is_compiling():
        return
    weights = cell.weights()
    tensors = [weights.weight_ih, weights.weight_hh]
    if weights.bias is not None:
        recurrent = weights.recurrent_bias
        if recurrent is None:
            recurrent = torch.zeros_like(weights.bias, requires_grad=False)
        tensors += [weights.bias, recurrent]
    if not _cudnn_takes(tensors):
        return
    import torch.backends.cudnn.rnn as cudnn_rnn

    with torch.no_grad(), torch.cuda.device_of(tensors[0]):
        torch._cudnn_rnn_flatten_weight(
            tensors,
            len(tensors),
            int(tensors[0].shape[1]),
            cudnn_rnn.get_cudnn_mode(CUDNN_MODES[name]),
            cell.units,
            0,  # no projection
            1,  # one layer
            True,  # batch first (the layout of the calls' inputs; the weights' is the same)
            False,  # one direction: a Bidirectional runs two cells
        )
    if weights.bias is not None and weights.recurrent_bias is None:
        cell.kernel_recurrent_bias = tensors[-1]


def _cudnn_takes(tensors: list[torch.Tensor]) -> bool:
    """Whether cuDNN will run a kernel on `tensors` (all of one dtype, each one it
    runs on) and they are distinct tensors (weights sharing memory stay as they are,
    as `nn.LSTM.flatten_parameters` leaves them)."""
    first = tensors[0]
    return all(t.dtype == first.dtype and _cudnn_runs_on(t) for t in tensors) and len(
        {t.data_ptr() for t in tensors}
    ) == len(tensors)


def _cudnn_runs_on(tensor: torch.Tensor) -> bool:
    """Whether cuDNN runs PyTorch's recurrent kernels on `tensor`: a CUDA tensor of a
    dtype it takes, with cuDNN enabled."""
    return (
        tensor.is_cuda
        and torch._use_cudnn_rnn_flatten_weight()
        and torch.backends.cudnn.is_acceptable(tensor)
    )
