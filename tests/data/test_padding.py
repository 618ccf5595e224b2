import numpy as np
import pytest
import torch

from maskwise import MaskwiseTypeError, ShapeError
from maskwise.data import fill_after, pad_targets, target_fill
from maskwise.data.padding import to_tensor
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


def test_to_tensor_of_arrays_of_different_lengths_names_the_tuple_of_inputs():
    several_sequences = [np.ones((4, 3)), np.ones((2, 3))]  # one input's ragged list
    with pytest.raises(ShapeError, match=r"(?s)x\[0\] is not one array.*as a tuple"):
        to_tensor(several_sequences, "x[0]")
