"""Recurrent cells: one step against Keras 3's cells, stacks, user-cell checks, errors;
Keras's weight arguments (initializers, penalties, constraints in Keras's layout), seed."""

from __future__ import annotations

from typing import Any

import keras
import pytest
import torch
from keras_oracle import randomize_weights

import maskwise.convert.recurrent  # noqa: F401  (registers the converters)
from maskwise import constraints, initializers, regularizers
from maskwise.convert.registry import convert_layer
from maskwise.errors import ConfigError, MaskwiseTypeError
from maskwise.layers import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, cells
from maskwise.layers._keras_args import apply_constraints

KERAS_CELLS = {
    "lstm": lambda: keras.layers.LSTMCell(4),
    "lstm_hard_sigmoid": lambda: keras.layers.LSTMCell(
        4, activation="relu", recurrent_activation="hard_sigmoid", unit_forget_bias=False
    ),
    "gru": lambda: keras.layers.GRUCell(4),
    "gru_reset_before": lambda: keras.layers.GRUCell(4, reset_after=False, use_bias=False),
    "simple": lambda: keras.layers.SimpleRNNCell(4, activation="softsign"),
}


def keras_states(cell: Any, batch: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sizes = cell.state_size if isinstance(cell.state_size, list) else [cell.state_size]
    return [torch.randn(batch, size, generator=generator) for size in sizes]


@pytest.mark.parametrize("name", sorted(KERAS_CELLS))
def test_one_step_matches_keras(name: str) -> None:
    theirs = KERAS_CELLS[name]()
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    states = keras_states(theirs, 3, seed=1)
    theirs(x, [s.clone() for s in states])  # builds it
    randomize_weights(theirs)
    expected_output, expected_states = theirs(x, [s.clone() for s in states])
    ours = convert_layer(theirs)
    output, new_states = ours(x, states)
    torch.testing.assert_close(output, torch.as_tensor(expected_output), atol=1e-5, rtol=1e-5)
    expected_list = expected_states if isinstance(expected_states, list) else [expected_states]
    assert len(new_states) == len(expected_list)
    for a, b in zip(new_states, expected_list, strict=True):
        torch.testing.assert_close(a, torch.as_tensor(b), atol=1e-5, rtol=1e-5)


def test_a_stack_steps_its_cells_in_turn() -> None:
    torch.manual_seed(0)
    lstm, gru = LSTMCell(4), GRUCell(3)
    stack = StackedRNNCells([lstm, gru])
    assert stack.state_size == [[4, 4], 3] and stack.output_size == 3
    x = torch.randn(2, 5)
    states = [torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 3)]
    output, new_states = stack(x, states)
    middle, (h, c) = lstm(x, states[:2])
    expected, [g] = gru(middle, states[2:])
    torch.testing.assert_close(output, expected, atol=0.0, rtol=0.0)
    for a, b in zip(new_states, [h, c, g], strict=True):
        torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)
    assert [tuple(s.shape) for s in stack.get_initial_state(7)] == [(7, 4), (7, 4), (7, 3)]


def test_fused_kernels_only_for_the_cells_they_compute() -> None:
    assert LSTMCell(2).fused_kernel is torch._VF.lstm
    assert LSTMCell(2, recurrent_activation="hard_sigmoid").fused_kernel is None
    assert GRUCell(2).fused_kernel is torch._VF.gru
    assert GRUCell(2, reset_after=False).fused_kernel is None
    assert SimpleRNNCell(2, activation="relu").fused_kernel is torch._VF.rnn_relu
    assert SimpleRNNCell(2, activation="softsign").fused_kernel is None


