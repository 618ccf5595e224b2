"""Recurrent cells: one step of a recurrence, run over a sequence by `RNN`.

A cell maps one step's inputs `(batch, features)` and its states (a list of
`(batch, size)` tensors, one per entry of `state_size`) to the step's output
`(batch, output_size)` and the new states, Keras's cell API:
`output, new_states = cell(inputs, states)`. Cells know nothing of masks: `RNN` decides
which steps are real and carries the states over the others.

The built-in cells (`LSTMCell`, `GRUCell`, `SimpleRNNCell`) own their weights, in
PyTorch's layout (`weight_ih (gates*units, in)`, `weight_hh (gates*units, units)`,
gates in PyTorch's order: LSTM i, f, g, o; GRU r, z, n), and their per-step math, and
say whether one of PyTorch's fused kernels (`torch._VF.lstm`, `gru`, `rnn_tanh`,
`rnn_relu`) computes exactly the same recurrence (`fused_kernel`). `RNN` runs them
over the real steps through that kernel when there is one, else step by step. They
take Keras's weight arguments: the initializers draw Keras's `kernel (in,
gates*units)`, `recurrent_kernel (units, gates*units)` and `bias` in Keras's gate order
(GRU z, r, h), and the regularizers and constraints see them so (`add_weight`'s layout).

Any `nn.Module` with a `state_size` (an int or a list of ints) and a
`forward(inputs, states) -> (output, new_states)` is a cell too (a "user cell"); it
may have an `output_size` (else `state_size[0]`) and a `get_initial_state(batch_size)`
(else zeros). `StackedRNNCells` runs several cells as one, each reading the previous
one's output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, MaskwiseTypeError, format_error
from ..masked import Masked
from ._cudnn_buffer import keep_in_one_buffer
from ._random import SeededGenerator
from .base import Layer
from .core import get_activation

States = list[torch.Tensor]


@dataclass(frozen=True)
class Weights:
    """`weight_ih (G*u, in)`, `weight_hh (G*u, u)`, the input-side bias `(G*u,)` and
    the recurrent-side bias `(G*u,)`: GRU's with `reset_after`, the zero one kept for
    cuDNN for a single-bias cell (`_cudnn_buffer`), else None."""

    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias: torch.Tensor | None
    recurrent_bias: torch.Tensor | None


KERNELS: dict[str, Callable[..., Any]] = {
    "lstm": torch._VF.lstm,
    "gru": torch._VF.gru,
    "tanh": torch._VF.rnn_tanh,
    "relu": torch._VF.rnn_relu,
}
"""PyTorch's fused recurrent kernels (looked up once: `torch._VF` lookups are slow)."""


