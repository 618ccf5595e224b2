"""Recurrent layers: `RNN` (any cell, or a stack of cells), `LSTM`, `GRU`, `SimpleRNN`
and `Bidirectional`, with Keras 3's masking semantics and PyTorch's fused kernels on
the real steps.

The Keras rule, exactly: a masked step leaves the state unchanged and outputs the
previous step's output (zeros before the first real step), or zeros when
`zero_output_for_mask=True` (which `Bidirectional` sets when it returns sequences).
Without `return_sequences` the output is the last real step's output. The mask may
have any shape: trailing or leading padding, holes, or empty rows; a batch without any
real step (every row empty, or a time axis of length 0) gives zero outputs and the
initial states as final states. Integer features, and floats of another precision
than the weights' (float32 data into a float64 model), are cast to the weights' dtype.

`LSTM`, `GRU` and `SimpleRNN` are `RNN` with their cell (`cells.py`), as in Keras. The
work is done in `_rnn_kernels.py`: the real steps are compacted to the front and run
through `torch._VF.lstm` / `gru` / `rnn_tanh` / `rnn_relu` when the cell is one of
PyTorch's (LSTM and GRU with `tanh`/`sigmoid`, SimpleRNN with `tanh`/`relu`), else
through a per-step loop of the cell's math (other activations, GRU
`reset_after=False`, `recurrent_dropout` in training, user cells). Under
`torch.compile` these layers compile forward and backward; the compaction and the
kernel runs stay eager behind a compile boundary (`_rnn_kernels.py` says why), so the
graph breaks there.

Streaming (`stateful=True`): each batch starts from the final states of the previous
one, row by row (each row's state after its last real step), so a long sequence can
be fed in consecutive chunks; `reset_states()` starts new streams.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from ..masked import is_zero_filled, remember_zero_filled
from ._keras_args import given_rules
from ._rnn_kernels import StepCell, run_bidirectional_lstm, run_recurrent
from .base import CallOutput, Layer
from .cells import (
    GRUCell,
    LSTMCell,
    SimpleRNNCell,
    StackedRNNCells,
    UserCell,
    _BuiltinCell,
    check_cell,
    initial_states,
    output_size,
    state_sizes,
)

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class RNN(Layer):
    """Runs a cell over the real steps of each sequence.

    Value rule (Keras's `RNN`): the cell reads the real steps in order (last to first
    with `go_backwards`); a masked step leaves every state unchanged and outputs the
    previous output (zeros before the first real step, or at every masked step with
    `zero_output_for_mask`). Without `return_sequences` the output is the last real
    step's. Mask rule: the input mask with `return_sequences` (reversed with
    `go_backwards`, like the outputs), else None.

    Example:
        >>> rnn = RNN(LSTMCell(8), return_sequences=True)
        >>> y = rnn(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])

    Streaming inference, a long sequence fed in chunks (`stateful=True`):
        >>> stream = RNN(GRUCell(4), return_sequences=True, stateful=True)
        >>> chunks = torch.randn(2, 6, 3).split(3, dim=1)
        >>> streamed = torch.cat([stream(chunk).values for chunk in chunks], dim=1)
        >>> stream.reset_states()
        >>> torch.allclose(streamed, stream(torch.cat(chunks, dim=1)).values, atol=1e-6)
        True

    Args:
        cell: a built-in cell (`LSTMCell`, `GRUCell`, `SimpleRNNCell`), a
            `StackedRNNCells`, a list of cells (stacked), or a user cell: an
            `nn.Module` with `state_size` and `forward(inputs, states) -> (output,
            new_states)` (see `maskwise.layers.cells`). Built-in cells run on PyTorch's
            fused kernels where one computes them; user cells run step by step.
        return_sequences: return `(batch, time, output_size)` instead of the last real
            output `(batch, output_size)`.
        return_state: return `(output, *final_states)`, each `(batch, size)`, the
            states after each row's last real step; a stack's states come cell by cell.
        go_backwards: read the sequence from its end; as in Keras, the returned sequence
            is in that (reversed) order; unlike Keras, the output mask is reversed too,
            so it marks the steps that hold real outputs.
        stateful: start each batch from the previous batch's final states (row i from
            row i's), detached from its graph (gradients stop at the batch boundary, as
            in Keras); the batch size must stay the same until `reset_states()`. A row
            without any real step keeps its states, so a finished stream can be padded.
        unroll: not supported (ConfigError); the fused kernels are faster anyway.
        zero_output_for_mask: zeros instead of the carried output at masked steps.
        name: layer name.

    Call: `layer(x, mask=None, initial_state=None)`, `x` a `Masked` or `(batch, time,
    features)` tensor (cast to the weights' dtype); `initial_state` one `(batch, size)`
    tensor per state (a stack's cell by cell, flat or nested per cell as in Keras),
    overriding a stateful layer's states.
    """

    fills_padding = False  # the real steps are compacted: a padded step is never read

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if isinstance(cell, list | tuple):
            cell = StackedRNNCells(list(cell))
        check_cell(cell, f"{kind} `cell`")
        _refuse_cell_activity_penalty(kind, cell)
        if unroll:
            raise ConfigError(
                format_error(
                    f"{kind}(unroll=True) is not supported by maskwise.",
                    expected="unroll=False",
                    received="unroll=True",
                    fix="drop `unroll`; the fused kernels are faster anyway.",
                )
            )
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.zero_output_for_mask = zero_output_for_mask
        self.states: list[torch.Tensor] | None = None
        """A stateful layer's states for the next batch (None: start from zeros)."""

    @property
    def state_size(self) -> list[int]:
        """The size of each state tensor, flat (a stack's cell by cell)."""
        return state_sizes(self.cell)

    @property
    def output_size(self) -> int:
        return output_size(self.cell)

    @property
    def _cells(self) -> list[nn.Module]:
        """The cells run one after another (one, unless stacked)."""
        return list(self.cell.cells) if isinstance(self.cell, StackedRNNCells) else [self.cell]

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Any) -> None:
        if isinstance(self.cell, Layer):
            self.cell.build_from_config_shape([int(input_shape[-1])])

    # ------------------------------------------------------------------ contract
    def call(
        self, values: torch.Tensor, mask: torch.Tensor | None, *, initial_state: Any = None
    ) -> CallOutput:
        """The output values, and with `return_state` the final states after them."""
        output, states = self.run(values, mask, initial_state)
        return (output, *states) if self.return_state else output

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The input mask with `return_sequences`, else None.

        With `go_backwards` the outputs come in reversed time order, so the mask is
        reversed with them. Keras keeps the input's mask there, which marks the wrong
        steps as real (its padding outputs) — we differ on purpose.
        """
        if not self.return_sequences or mask is None:
            return None
        return mask.flip(1) if self.go_backwards else mask

    @property
    def consumes_mask(self) -> bool:
        return not self.return_sequences

    def run(
        self,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        initial_state: Any,
        flip_output: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output values and final states (a list; may be empty unless `return_state`).

        Integer features and floats of another precision are cast to the weights' dtype
        (Keras's habit). Padded steps are never read (the real steps are compacted), so
        they need no filling. The cells of a stack run one after another, each over the
        whole sequence (the same as stepping them together, since a masked step
        carries every cell's states), so that each keeps its fused kernel.
        """
        values = self.checked_values(values)
        states = self._initial_states(values, initial_state)
        need_states = self.return_state or self.stateful
        cells = self._cells
        per_cell = (
            self.cell.split_states(states) if isinstance(self.cell, StackedRNNCells) else [states]
        )
        x, go_backwards, final = values, self.go_backwards, []
        for k, (cell, own) in enumerate(zip(cells, per_cell, strict=True)):
            last = k == len(cells) - 1
            if isinstance(cell, _BuiltinCell):
                step_cell: StepCell = cell
                input_drop, recurrent_drop = cell.dropout_masks(x, self.training)
            else:
                step_cell, input_drop, recurrent_drop = UserCell(cell), None, None
            x, cell_final = run_recurrent(
                step_cell,
                x,
                mask,
                own,
                go_backwards=go_backwards,
                return_sequences=self.return_sequences or not last,
                zero_output_for_mask=self.zero_output_for_mask,
                flip_output=flip_output and last,
                need_states=need_states,
                input_dropout=input_drop,
                recurrent_dropout=recurrent_drop,
            )
            final.extend(cell_final)
            if go_backwards and mask is not None:  # the outputs came in reversed order
                mask = mask.flip(1)
            go_backwards = False
        if self.stateful:
            self.states = [s.detach() for s in final]
        return x, final if self.return_state else []

    def checked_values(self, values: torch.Tensor) -> torch.Tensor:
        """`values` in the weights' dtype, after checking they are `(batch, time,
        features)` with the features the layer was built for."""
        values = values.to(self.compute_dtype(values))
        features = None if self.build_shape is None else self.build_shape[-1]
        if values.dim() != 3 or (features is not None and values.shape[-1] != features):
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} got inputs of the wrong shape.",
                    expected=f"(batch, time, {features if features is not None else 'features'})",
                    received=f"shape {tuple(values.shape)}",
                    fix="recurrent layers read (batch, time, features); check the layout "
                    "(e.g. transpose a (features, time) array).",
                )
            )
        return values

    # ------------------------------------------------------------------ states
    def get_initial_state(self, batch_size: int) -> list[torch.Tensor]:
        """Zeros `(batch_size, size)` per state (or the cell's own
        `get_initial_state`), Keras's default initial states."""
        return initial_states(self.cell, batch_size)

    def reset_states(self, states: Any = None) -> None:
        """Start new streams (a stateful layer): the next batch starts from `states`
        (one `(batch, size)` tensor per state, as `initial_state`), or from the initial
        states when None, whatever its batch size."""
        self.states = None if states is None else list(self._given_states(states, None))

    reset_state = reset_states  # Keras 3's name; `reset_states` is its alias

    def _initial_states(self, values: torch.Tensor, initial_state: Any) -> list[torch.Tensor]:
        batch = values.shape[0]
        if initial_state is not None:
            return self._given_states(initial_state, batch, values)
        if not self.stateful or self.states is None:
            return initial_states(self.cell, batch, like=values)
        carried = self.states[0].shape[0]
        if carried != batch:
            raise ConfigError(
                format_error(
                    f"Stateful {type(self).__name__} layer {self.name!r} got a batch of "
                    f"another size than the previous one.",
                    expected=f"{carried} rows: row i continues the stream of row i",
                    received=f"{batch} rows",
                    fix="keep the batch size fixed over a stream (pad a short last batch "
                    "with fully masked rows, which keep their states), or call "
                    "reset_states() to start new streams.",
                )
            )
        return [s.to(device=values.device, dtype=values.dtype) for s in self.states]

    def _given_states(
        self, given: Any, batch: int | None, like: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """`given` checked against `state_size` (and `batch`, if known); Keras's nested
        lists for a stack (`[[h1, c1], h2]`) are read flat."""
        tensors = _flat(given)
        shapes = [
            tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__ for s in tensors
        ]
        if batch is None:  # `reset_states(states)`: the states set the batch size
            batch = (
                int(tensors[0].shape[0]) if tensors and isinstance(tensors[0], torch.Tensor) else 0
            )
        expected = [(batch, size) for size in self.state_size]
        if shapes != expected:
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} got wrong states.",
                    expected=f"{len(expected)} tensor(s) (batch, size): {expected}",
                    received=f"{len(tensors)} state(s) shaped {shapes}",
                    fix="pass one (batch, size) tensor per state, e.g. the states "
                    "returned by a layer with return_state=True.",
                )
            )
        if like is None:
            return [s.detach() for s in tensors]
        return [s.to(like.dtype) for s in tensors]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, cell={type(self.cell).__name__}"


