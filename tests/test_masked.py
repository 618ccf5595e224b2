import copy
import pickle

import numpy as np
import pytest
import torch
import torch.utils._pytree as pytree
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import (
    Masked,
    MaskError,
    MaskwiseTypeError,
    Sequential,
    ShapeError,
    combine_masks,
    layers,
    lengths_to_mask,
)
from maskwise.masked import (
    compaction_order,
    fill_padding,
    gather_steps,
)


def test_pad_post_and_pre_place_real_steps_and_mask():
    seqs = [torch.arange(6.0).reshape(3, 2), torch.tensor([[7.0, 8.0]])]
    post = Masked.pad(seqs)
    assert post.mask.tolist() == [[True, True, True], [True, False, False]]
    torch.testing.assert_close(post.values[1, 0], torch.tensor([7.0, 8.0]))
    pre = Masked.pad(seqs, padding="pre", value=-1.0)
    assert pre.mask.tolist() == [[True, True, True], [False, False, True]]
    torch.testing.assert_close(pre.values[1, 2], torch.tensor([7.0, 8.0]))
    assert pre.values[1, 0].tolist() == [-1.0, -1.0]


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    extra=st.integers(0, 2),
    padding=st.sampled_from(["post", "pre"]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]),
    value=st.sampled_from([0.0, -100.0, 2.0]),
)
def test_pad_matches_a_row_by_row_reference(lengths, extra, padding, dtype, value):
    gen = torch.Generator().manual_seed(len(lengths))
    seqs = [(torch.randn(n, 3, generator=gen) * 4).to(dtype) for n in lengths]
    longest = max(lengths)
    out = Masked.pad(seqs, value=value, padding=padding, max_len=longest + extra)
    expected = torch.full((len(seqs), longest + extra, 3), value, dtype=dtype)
    mask = torch.zeros(len(seqs), longest + extra, dtype=torch.bool)
    for row, seq in enumerate(seqs):  # each row's real steps at its padding side
        start = 0 if padding == "post" else longest + extra - len(seq)
        expected[row, start : start + len(seq)] = seq
        mask[row, start : start + len(seq)] = True
    assert out.values.dtype == dtype
    assert torch.equal(out.values, expected)
    assert torch.equal(out.mask, mask)


def test_unpad_returns_real_steps_only_for_any_mask():
    values = torch.arange(10.0).reshape(2, 5, 1)
    mask = torch.tensor([[1, 0, 1, 0, 1], [0, 0, 1, 1, 0]], dtype=torch.bool)
    rows = Masked(values, mask).unpad()
    assert [r.squeeze(-1).tolist() for r in rows] == [[0.0, 2.0, 4.0], [7.0, 8.0]]


def test_torch_functions_and_modules_given_a_masked_name_the_way_to_keep_the_mask():
    x = Masked.from_lengths(torch.randn(2, 3, 4), [3, 1])
    linear = torch.nn.Linear(4, 2)
    for call, name in [
        (lambda: linear(x), "linear"),
        (lambda: torch.relu(x), "relu"),
        (lambda: torch.cat([x, x], -1), "cat"),
    ]:
        with pytest.raises(MaskwiseTypeError, match=rf"`{name}` got a maskwise Masked") as e:
            call()
        assert "`layers.Lambda(module)(x)`" in str(e.value)
    kept = x.with_values(torch.relu(x.values))  # the fix the message names
    assert torch.equal(kept.mask, x.mask)


def test_tensor_habits_on_a_masked_name_the_way_to_keep_the_mask():
    """`x[:, 1:]`, `x + y`, `x.mean(1)`: a library error naming the fix, not Python's
    "not subscriptable" or "no attribute"; attribute lookups stay AttributeErrors."""
    x = Masked.from_lengths(torch.randn(2, 3, 4), [3, 1])
    with pytest.raises(MaskwiseTypeError, match=r"(?s)not indexed.*Cropping1D"):
        x[:, 1:]
    for call, shown in [
        (lambda: x + x, r"x \+ \.\.\."),
        (lambda: 2 * x, r"\.\.\. \* x"),
        (lambda: -x, "-x"),
    ]:
        with pytest.raises(MaskwiseTypeError, match=rf"(?s)`{shown}`.*layers.Add\(\)"):
            call()
    with pytest.raises(AttributeError, match=r"(?s)no `.mean`.*GlobalAveragePooling1D"):
        x.mean(1)
    assert not hasattr(x, "cpu") and not hasattr(x, "not_a_tensor_method")
    assert copy.deepcopy(x).mask is not None  # copying still finds no __deepcopy__