def _keep_loaded_in_one_buffer(cell: _BuiltinCell, incompatible: Any) -> None:
    """After `load_state_dict`: weights loaded by assignment (`assign=True`) are new
    tensors, put back in one buffer for cuDNN (`keep_in_one_buffer`)."""
    keep_in_one_buffer(cell)


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `a` and `b` are views of one buffer."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class _BuiltinCell(Layer):
    """What `LSTMCell`, `GRUCell` and `SimpleRNNCell` share: the arguments, the weights,
    the input projection, dropout, and the Keras cell call."""

    gates: ClassVar[int]
    keras_gates: ClassVar[tuple[int, ...]]
    """Keras's gates in PyTorch's order: stored gate j is Keras's gate `keras_gates[j]`."""
    weight_names = ("kernel", "recurrent", "bias")
    has_cell_state: ClassVar[bool] = False
    """A state that no output carries (the LSTM's cell state `c`)."""
    weight_ih: nn.Parameter
    weight_hh: nn.Parameter
    bias: nn.Parameter | None
    recurrent_bias: nn.Parameter | None
    kernel_recurrent_bias: torch.Tensor | None = None
    """The zero recurrent-side bias kept in cuDNN's buffer for a cell with a single bias
    (`_cudnn_buffer`), or None."""

    def __init__(
        self,
        units: int,
        activation: str,
        recurrent_activation: str,
        use_bias: bool,
        dropout: float,
        recurrent_dropout: float,
        seed: int | None,
        name: str | None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(
                format_error(f"{kind} units must be a positive integer.", received=repr(units))
            )
        for option, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ConfigError(
                    format_error(f"{kind} {option} must be a rate in [0, 1).", received=repr(rate))
                )
        self.act = get_activation(activation)
        self.rec_act = get_activation(recurrent_activation)
        self.units = units
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = use_bias
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.draws = SeededGenerator(kind, seed)
        self.bias = None
        self.recurrent_bias = None
        self.register_load_state_dict_post_hook(_keep_loaded_in_one_buffer)

    # ------------------------------------------------------------------ sizes
    @property
    def state_size(self) -> int | list[int]:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    @property
    def kernel_name(self) -> str | None:
        """The name (in `KERNELS`) of PyTorch's fused kernel computing exactly this
        cell, or None."""
        raise NotImplementedError

    @property
    def fused_kernel(self) -> Callable[..., Any] | None:
        """PyTorch's fused kernel computing exactly this cell, or None."""
        name = self.kernel_name
        return None if name is None else KERNELS[name]

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Any) -> None:
        """Keras's weights, `kernel (in, G*u)`, `recurrent_kernel (u, G*u)` and `bias
        (G*u,)`, drawn by their initializers (Keras's defaults: glorot_uniform,
        orthogonal, zeros) in Keras's layout and gate order, stored transposed with
        PyTorch's gate order; their rules see them as Keras's."""
        fan_in, rows = int(input_shape[-1]), self.gates * self.units
        layout: dict[str, Any] = {"transpose": True, "gates": self.keras_gates}
        self.add_weight("weight_ih", (fan_in, rows), "glorot_uniform", rule="kernel", **layout)
        self.add_weight("weight_hh", (self.units, rows), "orthogonal", rule="recurrent", **layout)
        if self.use_bias:
            self.add_bias()

    def add_bias(self) -> None:
        """Keras's `bias (G*u,)`."""
        rows = self.gates * self.units
        self.add_weight("bias", (rows,), "zeros", gates=self.keras_gates)

    def weights(self) -> Weights:
        """The weights as the fused kernels take them: the recurrent-side bias is the
        zero one kept in cuDNN's buffer where the cell has a single bias and cuDNN runs
        it (`kernel_recurrent_bias`), else the cell's own (None for a single bias). The
        kept one only beside the bias it was laid out with: weights swapped in
        (`torch.func.functional_call`, another dtype or device) get a zero bias per call."""
        bias, kept = self.bias, self.kernel_recurrent_bias
        recurrent: torch.Tensor | None = self.recurrent_bias
        if recurrent is None and kept is not None and bias is not None:
            recurrent = kept if _same_storage(kept, bias) else None
        return Weights(self.weight_ih, self.weight_hh, bias, recurrent)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """After unpickling or `copy.deepcopy` (which copy each parameter on its own):
        the weights put back in one buffer where cuDNN runs them, as after `_apply`."""
        super().__setstate__(state)
        keep_in_one_buffer(self)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        """`Layer._apply` (under `.to()`, `.double()`, ...; building ends with one),
        then the weights made views of one buffer where cuDNN runs them
        (`_cudnn_buffer`), so that its kernels read them without a copy."""
        result = super()._apply(fn, recurse)
        keep_in_one_buffer(self)
        return result

    # ------------------------------------------------------------------ dropout
    def dropout_masks(
        self, values: torch.Tensor, training: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Keras's dropout for inputs `(batch, time, features)`: one kept-and-rescaled
        mask per sequence, fixed across time, `(batch, copies, features)` for the
        inputs and `(batch, copies, units)` for the state; with `recurrent_dropout`,
        gated cells draw one mask per gate (Keras's implementation 1). None out of
        training or at rate 0."""
        if not training:
            return None, None
        copies = self.gates if self.recurrent_dropout > 0 else 1
        batch, features = values.shape[0], values.shape[-1]

        def draw(rate: float, width: int) -> torch.Tensor | None:
            if rate == 0:
                return None
            ones = values.new_ones(batch, copies, width)
            if self.seed is None:
                return F.dropout(ones, rate, training=True)
            kept = torch.rand(ones.shape, generator=self.draws(ones.device), device=ones.device)
            return ones.masked_fill(kept < rate, 0.0) / (1 - rate)

        return draw(self.dropout, features), draw(self.recurrent_dropout, self.units)

    # ------------------------------------------------------------------ the math
    def project(self, x: torch.Tensor, input_dropout: torch.Tensor | None) -> torch.Tensor:
        """The input side of every step at once: `x (batch, time, in)` ->
        `(batch, time, gates*units)`, each gate reading its own dropped copy of `x`."""
        if input_dropout is None:
            return F.linear(x, self.weight_ih, self.bias)
        gates = input_dropout.shape[1]
        stacked = self.weight_ih.reshape(gates, -1, self.weight_ih.shape[1])
        dropped = x.unsqueeze(2) * input_dropout.unsqueeze(1)
        projected = torch.einsum("btgf,gof->btgo", dropped, stacked).flatten(2)
        return projected if self.bias is None else projected + self.bias

    def step(
        self, projected: torch.Tensor, states: States, recurrent_dropout: torch.Tensor | None
    ) -> tuple[torch.Tensor, States]:
        """One step from its projected inputs `(batch, gates*units)` (see `project`)."""
        raise NotImplementedError

    def call(  # type: ignore[override]
        self, inputs: torch.Tensor, states: Any, training: bool | None = None
    ) -> tuple[torch.Tensor, States]:
        """Keras's cell call: one step, `inputs (batch, features)` and the states (a
        tensor or a list) to `(output, new_states)`. Dropout acts when `training` (by
        default the module's mode)."""
        given = [states] if isinstance(states, torch.Tensor) else list(states)
        x = inputs.to(self.compute_dtype(inputs)).unsqueeze(1)
        training = self.training if training is None else training
        input_drop, recurrent_drop = self.dropout_masks(x, training)
        return self.step(self.project(x, input_drop)[:, 0], given, recurrent_drop)

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, states: Any, training: bool | None = None
    ) -> tuple[torch.Tensor, States]:
        self.maybe_build(Masked(inputs.unsqueeze(1)))
        return self.call(inputs, states, training)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, activation={self.activation!r}"


def recurrent_matmul(
    h: torch.Tensor, weight: torch.Tensor, dropout: torch.Tensor | None
) -> torch.Tensor:
    """`h (batch, units) @ weight.T` for a gate-stacked weight `(g*out, units)`; with a
    per-gate dropout mask `(batch, g, units)` each gate sees its own dropped copy of h."""
    if dropout is None:
        return F.linear(h, weight)
    gates = dropout.shape[1]
    stacked = weight.reshape(gates, -1, weight.shape[1])
    return torch.einsum("bgh,goh->bgo", h.unsqueeze(1) * dropout, stacked).flatten(1)


_CELL_ARGS = """
        units: output features, and the size of each state.
        activation: Keras name of the activation (`"tanh"`).
        use_bias: add biases.
        dropout: rate dropped from the inputs, one mask per sequence for all steps.
        recurrent_dropout: rate dropped from the state in the recurrent product
            (forces the per-step path).
        seed: an int seeds the dropout masks (they repeat from run to run, as Keras's
            `seed`); None draws them from PyTorch's global generator.
        kernel_initializer: the initializer of Keras's `kernel (in, gates*units)`
            (`"glorot_uniform"`); `recurrent_initializer` (`"orthogonal"`) and
            `bias_initializer` (`"zeros"`) those of the recurrent kernel `(units,
            gates*units)` and the bias. Each draws in Keras's layout and gate order.
        kernel_regularizer: its penalty, which `fit` and `evaluate` add to the loss
            (`maskwise.regularizers`); likewise `recurrent_regularizer` and
            `bias_regularizer`.
        kernel_constraint: its projection after each optimizer step
            (`maskwise.constraints`), in Keras's layout; likewise
            `recurrent_constraint` and `bias_constraint`.
        name: layer name.

    Call: `cell(inputs, states, training=None)`, `inputs (batch, features)`, `states` a
    list of `(batch, units)` tensors; returns `(output, new_states)`. Built at the first
    call (or by `RNN`)."""


class LSTMCell(_BuiltinCell):
    __doc__ = (
        """One step of a long short-term memory: `i, f, o = sigmoid(.)`, `g = tanh(.)`,
    `c' = f*c + i*g`, `h' = o*tanh(c')`; output `h'`, states `[h', c']`.

    Value rule: one step, no mask (`RNN(LSTMCell(..))` carries both states over masked
    steps, so it equals `LSTM(..)`). Mask rule: none; the cell never sees a mask.
    Fused kernel: `activation="tanh"`, `recurrent_activation="sigmoid"`.

    Example:
        >>> cell = LSTMCell(8)
        >>> h, (h, c) = cell(torch.ones(2, 3), [torch.zeros(2, 8), torch.zeros(2, 8)])
        >>> h.shape, cell.state_size
        (torch.Size([2, 8]), [8, 8])

    Weights (gates i, f, g, o): `weight_ih (4*units, in)`, `weight_hh (4*units, units)`,
    `bias (4*units,)` = Keras's `kernel.T`, `recurrent_kernel.T`, `bias`.

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        unit_forget_bias: initialise the forget gate's bias to 1 (Keras's default)."""
        + _CELL_ARGS
    )

    gates = 4
    keras_gates = (0, 1, 2, 3)
    has_cell_state = True

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
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            dropout,
            recurrent_dropout,
            seed,
            name,
        )
        self.unit_forget_bias = unit_forget_bias

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    @property
    def kernel_name(self) -> str | None:
        return (
            "lstm" if (self.activation, self.recurrent_activation) == ("tanh", "sigmoid") else None
        )

    def add_bias(self) -> None:
        """Keras's bias; with `unit_forget_bias`, Keras's initializer: the forget
        gate's slice is ones, the others come from `bias_initializer`."""
        units = self.units
        if not self.unit_forget_bias:
            return super().add_bias()

        def forget_bias_one(initializer: Any) -> Callable[..., torch.Tensor]:
            def draw(shape: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
                ones = torch.ones(units, dtype=dtype)
                return torch.cat(
                    [initializer((units,), dtype), ones, initializer((2 * units,), dtype)]
                )

            return draw

        self.add_weight("bias", (4 * units,), "zeros", gates=self.keras_gates, wrap=forget_bias_one)

    def step(
        self, projected: torch.Tensor, states: States, recurrent_dropout: torch.Tensor | None
    ) -> tuple[torch.Tensor, States]:
        h, c = states
        gates = projected + recurrent_matmul(h, self.weight_hh, recurrent_dropout)
        i, f, g, o = gates.chunk(4, dim=1)
        new_c = self.rec_act(f) * c + self.rec_act(i) * self.act(g)
        new_h = self.rec_act(o) * self.act(new_c)
        return new_h, [new_h, new_c]


class GRUCell(_BuiltinCell):
    __doc__ = (
        """One step of a gated recurrent unit: `r, z = sigmoid(.)`,
    `n = tanh(x W_n + r * (h U_n + b_n))` (`reset_after`) or
    `tanh(x W_n + (r * h) U_n)`, `h' = z*h + (1-z)*n`; output and state `h'`.

    Value rule: one step, no mask (`RNN(GRUCell(..))` equals `GRU(..)`). Mask rule:
    none; the cell never sees a mask. Fused kernel (PyTorch's GRU is Keras's
    `reset_after=True`): `tanh`/`sigmoid` with `reset_after=True`.

    Example:
        >>> h, [h] = GRUCell(8)(torch.ones(2, 3), [torch.zeros(2, 8)])
        >>> h.shape
        torch.Size([2, 8])

    Weights (gates r, z, n; Keras orders them z, r, h): `weight_ih (3*units, in)`,
    `weight_hh (3*units, units)`, `bias (3*units,)` and, with `reset_after`,
    `recurrent_bias (3*units,)`.

    Args:
        recurrent_activation: Keras name of the gates' activation (`"sigmoid"`).
        reset_after: apply the reset gate after the recurrent product (Keras 3's
            default, PyTorch's GRU) or before it."""
        + _CELL_ARGS
    )

    gates = 3
    keras_gates = (1, 0, 2)

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            dropout,
            recurrent_dropout,
            seed,
            name,
        )
        self.reset_after = reset_after

    @property
    def kernel_name(self) -> str | None:
        pair = (self.activation, self.recurrent_activation)
        return "gru" if self.reset_after and pair == ("tanh", "sigmoid") else None

    def add_bias(self) -> None:
        """Keras's bias: with `reset_after`, `(2, 3*units)`, the input side's then the
        recurrent side's, stored as `bias` and `recurrent_bias`."""
        if not self.reset_after:
            return super().add_bias()
        attrs = ("bias", "recurrent_bias")
        self.add_weight(attrs, (2, 3 * self.units), "zeros", rule="bias", gates=self.keras_gates)

    def step(
        self, projected: torch.Tensor, states: States, recurrent_dropout: torch.Tensor | None
    ) -> tuple[torch.Tensor, States]:
        (h,) = states
        units, w_hh = self.units, self.weight_hh
        x_r, x_z, x_n = projected.chunk(3, dim=1)
        if self.reset_after:
            gh = recurrent_matmul(h, w_hh, recurrent_dropout)
            if self.recurrent_bias is not None:
                gh = gh + self.recurrent_bias
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = self.rec_act(x_r + h_r)
            n = self.act(x_n + r * h_n)
        else:
            rz_drop = None if recurrent_dropout is None else recurrent_dropout[:, :2]
            h_r, h_z = recurrent_matmul(h, w_hh[: 2 * units], rz_drop).chunk(2, dim=1)
            r = self.rec_act(x_r + h_r)
            h_n_in = h if recurrent_dropout is None else h * recurrent_dropout[:, 2]
            n = self.act(x_n + F.linear(r * h_n_in, w_hh[2 * units :]))
        z = self.rec_act(x_z + h_z)
        new_h = z * h + (1 - z) * n
        return new_h, [new_h]