def _refuse_cell_activity_penalty(kind: str, cell: nn.Module) -> None:
    """A `ConfigError` for a cell with an `activity_regularizer`: `RNN` runs its cells'
    math, never their call, so the penalty would silently never count."""
    for module in cell.modules():
        if isinstance(module, Layer) and module.activity_regularizer is not None:
            raise ConfigError(
                format_error(
                    f"{kind}: the cell {module.name!r} has an activity_regularizer, which "
                    "maskwise does not apply inside a recurrent layer.",
                    expected="a cell without activity_regularizer",
                    received=f"activity_regularizer={module.activity_regularizer!r}",
                    fix=f"pass activity_regularizer to the {kind} layer instead (a penalty "
                    "on its outputs).",
                )
            )


def _flat(given: Any) -> list[Any]:
    if isinstance(given, list | tuple):
        return [item for part in given for item in _flat(part)]
    return [given]


_SHARED_ARGS = """
        units: output features (the state size).
        activation: Keras name of the activation (`"tanh"`).
        use_bias: add biases.
        dropout: rate dropped from the inputs, one mask per sequence for all steps.
        recurrent_dropout: rate dropped from the state in the recurrent product
            (forces the per-step path).
        other arguments: `return_sequences`, `return_state`, `go_backwards`,
            `stateful`, `zero_output_for_mask`, `unroll`, as in `RNN`.
        seed: an int seeds the dropout masks (see the cell).
        input_shape: `(time, features)`, time None if it varies (or `input_dim`, the
            features): the weights are built at construction, else at the first call.
        kernel_initializer: like `recurrent_initializer`, `bias_initializer` and
            the `*_regularizer` and `*_constraint` arguments of the three weights,
            given to the cell, which owns the weights (see `LSTMCell`).
        activity_regularizer: a penalty on the layer's outputs (real steps only).
        name: layer name.

    Call: `layer(x, mask=None, initial_state=None)`, `x` a `Masked` or `(batch, time,
    features)` tensor (cast to the weights' dtype). A batch without any real step gives
    zero outputs and the initial states."""


