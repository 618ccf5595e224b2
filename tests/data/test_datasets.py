import numpy as np
import pytest
import torch

from maskwise import Masked, MaskWarning, ShapeError
from maskwise.data import SequenceDataset

NAN = float("nan")


def _padded_features() -> np.ndarray:
    """(3, 4, 2): lengths 2, 4, 1 post-padded with zeros; row 0 has a zero step inside."""
    x = np.zeros((3, 4, 2), dtype=np.float64)
    x[0, 0] = [1.0, 2.0]
    x[0, 1] = [3.0, 4.0]
    x[1] = [[1.0, 1.0], [0.0, 0.0], [2.0, 0.0], [5.0, 5.0]]
    x[2, 0] = [7.0, 8.0]
    return x


def test_padded_array_has_no_mask_is_trimmed_and_pads_targets():
    x = _padded_features()
    y = np.array([[1, 0, 0, 0], [0, 2, 1, 1], [3, 0, 0, 0]])
    ds = SequenceDataset(x, y)
    assert ds.lengths.tolist() == [2, 4, 1]
    batch = ds.collate([0, 2])
    assert batch.x.mask is None
    torch.testing.assert_close(batch.x.values, torch.tensor(x[[0, 2], :2], dtype=torch.float32))
    assert batch.y.tolist() == [[1, 0], [3, -100]]
    # a zero step inside a sequence stays real (only trailing padding is inferred)
    assert ds.collate([1]).y.tolist() == [[0, 2, 1, 1]]


def test_padded_array_with_float_targets_pads_nan_and_mask_value_none_keeps_all():
    x = _padded_features()
    y = np.arange(12, dtype=np.float32).reshape(3, 4)
    batch = SequenceDataset(x, y).collate([2, 0])
    expected = torch.tensor([[8.0, NAN], [0.0, 1.0]])
    torch.testing.assert_close(batch.y, expected, equal_nan=True, rtol=0, atol=0)
    full = SequenceDataset(x, y, mask_value=None).collate([2])
    assert full.x.values.shape == (1, 4, 2) and full.y.tolist() == [[8.0, 9.0, 10.0, 11.0]]


