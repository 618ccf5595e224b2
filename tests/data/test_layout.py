import numpy as np
import pytest
import torch

from maskwise import MaskWarning, ShapeError
from maskwise.data.layout import check_sequences, trailing_lengths


def _seed000_like(rng: np.random.Generator) -> list[torch.Tensor]:
    """Seed 000's layout: (5 features, 20 steps) arrays, columns post-padded with zeros."""
    arrays = []
    for length in (16, 20, 12, 18):
        a = np.zeros((5, 20), dtype=np.float32)
        a[:, :length] = rng.normal(size=(5, length)) + 3.0
        arrays.append(torch.as_tensor(a))
    return arrays


def test_trailing_lengths_follow_masking_rule():
    values = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        ]
    )
    assert trailing_lengths(values, 0.0).tolist() == [3, 0]
    assert trailing_lengths(values, None).tolist() == [4, 4]
    nan = torch.tensor([[[1.0], [float("nan")]]])
    assert trailing_lengths(nan, float("nan")).tolist() == [1]


def test_seed000_layout_names_the_transpose_fix():
    arrays = _seed000_like(np.random.default_rng(0))
    message = r"\(features, time\) = \(5, 20\).*\n.*a\.T for a in.*np\.stack"
    with pytest.raises(ShapeError, match=message):
        check_sequences(arrays)
    # the transposed arrays pass the layout check (their trailing rows are padding, so
    # the list form warns and points to the padded-array form)
    with pytest.warns(MaskWarning, match="look padded already"):
        check_sequences([a.T for a in arrays])


def test_known_num_features_catches_transposed_array():
    arrays = [torch.ones(7, 5), torch.ones(5, 9)]
    with pytest.raises(ShapeError, match=r"\(5, 9\), e\.g\. x\[1\]\n.*a\.T for a in arrays"):
        check_sequences(arrays, num_features=5)
    with pytest.raises(ShapeError, match="different number of features"):
        check_sequences([torch.ones(7, 5), torch.ones(4, 3)], num_features=5)


def test_constant_first_axis_with_varying_second_is_transposed():
    with pytest.raises(ShapeError, match=r"\(features, time\) = \(3, 10\)"):
        check_sequences([torch.ones(3, 10), torch.ones(3, 4), torch.ones(3, 7)])


def test_disagreeing_features_and_bad_ranks():
    with pytest.raises(ShapeError, match="disagree on the number of features"):
        check_sequences([torch.ones(3, 10), torch.ones(4, 2)])
    with pytest.raises(ShapeError, match="one array \\(time, features\\)"):
        check_sequences([torch.ones(3, 10, 2)])
    with pytest.raises(ShapeError, match=r"1-D float sequences.*\n.*\n.*\n.*a\[:, None\]"):
        check_sequences([torch.ones(3), torch.ones(2)])


def test_equal_shape_list_that_is_already_padded_warns():
    a = torch.ones(4, 3)
    b = torch.ones(4, 3)
    b[2:] = 0.0
    with pytest.warns(MaskWarning, match="look padded already"):
        check_sequences([a, b])
    check_sequences([a, b], mask_value=None)  # no inference asked: no warning