class SimpleRNNCell(_BuiltinCell):
    __doc__ = (
        """One step of a fully connected recurrence: `h' = activation(x W + h U + b)`;
    output and state `h'`.

    Value rule: one step, no mask (`RNN(SimpleRNNCell(..))` equals `SimpleRNN(..)`).
    Mask rule: none; the cell never sees a mask. Fused kernel for `tanh` and `relu`.

    Example:
        >>> h, [h] = SimpleRNNCell(8)(torch.ones(2, 3), [torch.zeros(2, 8)])
        >>> h.shape
        torch.Size([2, 8])

    Weights: `weight_ih (units, in)`, `weight_hh (units, units)`, `bias (units,)`.

    Args:"""
        + _CELL_ARGS
    )

    gates = 1
    keras_gates = (0,)

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        use_bias: bool = True,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            units, activation, "sigmoid", use_bias, dropout, recurrent_dropout, seed, name
        )

    @property
    def kernel_name(self) -> str | None:
        return self.activation if self.activation in ("tanh", "relu") else None

    def step(
        self, projected: torch.Tensor, states: States, recurrent_dropout: torch.Tensor | None
    ) -> tuple[torch.Tensor, States]:
        new_h = self.act(projected + recurrent_matmul(states[0], self.weight_hh, recurrent_dropout))
        return new_h, [new_h]