def test_dropout_acts_in_training_only() -> None:
    cell = SimpleRNNCell(8, dropout=0.5)
    x, h = torch.ones(4, 16), torch.zeros(4, 8)
    cell.eval()
    evaluated, _ = cell(x, [h])
    torch.testing.assert_close(cell(x, [h], training=False)[0], evaluated)
    assert not torch.allclose(cell(x, [h], training=True)[0], evaluated)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LSTMCell(0), ConfigError, "LSTMCell units must be a positive integer"),
        (lambda: GRUCell(4, dropout=1.5), ConfigError, r"dropout must be a rate in \[0, 1\)"),
        (
            lambda: SimpleRNNCell(4, forget_bias=1.0),
            ConfigError,
            r"SimpleRNNCell does not take the argument forget_bias=.\n  expected: .*"
            "kernel_initializer, .*, seed, ",
        ),
        (lambda: StackedRNNCells([]), ConfigError, "non-empty list of cells"),
        (
            lambda: StackedRNNCells([LSTMCell(4), torch.nn.Linear(3, 4)]),
            MaskwiseTypeError,
            r"(?s)StackedRNNCells cell 1 must be a recurrent cell.*Linear with state_size=None",
        ),
    ],
)
def test_constructor_errors(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------------- Keras's weight arguments
def wave(shape: Any, dtype: Any = None) -> torch.Tensor:
    """A deterministic initializer with no two values alike, so that Keras and maskwise
    draw the same weights and a weight put in the wrong place (layout, gate) shows."""
    n = 1
    for d in shape:
        n *= int(d)
    return 0.5 * torch.sin(torch.arange(n, dtype=torch.float32) * 0.7 + n).reshape(tuple(shape))


def ramp(w: Any) -> Any:
    """A constraint that tells the columns apart (a norm constraint would not see a
    wrong gate order): written with keras.ops, it runs on Keras's and maskwise's weights."""
    return keras.ops.multiply(w, keras.ops.linspace(0.5, 1.5, w.shape[-1]))


WAVES = {"kernel_initializer": wave, "recurrent_initializer": wave, "bias_initializer": wave}
RULED_CELLS = {
    "lstm": ("LSTMCell", {}),
    "lstm_no_forget_bias": ("LSTMCell", {"unit_forget_bias": False}),
    "gru": ("GRUCell", {}),
    "gru_reset_before": ("GRUCell", {"reset_after": False}),
    "simple": ("SimpleRNNCell", {}),
}


def _numpy(x: Any) -> Any:
    return keras.ops.convert_to_numpy(x)


def _same_cells(name: str, **rules: Any) -> tuple[Any, Any]:
    """The maskwise and the Keras cell, built on 5 features by the same initializers."""
    kind, extra = RULED_CELLS[name]
    ours = getattr(cells, kind)(3, **WAVES, **extra, **rules)
    keras_rules = {
        key: getattr(keras.regularizers, type(value).__name__)(**value.get_config())
        if hasattr(value, "get_config")
        else value
        for key, value in rules.items()
    }
    theirs = getattr(keras.layers, kind)(3, **WAVES, **extra, **keras_rules)
    ours.build_from_config_shape([5])
    theirs.build((None, 5))
    return ours, theirs


@pytest.mark.parametrize("name", sorted(RULED_CELLS))
def test_initializers_draw_keras_s_weights(name: str) -> None:
    # same initializers -> same weights in Keras's layout -> the same step
    ours, theirs = _same_cells(name)
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    states = keras_states(theirs, 2, seed=1)
    out, new_states = ours(x, states)
    keras_out, keras_states_ = theirs(x, states)
    torch.testing.assert_close(out, torch.as_tensor(_numpy(keras_out)), rtol=1e-5, atol=1e-6)
    for mine, keras_state in zip(new_states, keras_states_, strict=True):
        torch.testing.assert_close(mine, torch.as_tensor(_numpy(keras_state)), rtol=1e-5, atol=1e-6)


def test_unit_forget_bias_sets_the_forget_gate_around_the_bias_initializer() -> None:
    cell = LSTMCell(2, bias_initializer=initializers.Constant(0.5))
    cell.build_from_config_shape([3])
    assert cell.bias is not None
    assert cell.bias.tolist() == [0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]  # i, f, c, o


@pytest.mark.parametrize("name", sorted(RULED_CELLS))
def test_weight_penalties_match_keras(name: str) -> None:
    ours, theirs = _same_cells(
        name,
        kernel_regularizer=regularizers.L2(0.1),
        recurrent_regularizer=regularizers.L1(0.05),
        bias_regularizer=regularizers.L1L2(0.02, 0.03),
    )
    keras_total = sum(float(_numpy(loss)) for loss in theirs.losses)
    assert sum(p.item() for p in ours.losses) == pytest.approx(keras_total, rel=1e-5)


@pytest.mark.parametrize("name", sorted(RULED_CELLS))
def test_constraints_project_keras_s_layout(name: str) -> None:
    rules = {"kernel_constraint": ramp, "recurrent_constraint": ramp, "bias_constraint": ramp}
    ours, theirs = _same_cells(name, **rules)
    apply_constraints(ours)
    for variable in theirs.weights:
        variable.assign(ramp(variable))
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    states = keras_states(theirs, 2, seed=1)
    out, _ = ours(x, states)
    keras_out, _ = theirs(x, states)
    torch.testing.assert_close(out, torch.as_tensor(_numpy(keras_out)), rtol=1e-5, atol=1e-6)


def test_gru_bias_is_one_keras_weight_of_two_rows() -> None:
    # Keras's GRU bias is (2, 3*units): max_norm along axis 0 takes each column's pair
    gru = GRUCell(2, bias_initializer="ones", bias_constraint=constraints.MaxNorm(1.0, axis=0))
    gru.build_from_config_shape([3])
    apply_constraints(gru)
    assert gru.bias is not None and gru.recurrent_bias is not None
    torch.testing.assert_close(gru.bias, torch.full((6,), 2**-0.5), rtol=1e-5, atol=0)
    torch.testing.assert_close(gru.recurrent_bias, torch.full((6,), 2**-0.5), rtol=1e-5, atol=0)


def test_seed_repeats_the_dropout_masks() -> None:
    x = torch.ones(4, 3)
    states = [torch.zeros(4, 5)]

    def run(seed: int | None) -> torch.Tensor:
        cell = SimpleRNNCell(5, dropout=0.5, seed=seed, kernel_initializer="ones")
        cell.train()
        return torch.stack([cell(x, states)[0] for _ in range(3)])

    first = run(7)
    torch.testing.assert_close(run(7), first)  # the same masks from run to run
    assert not torch.equal(first[0], first[1])  # new masks at each call
    assert not torch.equal(run(8), first)


def test_cells_refuse_a_rule_on_a_weight_they_lack() -> None:
    with pytest.raises(
        ConfigError,
        match=r"GRUCell does not take the argument embeddings_initializer=.\n  expected: .*"
        r"bias_constraint, .*recurrent_regularizer, .*",
    ):
        GRUCell(3, embeddings_initializer="ones")
