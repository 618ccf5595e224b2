import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import MaskwiseTypeError, ShapeError
from maskwise.data import fill_after, pad_targets, target_fill
from maskwise.data.padding import pad_rows, to_tensor
from maskwise.masked import IGNORE_INDEX


def test_integer_targets_pad_with_ignore_index_and_keep_class_zero():
    y = pad_targets([torch.tensor([0, 1, 0]), torch.tensor([2])], max_len=4)
    assert y.tolist() == [[0, 1, 0, -100], [2, -100, -100, -100]]
    assert target_fill(torch.int64) == IGNORE_INDEX


def test_float_targets_pad_with_nan():
    y = pad_targets([torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0]])], max_len=2)
    expected = torch.tensor([[[1.0], [2.0]], [[3.0], [float("nan")]]])
    torch.testing.assert_close(y, expected, equal_nan=True, rtol=0, atol=0)


def test_fill_after_replaces_steps_past_each_length():
    values = torch.arange(6).reshape(2, 3)
    out = fill_after(values, torch.tensor([1, 3]))
    assert out.tolist() == [[0, -100, -100], [3, 4, 5]]
    weights = fill_after(torch.ones(2, 3), torch.tensor([2, 0]), fill=0.0)
    assert weights.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_to_tensor_dtypes():
    assert to_tensor(np.zeros((2, 2)), "x").dtype == torch.float32
    assert to_tensor([1, 2], "x").dtype == torch.int64
    assert to_tensor(np.array([True]), "x").dtype == torch.float32
    with pytest.raises(MaskwiseTypeError, match="must hold numbers"):
        to_tensor(np.array(["a", "b"]), "y")


def test_to_tensor_keeps_float32_and_int64_as_they_are():
    array = np.zeros((3, 2), dtype=np.float32)
    wrapped = to_tensor(array, "x")
    array[0, 0] = 7.0  # no copy, as torch.as_tensor
    assert wrapped[0, 0] == 7.0
    tokens = torch.tensor([1, 2])
    assert to_tensor(tokens, "x") is tokens
    assert to_tensor(np.array([1, 2], dtype=np.int32), "x").dtype == torch.int64
    assert to_tensor(torch.ones(2, dtype=torch.float64), "x").dtype == torch.float32


def _reference_pad(rows: list[torch.Tensor], time: int, value: float) -> torch.Tensor:
    """Row by row, into a tensor of the rows' promoted dtype."""
    dtype = functools.reduce(torch.promote_types, (row.dtype for row in rows))
    out = torch.full((len(rows), time, *rows[0].shape[1:]), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    extra=st.integers(0, 2),
    kinds=st.lists(st.sampled_from([torch.float32, torch.int64]), min_size=4, max_size=4),
    value=st.sampled_from([0.0, -100.0, float("nan")]),
)
def test_pad_rows_matches_a_row_by_row_copy(lengths, extra, kinds, value):
    rows = [
        torch.arange(2 * n, dtype=kind).reshape(n, 2) + 1
        for n, kind in zip(lengths, kinds, strict=False)
    ]
    time = max(lengths) + extra
    if value != value and all(row.dtype == torch.int64 for row in rows):
        value = -100.0  # NaN pads float rows only
    expected = _reference_pad(rows, time, value)
    out = pad_rows(rows, time, value)
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, equal_nan=True, rtol=0, atol=0)


def test_pad_rows_refuses_rows_longer_than_time():
    with pytest.raises(ShapeError, match="max_len is shorter"):
        pad_rows([torch.zeros(3, 2), torch.zeros(1, 2)], time=2)
    with pytest.raises(ShapeError, match="same trailing axes"):
        pad_rows([torch.zeros(3, 2), torch.zeros(1, 3)], time=3)


def test_to_tensor_of_arrays_of_different_lengths_names_the_tuple_of_inputs():
    several_sequences = [np.ones((4, 3)), np.ones((2, 3))]  # one input's ragged list
    with pytest.raises(ShapeError, match=r"(?s)x\[0\] is not one array.*as a tuple"):
        to_tensor(several_sequences, "x[0]")