def test_reading_a_masked_as_an_array_names_its_parts():
    # Without the refusal, np.asarray made a 0-d object array and torch.tensor said
    # "Could not infer dtype of Masked".
    x = Masked.from_lengths(torch.randn(2, 3, 4), [3, 1])
    for call in [
        lambda: np.asarray(x),
        lambda: np.array(x),
        lambda: torch.tensor(x),
        lambda: torch.as_tensor(x),
        lambda: len(x),
    ]:
        with pytest.raises(MaskwiseTypeError, match=r"got a maskwise Masked") as e:
            call()
        assert "`x.values`" in str(e.value) and "`model.predict(x)`" in str(e.value)
    for call in [lambda: list(x), lambda: x[0]]:
        with pytest.raises(MaskwiseTypeError, match=r"x.unpad\(\)"):
            call()
    assert bool(x) and np.asarray(x.values).shape == (2, 3, 4)  # the fix the message names


def test_lengths_and_from_lengths_agree():
    x = Masked.from_lengths(torch.zeros(3, 4, 2), [4, 0, 2])
    assert x.lengths.tolist() == [4, 0, 2]
    assert Masked(torch.zeros(2, 3)).lengths.tolist() == [3, 3]


def test_to_keeps_mask_bool():
    x = Masked.pad([torch.ones(2, 1), torch.ones(1, 1)]).to(torch.float64)
    assert x.values.dtype == torch.float64 and x.mask.dtype == torch.bool


def test_is_immutable_and_a_pytree():
    x = Masked.pad([torch.ones(2, 1)])
    with pytest.raises(AttributeError, match="immutable"):
        x.values = torch.zeros(1)
    leaves, spec = pytree.tree_flatten(x)
    doubled = pytree.tree_unflatten([leaves[0] * 2, leaves[1]], spec)
    assert isinstance(doubled, Masked) and doubled.values.sum().item() == 4.0


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_masked_copies_and_pickles(how):
    copy_of = {
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    }[how]
    x = Masked.pad([torch.arange(6.0).view(3, 2), torch.ones(1, 2)])
    copied = copy_of(x)
    assert isinstance(copied, Masked)
    assert torch.equal(copied.values, x.values) and torch.equal(copied.mask, x.mask)
    assert (copied.values is x.values) == (how == "copy")
    assert copy_of(Masked(torch.zeros(2, 3))).mask is None


def test_fill_padding_removes_nan():
    x = Masked(torch.tensor([[1.0, float("nan")]]), torch.tensor([[True, False]]))
    assert x.fill_padding(0.0).values.tolist() == [[1.0, 0.0]]


def test_filling_a_filled_tensor_again_returns_it_with_the_same_gradients():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    raw = torch.tensor([[[4.0], [9.0], [float("nan")]], [[1.0], [float("inf")], [-2.0]]])
    leaf = raw.clone().requires_grad_(True)
    once = fill_padding(leaf, mask)
    twice = fill_padding(once, mask)
    assert twice is once
    twice.sqrt().sum().backward()  # d sqrt at the padding's 0 is inf: dropped by the fill
    plain = raw.clone().requires_grad_(True)
    keep = mask.unsqueeze(-1)
    torch.where(keep, torch.where(keep, plain, 0.0), 0.0).sqrt().sum().backward()
    assert torch.equal(leaf.grad, plain.grad)
    assert leaf.grad[~mask].eq(0).all()


