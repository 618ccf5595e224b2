"""The built-in cells' weights in one buffer of cuDNN's layout (`_cudnn_buffer`).

No GPU runs here, so cuDNN is stood in for: the tensors it would run on are the CPU's
float32 and float64 ones, and `torch._cudnn_rnn_flatten_weight` is replaced by a
function that checks the arguments PyTorch's cuDNN code reads and lays the weights out
one after the other, re-pointing each tensor at its slice as cuDNN's does. What is
checked is the cells' side: which tensors go in, in which order, with which sizes and
mode, that they stay views of one buffer through training and moves, and that nothing
else changes (values, gradients, optimizer, saving)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import torch
from host_reads import off_the_cpu

import maskwise as mw
from maskwise.layers import _cudnn_buffer
from maskwise.layers._rnn_kernels import _flat_weights
from maskwise.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

CUDNN_MODE_NUMBERS = {"RNN_RELU": 0, "RNN_TANH": 1, "LSTM": 2, "GRU": 3}
"""cuDNN's `cudnnRNNMode_t` values (cudnn.h), what `get_cudnn_mode` returns on CUDA."""


@contextmanager
def cudnn_stand_in(
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
) -> Iterator[list[dict[str, Any]]]:
    """cuDNN "runs" on CPU tensors of `dtypes`; yields the calls of the flattening."""
    calls: list[dict[str, Any]] = []

    def flatten(
        weights: list[torch.Tensor],
        stride0: int,
        input_size: int,
        mode: int,
        hidden: int,
        proj: int,
        layers: int,
        batch_first: bool,
        bidirectional: bool,
    ) -> torch.Tensor:
        calls.append(
            dict(
                shapes=[tuple(w.shape) for w in weights],
                stride0=stride0,
                input_size=input_size,
                mode=mode,
                hidden=hidden,
                proj=proj,
                layers=layers,
                bidirectional=bidirectional,
            )
        )
        assert not torch.is_grad_enabled()  # PyTorch's flattening writes the weights in place
        buffer = weights[0].new_empty(sum(w.numel() for w in weights))
        offset = 0
        for w in weights:
            piece = buffer[offset : offset + w.numel()].view_as(w)
            piece.copy_(w)
            w.set_(piece.untyped_storage(), piece.storage_offset(), piece.shape, piece.stride())
            offset += w.numel()
        return buffer

    runs_on = lambda t: t.device.type == "cpu" and t.dtype in dtypes  # noqa: E731
    with (
        mock.patch.object(_cudnn_buffer, "_cudnn_runs_on", runs_on),
        mock.patch.object(torch, "_cudnn_rnn_flatten_weight", flatten),
        mock.patch("torch.backends.cudnn.rnn.get_cudnn_mode", CUDNN_MODE_NUMBERS.__getitem__),
    ):
        yield calls


def kernel_weights(cell: Any) -> list[torch.Tensor]:
    """The tensors the fused kernel gets from `cell`, in its order."""
    return _flat_weights(cell.weights())[0]


def in_one_buffer(tensors: list[torch.Tensor]) -> bool:
    """Whether `tensors` are contiguous slices of one storage, one after the other."""
    storage = tensors[0].untyped_storage().data_ptr()
    offset = tensors[0].storage_offset()
    for t in tensors:
        if t.untyped_storage().data_ptr() != storage or t.storage_offset() != offset:
            return False
        if not t.is_contiguous():
            return False
        offset += t.numel()
    return True


def batch(features: int = 3, dtype: torch.dtype = torch.float32) -> mw.Masked:
    gen = torch.Generator().manual_seed(0)
    return mw.Masked.pad([torch.randn(n, features, generator=gen, dtype=dtype) for n in (5, 2, 4)])


