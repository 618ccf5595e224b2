"""The engine behind the recurrent layers: run one cell over a masked batch, with
Keras 3's masking semantics, as fast as the cell allows.

How it works (for a mask of any shape):
1. Put the steps in *processing order* (reversed for `go_backwards`, as Keras does).
2. Compact each row's real steps to the front (`compaction_order`), keep only the
   first `grid_steps(max(lengths))` steps, and sort the rows longest first. Each
   position after a row's real steps repeats its last real step (`_sorted_block`): it
   is one gather, with nothing to fill, and as those positions' outputs are never
   read and their inputs are finite, no gradient flows through them.
3. Run the cell over that dense block: PyTorch's fused kernel when the cell has one
   (`cell.fused_kernel`: `torch._VF.lstm`, `gru`, `rnn_tanh`, `rnn_relu`), else a
   per-step loop of the cell's own math (`cell.project`, `cell.step`).
   The steps after a row's real steps cannot change its real outputs, so no
   packing is needed; but running them costs time, so the fused run is split along
   time into a few calls (`plan_segments`), each over only the rows still real at its
   start and starting from the previous call's final states. That skips most of the
   padding, as packing does, while every call keeps the fused kernel's speed (packed
   input falls back to a slower kernel on CPU). The final state is read at step
   `length - 1` (the initial state for an empty row); an LSTM asked for its final cell
   state, which is not among the outputs, gets a call ending at every row's length.
4. Scatter back: the output at processing position p is the output of the last real
   step at or before p (that is Keras's "carry the previous output over a masked
   step"), zeros before the first real step, or zeros at every masked step with
   `zero_output_for_mask`. The calls' outputs stay where the kernel wrote them (a
   `StepTable`), and the layer's output is gathered from them in one `index_select`,
   the zeros included.

A `Bidirectional` LSTM pair on a batch padded at the end whose padding costs less than
the steps above (the length-bucketing loader's batches) skips them: one bidirectional
fused call runs over the batch as it is, one more input feature saturating the gates
at padded steps so that they keep the state and output zeros
(`run_bidirectional_lstm`).

Off the CPU (wherever `_host.host_reads_are_cheap` says no), steps 2 and 3 read
nothing back to the host, since each read would stall the host until the device has
caught up: no sort, no plan, no grid; the compacted batch (zero after each row's real
steps), rows in their own order and as wide as the input, runs in one call (a GPU
kernel's time per step hardly depends on how many rows it runs, so a plan would only
add calls). The final hidden state is gathered from the outputs at each row's last
real step; the LSTM's cell state, which no output carries, is kept through the padded
steps by one more input feature that saturates the gates there
(`_cell_keeping_weights`), so the call's final cell state is each row's.

The built-in cells (`cells.py`) keep their parameters in PyTorch's layout, `weight_ih
(gates*units, in)`, `weight_hh (gates*units, units)`, gates in PyTorch's order (LSTM i,
f, g, o; GRU r, z, n), so the fused kernels take them as they are (on CUDA as views
of one buffer of cuDNN's layout, `_cudnn_buffer`, which cuDNN reads without a copy).

Under `torch.compile`: on CPU the masked path takes its shapes from the mask's values
(`int(lengths.max())` sets the block's width, `plan_segments(lengths.tolist())` the
kernel calls and their rows), which dynamo cannot trace into one graph for all batches.
The kernel runs gain nothing from compiling either: the fused kernels are opaque calls
(and inductor's CPU lowering of the fused LSTM fails on inputs that need no gradient,
in PyTorch 2.13), and dynamo would unroll the step loop into a graph per sequence
length. So `_run_masked` (from the length read to the scatter back), `_run_block`
(the kernel run without a mask) and `run_bidirectional_lstm` (which reads the mask)
are wrapped in `torch.compiler.disable`:
dynamo breaks the graph there, runs them as they run eagerly, and compiles what is
around them (the casts, initial states and dropout masks, `Bidirectional`'s merge, the
other layers). Autograd records the eager part as always, so the backward is exact,
and eager speed is unchanged (the wrapper costs well under a microsecond a call). A
`torch.library.custom_op` would keep one graph, but its autograd formula could only
run the forward again inside the backward (the fused kernels' backward needs what
their forward saved, which an op's outputs cannot carry): a second forward pass of
every recurrent layer in each training step. The boundary returns tensors of the
input's shapes (`(batch, time, units)`, `(batch, units)`), so no shape in the compiled
code depends on the data: with `torch.compile(..., dynamic=True)` ragged batches reuse
one compilation (dynamo compiles once more when a batch or time size that equalled a
feature size stops doing so: its "duck sizing"). The costs: `fullgraph=True` fails on
the recurrent layers, and a container that calls one in a loop (`Sequential`,
`Graph`) is compiled layer by layer (dynamo cannot resume a graph inside a loop).
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import torch

from ..masked import compaction_order, fill_padding, real_steps_first, remember_zero_filled
from . import _host
from .cells import Weights


class StepCell(Protocol):
    """A cell as the engine runs it: a built-in cell (`cells.py`) or a `UserCell`."""

    @property
    def fused_kernel(self) -> Callable[..., Any] | None:
        """PyTorch's fused kernel computing exactly this cell, or None."""

    @property
    def output_size(self) -> int: ...

    def parameters(self) -> Iterator[torch.Tensor]: ...

    def project(self, x: torch.Tensor, input_dropout: Any) -> torch.Tensor:
        """What every step reads, from `x (batch, time, features)`, at once."""

    def step(
        self, projected: torch.Tensor, states: list[torch.Tensor], recurrent_dropout: Any
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step: `(output, new_states)`."""


class FusedCell(StepCell, Protocol):
    """A cell with a fused kernel (`fused_kernel` is not None)."""

    @property
    def has_cell_state(self) -> bool:
        """A final state that no output carries (the LSTM's cell state)."""

    def weights(self) -> Weights: ...


def run_recurrent(
    cell: StepCell,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    states: list[torch.Tensor],
    *,
    go_backwards: bool,
    return_sequences: bool,
    zero_output_for_mask: bool,
    flip_output: bool,
    need_states: bool,
    input_dropout: torch.Tensor | None,
    recurrent_dropout: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Keras's `backend.rnn` + cell, computed on the real steps only.

    Args:
        cell: what one step computes.
        x: `(batch, time, features)`.
        mask: `(batch, time)` bool or None.
        states: initial states, each `(batch, units)`.
        flip_output: reverse the returned sequence along time (what `Bidirectional`
            does to its backward output).
        need_states: compute the final states (else an empty list is returned).
        input_dropout: `(batch, 1 or gates, features)` kept-and-rescaled mask, or None.
        recurrent_dropout: `(batch, 1 or gates, units)`, or None (forces the step loop).

    Returns:
        `(output, final_states)`: output `(batch, time, units)` in Keras's positions
        (processing order, flipped if `flip_output`) or `(batch, units)` without
        `return_sequences`.
    """
    time = x.shape[1]
    if time == 0:  # no step at all (the fused kernels refuse it)
        return _no_real_step(x, cell, states, return_sequences, need_states)
    if input_dropout is not None and input_dropout.shape[1] == 1:
        x = x * input_dropout
        input_dropout = None
    if mask is None:
        seq = x.flip(1) if go_backwards else x
        outputs, final = _run_block(
            cell, seq, states, need_states, input_dropout, recurrent_dropout
        )
        if not return_sequences:
            return outputs[:, -1], final
        return (outputs.flip(1) if flip_output else outputs), final
    return _run_masked(
        cell,
        x,
        mask,
        states,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
        flip_output=flip_output,
        need_states=need_states,
        input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout,
    )


@torch.compiler.disable
def _run_masked(
    cell: StepCell,
    x: torch.Tensor,
    mask: torch.Tensor,
    states: list[torch.Tensor],
    *,
    go_backwards: bool,
    return_sequences: bool,
    zero_output_for_mask: bool,
    flip_output: bool,
    need_states: bool,
    input_dropout: torch.Tensor | None,
    recurrent_dropout: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`run_recurrent` under a mask: the compaction, the kernel calls and the scatter
    back, always run eagerly (see "Under `torch.compile`" in the module docstring).
    Where host reads are cheap (CPU) the rows are sorted and the kernel calls planned
    from their lengths; elsewhere one call runs over the whole time axis, the rows in
    their own order, and nothing is read back to the host (see "Off the CPU")."""
    batch, time = x.shape[:2]
    if batch == 0:  # known from the shape alone; cuDNN refuses an empty batch
        return _no_real_step(x, cell, states, return_sequences, need_states)
    processed = mask.flip(1) if go_backwards else mask
    lengths = processed.sum(dim=1)
    order = compaction_order(processed)
    if go_backwards:
        order = (time - 1) - order
    if not _host.host_reads_are_cheap(x.device):
        block_row = torch.arange(batch, device=x.device)
        real = torch.arange(time, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        compact = torch.where(real.unsqueeze(-1), take_steps(x, order), 0.0)
        table, final = _run_compact(
            cell, compact, lengths, states, need_states, input_dropout, recurrent_dropout
        )
    else:
        steps = int(lengths.max())
        if steps == 0:  # every row is empty
            return _no_real_step(x, cell, states, return_sequences, need_states)
        # Rows go longest first (`rank[i]` is the row at sorted position i), so that the
        # rows still running at any step are a prefix of the block.
        rank = torch.argsort(lengths, descending=True, stable=True)
        block_row = torch.empty_like(rank).scatter_(0, rank, torch.arange(batch, device=x.device))
        sorted_lengths = lengths.index_select(0, rank)
        compact = _sorted_block(x, order, sorted_lengths, rank, grid_steps(steps))
        table, final = _run_compact(
            cell,
            compact,
            sorted_lengths,
            [s.index_select(0, rank) for s in states],
            need_states,
            None if input_dropout is None else input_dropout.index_select(0, rank),
            None if recurrent_dropout is None else recurrent_dropout.index_select(0, rank),
        )
        final = [s.index_select(0, block_row) for s in final]

    # Output at processing position p: the output of the last real step at or before p.
    source = processed.cumsum(dim=1) - 1
    keep = processed if zero_output_for_mask else source >= 0
    if not return_sequences:
        return table.read(source[:, -1:], block_row, keep[:, -1:])[:, 0], final
    if flip_output:
        source, keep = source.flip(1), keep.flip(1)
    outputs = table.read(source, block_row, keep)
    if zero_output_for_mask and (flip_output or not go_backwards):
        # In `mask`'s time order, its padded steps read the zero row, which takes their
        # gradient: what a fill by `mask` would give, so the next layer skips its own.
        remember_zero_filled(outputs, mask)
    return outputs, final


def _no_real_step(
    x: torch.Tensor,
    cell: StepCell,
    states: list[torch.Tensor],
    return_sequences: bool,
    need_states: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The result for a batch without any real step: zero outputs and the initial
    states as final states (Keras's rule). The zeros still hang on the graph of the
    inputs and weights (with zero gradients), so that a loss on such a batch
    backpropagates like any other instead of failing in `backward`."""
    units = cell.output_size
    shape = (x.shape[0], x.shape[1], units) if return_sequences else (x.shape[0], units)
    anchor = sum((p.flatten()[:0].sum() for p in cell.parameters()), x[:0].sum())  # 0
    return x.new_zeros(shape) + anchor, list(states) if need_states else []


def take_steps(
    values: torch.Tensor, index: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """`values (batch, steps, units)` at the steps `index (k_rows, k)` -> `(k_rows, k, units)`.

    Row i of the result reads row `rows[i]` of `values` (row i when `rows` is None).
    Unlike `gather_steps`, `k` may differ from `steps`. One flat `index_select`; the
    result is laid out time-major in memory (a transposed view), which is what the
    fused kernels read and write, so neither side pays for a transposing copy.
    """
    batch, steps, units = values.shape
    if rows is None:
        rows = torch.arange(index.shape[0], device=index.device)
    rows = rows.unsqueeze(1)
    time_major = values.transpose(0, 1)
    if time_major.is_contiguous():  # the fused kernels' outputs
        flat, position = time_major.reshape(steps * batch, units), index * batch + rows
    else:
        flat, position = values.reshape(batch * steps, units), index + rows * steps
    taken = flat.index_select(0, position.T.reshape(-1))
    return taken.view(index.shape[1], index.shape[0], units).transpose(0, 1)


def _sorted_block(
    x: torch.Tensor, order: torch.Tensor, lengths: torch.Tensor, rank: torch.Tensor, width: int
) -> torch.Tensor:
    """The block the CPU path runs, `width` steps wide (on the step grid, so that its
    kernel calls can stop there) and time-major in memory: row i holds the real steps
    of batch row `rank[i]` (`lengths[i]` of them, non-increasing with i) in processing
    order (`order`, as from `compaction_order`), then its last real step again up to
    the block's width; an empty row holds the first row's first real step.

    So every position holds a real input, and the block is one gather with nothing to
    fill: the outputs of the positions after a row's length are never read, and as
    their inputs are real values, the gradient through them is exactly zero (a zero
    fill would cost one pass over the block forwards and one backwards, and give the
    same gradient)."""
    rows = torch.where(lengths > 0, rank, rank[0])
    last = (lengths - 1).clamp(min=0).unsqueeze(1)
    steps = torch.minimum(torch.arange(width, device=x.device).unsqueeze(0), last)
    return take_steps(x, order.index_select(0, rows).gather(1, steps), rows=rows)


@torch.compiler.disable
def _run_block(
    cell: StepCell,
    x: torch.Tensor,
    states: list[torch.Tensor],
    need_states: bool,
    input_dropout: torch.Tensor | None,
    recurrent_dropout: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run over every step of `x (batch, steps, features)`, without a mask. Returns
    the outputs `(batch, steps, units)` and the final states (an empty list unless
    `need_states`)."""
    if _fused(cell, input_dropout, recurrent_dropout):
        fused = cast(FusedCell, cell)
        outputs, final = _fused_call(fused, fused.weights(), x, states)
    else:
        outputs, final = _step_loop(cell, x, None, states, input_dropout, recurrent_dropout)
    return outputs, final if need_states else []


def _fused(
    cell: StepCell, input_dropout: torch.Tensor | None, recurrent_dropout: torch.Tensor | None
) -> bool:
    """Whether the cell runs through its fused kernel: it has one, and no dropout mask
    acts inside the recurrence (per-gate input masks or recurrent ones)."""
    return cell.fused_kernel is not None and input_dropout is None and recurrent_dropout is None


def _run_compact(
    cell: StepCell,
    x: torch.Tensor,
    lengths: torch.Tensor,
    states: list[torch.Tensor],
    need_states: bool,
    input_dropout: torch.Tensor | None,
    recurrent_dropout: torch.Tensor | None,
) -> tuple[StepTable, list[torch.Tensor]]:
    """Run over a compacted block whose row i is real for its first `lengths[i]` steps
    and finite after them; where host reads are cheap, `lengths` is non-increasing and
    the fused kernel runs in planned calls, elsewhere in one call reading nothing back.
    Returns the outputs (only the real ones are meaningful) and the final states at
    each row's last real step (an empty list unless `need_states`)."""
    if not _fused(cell, input_dropout, recurrent_dropout):
        outputs, final = _step_loop(cell, x, lengths, states, input_dropout, recurrent_dropout)
        return StepTable.of(outputs), final if need_states else []
    fused = cast(FusedCell, cell)
    if _host.host_reads_are_cheap(x.device):
        return _fused_segments(fused, x, lengths, states, need_states)
    return _fused_whole(fused, x, lengths, states, need_states)


@dataclass(frozen=True)
class StepTable:
    """A block's outputs as the rows of one table, `pieces` (each `(n, units)`) one
    after another: the output of block row r at step s is row `first[s] + r *
    row_stride`. The fused kernel calls' outputs are pieces as they come (time-major,
    `row_stride` 1), so the table costs no copy until it is read."""

    pieces: list[torch.Tensor]
    first: torch.Tensor
    row_stride: int = 1

    @staticmethod
    def of(outputs: torch.Tensor) -> StepTable:
        """The table of dense outputs `(rows, steps, units)`."""
        rows, steps, units = outputs.shape
        step = torch.arange(steps, device=outputs.device)
        time_major = outputs.transpose(0, 1)
        if time_major.is_contiguous():  # the fused kernels' outputs
            return StepTable([time_major.reshape(-1, units)], step * rows)
        return StepTable([outputs.reshape(-1, units)], step, row_stride=steps)

    def read(self, steps: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """`(batch, k, units)`: at `[i, j]` the output of block row `rows[i]` at block
        step `steps[i, j]`, or zeros where `keep[i, j]` is False (there `steps` may be
        -1). One `cat` of the pieces after a row of zeros and one `index_select`,
        batch-major in memory, so the zeros cost no pass of their own."""
        first = self.pieces[0]
        values = torch.cat([first.new_zeros(1, first.shape[1]), *self.pieces])
        position = self.first.take(steps.clamp(min=0)) + rows.unsqueeze(1) * self.row_stride
        position = torch.where(keep, position + 1, 0)
        return values.index_select(0, position.view(-1)).view(*position.shape, -1)

    def last(self, lengths: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """Each block row's output at its step `lengths - 1`, or `initial` (its
        initial hidden state) for a row without a real step: its final hidden state."""
        real = (lengths > 0).unsqueeze(1)
        rows = torch.arange(lengths.shape[0], device=lengths.device)
        last = self.read((lengths - 1).unsqueeze(1), rows, real)[:, 0]
        return torch.where(real, last, initial)


@dataclass(frozen=True)
class Segment:
    """Steps `start:stop` of the first `rows` rows: one fused kernel call. The first
    `running` of those rows are real at `start`; the others have ended and only round
    the call's shape up (their outputs are never read)."""

    start: int
    stop: int
    rows: int
    running: int


SEGMENT_CALL_COSTS: dict[str, float] = {"cpu": 80.0}
"""What one more kernel call costs, in row-steps (one row through one step), per device
type. Measured on CPU (LSTM 128 units, batch 1 to 32, 5 to 200 steps, training and
inference alike): a call of n rows over T steps takes about `80 + T * (2 + n)` times
the time of one row-step. Other device types take the path without a plan (see "Off
the CPU" above); a device type missing here is planned as one call."""
SEGMENT_STEP_COST = 2.0
"""What a step costs on top of its rows, in row-steps (reading the recurrent weights)."""


def grid_steps(steps: int) -> int:
    """The first step on the grid at or after `steps`, where kernel calls may stop:
    every step up to 16, then 8 per octave (multiples of 2 up to 32, of 4 up to 64,
    of 8 up to 128, ...), so rounding up adds less than 12.5 %.

    With `call_rows`, this bounds the set of call shapes: oneDNN keeps a compiled
    primitive (about 175 KB on CPU) for every shape it has run, so free-form shapes
    would grow memory by tens of MB per epoch for a few percent of speed.
    """
    if steps <= 16:
        return steps
    spacing = 1 << ((steps - 1).bit_length() - 4)
    return -(-steps // spacing) * spacing


def call_rows(alive: int, batch: int) -> int:
    """The rows a call runs when `alive` rows are real at its start: the smallest of
    1, 2, 3, 4, 6, 8, 12, 16, 24, ... (two sizes per octave) that is at least `alive`,
    capped at `batch`. The extra rows have ended; their outputs are never read."""
    if alive <= 2:
        return alive
    power = 1 << (alive - 1).bit_length()
    return min(batch, power * 3 // 4 if power * 3 // 4 >= alive else power)


def plan_segments(
    lengths: list[int], call_cost: float, cut_at_every_length: bool = False
) -> list[Segment]:
    """Split the steps of a block, whose rows are sorted by non-increasing `lengths`,
    into the kernel calls that cost least.

    Each call runs only the rows still real at its first step, so most of the padding
    after the short rows is skipped (as packing does), while each call still gets the
    fused kernel's speed on a dense block. Calls stop on the step grid (`grid_steps`,
    so the block must be `grid_steps(max(lengths))` wide) and run `call_rows` rows.
    The plan is exact, by dynamic programming over the cut points worth trying (the
    lengths, rounded up to the grid), for a kernel call costing `call_cost` row-steps
    (`math.inf`: one call). `cut_at_every_length` instead ends a call at every row's
    length, on no grid, so that each row's final states are a call's.
    """
    batch, distinct = len(lengths), set(lengths)
    if cut_at_every_length:
        cuts = sorted({0, *distinct})
    else:
        cuts = sorted({0, *(grid_steps(n) for n in distinct)})
    ascending = lengths[::-1]
    running = [batch - bisect.bisect_right(ascending, t) for t in cuts]
    rows = [call_rows(n, batch) for n in running]
    previous = list(range(-1, len(cuts) - 1))  # a call from each cut to the next
    if not cut_at_every_length:
        previous = [0] * len(cuts)  # one call, unless the costs say otherwise
        best = [0.0] + [math.inf] * (len(cuts) - 1)
        for j in range(1, len(cuts) if math.isfinite(call_cost) else 1):
            for i in range(j):
                steps = cuts[j] - cuts[i]
                cost = best[i] + call_cost + steps * (SEGMENT_STEP_COST + rows[i])
                if cost < best[j]:
                    best[j], previous[j] = cost, i
    plan, j = [], len(cuts) - 1
    while j > 0:
        i = previous[j]
        plan.append(Segment(cuts[i], cuts[j], rows[i], running[i]))
        j = i
    return plan[::-1]


def _fused_segments(
    cell: FusedCell,
    x: torch.Tensor,
    lengths: torch.Tensor,
    states: list[torch.Tensor],
    need_states: bool,
) -> tuple[StepTable, list[torch.Tensor]]:
    """`_run_compact` through the fused kernel, in the calls `plan_segments` picks.
    Each call starts from the previous call's final states: the rows it keeps were real
    through every step of the previous call. The calls' outputs go into the table as
    they are, each call's steps in its own rows."""
    exact_states = need_states and cell.has_cell_state  # a state no output carries
    call_cost = SEGMENT_CALL_COSTS.get(x.device.type, math.inf)
    plan = plan_segments(lengths.tolist(), call_cost, cut_at_every_length=exact_states)
    pieces, ended = [], []
    first: list[int] = []  # the table row of each step's first block row
    current, weights, offset = states, cell.weights(), 0
    for segment, following in zip(plan, [*plan[1:], None], strict=True):
        block = x[: segment.rows, segment.start : segment.stop]
        outputs, current = _fused_call(cell, weights, block, [s[: segment.rows] for s in current])
        pieces.append(outputs.transpose(0, 1).flatten(0, 1))  # the kernel's layout: a view
        size = (segment.stop - segment.start) * segment.rows
        first.extend(range(offset, offset + size, segment.rows))
        offset += size
        if exact_states:  # keep the rows whose last real step was this call's last
            still_running = following.running if following else 0
            ended.append([s[still_running : segment.running] for s in current])
    table = StepTable(pieces, torch.tensor(first, device=x.device))
    if not need_states:
        return table, []
    if exact_states:
        empty_rows = [s[plan[0].running :] for s in states]
        by_row = zip(*reversed(ended), empty_rows, strict=True)
        return table, [torch.cat(parts) for parts in by_row]
    return table, [table.last(lengths, states[0])]


def _fused_whole(
    cell: FusedCell,
    x: torch.Tensor,
    lengths: torch.Tensor,
    states: list[torch.Tensor],
    need_states: bool,
) -> tuple[StepTable, list[torch.Tensor]]:
    """`_run_compact` through one fused call over every step, reading nothing back to
    the host. The final hidden state is the output at each row's last real step (the
    initial state for an empty row). The LSTM's cell state is no output, so for it the
    call runs with `_cell_keeping_weights`, which make every padded step keep the cell
    state: the call's final cell state is then each row's, whatever its length."""
    keep_cell = need_states and cell.has_cell_state
    weights = cell.weights()
    if keep_cell:
        padded = torch.arange(x.shape[1], device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        x = torch.cat([x, padded.unsqueeze(-1).to(x.dtype)], dim=-1)
        weights = _cell_keeping_weights(weights, x.device.type)
    outputs, final = _fused_call(cell, weights, x, states)
    table = StepTable.of(outputs)
    if not need_states:
        return table, []
    hidden = table.last(lengths, states[0])
    return table, [hidden, final[1]] if keep_cell else [hidden]


SINGLE_CALL_SAVING = 300.0
"""What running a `Bidirectional` LSTM in one bidirectional call over the padded batch
(`run_bidirectional_lstm`) saves against the masked path's two planned directions
besides their kernel calls (compaction, plan and gathers, forwards and backwards), in
row-steps per direction (see `SEGMENT_CALL_COSTS`). Measured on CPU: BiLSTM 64 units,
batch 32."""


@torch.compiler.disable
def run_bidirectional_lstm(
    forward: FusedCell, backward: FusedCell, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor | None:
    """A `Bidirectional` pair of LSTM cells over a batch padded at the end, in one
    bidirectional fused call over the batch as it is: `(batch, time, 2 * units)`, the
    forward outputs then the backward ones (in time order), zeros at padded steps; or
    None where that would not be exact or would cost more than the masked path.

    For zero initial states, no dropout and `zero_output_for_mask` (the caller checks
    those). One more input feature, "this step is padding", saturates the gates there
    (`_cell_keeping_weights`): the cell state is kept and the output is exactly 0. So
    the backward direction, which meets a row's padding before its real steps, starts
    them from the zero initial state, as Keras's does, and both directions output zeros
    at padded steps. It runs where the mask's real steps come first in every row (the
    length-bucketing loader's batches) and the padding costs less than what the masked
    path adds (`SINGLE_CALL_SAVING`); CPU only, since it reads the mask on the host."""
    if not _one_call_pays(mask):
        return None
    x = torch.cat([fill_padding(x, mask), (~mask).unsqueeze(-1).to(x.dtype)], dim=-1)
    pair = [
        _flat_weights(_cell_keeping_weights(cell.weights(), x.device.type))
        for cell in (forward, backward)
    ]
    flat = [*pair[0][0], *pair[1][0]]
    zeros = x.new_zeros(2, x.shape[0], forward.output_size)
    kernel = cast("Callable[..., Any]", forward.fused_kernel)
    train = torch.is_grad_enabled()
    run = _runnable_kernel(kernel, x.device, lstm=True)
    outputs = run(x, (zeros, zeros), flat, pair[0][1], 1, 0.0, train, True, True)[0]
    # The outputs at padded steps are already 0; the fill (the pass that lays them
    # out batch-major anyway, for the next layer's matmul) also drops any gradient
    # given there, as the masked path's gather does, so a non-finite one cannot reach
    # the weights through the saturated gates (0 times inf). Being `fill_padding`'s, it
    # spares the next layer its own fill of the padding.
    return fill_padding(outputs, mask)


def _one_call_pays(mask: torch.Tensor) -> bool:
    """Whether `mask` is padded at the end of every row, has a real step, and its
    padding costs less than the two directions' planned calls plus
    `SINGLE_CALL_SAVING` each (see `run_bidirectional_lstm`)."""
    call_cost = SEGMENT_CALL_COSTS.get(mask.device.type, math.inf)
    if not _host.host_reads_are_cheap(mask.device) or not math.isfinite(call_cost):
        return False
    batch, time = mask.shape
    if batch == 0 or not torch.equal(mask, real_steps_first(mask)):
        return False
    lengths = mask.sum(dim=1)
    host = sorted(lengths.tolist(), reverse=True)
    if host[0] == 0:
        return False
    if batch * time - sum(host) <= SINGLE_CALL_SAVING:
        # The one call's cost exceeds any plan's lower bound, a call over exactly the
        # real steps (`call_cost + time * SEGMENT_STEP_COST + sum(host)`), by the
        # padding alone: it pays whatever the plan.
        return True
    planned = sum(
        call_cost + (s.stop - s.start) * (SEGMENT_STEP_COST + s.rows)
        for s in plan_segments(host, call_cost)
    )
    return call_cost + time * (SEGMENT_STEP_COST + batch) <= planned + SINGLE_CALL_SAVING


def _cell_keeping_weights(weights: Weights, device_type: str) -> Weights:
    """An LSTM's weights with one more input feature, "this step is padding", whose
    weight drives the input and output gates to exactly 0 and the forget gate to
    exactly 1, so that a padded step leaves the cell state as it was (`c = 1 * c + 0 *
    g`), outputs exactly 0 (`h = 0 * tanh(c)`) and passes no gradient to any weight.
    The weight, 2**20 (a quarter of float16's largest value, 16376, when the kernel
    computes in float16), rounds those sigmoids to exactly 0 and 1 in any precision as
    long as a gate's biases plus its row of absolute recurrent weights stay 1000 below
    it: the recurrent input (`|h| <= 1`) is all a padded step adds, its other features
    being 0. At real steps the feature is 0 and adds nothing."""
    dtype = weights.weight_ih.dtype
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    big = min(2.0**20, torch.finfo(dtype).max / 4)
    column = _saturating_column(
        weights.weight_hh.shape[1], big, weights.weight_ih.dtype, weights.weight_ih.device
    )
    return replace(weights, weight_ih=torch.cat([weights.weight_ih, column], dim=1))


_SATURATING_COLUMNS: dict[tuple[int, float, torch.dtype, torch.device], torch.Tensor] = {}
"""`_saturating_column`'s constants, by units, size, dtype and device."""


def _saturating_column(
    units: int, big: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The `(4 * units, 1)` weight of `_cell_keeping_weights`'s padding feature: `-big`
    on the input and output gates, `big` on the forget gate, 0 on the candidate. A
    constant, made once per size, dtype and device, and never written (`torch.cat`
    copies it): a plain tensor even when first made under `inference_mode`, and not
    kept when made under a tensor subclass's mode (a fake tensor while tracing)."""
    key = (units, big, dtype, device)
    column = _SATURATING_COLUMNS.get(key)
    if column is None:
        with torch.inference_mode(False), torch.no_grad():
            column = torch.zeros(4 * units, 1, dtype=dtype, device=device)
            column[:units] = -big  # input gate i
            column[units : 2 * units] = big  # forget gate f
            column[3 * units :] = -big  # output gate o
        if type(column) is torch.Tensor:
            _SATURATING_COLUMNS[key] = column
    return column


def _flat_weights(weights: Weights) -> tuple[list[torch.Tensor], bool]:
    if weights.bias is None:
        return [weights.weight_ih, weights.weight_hh], False
    recurrent = weights.recurrent_bias
    if recurrent is None:
        recurrent = torch.zeros_like(weights.bias)
    return [weights.weight_ih, weights.weight_hh, weights.bias, recurrent], True


def _fused_call(
    cell: FusedCell, weights: Weights, x: torch.Tensor, hx: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The cell's fused kernel over every step of `x (batch, steps, features)`."""
    flat, has_biases = _flat_weights(weights)
    hidden = [h.unsqueeze(0) for h in hx]
    train = torch.is_grad_enabled()
    state: Any = tuple(hidden) if len(hidden) > 1 else hidden[0]
    kernel = cast("Callable[..., Any]", cell.fused_kernel)
    run = _runnable_kernel(kernel, x.device, lstm=cell.has_cell_state)
    result = run(x, state, flat, has_biases, 1, 0.0, train, False, True)
    return result[0], [s.squeeze(0) for s in result[1:]]


CUDNN_COPIES_WEIGHTS = "RNN module weights are not part of single contiguous chunk of memory"
"""The start of cuDNN's warning at each call whose weights are not views of one buffer."""


def _runnable_kernel(fn: Any, device: torch.device, lstm: bool) -> Any:
    """`fn`, a fused kernel, as it runs on `device`: for an LSTM (`lstm`) on CPU under
    float16 autocast, in the weights' dtype with autocast off (oneDNN has no float16
    LSTM on CPU, so autocast's cast of its inputs fails: the layer computes in float32
    there, as GRU does under it); off the CPU, without cuDNN's warning that the weights
    are not one buffer.

    cuDNN wants the weights in one buffer of its layout. A built-in cell keeps its own
    there (`_cudnn_buffer`), but some calls take other tensors: the LSTM's weights with
    the cell-keeping column made per call (`_cell_keeping_weights`), weights swapped in
    by `torch.func.functional_call`. cuDNN copies those into such a buffer, a copy the
    size of the weights, small next to the run over the batch, and warns. The warning is
    about that copy, expected there, and would stop any program that turns warnings into
    errors (as the test suite does)."""
    cpu_float16 = device.type == "cpu" and torch.get_autocast_dtype("cpu") == torch.float16
    if lstm and cpu_float16 and torch.is_autocast_enabled("cpu"):

        def in_weights_dtype(x: Any, hx: Any, flat: list[torch.Tensor], *rest: Any) -> Any:
            dtype = flat[0].dtype
            state = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
            with torch.autocast("cpu", enabled=False):
                return fn(x.to(dtype), state, flat, *rest)

        return in_weights_dtype
    if _host.host_reads_are_cheap(device):
        return fn

    def call(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=CUDNN_COPIES_WEIGHTS)
            return fn(*args)

    return call


def _step_loop(
    cell: StepCell,
    x: torch.Tensor,
    lengths: torch.Tensor | None,
    states: list[torch.Tensor],
    input_dropout: torch.Tensor | None,
    recurrent_dropout: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The per-step path, the cell's own math: any cell, any activation, recurrent
    dropout. Each row's states stop changing after its last real step."""
    projected = cell.project(x, input_dropout)
    outputs = []
    for t in range(x.shape[1]):
        output, new_states = cell.step(projected[:, t], states, recurrent_dropout)
        if lengths is not None:  # carry the states past each row's last real step
            live = (lengths > t).unsqueeze(1)
            new_states = [torch.where(live, new, old) for new, old in zip(new_states, states)]
        states = new_states
        outputs.append(output)
    return torch.stack(outputs, dim=1), states
