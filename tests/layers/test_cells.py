"""Recurrent cells: one step against Keras 3's cells, stacks, user-cell checks, errors."""

from __future__ import annotations

from typing import Any

import keras
import pytest
import torch
from keras_oracle import randomize_weights

import maskwise.convert.recurrent  # noqa: F401  (registers the converters)
from maskwise.convert.registry import convert_layer
from maskwise.errors import ConfigError, MaskwiseTypeError
from maskwise.layers import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells

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
            lambda: SimpleRNNCell(4, kernel_initializer="ones"),
            ConfigError,
            "SimpleRNNCell does not support the Keras argument kernel_initializer='ones'",
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