SPECIAL_VALUES = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-40, -3.5]


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal element for element, NaN and the sign of zero included."""
    return torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)) and torch.equal(
        a.isnan() | torch.signbit(a), b.isnan() | torch.signbit(b)
    )


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    features=st.integers(1, 4),
    time_major=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_zero_fill_equals_where_bit_for_bit_in_values_and_gradients(
    dtype, lengths, features, time_major, seed
):
    generator = torch.Generator().manual_seed(seed)
    shape = (len(lengths), 5, features)
    raw = torch.randn(shape, generator=generator)
    specials = torch.tensor(SPECIAL_VALUES)
    pick = torch.randint(0, 3 * len(SPECIAL_VALUES), shape, generator=generator)
    raw = torch.where(pick < len(SPECIAL_VALUES), specials[pick % len(SPECIAL_VALUES)], raw)
    raw = raw.to(dtype)
    if time_major:  # laid out as a fused recurrent kernel writes its output
        raw = raw.transpose(0, 1).contiguous().transpose(0, 1)
    mask = lengths_to_mask(lengths, 5)
    grad = torch.randn(shape, generator=generator).to(dtype)
    grad[..., 0] = float("nan")  # a non-finite gradient given at every step
    ours = raw.clone().requires_grad_(True)
    filled = fill_padding(ours, mask)
    filled.backward(grad)
    reference = raw.clone().requires_grad_(True)
    expected = torch.where(mask.unsqueeze(-1), reference, torch.zeros((), dtype=dtype))
    expected.backward(grad)
    assert _same_bits(filled.detach(), expected.detach())
    assert not torch.signbit(filled.detach()[~mask]).any()  # +0, not -0
    assert _same_bits(ours.grad, reference.grad)
    assert filled.is_contiguous()


def test_zero_fill_works_under_torch_func_and_with_a_broadcast_gradient():
    mask = lengths_to_mask([2, 1], 3)
    values = torch.tensor([[[1.0], [2.0], [float("nan")]], [[3.0], [4.0], [5.0]]])
    per_row = torch.func.vmap(lambda v, m: fill_padding(v[None], m[None])[0])(values, mask)
    assert per_row[..., 0].tolist() == [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]
    leaf = values.clone().requires_grad_(True)
    fill_padding(leaf, mask).sum().backward()  # the gradient is an expanded 1
    assert leaf.grad[..., 0].tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_filling_again_after_an_in_place_change_or_by_another_mask_fills():
    mask = torch.tensor([[True, False]])
    filled = fill_padding(torch.ones(1, 2, 1), mask)
    filled.add_(1.0)  # the padding now holds 1
    assert fill_padding(filled, mask).tolist() == [[[2.0], [0.0]]]
    fresh = fill_padding(torch.ones(1, 2, 1), mask)
    other = torch.tensor([[False, True]])
    assert fill_padding(fresh, other).tolist() == [[[0.0], [0.0]]]  # not [1, 0]
    negative = fill_padding(fresh, mask, value=-0.0)  # -0 is written, not skipped
    assert negative is not fresh and torch.signbit(negative[0, 1, 0])


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(2, 3, dtype=torch.int64), "must be bool"),
        (torch.ones(2, 4, dtype=torch.bool), "does not match"),
        (torch.ones(2, 3, 5, dtype=torch.bool), r"mask.all\(-1\)"),
    ],
)
def test_bad_masks_are_named(mask, match):
    with pytest.raises(MaskError, match=match):
        Masked(torch.zeros(2, 3, 5), mask)


def test_lengths_longer_than_time_are_rejected():
    with pytest.raises(MaskError, match="longer than the time axis"):
        Masked.from_lengths(torch.zeros(2, 3, 1), [3, 4])
    with pytest.raises(MaskError, match="negative"):
        lengths_to_mask([-1, 2])


@pytest.mark.parametrize(
    ("lengths", "match"),
    [
        ([2.5, 1], r"(?s)whole numbers.*received: length 2.5 at index 0"),
        ([3, float("nan")], r"(?s)whole numbers.*received: length nan at index 1"),
        (torch.tensor([1.0, float("inf")]), r"(?s)whole numbers.*length inf at index 1"),
        (np.array([0.5]), r"length 0.5 at index 0"),
    ],
)
def test_lengths_that_are_not_whole_numbers_are_named(lengths, match):
    """A cast would truncate 2.5 to 2 and make NaN a huge negative number, silently."""
    with pytest.raises(MaskError, match=match):
        Masked.from_lengths(torch.zeros(len(lengths), 3, 1), lengths)


def test_whole_float_lengths_are_accepted_and_other_types_refused():
    x = Masked.from_lengths(torch.zeros(2, 3, 1), np.array([3.0, 1.0]))
    assert x.lengths.tolist() == [3, 1]
    assert lengths_to_mask(np.array([2, 0], dtype=np.uint8), 2).tolist() == [
        [True, True],
        [False, False],
    ]
    with pytest.raises(MaskwiseTypeError, match=r"(?s)must be integers.*received: list \['a'"):
        lengths_to_mask(["a", "b"])
    with pytest.raises(MaskError, match=r"negative.*\n.*received: \[2, -1\]"):
        Masked.from_lengths(torch.zeros(2, 3, 1), [2, -1])
    with pytest.raises(MaskError, match="length 4 for sequence 1"):
        Masked.from_lengths(torch.zeros(2, 3, 1), [2, 4])


def test_pad_promotes_mixed_dtypes_so_no_value_is_truncated():
    ints, floats = torch.tensor([[1], [2]]), torch.tensor([[2.5]])
    x = Masked.pad([ints, floats])
    assert x.values.dtype == torch.float32  # torch.promote_types(int64, float32)
    assert x.values[:, :, 0].tolist() == [[1.0, 2.0], [2.5, 0.0]]
    assert Masked.pad([np.ones((1, 1), np.float32), np.ones((2, 1))]).dtype == torch.float64
    assert Masked.pad([ints, ints.int()]).dtype == torch.int64
    assert Masked.pad([ints, floats], dtype=torch.float16).dtype == torch.float16  # as asked


def test_pad_rejects_mismatched_feature_axes():
    with pytest.raises(ShapeError, match="transpose"):
        Masked.pad([np.zeros((4, 5)), np.zeros((5, 4))])


def test_values_without_time_axis_rejected():
    with pytest.raises(ShapeError, match="batch and a time axis"):
        Masked(torch.zeros(3))


def test_combine_masks_is_and_and_ignores_none():
    a = torch.tensor([[True, True, False]])
    b = torch.tensor([[False, True, True]])
    assert combine_masks([a, None, b]).tolist() == [[False, True, False]]
    assert combine_masks([None, None]) is None


def test_compaction_puts_each_rows_real_steps_first_in_order():
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(4, 7, generator=gen) > 0.4
    values = torch.randn(4, 7, 3, generator=gen)
    order = compaction_order(mask)
    compact = gather_steps(values, order)
    for row in range(4):
        n = int(mask[row].sum())
        torch.testing.assert_close(compact[row, :n], values[row][mask[row]])


def test_torch_export_takes_and_returns_a_masked():
    """`Masked` is a pytree node with named leaves, so `torch.export` traces a model
    called on one and the exported program gives the eager result."""
    torch.manual_seed(0)
    model = Sequential([layers.Dense(3, activation="tanh", input_dim=2), layers.Dense(1)])
    x = Masked.pad([torch.randn(4, 2), torch.randn(2, 2)])
    exported = torch.export.export(model, (x,))
    got, expected = exported.module()(x), model(x)
    assert isinstance(got, Masked)
    torch.testing.assert_close(got.values, expected.values)
    assert torch.equal(got.mask, expected.mask)


def test_torch_load_with_weights_only_reads_a_saved_masked(tmp_path):
    """`torch.load`'s default (`weights_only=True` since PyTorch 2.6) loads a Masked."""
    x = Masked.from_lengths(torch.randn(2, 3, 4), [3, 1])
    torch.save({"batch": x}, tmp_path / "batch.pt")
    loaded = torch.load(tmp_path / "batch.pt", weights_only=True)["batch"]
    assert torch.equal(loaded.values, x.values) and torch.equal(loaded.mask, x.mask)