class UserCell:
    """A user's cell as `RNN`'s engine runs it: step by step, no input projection, no
    dropout drawn by `RNN` (the cell draws its own, e.g. from `self.training`)."""

    fused_kernel = None
    has_cell_state = False

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.output_size = output_size(module)

    def parameters(self) -> Any:
        return self.module.parameters()

    def project(self, x: torch.Tensor, input_dropout: None) -> torch.Tensor:
        return x

    def step(
        self, projected: torch.Tensor, states: States, recurrent_dropout: None
    ) -> tuple[torch.Tensor, States]:
        output, new_states = self.module(projected, list(states))
        if isinstance(new_states, torch.Tensor):
            new_states = [new_states]
        return output, list(new_states)


def state_sizes(cell: Any) -> list[int]:
    """A cell's `state_size` as a flat list of ints, one per state tensor."""
    size = cell.state_size
    if isinstance(size, int):
        return [size]
    flat: list[int] = []
    for item in size:
        flat.extend([item] if isinstance(item, int) else item)
    return flat


def output_size(cell: Any) -> int:
    """Keras's rule: the cell's `output_size`, else its first state's size."""
    size = getattr(cell, "output_size", None)
    return int(size) if size is not None else state_sizes(cell)[0]


def check_cell(cell: Any, role: str) -> None:
    """A `MaskwiseTypeError` unless `cell` can run as a cell (see the module docstring)."""
    size = getattr(cell, "state_size", None)
    sizes_ok = isinstance(size, int) or (
        isinstance(size, list | tuple) and all(isinstance(s, int | list | tuple) for s in size)
    )
    if not isinstance(cell, nn.Module) or not sizes_ok:
        raise MaskwiseTypeError(
            format_error(
                f"{role} must be a recurrent cell.",
                expected="an nn.Module with `state_size` (int or list of ints) and "
                "forward(inputs, states) -> (output, new_states), e.g. LSTMCell(units)",
                received=f"{type(cell).__name__} with state_size={size!r}",
                fix="give the module a `state_size` attribute, or pass a built-in cell.",
            )
        )