LAYERS = {
    "lstm": (lambda: LSTM(4, return_sequences=True), 4, "LSTM"),
    "gru": (lambda: GRU(4, return_sequences=True), 4, "GRU"),
    "simple_tanh": (lambda: SimpleRNN(4, return_sequences=True), 4, "RNN_TANH"),
    "simple_relu": (lambda: SimpleRNN(4, activation="relu", return_sequences=True), 4, "RNN_RELU"),
    "lstm_no_bias": (lambda: LSTM(4, use_bias=False, return_sequences=True), 2, "LSTM"),
}


def twins(make: Any) -> tuple[mw.Sequential, mw.Sequential]:
    """Two equal models, built: one under the stand-in (its weights flattened), one not."""
    plain = mw.Sequential([make(), mw.layers.Dense(2)])
    plain(batch())
    flat = copy.deepcopy(plain)
    with cudnn_stand_in():
        flat.to(torch.float32)  # a move, as `.to("cuda")` would be
    return plain, flat


@pytest.mark.parametrize("kind", LAYERS)
def test_a_cells_weights_become_views_of_one_buffer_in_the_kernels_order(kind: str) -> None:
    make, stride0, mode = LAYERS[kind]
    with cudnn_stand_in() as calls:
        model = mw.Sequential([make()])
        model(batch())  # building ends with a move to the input's device
    cell = model.layers[0].cell
    weights = kernel_weights(cell)
    assert in_one_buffer(weights)
    assert len(calls) == 1
    assert calls[0] == dict(
        shapes=[tuple(w.shape) for w in weights],
        stride0=stride0,
        input_size=3,
        mode=CUDNN_MODE_NUMBERS[mode],
        hidden=4,
        proj=0,
        layers=1,
        bidirectional=False,
    )
    # The parameters are still the cell's own, and the only other tensor is the zero
    # recurrent bias of a single-bias cell, which is no weight.
    params = {id(p) for p in cell.parameters()}
    extra = [w for w in weights if id(w) not in params]
    single_bias = cell.bias is not None and cell.recurrent_bias is None
    assert len(extra) == (1 if single_bias else 0)
    assert all(not w.requires_grad and torch.all(w == 0) for w in extra)
    assert "kernel_recurrent_bias" not in str(list(model.state_dict()))