def test_ragged_features_pad_per_batch_with_mask_and_per_step_targets():
    xs = [np.arange(6.0).reshape(3, 2), np.array([[9.0, 9.0]])]
    ys = [np.array([0, 1, 0]), np.array([1])]
    batch = SequenceDataset(xs, ys).collate([1, 0])
    expected_values = torch.tensor(
        [[[9.0, 9.0], [0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
    )
    torch.testing.assert_close(batch.x.values, expected_values, rtol=0, atol=0)
    assert batch.x.mask.tolist() == [[True, False, False], [True, True, True]]
    assert batch.y.tolist() == [[1, -100, -100], [0, 1, 0]]
    assert batch.index.tolist() == [1, 0]


def test_per_sequence_targets_scalar_and_vector():
    xs = [np.ones((3, 2)), np.ones((1, 2)), np.ones((2, 2))]
    assert SequenceDataset(xs, [0, 1, 1]).collate([2, 0]).y.tolist() == [1, 0]
    vec = np.array([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]])
    torch.testing.assert_close(
        SequenceDataset(xs, vec).collate([1]).y, torch.tensor([[1.5, 2.0]]), rtol=0, atol=0
    )


def test_token_sequences_are_int64_with_mask_and_zero_token_warns():
    tokens = [np.array([3, 5, 2]), np.array([4])]
    batch = SequenceDataset(tokens).collate([0, 1])
    assert batch.x.values.dtype == torch.int64
    assert batch.x.values.tolist() == [[3, 5, 2], [4, 0, 0]]
    assert batch.x.mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.warns(MaskWarning, match=r"x\[1\] holds token id 0 at step 1"):
        SequenceDataset([np.array([1, 2]), np.array([3, 0, 4])])


def test_ragged_rows_of_mixed_dtypes_are_promoted_per_batch():
    xs = [np.array([[1, 2], [3, 4]]), np.array([[0.5, 1.5]]), np.array([[5, 6]])]
    data = SequenceDataset(xs)
    mixed = data.collate([0, 1])  # int64 and float32 rows: float32, as torch.cat promotes
    assert mixed.x.values.dtype == torch.float32
    assert mixed.x.values.tolist() == [[[1.0, 2.0], [3.0, 4.0]], [[0.5, 1.5], [0.0, 0.0]]]
    assert mixed.x.mask.tolist() == [[True, True], [True, False]]
    integers = data.collate([0, 2])  # integer rows alone stay integers
    assert integers.x.values.dtype == torch.int64
    assert integers.x.values.tolist() == [[[1, 2], [3, 4]], [[5, 6], [0, 0]]]


def test_a_shorter_input_is_padded_to_the_batch_time_axis():
    numeric = [np.ones((3, 2)), np.ones((2, 2))]
    tokens = [np.array([4]), np.array([5])]  # one step each: padded to 3 steps
    batch = SequenceDataset((numeric, tokens)).collate([0, 1])
    assert batch.x[1].values.tolist() == [[4, 0, 0], [5, 0, 0]]
    assert batch.x[1].mask.tolist() == [[True, False, False]] * 2


def test_several_inputs_give_a_tuple_of_masked():
    numeric = [np.ones((3, 2)), np.ones((2, 2))]
    tokens_a = [np.array([1, 2, 3]), np.array([4, 5])]
    tokens_b = [np.array([7, 7, 7]), np.array([8, 8])]
    batch = SequenceDataset((numeric, tokens_a, tokens_b), [[0, 1, 0], [1, 1]]).collate([0, 1])
    assert isinstance(batch.x, tuple) and len(batch.x) == 3
    assert [m.mask.tolist() for m in batch.x] == [[[True] * 3, [True, True, False]]] * 3
    assert batch.x[2].values.tolist() == [[7, 7, 7], [8, 8, 0]]
    assert batch.y.tolist() == [[0, 1, 0], [1, 1, -100]]


def test_keras_style_list_of_padded_inputs_shares_one_time_axis():
    numeric = _padded_features()  # lengths 2, 4, 1
    tokens = np.array([[1, 2, 3, 0], [1, 0, 0, 0], [5, 0, 0, 0]])  # lengths 3, 1, 1
    batch = SequenceDataset([numeric, tokens]).collate([0, 2])
    assert [m.values.shape[1] for m in batch.x] == [3, 3]  # max of both inputs' lengths
    assert all(m.mask is None for m in batch.x)
    assert batch.x[1].values.tolist() == [[1, 2, 3], [5, 0, 0]]


def test_sample_weights_per_sequence_and_per_step():
    xs = [np.ones((3, 2)), np.ones((1, 2))]
    assert SequenceDataset(xs, sample_weight=[2, 1]).collate([1, 0]).sample_weight.tolist() == [
        1.0,
        2.0,
    ]
    w = SequenceDataset(xs, sample_weight=[[1, 2, 3], [4]]).collate([0, 1]).sample_weight
    assert w.dtype == torch.float32 and w.tolist() == [[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]


def test_length_mismatches_are_named():
    xs = [np.ones((3, 2)), np.ones((2, 2))]
    with pytest.raises(ShapeError, match=r"len\(y\) = 1"):
        SequenceDataset(xs, [1])
    with pytest.raises(ShapeError, match=r"Per-step y\[1\] does not match.*sequence 1"):
        SequenceDataset(xs, [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ShapeError, match="holds no sequences"):
        SequenceDataset([])
    with pytest.raises(ShapeError, match="different numbers of sequences"):
        SequenceDataset((xs, [np.array([1])]))


def test_seed000_targets_point_to_transposed_features():
    xs = [np.ones((5, 20)), np.ones((5, 20))]  # (features, time), no padding to go by
    ys = [np.ones(20), np.ones(20)]
    with pytest.raises(ShapeError, match=r"x\[0\] looks transposed.*\n?.*a\.T for a in x"):
        SequenceDataset(xs, ys)


def test_padded_array_with_time_last_warns():
    x = np.zeros((2, 6, 10), dtype=np.float32)  # (batch, features, time), padded on time
    x[0, :, :7] = 1.0
    x[1, :, :4] = 1.0
    with pytest.warns(MaskWarning, match=r"looks like \(batch, features, time\)"):
        SequenceDataset(x)


def test_a_torch_data_loader_is_refused_with_the_maskwise_loader_named() -> None:
    x, y = torch.zeros(4, 3, 2), torch.zeros(4, 3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
    with pytest.raises(
        ShapeError,
        match=r"x: unsupported input type.*\n.*\n  received: DataLoader\n"
        r"  fix: a torch DataLoader's padded batches carry no mask.*make_loader",
    ):
        SequenceDataset(loader)
    with pytest.raises(ShapeError, match=r"received: dict\n  fix: several inputs go as a tuple"):
        SequenceDataset({"tokens": x, "numbers": x})
    with pytest.raises(ShapeError, match=r"received: int\n  fix: convert it"):
        SequenceDataset(3)


def test_targets_of_another_time_axis_keep_the_inputs_untrimmed():
    """(N, T - 1, 1) targets (a model that crops a step) go whole into each batch, and
    the inputs keep their full padded time axis, as Keras's batches do; per-step
    weights of that shape too."""
    x = _padded_features()  # lengths 2, 4, 1 over 4 steps
    y = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    weight = np.ones((3, 3), dtype=np.float32)
    batch = SequenceDataset(x, y, weight).collate([0, 2])  # longest sequence: 2 steps
    torch.testing.assert_close(batch.x.values, torch.tensor(x[[0, 2]], dtype=torch.float32))
    torch.testing.assert_close(batch.y, torch.tensor(y[[0, 2]]))
    torch.testing.assert_close(batch.sample_weight, torch.ones(2, 3))
    # ragged-list inputs are padded to the padded inputs' time axis, mask from lengths
    ragged = [row[:n] for row, n in zip(x, [2, 4, 1], strict=True)]
    several = SequenceDataset((x, ragged), y).collate([0, 2])
    assert several.x[1].mask.tolist() == [[True, True, False, False], [True] + [False] * 3]


def test_per_sequence_and_same_time_targets_still_trim():
    x = _padded_features()
    per_sequence = np.arange(9, dtype=np.float32).reshape(3, 3)  # (N, K): K != T, per row
    batch = SequenceDataset(x, per_sequence).collate([0, 2])
    assert batch.x.values.shape == (2, 2, 2)
    torch.testing.assert_close(batch.y, torch.tensor(per_sequence[[0, 2]]))
    per_step = np.ones((3, 4, 1), dtype=np.float32)
    batch = SequenceDataset(x, per_step).collate([0, 2])
    assert batch.x.values.shape == (2, 2, 2) and batch.y.shape == (2, 2, 1)


def test_a_masked_gives_its_rows_real_steps_as_the_list_of_them_does():
    """A `Masked` (what a PyTorch user holds) is read as its sequences: each row's real
    steps; without a mask, every step of each row."""
    rows = [torch.arange(10.0).view(5, 2), torch.ones(2, 2), torch.zeros(3, 2)]
    y = [[1, 0, 1, 0, 1], [2, 2], [0, 1, 2]]
    from_masked = SequenceDataset(Masked.pad(rows), y=y).collate([0, 1, 2])
    from_list = SequenceDataset(rows, y=y).collate([0, 1, 2])
    assert torch.equal(from_masked.x.values, from_list.x.values)
    assert torch.equal(from_masked.x.mask, from_list.x.mask)
    assert torch.equal(from_masked.y, from_list.y)
    whole = SequenceDataset(Masked(torch.ones(2, 4, 3))).collate([0, 1])
    assert whole.x.lengths.tolist() == [4, 4]


def test_a_masked_whose_real_steps_do_not_come_first_names_the_fix():
    padded = Masked.pad([torch.ones(5, 2), torch.ones(2, 2)])
    with pytest.raises(ShapeError, match=r"(?s)row 1: \[0, 0, 1, 1, 1\].*inverted.*~mask"):
        SequenceDataset(Masked(padded.values, ~padded.mask))  # PyTorch's key_padding_mask
    holes = padded.mask.clone()
    holes[0, 1] = False
    with pytest.raises(ShapeError, match=r"(?s)row 0: .*own loop"):
        SequenceDataset(Masked(padded.values, holes))