class StackedRNNCells(Layer):
    """Several cells run as one: at each step, cell k reads cell k-1's output; the
    output is the last cell's. States: every cell's, in order (flat).

    Value rule: `RNN(StackedRNNCells([a, b]))` equals `RNN(a, return_sequences=True)`
    then `RNN(b)` on the same mask (a masked step carries every cell's states). Mask
    rule: none; the cells never see a mask. `RNN` runs the cells one after another over
    the whole sequence, so each built-in cell keeps its fused kernel.

    Example:
        >>> stack = StackedRNNCells([LSTMCell(8), GRUCell(4)])
        >>> stack.state_size, stack.output_size
        ([[8, 8], 4], 4)
        >>> out, states = stack(torch.ones(2, 3), stack.get_initial_state(2))
        >>> out.shape, len(states)
        (torch.Size([2, 4]), 3)

    Args:
        cells: the cells, first to last (built-in or user cells).
        name: layer name.

    Call: `stack(inputs, states)` with `states` the flat list of every cell's states;
    returns `(output, new_states)` (flat).
    """

    def __init__(self, cells: Sequence[nn.Module], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(cells, list | tuple) or not cells:
            raise ConfigError(
                format_error(
                    "StackedRNNCells needs a non-empty list of cells.",
                    received=repr(cells)[:80],
                )
            )
        for i, cell in enumerate(cells):
            check_cell(cell, f"StackedRNNCells cell {i}")
        self.cells = nn.ModuleList(cells)

    @property
    def state_size(self) -> list[Any]:
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> int:
        return output_size(self.cells[-1])

    def get_initial_state(self, batch_size: int) -> States:
        """Zeros (or each cell's own `get_initial_state`), flat."""
        return [s for cell in self.cells for s in initial_states(cell, batch_size)]

    def split_states(self, states: States) -> list[States]:
        """The flat states, one list per cell."""
        parts, start = [], 0
        for cell in self.cells:
            count = len(state_sizes(cell))
            parts.append(states[start : start + count])
            start += count
        return parts

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[-1])
        for cell in self.cells:
            if isinstance(cell, Layer):
                cell.build_from_config_shape([features])
            features = output_size(cell)

    def call(  # type: ignore[override]
        self, inputs: torch.Tensor, states: States, training: bool | None = None
    ) -> tuple[torch.Tensor, States]:
        new_states: States = []
        for cell, own in zip(self.cells, self.split_states(list(states)), strict=True):
            inputs, own = cell(inputs, own)
            new_states.extend([own] if isinstance(own, torch.Tensor) else own)
        return inputs, new_states

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, states: States, training: bool | None = None
    ) -> tuple[torch.Tensor, States]:
        self.maybe_build(Masked(inputs.unsqueeze(1)))
        return self.call(inputs, states, training)


def initial_states(cell: Any, batch_size: int, like: torch.Tensor | None = None) -> States:
    """A cell's initial states: its `get_initial_state(batch_size)` if it has one, else
    zeros `(batch_size, size)` per state (float, on `like`'s device and dtype)."""
    own = getattr(cell, "get_initial_state", None)
    if own is None:
        zeros = torch.zeros if like is None else like.new_zeros
        return [zeros(batch_size, size) for size in state_sizes(cell)]
    given = own(batch_size)
    states = [given] if isinstance(given, torch.Tensor) else list(given)
    if like is not None:
        states = [s.to(device=like.device, dtype=like.dtype) for s in states]
    return states
