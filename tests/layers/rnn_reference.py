"""A plain per-step reference of Keras 3's masked recurrence, for testing the fast path.

It follows `keras/src/backend/torch/rnn.py` literally: walk every step of the padded
sequence (reversed for `go_backwards`), run the cell, keep the new state only where the
step is real, output the previous output (or zeros with `zero_output_for_mask`) where
it is not, and return the output of the final step. Nothing is compacted or fused.
The cells (and stacks of them) are written out from the Keras formulas, on maskwise's
weights.
"""

from __future__ import annotations

import torch

from maskwise.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, _BuiltinCell
from maskwise.layers.core import get_activation
from maskwise.layers.recurrent import RNN, Bidirectional


def _cell_step(
    cell: _BuiltinCell, x_t: torch.Tensor, states: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    act = get_activation(cell.activation)
    sigma = get_activation(cell.recurrent_activation)
    w, u = cell.weight_ih, cell.weight_hh
    b = torch.zeros(w.shape[0], dtype=x_t.dtype) if cell.bias is None else cell.bias
    n = cell.units
    h = states[0]
    if isinstance(cell, SimpleRNNCell):
        out = act(x_t @ w.T + b + h @ u.T)
        return out, [out]
    if isinstance(cell, LSTMCell):
        gates = [
            x_t @ w[k * n : (k + 1) * n].T + b[k * n : (k + 1) * n] + h @ u[k * n : (k + 1) * n].T
            for k in range(4)
        ]
        i, f, o = sigma(gates[0]), sigma(gates[1]), sigma(gates[3])
        c = f * states[1] + i * act(gates[2])
        out = o * act(c)
        return out, [out, c]
    # GRU, PyTorch's gate order r, z, n.
    xr, xz, xn = (x_t @ w[k * n : (k + 1) * n].T + b[k * n : (k + 1) * n] for k in range(3))
    assert isinstance(cell, GRUCell)
    if cell.reset_after:
        rb = cell.recurrent_bias
        rb = torch.zeros(3 * n, dtype=x_t.dtype) if rb is None else rb
        hr, hz, hn = (h @ u[k * n : (k + 1) * n].T + rb[k * n : (k + 1) * n] for k in range(3))
        r = sigma(xr + hr)
        candidate = act(xn + r * hn)
    else:  # reset gate before the recurrent product
        r = sigma(xr + h @ u[:n].T)
        hz = h @ u[n : 2 * n].T
        candidate = act(xn + (r * h) @ u[2 * n :].T)
    z = sigma(xz + hz)
    out = z * h + (1 - z) * candidate
    return out, [out]


def reference_rnn(
    layer: RNN,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    initial_state: list[torch.Tensor] | None = None,
    zero_output_for_mask: bool | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Keras's output (sequence or last) and final states, step by step (no dropout)."""
    batch, time = x.shape[:2]
    zero_output = (
        layer.zero_output_for_mask if zero_output_for_mask is None else zero_output_for_mask
    )
    cells = [layer.cell] if isinstance(layer.cell, _BuiltinCell) else list(layer.cell.cells)
    sizes = layer.state_size
    states = initial_state or [x.new_zeros(batch, size) for size in sizes]
    full = torch.ones(batch, time, dtype=torch.bool) if mask is None else mask
    steps = range(time - 1, -1, -1) if layer.go_backwards else range(time)
    prev = x.new_zeros(batch, layer.output_size)
    outputs = []
    for t in steps:
        real = full[:, t : t + 1]
        out, new_states, start = x[:, t], [], 0
        for cell in cells:  # a stack: each cell reads the previous one's output
            count = len(cell.state_size) if isinstance(cell.state_size, list) else 1
            out, own = _cell_step(cell, out, states[start : start + count])
            new_states += own
            start += count
        states = [torch.where(real, s, p) for s, p in zip(new_states, states, strict=True)]
        out = torch.where(real, out, torch.zeros_like(out) if zero_output else prev)
        prev = out
        outputs.append(out)
    sequence = torch.stack(outputs, dim=1)
    return (sequence if layer.return_sequences else sequence[:, -1]), states


def reference_bidirectional(
    bi: Bidirectional,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    initial_state: list[torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keras's `Bidirectional.call`: outputs (a list of one, or two without merge) and
    the forward then backward states."""
    half = len(bi.forward_layer.state_size)
    fs = None if initial_state is None else initial_state[:half]
    bs = None if initial_state is None else initial_state[half:]
    zero = bi.return_sequences
    y, f_states = reference_rnn(bi.forward_layer, x, mask, fs, zero)
    y_rev, b_states = reference_rnn(bi.backward_layer, x, mask, bs, zero)
    if bi.return_sequences:
        y_rev = y_rev.flip(1)
    merged = {
        "concat": lambda: [torch.cat([y, y_rev], dim=-1)],
        "sum": lambda: [y + y_rev],
        "ave": lambda: [(y + y_rev) / 2],
        "mul": lambda: [y * y_rev],
        None: lambda: [y, y_rev],
    }[bi.merge_mode]()
    return merged, f_states + b_states