@pytest.mark.parametrize("kind", LAYERS)
def test_the_buffer_changes_no_output_no_gradient_no_training_step(kind: str) -> None:
    plain, flat = twins(LAYERS[kind][0])
    assert in_one_buffer(kernel_weights(flat.layers[0].cell))
    optimizers = [torch.optim.Adam(m.parameters(), lr=0.01, foreach=True) for m in (plain, flat)]
    x = batch()
    for _ in range(3):
        losses = []
        for model, optimizer in zip((plain, flat), optimizers, strict=True):
            optimizer.zero_grad()
            loss = mw.losses.MeanSquaredError()(torch.ones_like(model(x).values), model(x))
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)
    for a, b in zip(plain.parameters(), flat.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    cell = flat.layers[0].cell
    assert in_one_buffer(kernel_weights(cell))  # the optimizer updates the views in place
    assert all(torch.all(w == 0) for w in kernel_weights(cell)[3:] if not w.requires_grad)


def test_the_path_off_the_cpu_runs_on_the_buffer() -> None:
    """The path for devices where host reads cost (the one CUDA takes), with the final
    states (the LSTM's cell state through the cell-keeping weights)."""
    plain = LSTM(4, return_sequences=True, return_state=True)
    plain(batch())
    flat = copy.deepcopy(plain)
    with cudnn_stand_in():
        flat.to(torch.float32)
    assert in_one_buffer(kernel_weights(flat.cell))
    x = batch()
    with off_the_cpu():
        expected, got = plain(x), flat(x)
    for a, b in zip(expected, got, strict=True):
        a, b = (t.values if isinstance(t, mw.Masked) else t for t in (a, b))
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_a_move_to_a_dtype_cudnn_takes_lays_the_buffer_out_again() -> None:
    with cudnn_stand_in() as calls:
        model = mw.Sequential([Bidirectional(LSTM(4, return_sequences=True))])
        model(batch())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.double()
    cells = [model.layers[0].forward_layer.cell, model.layers[0].backward_layer.cell]
    assert len(calls) == 4  # each direction at its build, and again after `.double()`
    for cell in cells:
        weights = kernel_weights(cell)
        assert in_one_buffer(weights)
        assert all(w.dtype == torch.float64 for w in weights)
    # The optimizer made before the move still holds the weights the model trains.
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {
        id(p) for p in model.parameters()
    }


def test_where_cudnn_does_not_run_the_weights_stay_as_they_are() -> None:
    with cudnn_stand_in(dtypes=(torch.float32,)) as calls:
        model = mw.Sequential([LSTM(4)])
        model(batch())
        assert len(calls) == 1
        model.double()  # a dtype the stand-in's cuDNN does not take
    cell = model.layers[0].cell
    assert len(calls) == 1
    assert cell.kernel_recurrent_bias is None  # the kernels get a zero bias per call
    weights = kernel_weights(cell)
    assert weights[3] is not kernel_weights(cell)[3]
    assert not in_one_buffer(weights)
    # Without cuDNN (the CPU, as it is), nothing is laid out.
    plain = mw.Sequential([LSTM(4)])
    plain(batch())
    assert plain.layers[0].cell.kernel_recurrent_bias is None
    assert not in_one_buffer(kernel_weights(plain.layers[0].cell))


def test_loading_copying_and_saving_keep_or_restore_the_buffer(tmp_path: Any) -> None:
    plain, flat = twins(lambda: GRU(4, return_sequences=True))
    cell = lambda m: m.layers[0].cell  # noqa: E731
    x = batch()
    # A copy gets its own buffer (deepcopy and pickle copy each parameter on its own).
    with cudnn_stand_in():
        twin = copy.deepcopy(flat)
        torch.save(flat, tmp_path / "model.pt")
        loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert in_one_buffer(kernel_weights(cell(twin)))
    assert cell(twin).weight_ih.data_ptr() != cell(flat).weight_ih.data_ptr()
    assert in_one_buffer(kernel_weights(cell(loaded)))
    torch.testing.assert_close(loaded(x).values, plain(x).values, rtol=0, atol=0)
    # Loading in place keeps the views; loading by assignment makes new tensors, which
    # are put back in one buffer.
    state = {k: v + 1 for k, v in plain.state_dict().items()}
    with cudnn_stand_in():
        flat.load_state_dict(state)
        assert in_one_buffer(kernel_weights(cell(flat)))
        flat.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
    assert in_one_buffer(kernel_weights(cell(flat)))
    plain.load_state_dict(state)
    torch.testing.assert_close(flat(x).values, plain(x).values, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU with cuDNN")
def test_on_cuda_cudnn_takes_the_weights_without_a_copy() -> None:
    """With a GPU: the cell's weights are in one buffer after the move, and cuDNN's
    kernel runs on them without its warning that it copies them."""
    model = mw.Sequential([LSTM(4, return_sequences=True)])
    model(batch())
    model.to("cuda")
    cell = model.layers[0].cell
    x = torch.randn(3, 5, 3, device="cuda")
    h = torch.zeros(1, 3, 4, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch._VF.lstm(x, (h, h), kernel_weights(cell), True, 1, 0.0, False, False, True)


def test_weights_swapped_in_get_a_zero_bias_of_their_own() -> None:
    """`torch.func.functional_call` with weights of another dtype: the kernels get a zero
    recurrent bias beside them, not the one kept in the cell's buffer."""
    with cudnn_stand_in():
        layer = LSTM(4, return_sequences=True)
        layer(batch())
    assert layer.cell.kernel_recurrent_bias is not None
    swapped = {name: p.detach().double() for name, p in layer.named_parameters()}
    x = batch(dtype=torch.float64)
    got = torch.func.functional_call(layer, swapped, (x,))
    plain = copy.deepcopy(layer).double()  # no stand-in: its own zero bias per call
    torch.testing.assert_close(got.values, plain(x).values, rtol=0, atol=0)
