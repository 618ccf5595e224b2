"""Recurrent layers: `LSTM`, `GRU`, `SimpleRNN` and `Bidirectional`, with Keras 3's
masking semantics and PyTorch's fused kernels on the real steps.

The Keras rule, exactly: a masked step leaves the state unchanged and outputs the
previous step's output (zeros before the first real step), or zeros when
`zero_output_for_mask=True` (which `Bidirectional` sets when it returns sequences).
Without `return_sequences` the output is the last real step's output. The mask may
have any shape: trailing or leading padding, holes, or empty rows; a batch without any
real step (every row empty, or a time axis of length 0) gives zero outputs and the
initial states as final states. Integer features, and floats of another precision
than the weights' (float32 data into a float64 model), are cast to the weights' dtype.

The work is done in `_rnn_kernels.py`: the real steps are compacted to the front and
run through `torch._VF.lstm` / `gru` / `rnn_tanh` / `rnn_relu` when the cell is one of
PyTorch's (LSTM and GRU with `tanh`/`sigmoid`, SimpleRNN with `tanh`/`relu`), else
through a per-step loop (other activations, GRU `reset_after=False`, and
`recurrent_dropout` in training). Under `torch.compile` these layers compile forward
and backward; the compaction and the kernel runs stay eager behind a compile boundary
(`_rnn_kernels.py` says why), so the graph breaks there.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from ..masked import Masked, as_masked
from ._rnn_kernels import Cell, Kind, Weights, run_recurrent
from .base import Layer
from .core import get_activation

Output = Masked | tuple[Any, ...]
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class _Recurrent(Layer):
    """Shared machinery of `LSTM`, `GRU` and `SimpleRNN` (see their docstrings)."""

    kind: Kind
    weight_names = ("kernel", "recurrent", "bias")
    keras_defaults_only: ClassVar[dict[str, Any]] = {"seed": None, "use_cudnn": "auto"}
    weight_ih: nn.Parameter
    weight_hh: nn.Parameter
    bias: nn.Parameter | None
    recurrent_bias: nn.Parameter | None

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        input_dim: int | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(
                format_error(f"{kind} units must be a positive integer.", received=repr(units))
            )
        for option, value in (("stateful", stateful), ("unroll", unroll)):
            if value:
                raise ConfigError(
                    format_error(
                        f"{kind}({option}=True) is not supported by maskwise.",
                        expected=f"{option}=False",
                        received=f"{option}=True",
                        fix="pass the previous batch's final states as `initial_state`"
                        if option == "stateful"
                        else "drop `unroll`; the fused kernels are faster anyway.",
                    )
                )
        for option, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ConfigError(
                    format_error(f"{kind} {option} must be a rate in [0, 1).", received=repr(rate))
                )
        get_activation(activation)
        get_activation(recurrent_activation)
        self.units = units
        self.cell = Cell(self.kind, activation, recurrent_activation)
        self.use_bias = use_bias
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask
        self.bias = None
        self.recurrent_bias = None
        if input_dim is not None:
            self.build_from_config_shape([input_dim])

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Any) -> None:
        """Keras's weights `kernel (in, gates*units)`, `recurrent_kernel (units,
        gates*units)` and biases, stored transposed (PyTorch's layout): the `kernel_*`,
        `recurrent_*` and `bias_*` arguments see Keras's layout (GRU's gates in
        PyTorch's order r, z, n)."""
        fan_in = int(input_shape[-1])
        rows = self.cell.gates * self.units
        self.add_weight(
            "weight_ih", (fan_in, rows), "glorot_uniform", rule="kernel", transpose=True
        )
        self.add_weight(
            "weight_hh", (self.units, rows), "orthogonal", rule="recurrent", transpose=True
        )
        if self.use_bias:
            self.add_weight("bias", (rows,), "zeros")
            if self.kind == "gru":
                self.add_weight("recurrent_bias", (rows,), "zeros", rule="bias")

    def _weights(self) -> Weights:
        return Weights(self.weight_ih, self.weight_hh, self.bias, self.recurrent_bias)

    # ------------------------------------------------------------------ contract
    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.run(values, mask, None)[0]

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

    def forward(  # type: ignore[override]
        self,
        inputs: Any,
        mask: torch.Tensor | None = None,
        initial_state: Any = None,
    ) -> Output:
        x = as_masked(inputs, mask)
        self.maybe_build(x)
        output, states = self.run(x.values, x.mask, initial_state)
        result = Masked(output, self.compute_mask(x.values, x.mask))
        return (result, *states) if self.return_state else result

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
        they need no filling.
        """
        values = values.to(self.weight_ih.dtype)
        if values.dim() != 3 or values.shape[-1] != self.weight_ih.shape[1]:
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} got inputs of the wrong shape.",
                    expected=f"(batch, time, {self.weight_ih.shape[1]})",
                    received=f"shape {tuple(values.shape)}",
                    fix="recurrent layers read (batch, time, features); check the layout "
                    "(e.g. transpose a (features, time) array).",
                )
            )
        states = self._initial_states(values, initial_state)
        input_drop, recurrent_drop = self._dropout_masks(values)
        return run_recurrent(
            self.cell,
            self._weights(),
            values,
            mask,
            states,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            flip_output=flip_output,
            need_states=self.return_state,
            input_dropout=input_drop,
            recurrent_dropout=recurrent_drop,
        )

    def _initial_states(self, values: torch.Tensor, initial_state: Any) -> list[torch.Tensor]:
        batch = values.shape[0]
        count = self.cell.n_states
        if initial_state is None:
            return [values.new_zeros(batch, self.units) for _ in range(count)]
        given = [initial_state] if isinstance(initial_state, torch.Tensor) else initial_state
        shapes = [
            tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__ for s in given
        ]
        if len(given) != count or any(s != (batch, self.units) for s in shapes):
            names = "[h, c]" if count == 2 else "[h]"
            raise ShapeError(
                format_error(
                    f"{type(self).__name__} layer {self.name!r} got a wrong initial_state.",
                    expected=f"{count} tensor(s) {names}, each (batch, units) = "
                    f"{(batch, self.units)}",
                    received=f"{len(given)} state(s) shaped {shapes}",
                    fix="pass one (batch, units) tensor per state, e.g. the states "
                    "returned by a layer with return_state=True.",
                )
            )
        return [s.to(values.dtype) for s in given]

    def _dropout_masks(
        self, values: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Keras's dropout: one mask per sequence, fixed across time; with
        `recurrent_dropout`, LSTM and GRU draw one mask per gate (Keras's implementation 1)."""
        if not self.training:
            return None, None
        copies = self.cell.gates if self.recurrent_dropout > 0 and self.kind != "simple" else 1
        batch, features = values.shape[0], values.shape[-1]

        def draw(rate: float, width: int) -> torch.Tensor | None:
            if rate == 0:
                return None
            ones = values.new_ones(batch, copies, width)
            return nn.functional.dropout(ones, rate, training=True)

        return draw(self.dropout, features), draw(self.recurrent_dropout, self.units)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, cell={self.cell}"


_SHARED_ARGS = """
        units: output features (the state size).
        activation: Keras name of the activation (`"tanh"`).
        use_bias: add biases.
        dropout: rate dropped from the inputs, one mask per sequence for all steps.
        recurrent_dropout: rate dropped from the state in the recurrent product
            (forces the per-step path).
        return_sequences: return `(batch, time, units)` instead of the last real output
            `(batch, units)`.
        return_state: return `(output, *final_states)`, states as `(batch, units)`
            tensors; the final state is the one after the last real step.
        go_backwards: read the sequence from its end; as in Keras, the returned sequence
            is in that (reversed) order; unlike Keras, the output mask is reversed too,
            so it marks the steps that hold real outputs.
        zero_output_for_mask: zeros instead of the carried output at masked steps.
        stateful, unroll: not supported (ConfigError).
        input_dim: input features; inferred at the first call when None.
        name: layer name.
        **keras_args: `kernel_*`, `recurrent_*` and `bias_*` (`_initializer`, Keras's
            defaults `"glorot_uniform"`, `"orthogonal"`, `"zeros"`; `_regularizer`;
            `_constraint`; each in Keras's layout), the arguments of every layer
            (`maskwise.layers.Layer`), and Keras's `seed` and `use_cudnn` at their
            defaults only (ConfigError otherwise).

    Call: `layer(x, mask=None, initial_state=None)`, `x` a `Masked` or `(batch, time,
    features)` tensor (cast to the weights' dtype). A batch without any real step gives
    zero outputs and the initial states."""


class LSTM(_Recurrent):
    __doc__ = (
        """Long short-term memory over the real steps of each sequence.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel: `activation="tanh"`,
    `recurrent_activation="sigmoid"`; other activations run step by step.

    Example:
        >>> y = LSTM(8, return_sequences=True)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])

    Weights (PyTorch layout, gates i, f, g, o): `weight_ih (4*units, in)`,
    `weight_hh (4*units, units)`, `bias (4*units,)` = Keras's `kernel.T`,
    `recurrent_kernel.T`, `bias`.

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        unit_forget_bias: initialise the forget gate's bias to 1 (Keras's default)."""
        + _SHARED_ARGS
    )

    kind = "lstm"

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        input_dim: int | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        self.unit_forget_bias = unit_forget_bias
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            dropout,
            recurrent_dropout,
            return_sequences,
            return_state,
            go_backwards,
            zero_output_for_mask,
            stateful,
            unroll,
            input_dim,
            name,
        )

    def build(self, input_shape: Any) -> None:
        """As Keras: with `unit_forget_bias`, the forget gate's bias starts at 1 (the
        other gates' from `bias_initializer`)."""
        super().build(input_shape)
        if self.bias is not None and self.unit_forget_bias:
            with torch.no_grad():
                self.bias[self.units : 2 * self.units] = 1.0


class GRU(_Recurrent):
    __doc__ = (
        """Gated recurrent unit over the real steps of each sequence.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel (PyTorch's GRU is Keras's
    `reset_after=True`): `tanh`/`sigmoid` with `reset_after=True`; `reset_after=False`
    and other activations run step by step.

    Example:
        >>> y = GRU(8)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape, y.mask is None
        (torch.Size([2, 8]), True)

    Weights (PyTorch layout, gates r, z, n; Keras orders them z, r, h):
    `weight_ih (3*units, in)`, `weight_hh (3*units, units)`, `bias (3*units,)` and,
    with `reset_after`, `recurrent_bias (3*units,)`.

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        reset_after: apply the reset gate after the recurrent product (Keras 3's
            default, PyTorch's GRU) or before it."""
        + _SHARED_ARGS
    )

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        reset_after: bool = True,
        stateful: bool = False,
        unroll: bool = False,
        input_dim: int | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        self.reset_after = reset_after
        self.kind = "gru" if reset_after else "gru_reset_before"
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            dropout,
            recurrent_dropout,
            return_sequences,
            return_state,
            go_backwards,
            zero_output_for_mask,
            stateful,
            unroll,
            input_dim,
            name,
        )


class SimpleRNN(_Recurrent):
    __doc__ = (
        """Fully connected recurrence `h = activation(x W + h U + b)` over the real steps.

    Value rule: masked steps carry the state; the output there is the previous output
    (zeros before the first real step). Mask rule: the input mask with
    `return_sequences`, else None. Fused kernel for `tanh` and `relu`; other
    activations run step by step.

    Example:
        >>> y = SimpleRNN(8)(Masked.pad([torch.ones(4, 3), torch.ones(2, 3)]))
        >>> y.values.shape
        torch.Size([2, 8])

    Weights (PyTorch layout): `weight_ih (units, in)`, `weight_hh (units, units)`,
    `bias (units,)`.

    Args:"""
        + _SHARED_ARGS
    )

    kind = "simple"

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        use_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        input_dim: int | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(
            units,
            activation,
            "sigmoid",
            use_bias,
            dropout,
            recurrent_dropout,
            return_sequences,
            return_state,
            go_backwards,
            zero_output_for_mask,
            stateful,
            unroll,
            input_dim,
            name,
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
        layer: an `LSTM`, `GRU` or `SimpleRNN`; the forward direction is a fresh copy
            of it (like Keras, its weights are not reused).
        merge_mode: `"concat"` (units*2 features), `"sum"`, `"mul"`, `"ave"`, or None
            for the pair `(forward, backward)` of `Masked` outputs.
        backward_layer: the backward layer (its `go_backwards` must differ from
            `layer`'s); default: a copy of `layer` with `go_backwards=True`.
        name: layer name.

    Call: `bi(x, mask=None, initial_state=None)`; `initial_state` lists the forward
    states then the backward ones. With `return_state`: `(output(s), *forward_states,
    *backward_states)`.
    """

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        backward_layer: Layer | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        for role, given in (("layer", layer), ("backward_layer", backward_layer)):
            if given is not None and not isinstance(given, _Recurrent):
                raise MaskwiseTypeError(
                    format_error(
                        f"Bidirectional `{role}` must be a maskwise recurrent layer.",
                        expected="LSTM, GRU or SimpleRNN",
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
        source = cast(_Recurrent, layer)
        self.merge_mode = merge_mode
        self.forward_layer = _copy_of(source, f"forward_{source.name.removeprefix('forward_')}")
        if backward_layer is None:
            backward_layer = _copy_of(
                source, f"backward_{source.name.removeprefix('backward_')}", go_backwards=True
            )
        self.backward_layer = cast(_Recurrent, backward_layer)
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

    def build(self, input_shape: Any) -> None:
        for direction in (self.forward_layer, self.backward_layer):
            direction.build_from_config_shape(list(input_shape[1:]))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        output = self.forward(Masked(values, mask))
        first = output[0] if isinstance(output, tuple) else output
        return first.values

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return mask if self.return_sequences else None

    @property
    def consumes_mask(self) -> bool:
        return not self.return_sequences

    def forward(  # type: ignore[override]
        self,
        inputs: Any,
        mask: torch.Tensor | None = None,
        initial_state: Any = None,
    ) -> Output:
        x = as_masked(inputs, mask)
        self.maybe_build(x)
        forward_state, backward_state = None, None
        if initial_state is not None:
            count = self.forward_layer.cell.n_states + self.backward_layer.cell.n_states
            if len(initial_state) != count:
                raise ShapeError(
                    format_error(
                        f"Bidirectional layer {self.name!r} got a wrong number of initial states.",
                        expected=f"{count} tensors: the forward states, then the backward ones",
                        received=f"{len(initial_state)}",
                    )
                )
            half = self.forward_layer.cell.n_states
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y, forward_states = self.forward_layer.run(x.values, x.mask, forward_state)
        y_rev, backward_states = self.backward_layer.run(
            x.values, x.mask, backward_state, flip_output=self.return_sequences
        )
        out_mask = self.compute_mask(x.values, x.mask)
        if self.merge_mode is None:
            outputs: tuple[Masked, ...] = (Masked(y, out_mask), Masked(y_rev, out_mask))
        else:
            outputs = (Masked(_merge(self.merge_mode, y, y_rev), out_mask),)
        if self.return_state:
            return (*outputs, *forward_states, *backward_states)
        return outputs if self.merge_mode is None else outputs[0]


def _copy_of(layer: _Recurrent, name: str, **overrides: Any) -> _Recurrent:
    config = {**layer.get_config(), "name": name, **overrides}
    return type(layer)(**config)


def _merge(mode: str, y: torch.Tensor, y_rev: torch.Tensor) -> torch.Tensor:
    if mode == "concat":
        return torch.cat([y, y_rev], dim=-1)
    if mode == "sum":
        return y + y_rev
    if mode == "ave":
        return (y + y_rev) / 2
    return y * y_rev