class _CellLayer(RNN):
    """What `LSTM`, `GRU` and `SimpleRNN` share: their cell's arguments on the layer
    (its weights' rules go to the cell, which owns the weights), LSTM's and GRU's
    `use_cudnn`, and the loading of state dicts saved when the weights were the
    layer's own (`weight_ih`, not `cell.weight_ih`)."""

    cell: _BuiltinCell
    weight_names = _BuiltinCell.weight_names
    renamed_weights: ClassVar[dict[str, str]] = {
        name: f"cell.{name}" for name in ("weight_ih", "weight_hh", "bias", "recurrent_bias")
    }

    def __init__(
        self, cell: _BuiltinCell, use_cudnn: bool | str | None = None, **rnn_args: Any
    ) -> None:
        super().__init__(cell, **rnn_args)
        if use_cudnn is None:  # SimpleRNN: Keras's has no `use_cudnn`
            return
        if use_cudnn not in ("auto", True, False):
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} use_cudnn must be 'auto', True or False.",
                    received=repr(use_cudnn),
                )
            )
        self.use_cudnn = use_cudnn

    @property
    def units(self) -> int:
        return self.cell.units

    def extra_repr(self) -> str:
        return f"name={self.name!r}, cell={self.cell.extra_repr()}"


class LSTM(_CellLayer):
    __doc__ = (
        """Long short-term memory over the real steps of each sequence:
    `RNN(LSTMCell(units, ...))`.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel: `activation="tanh"`,
    `recurrent_activation="sigmoid"`; other activations run step by step.

    Example:
        >>> y = LSTM(8, return_sequences=True)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])

    Weights: the cell's (`layer.cell.weight_ih`, ...; see `LSTMCell`).

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        unit_forget_bias: initialise the forget gate's bias to 1 (Keras's default).
        use_cudnn: Keras's choice of its cuDNN kernel (`"auto"`, True or False),
            accepted for Keras code; the results do not depend on it (maskwise picks
            PyTorch's fused kernel, cuDNN's on a GPU, whenever it computes the cell)."""
        + _SHARED_ARGS
    )

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        *,
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        use_cudnn: bool | str = "auto",
        name: str | None = None,
    ) -> None:
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            unit_forget_bias=unit_forget_bias,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name=f"{name}_cell" if name else None,
            **given_rules(self),
        )
        super().__init__(
            cell,
            use_cudnn,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            name=name,
        )


