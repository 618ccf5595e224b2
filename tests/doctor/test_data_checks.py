"""The doctor's data checks: each code fires on its mistake and stays quiet on clean data."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskwise as mw
from maskwise import Masked, doctor
from maskwise.errors import ConfigError, ShapeError
from maskwise.masked import IGNORE_INDEX

from .helpers import codes, padded, seed000


def repair_of(finding: doctor.Finding) -> str:
    return re.search(r"after `([^`]+)`", finding.message).group(1)


# ---------------------------------------------------------------- MW001 on seed 000's data
def test_seed000_wrong_reshape_is_found_and_repaired_per_batch() -> None:
    xs, _ys = seed000()
    for X in xs + seed000("test")[0]:
        x = X.reshape(1, 20, 5)  # the user's line
        findings = doctor.check(x)
        assert codes(findings) == ["MW001"]
        finding = findings[0]
        assert finding.severity == "error"
        assert "x.reshape(-1, 5, 20).swapaxes(1, 2)" in finding.message
        assert "X.T" in finding.fix
        repaired = eval(repair_of(finding), {"np": np, "x": x})
        np.testing.assert_array_equal(repaired, X.T[None])


def test_seed000_stacked_wrong_reshape_names_the_undo() -> None:
    xs, _ = seed000()
    x = np.stack([X.reshape(20, 5) for X in xs])
    (finding,) = doctor.check(x)
    assert finding.code == "MW001"
    assert "(20, 5) = (time, features)" in finding.message
    repaired = eval(repair_of(finding), {"np": np, "x": x})
    np.testing.assert_array_equal(repaired, np.stack([X.T for X in xs]))


def test_seed000_features_by_time_list_names_the_transpose() -> None:
    xs, _ys = seed000()
    findings = doctor.check(xs)
    assert codes(findings) == ["MW001"]
    assert repair_of(findings[0]) == "[s.T for s in x]"
    assert "10 of 10 sequences" in findings[0].message


def test_seed000_correct_layout_has_no_layout_finding() -> None:
    xs, _ys = seed000()
    assert doctor.check(np.stack([X.T for X in xs])) == []
    assert doctor.check([X.T for X in xs]) == []
    for X in xs:
        assert doctor.check(X.T[None]) == []


def test_repaired_layout_padding_matches_seed000_labels() -> None:
    # After the repair, the steps the doctor calls padding are exactly those labelled 0.
    xs, ys = seed000()
    x = np.stack([X.reshape(20, 5) for X in xs])
    findings = doctor.check(x, np.stack(ys))
    assert "MW011" not in codes(findings)
    mw004 = next(f for f in findings if f.code == "MW004")
    assert "classes [1, 2]" in mw004.message and "label 0" in mw004.message


def test_ragged_features_by_time_list_is_found_from_shapes() -> None:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(12, n)) for n in (7, 9, 5)]  # 12 features x time, unpadded
    (finding,) = doctor.check(xs)
    assert finding.code == "MW001" and "(12, 7) and (12, 9)" in finding.message
    assert "[s.T for s in x]" in finding.fix
    assert doctor.check([s.T for s in xs]) == []


def test_no_layout_finding_for_dead_feature_or_sparse_values() -> None:
    x = padded([6, 6, 6, 6], features=4)
    x[:, :, 3] = 0.0  # a feature that is always zero: not a scrambled layout
    assert "MW001" not in codes(doctor.check(x))
    rng = np.random.default_rng(1)
    sparse = np.maximum(rng.normal(size=(8, 12, 6)), 0.0)  # ReLU-like, half zeros
    assert "MW001" not in codes(doctor.check(sparse))


# ---------------------------------------------------------------- MW002
def test_partial_padding_is_found() -> None:
    x = padded([7, 4, 5], features=4)
    x[1, 4:, 3] = 1.0  # sequence 1's padding keeps feature 3 at 1
    findings = [f for f in doctor.check(x) if f.code == "MW002"]
    assert len(findings) == 1
    finding = findings[0]
    assert finding.severity == "error"
    assert (finding.sequence, finding.step) == (1, 4)
    assert "steps 4..6" in finding.message and "features [3] are not" in finding.message


def test_one_hot_data_is_not_partial_padding() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((6, 9, 4))
    for i, n in enumerate([9, 5, 7, 3, 8, 6]):
        x[i, np.arange(n), rng.integers(0, 4, n)] = 1.0
    assert doctor.check(x) == []


# ---------------------------------------------------------------- MW003
def test_real_step_equal_to_mask_value_is_found() -> None:
    x = padded([6, 6, 4])
    x[2, 1] = 0.0
    (finding,) = doctor.check(x)
    assert finding.code == "MW003" and finding.severity == "warning"
    assert (finding.sequence, finding.step) == (2, 1)
    assert "sequence 2, step 1" in finding.message


def test_mask_value_other_than_zero() -> None:
    x = padded([6, 4, 5], value=-1.0)
    assert doctor.check(x, mask_value=-1.0) == []
    x[0, 2] = -1.0
    assert codes(doctor.check(x, mask_value=-1.0)) == ["MW003"]


# ---------------------------------------------------------------- MW004
def test_padding_label_below_the_classes_warns_without_a_model() -> None:
    x = padded([5, 3])
    y = np.array([[1, 2, 1, 2, 2], [2, 1, 1, 0, 0]])
    (finding,) = doctor.check(x, y)
    assert finding.code == "MW004" and finding.severity == "warning"
    assert "1->0, 2->1" in finding.fix and "2 output units" in finding.fix


def test_padding_label_shared_with_a_real_class_is_an_error() -> None:
    x = padded([5, 3])
    y = np.array([[0, 1, 0, 1, 1], [1, 0, 1, 0, 0]])
    (finding,) = doctor.check(x, y)
    assert finding.code == "MW004" and finding.severity == "error"
    assert (finding.sequence, finding.step) == (0, 0)
    assert "also a class at 3 real steps" in finding.message


def test_ignore_index_padding_is_clean() -> None:
    x = padded([5, 3])
    y = np.array([[0, 1, 0, 1, 1], [1, 0, 1, IGNORE_INDEX, IGNORE_INDEX]])
    assert doctor.check(x, y) == []


# ---------------------------------------------------------------- MW005
def test_nan_in_padding_is_info_and_in_real_steps_an_error() -> None:
    x = padded([5, 3, 4], value=np.nan)
    findings = doctor.check(x)
    assert [(f.code, f.severity) for f in findings] == [("MW005", "info")]
    assert "0 * NaN = NaN" in findings[0].message
    x[2, 3, 1] = np.inf
    errors = [f for f in doctor.check(x) if f.severity == "error"]
    assert codes(errors) == ["MW005"]
    assert (errors[0].sequence, errors[0].step) == (2, 3)
    assert "sequence 2, step 3, feature 1" in errors[0].message


def test_nan_target_at_a_real_step() -> None:
    x = padded([4, 2])
    y = np.array([[0.5, 0.1, np.nan, 0.3], [0.2, 0.1, np.nan, np.nan]])
    (finding,) = doctor.check(x, y)
    assert (finding.code, finding.sequence, finding.step) == ("MW005", 0, 2)


# ---------------------------------------------------------------- MW008
def test_mixed_pre_and_post_padding() -> None:
    x = np.concatenate([padded([5, 3], time=6), padded([2, 4], padding="pre", time=6)])
    (finding,) = doctor.check(x)
    assert finding.code == "MW008" and finding.severity == "warning"
    assert "2 sequences are post-padded" in finding.message
    assert "sequence 2" in finding.message
    assert doctor.check(padded([2, 6, 4], padding="pre")) == []


# ---------------------------------------------------------------- MW010
def test_empty_sequences_and_heavy_padding() -> None:
    findings = doctor.check(padded([8, 0, 1, 1]))
    assert [(f.code, f.severity) for f in findings] == [("MW010", "warning"), ("MW010", "info")]
    assert findings[0].sequence == 1
    assert "69% of all 32 steps are padding" in findings[1].message
    assert "make_loader" in findings[1].fix
    assert doctor.check([np.ones((3, 2)), np.zeros((0, 2))])[0].code == "MW010"
    assert doctor.check(padded([8, 6, 5, 7])) == []


# ---------------------------------------------------------------- MW011 and input forms
def test_targets_that_do_not_line_up() -> None:
    x = padded([5, 3])
    (finding,) = doctor.check(x, [np.zeros(4), np.zeros(3)])
    assert finding.code == "MW011" and "sequence 0 has 5 steps but 4 values" in finding.message
    # An array whose axis 1 is not the time axis holds values per sequence, as fit
    # reads it: one regression target (N, 1) or several (N, K).
    assert doctor.check(x, np.zeros((2, 1))) == doctor.check(x, np.zeros((2, 4))) == []
    (finding,) = doctor.check(x, np.zeros((3, 5)))
    assert "y does not line up with x: 3 rows for 2 sequences" in finding.message
    assert finding.fix.startswith("give one target per step")
    (finding,) = doctor.check(x, sample_weight=np.ones((2, 4)))
    assert finding.message.startswith("sample_weight does not line up with x: sequence 0")
    assert finding.fix.startswith("give one weight per step")


def test_tensors_and_token_ids_are_read() -> None:
    assert doctor.check(torch.as_tensor(padded([5, 2, 4]))) == []
    tokens = np.array([[3, 4, 5, 0], [6, 0, 7, 0]])  # token 0 inside sequence 1
    assert codes(doctor.check(tokens)) == ["MW003"]
    assert doctor.check([np.array([3, 4]), np.array([5])]) == []


def test_masked_input_is_checked_on_its_real_steps() -> None:
    x = Masked.pad([torch.ones(4, 2), torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])])
    y = np.array([[0, 1, 0, 1], [1, 0, 1, IGNORE_INDEX]])
    (finding,) = doctor.check(x, y)
    assert (finding.code, finding.sequence, finding.step) == ("MW003", 1, 1)


# ---------------------------------------------------------------- MW018
def test_pytorch_padding_mask_given_as_the_mask_is_an_error() -> None:
    """PyTorch's `key_padding_mask` (True = padded) given where maskwise wants True =
    real: every step it calls real holds the padding value, the data sits at the steps
    it calls padded."""
    x = torch.as_tensor(padded([4, 2, 3]))
    key_padding_mask = (x == 0).all(-1)
    (finding,) = [f for f in doctor.check(Masked(x, key_padding_mask)) if f.code == "MW018"]
    assert finding.severity == "error" and "~key_padding_mask" in finding.fix
    assert "True = real" in finding.message
    tokens = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    assert "MW018" in codes(doctor.check(Masked(tokens, tokens == 0)))


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    features=st.integers(1, 4),
    padding=st.sampled_from(["post", "pre"]),
    seed=st.integers(0, 1000),
)
def test_mw018_fires_on_the_inverted_mask_only(lengths, features, padding, seed) -> None:
    x = torch.as_tensor(padded(lengths, features=features, padding=padding, seed=seed))
    real = (x != 0).any(-1)
    assert "MW018" not in codes(doctor.check(Masked(x, real)))
    inverted = codes(doctor.check(Masked(x, ~real)))
    assert ("MW018" in inverted) == bool((~real).any())  # some padding to call real


def test_unusable_input_shape_raises() -> None:
    with pytest.raises(ShapeError, match=r"received: shape \(2, 3, 4, 5\)"):
        doctor.check(np.ones((2, 3, 4, 5)))
    with pytest.raises(ShapeError, match="sequence 1 shaped"):
        doctor.check([np.ones((3, 2)), np.ones((3, 2, 1))])


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    features=st.integers(1, 6),
    padding=st.sampled_from(["post", "pre"]),
    seed=st.integers(0, 1000),
)
def test_clean_padded_data_has_no_error_or_warning(lengths, features, padding, seed) -> None:
    x = padded(lengths, features=features, padding=padding, seed=seed)
    findings = doctor.check(x)
    assert [f for f in findings if f.severity != "info"] == []
    assert all(f.code == "MW010" for f in findings)


# ---------------------------------------------------------- MW004 with n_outputs, MW014, MW015
def test_padding_label_with_a_unit_of_its_own_given_the_output_units() -> None:
    x = padded([5, 3, 4])
    y = np.array([[1, 2, 1, 2, 2], [2, 1, 2, 0, 0], [1, 1, 2, 2, 0]])
    assert [(f.code, f.severity) for f in doctor.check(x, y)] == [("MW004", "warning")]
    (finding,) = doctor.check(x, y, n_outputs=3)
    assert (finding.code, finding.severity) == ("MW004", "error")
    assert "the model has 3 outputs, one of them for 0" in finding.message
    assert doctor.check(x, y, n_outputs=1) == []  # one unit: a score, not classes


def test_time_major_array_is_found_and_repaired() -> None:
    x = padded([6, 3, 5, 2, 4, 6, 1, 5], features=3)
    findings = doctor.check(np.swapaxes(x, 0, 1), np.swapaxes(x[..., 0], 0, 1))
    assert codes(findings) == ["MW014"]  # the time-major targets are not reported again
    assert "looks time-major" in findings[0].message
    assert "np.swapaxes(x, 0, 1)" in findings[0].fix
    tokens = np.array([[3, 4, 5, 0], [6, 2, 0, 0], [7, 0, 0, 0], [1, 1, 1, 1], [5, 5, 0, 0]])
    assert codes(doctor.check(tokens.T)) == ["MW014"]


def test_several_inputs_and_sample_weights() -> None:
    a, b = padded([5, 3, 4, 2]), padded([5, 3, 4, 2], features=2, seed=1)
    assert doctor.check((a, b)) == []
    b[2, 3] = 0.0  # input b's sequence 2 ends one step earlier
    (finding,) = doctor.check((a, b))
    assert finding.code == "MW015" and finding.sequence == 2
    assert "x[0] steps 0..3, x[1] steps 0..2" in finding.message
    weights = np.where(a[..., 0] != 0, 1.0, np.nan)  # NaN at padding only
    assert doctor.check(a, sample_weight=weights) == []
    weights[1, 2] = np.nan
    (finding,) = doctor.check(a, sample_weight=weights)
    assert (finding.code, finding.sequence, finding.step) == ("MW005", 1, 2)
    assert finding.message.startswith("sample_weight: 1 real steps hold NaN")


def test_targets_whose_real_steps_hold_no_class_give_no_padding_label_finding():
    x = np.zeros((2, 3, 1), "float32")
    x[:, :2] = 1.0  # two real steps, one padded step per sequence
    y = np.array([[np.nan, np.nan, 0.0], [np.inf, np.nan, 0.0]])  # no finite real label
    assert not [f for f in doctor.check(x, y) if f.code == "MW004"]


# ------------------------------------------------------- data sets, as fit would read them
def test_check_reads_a_data_set_as_fit_does(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"id": [0, 0, 1, 1, 1], "t": [0, 1, 0, 1, 2], "a": [1.0, 2.0, 3.0, 0.0, 5.0]})
    df["label"] = [0.0, np.nan, 1.0, 0.0, 1.0]  # NaN at a real step
    data = mw.data.from_dataframe(df, "id", "t", ["a"], "label")
    findings = doctor.check(data)
    assert codes(findings) == ["MW005"]
    assert "sequence 0, step 1" in findings[0].message
    df.to_parquet(tmp_path / "t.parquet")
    streamed = mw.data.ParquetSequences(tmp_path / "t.parquet", "id", "t", ["a"], "label")
    assert codes(doctor.check(streamed)) == ["MW005"]
    assert doctor.check(mw.data.from_dataframe(df.fillna(1.0), "id", "t", ["a"], "label")) == []


def test_check_of_a_data_set_takes_its_targets_from_it() -> None:
    data = mw.data.SequenceDataset([np.ones((2, 1))], [np.ones(2)])
    with pytest.raises(ConfigError, match=r"(?s)y= .*from the data set"):
        doctor.check(data, np.ones((1, 2)))


# ------------------------------------------- MW011: targets padded at the other end
def _labels(lengths: list[int], time: int, padding: str, value: int) -> np.ndarray:
    """Per-step classes 1 and 2 (a fixed pattern), padded with `value` at `padding`."""
    y = np.full((len(lengths), time), value)
    for i, n in enumerate(lengths):
        real = 1 + (np.arange(n) + i) % 2
        if padding == "post":
            y[i, :n] = real
        else:
            y[i, time - n :] = real
    return y


@pytest.mark.parametrize("x_side, y_side", [("pre", "post"), ("post", "pre")])
@pytest.mark.parametrize("value", [0, IGNORE_INDEX])
def test_targets_padded_at_the_other_end_are_found(x_side: str, y_side: str, value: int) -> None:
    # keras.utils.pad_sequences pads at the front by default: x pre-padded by it and y
    # post-padded by hand puts the labels on the padding and the padding on real steps.
    lengths = [3, 5, 2, 6, 4]
    x = padded(lengths, time=6, padding=x_side)
    findings = doctor.check(x, _labels(lengths, 6, y_side, value))
    assert codes(findings) == ["MW011"]
    assert f"padding='{x_side}'" in findings[0].fix
    assert doctor.check(x, _labels(lengths, 6, x_side, IGNORE_INDEX)) == []


def test_targets_of_one_class_at_the_start_are_not_taken_for_padding() -> None:
    # Tags that always begin with the same class ("O"), padded like x: lined up.
    lengths = [3, 5, 2, 6, 4]
    y = _labels(lengths, 6, "post", IGNORE_INDEX)
    y[:, :2] = 1
    assert doctor.check(padded(lengths, time=6), y) == []