class GRU(_CellLayer):
    __doc__ = (
        """Gated recurrent unit over the real steps of each sequence:
    `RNN(GRUCell(units, ...))`.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel (PyTorch's GRU is Keras's
    `reset_after=True`): `tanh`/`sigmoid` with `reset_after=True`; `reset_after=False`
    and other activations run step by step.

    Example:
        >>> y = GRU(8)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape, y.mask is None
        (torch.Size([2, 8]), True)

    Weights: the cell's (`layer.cell.weight_ih`, ...; see `GRUCell`).

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        reset_after: apply the reset gate after the recurrent product (Keras 3's
            default, PyTorch's GRU) or before it.
        use_cudnn: Keras's choice of its cuDNN kernel (`"auto"`, True or False),
            accepted for Keras code; the results do not depend on it (maskwise picks
            PyTorch's fused kernel, cuDNN's on a GPU, whenever it computes the cell)."""
        + _SHARED_ARGS
    )

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        reset_after: bool = True,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        use_cudnn: bool | str = "auto",
        name: str | None = None,
    ) -> None:
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            name=f"{name}_cell" if name else None,
            **given_rules(self),
        )
        super().__init__(
            cell,
            use_cudnn,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            name=name,
        )


class SimpleRNN(_CellLayer):
    __doc__ = (
        """Fully connected recurrence `h = activation(x W + h U + b)` over the real steps:
    `RNN(SimpleRNNCell(units, ...))`.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel for `tanh` and `relu`; other
    activations run step by step.

    Example:
        >>> y = SimpleRNN(8)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape
        torch.Size([2, 8])

    Weights: the cell's (`layer.cell.weight_ih`, ...; see `SimpleRNNCell`).

    Args:"""
        + _SHARED_ARGS
    )

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        use_bias: bool = True,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name=f"{name}_cell" if name else None,
            **given_rules(self),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            name=name,
        )


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards, and merges their outputs.

    Value rule (Keras's): the forward copy reads the real steps first to last, the
    backward copy (`go_backwards=True`) last to first; with `return_sequences` the
    backward outputs are put back in time order, and masked steps output zeros in both
    directions (`zero_output_for_mask` is set to `return_sequences`). The outputs are
    merged by `merge_mode`. Mask rule: the input mask with `return_sequences`, else None.

    Example:
        >>> bi = Bidirectional(LSTM(8, return_sequences=True))
        >>> bi(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)])).values.shape
        torch.Size([2, 4, 16])

    Args:
        layer: an `RNN` (`LSTM`, `GRU`, `SimpleRNN`, or any cell); the forward
            direction is a fresh copy of it (like Keras, its weights are not reused; a
            user cell without a config is deep-copied). With `stateful=True` each
            direction carries its own states from batch to batch.
        merge_mode: `"concat"` (units*2 features), `"sum"`, `"mul"`, `"ave"`, or None
            for the pair `(forward, backward)` of `Masked` outputs.
        backward_layer: the backward layer (its `go_backwards` must differ from
            `layer`'s); default: a copy of `layer` with `go_backwards=True`.
        name: layer name.

    Call: `bi(x, mask=None, initial_state=None)`; `initial_state` lists the forward
    states then the backward ones. With `return_state`: `(output(s), *forward_states,
    *backward_states)`.
    """

    fills_padding = False  # as its layers: a padded step is never read

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        *,
        backward_layer: Layer | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        for role, given in (("layer", layer), ("backward_layer", backward_layer)):
            if given is not None and not isinstance(given, RNN):
                raise MaskwiseTypeError(
                    format_error(
                        f"Bidirectional `{role}` must be a maskwise recurrent layer.",
                        expected="RNN, LSTM, GRU or SimpleRNN",
                        received=type(given).__name__,
                    )
                )
        if merge_mode not in MERGE_MODES:
            raise ConfigError(
                format_error(
                    "Unknown Bidirectional merge_mode.",
                    expected="'concat', 'sum', 'mul', 'ave' or None",
                    received=repr(merge_mode),
                )
            )
        source = cast(RNN, layer)
        self.merge_mode = merge_mode
        self.forward_layer = _copy_of(source, f"forward_{source.name.removeprefix('forward_')}")
        if backward_layer is None:
            backward_layer = _copy_of(
                source, f"backward_{source.name.removeprefix('backward_')}", go_backwards=True
            )
        self.backward_layer = cast(RNN, backward_layer)
        self._check_directions()
        self.return_sequences = source.return_sequences
        self.return_state = source.return_state
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences

    def _check_directions(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ConfigError(
                format_error(
                    "Bidirectional needs one layer reading forwards and one backwards.",
                    expected="different `go_backwards` in `layer` and `backward_layer`",
                    received=f"go_backwards={forward.go_backwards} in both",
                    fix="build the backward layer with go_backwards=True.",
                )
            )
        for attribute in ("return_sequences", "return_state"):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ConfigError(
                    format_error(
                        f"Bidirectional's two layers disagree on `{attribute}`.",
                        expected="the same value in `layer` and `backward_layer`",
                        received=f"{getattr(forward, attribute)} and "
                        f"{getattr(backward, attribute)}",
                    )
                )

    def reset_states(self, states: Any = None) -> None:
        """Start new streams in both directions (stateful layers): `states` lists the
        forward states then the backward ones, or None for the initial states."""
        half = len(self.forward_layer.state_size)
        for direction, part in (
            (self.forward_layer, None if states is None else states[:half]),
            (self.backward_layer, None if states is None else states[half:]),
        ):
            direction.reset_states(part)

    reset_state = reset_states

    def build(self, input_shape: Any) -> None:
        for direction in (self.forward_layer, self.backward_layer):
            direction.build_from_config_shape(list(input_shape[1:]))

    def call(
        self, values: torch.Tensor, mask: torch.Tensor | None, *, initial_state: Any = None
    ) -> CallOutput:
        """The merged outputs (the pair of them without `merge_mode`), and with
        `return_state` the forward layer's final states, then the backward layer's."""
        forward_state, backward_state = self._split_states(initial_state)
        both = self._in_one_call(values, mask, initial_state)
        if both is not None:  # no states to return: `return_state` is off
            if self.merge_mode == "concat":
                return (both,)
            y, y_rev = both.split(self.forward_layer.output_size, dim=-1)
            return ((y, y_rev) if self.merge_mode is None else _merge(self.merge_mode, y, y_rev),)
        y, forward_states = self.forward_layer.run(values, mask, forward_state)
        y_rev, backward_states = self.backward_layer.run(
            values, mask, backward_state, flip_output=self.return_sequences
        )
        outputs = (y, y_rev) if self.merge_mode is None else _merge(self.merge_mode, y, y_rev)
        filled = mask is not None and is_zero_filled(y, mask) and is_zero_filled(y_rev, mask)
        if filled and isinstance(outputs, torch.Tensor) and mask is not None:
            # Zeros at the padded steps, and the gradient given there reaches neither
            # direction past its own gather: a fill's result, for the next layer.
            remember_zero_filled(outputs, mask)
        states = [*forward_states, *backward_states] if self.return_state else []
        return (outputs, *states)

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return mask if self.return_sequences else None

    def _in_one_call(
        self, values: torch.Tensor, mask: torch.Tensor | None, initial_state: Any
    ) -> torch.Tensor | None:
        """Both directions' outputs concatenated, from one bidirectional fused LSTM call
        over the batch as it is (`run_bidirectional_lstm`, which declines batches where
        it would not pay), or None where the pair is not one it computes exactly: two
        fused LSTM cells of one size and dtype, both with biases or neither, reading
        forwards then backwards, returning sequences with zeros at masked steps and no
        states, starting from zero states, without dropout. Not under `torch.compile`:
        whether the call pays depends on the mask's values, and a graph for each answer
        would mean compiling again whenever a batch changed path."""
        forward, backward = self.forward_layer, self.backward_layer
        cells = (forward.cell, backward.cell)
        if (
            mask is None
            or torch.compiler.is_compiling()
            or initial_state is not None
            or self.return_state
            or not self.return_sequences
            or forward.go_backwards
            or not all(isinstance(c, LSTMCell) and c.fused_kernel is not None for c in cells)
        ):
            return None
        fw, bw = cast(LSTMCell, cells[0]), cast(LSTMCell, cells[1])
        if (
            fw.units != bw.units
            or fw.weight_ih.dtype != bw.weight_ih.dtype
            or (fw.bias is None) != (bw.bias is None)
            or any(
                layer.stateful
                or not layer.zero_output_for_mask
                or (layer.training and (c.dropout > 0 or c.recurrent_dropout > 0))
                for layer, c in ((forward, fw), (backward, bw))
            )
        ):
            return None
        return run_bidirectional_lstm(fw, bw, forward.checked_values(values), mask)

    @property
    def consumes_mask(self) -> bool:
        return not self.return_sequences

    def _split_states(self, initial_state: Any) -> tuple[Any, Any]:
        """`initial_state` cut into the forward layer's states and the backward one's."""
        if initial_state is None:
            return None, None
        count = len(self.forward_layer.state_size) + len(self.backward_layer.state_size)
        if len(initial_state) != count:
            raise ShapeError(
                format_error(
                    f"Bidirectional layer {self.name!r} got a wrong number of initial states.",
                    expected=f"{count} tensors: the forward states, then the backward ones",
                    received=f"{len(initial_state)}",
                )
            )
        half = len(self.forward_layer.state_size)
        return initial_state[:half], initial_state[half:]


def _copy_of(layer: RNN, name: str, **overrides: Any) -> RNN:
    """A fresh layer with `layer`'s config (new weights, as Keras), built if `layer`
    is; a layer holding a user cell, which has no config, is deep-copied with its
    weights."""
    try:
        config = layer.get_config()
    except ConfigError:  # a user cell (an nn.Module, not a maskwise layer)
        twin = copy.deepcopy(layer)
        twin.name = name
        for key, value in overrides.items():
            setattr(twin, key, value)
        return twin
    twin = cast(RNN, type(layer).from_config({**config, "name": name, **overrides}))
    twin.build_from_config_shape(layer.build_shape)  # built if `layer` is
    return twin


def _merge(mode: str, y: torch.Tensor, y_rev: torch.Tensor) -> torch.Tensor:
    if mode == "concat":
        return torch.cat([y, y_rev], dim=-1)
    if mode == "sum":
        return y + y_rev
    if mode == "ave":
        return (y + y_rev) / 2
    return y * y_rev
