"""Masked losses: Keras 3 parity, Keras 2 formula, padding never leaks, errors."""

import math

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from keras.src.backend.common.masking import set_keras_mask

from maskwise import (
    ConfigError,
    Masked,
    MaskError,
    MaskwiseTypeError,
    Sequential,
    ShapeError,
    losses,
)
from maskwise.layers import Dense, Masking
from maskwise.masked import IGNORE_INDEX, lengths_to_mask

B, T, C, FEAT = 3, 5, 4, 2
MASKS = {
    "post": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    "pre": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
    "gaps": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 1, 1]],
}


def _mask(name):
    return torch.tensor(MASKS[name], dtype=torch.bool)


def _data(kind, mask):
    """(pred, target) for Keras (finite everywhere) and (pred, target) for maskwise,
    whose padded steps hold NaN (or IGNORE_INDEX for class ids)."""
    g = torch.Generator().manual_seed(1)
    pad = ~mask
    if kind in ("sparse", "sparse_logits"):
        logits = torch.randn(B, T, C, generator=g) * 2
        pred = logits if kind == "sparse_logits" else logits.softmax(-1)
        y = torch.randint(0, C, (B, T), generator=g)
        return (
            pred,
            y,
            pred.masked_fill(pad[..., None], float("nan")),
            y.masked_fill(pad, IGNORE_INDEX),
        )
    if kind in ("onehot", "onehot_logits"):
        logits = torch.randn(B, T, C, generator=g) * 2
        pred = logits if kind == "onehot_logits" else logits.softmax(-1)
        y = F.one_hot(torch.randint(0, C, (B, T), generator=g), C).float()
    elif kind in ("binary", "binary_logits"):
        logits = torch.randn(B, T, FEAT, generator=g) * 2
        pred = logits if kind == "binary_logits" else logits.sigmoid()
        y = torch.randint(0, 2, (B, T, FEAT), generator=g).float()
    else:  # regression (positive: MSLE's domain, where its gradient is not clipped)
        pred = torch.randn(B, T, FEAT, generator=g) * 2
        y = torch.randn(B, T, FEAT, generator=g) * 2
        if kind == "positive":
            pred, y = pred.abs(), y.abs()
    nan = float("nan")
    return pred, y, pred.masked_fill(pad[..., None], nan), y.masked_fill(pad[..., None], nan)


CASES = {
    "sparse": (
        losses.SparseCategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy,
        {},
    ),
    "sparse_logits": (
        losses.SparseCategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy,
        {"from_logits": True},
    ),
    "onehot": (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, {}),
    "onehot_logits": (
        losses.CategoricalCrossentropy,
        keras.losses.CategoricalCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
    ),
    "binary": (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, {}),
    "binary_logits": (
        losses.BinaryCrossentropy,
        keras.losses.BinaryCrossentropy,
        {"from_logits": True, "label_smoothing": 0.2},
    ),
    "mse": (losses.MeanSquaredError, keras.losses.MeanSquaredError, {}),
    "mae": (losses.MeanAbsoluteError, keras.losses.MeanAbsoluteError, {}),
    "huber": (losses.Huber, keras.losses.Huber, {"delta": 0.7}),
    "msle": (losses.MeanSquaredLogarithmicError, keras.losses.MeanSquaredLogarithmicError, {}),
    "logcosh": (losses.LogCosh, keras.losses.LogCosh, {}),
}
REGRESSION = ("mse", "mae", "huber", "msle", "logcosh")


def _kind(case):
    """The `_data` kind of a loss case: its targets' form (MSLE: positive values)."""
    if case == "msle":
        return "positive"
    return "regression" if case in REGRESSION else case


def _keras_loss(keras_cls, kwargs, pred, y, mask, sample_weight):
    pred = pred.clone()
    set_keras_mask(pred, mask)
    # Keras 3 multiplies `sample_weight` by the mask in place: give it a copy.
    sample_weight = None if sample_weight is None else sample_weight.clone()
    return float(keras_cls(**kwargs)(y, pred, sample_weight=sample_weight))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("case", list(CASES))
def test_mean_matches_keras3(case, mask_name, weighted):
    ours_cls, keras_cls, kwargs = CASES[case]
    kind = _kind(case)
    mask = _mask(mask_name)
    pred, y, our_pred, our_y = _data(kind, mask)
    weight = torch.rand(B, T, generator=torch.Generator().manual_seed(2)) if weighted else None
    expected = _keras_loss(keras_cls, kwargs, pred, y, mask, weight)
    our_weight = None if weight is None else weight.masked_fill(~mask, float("nan"))
    got = ours_cls(**kwargs)(our_y, Masked(our_pred, mask), sample_weight=our_weight)
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-6)


KERAS_REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", KERAS_REDUCTIONS)
@pytest.mark.parametrize("case", ["sparse_logits", "binary", "mse", "msle", "logcosh"])
def test_keras_reduction_names_match_keras3(case, reduction, weighted):
    # Ragged ("gaps") data: Keras's value for each of its reduction names.
    ours_cls, keras_cls, kwargs = CASES[case]
    kind = _kind(case)
    mask = _mask("gaps")
    pred, y, our_pred, our_y = _data(kind, mask)
    weight = torch.rand(B, T, generator=torch.Generator().manual_seed(2)) if weighted else None
    keras_pred = pred.clone()
    set_keras_mask(keras_pred, mask)
    keras_weight = None if weight is None else weight.clone()
    loss = keras_cls(**kwargs, reduction=reduction)
    expected = torch.as_tensor(np.asarray(loss(y, keras_pred, sample_weight=keras_weight)))
    our_weight = None if weight is None else weight.masked_fill(~mask, float("nan"))
    got = ours_cls(**kwargs, reduction=reduction)(
        our_y, Masked(our_pred, mask), sample_weight=our_weight
    )
    if reduction in ("none", None):
        assert isinstance(got, Masked) and torch.equal(got.mask, mask)
        got = got.values  # padded steps hold 0, as Keras's
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-6)


def test_mean_with_sample_weight_divides_by_the_real_steps_weights():
    # Hand math: losses 1, 4 at the real steps of weights 2, 1 (the padded step's 9 and
    # weight 5 do not count): (2 * 1 + 1 * 4) / (2 + 1).
    pred = Masked(torch.zeros(1, 3, 1), torch.tensor([[True, True, False]]))
    y = torch.tensor([[[1.0], [2.0], [3.0]]])
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert float(loss(y, pred, sample_weight=torch.tensor([[2.0, 1.0, 5.0]]))) == 2.0
    assert float(loss(y, pred)) == 2.5  # without weights: the mean over the real steps
    assert float(loss(y, pred, sample_weight=torch.tensor([[0.0, 0.0, 5.0]]))) == 0.0


def test_keras_default_reduction_name_is_the_mean():
    loss = losses.MeanSquaredError(reduction="sum_over_batch_size")
    assert loss.reduction == "mean"
    assert losses.MeanSquaredError(reduction=None).reduction == "none"
    unmasked = losses.MeanAbsoluteError(reduction="none")(torch.ones(2, 3), torch.zeros(2, 3))
    assert isinstance(unmasked, torch.Tensor)
    torch.testing.assert_close(unmasked, torch.ones(2))


@pytest.mark.parametrize("reduction", ["average", "NONE", 0])
def test_unknown_reduction_lists_the_accepted_names(reduction):
    accepted = r"(?s)'mean'.*'sum'.*'mean_with_sample_weight'.*'none'.*'sum_over_batch_size'.*None"
    with pytest.raises(ConfigError, match=accepted):
        losses.MeanSquaredError(reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean_with_sample_weight", "none"])
def test_uncounted_reductions_refuse_a_normalizer(reduction):
    pred = Masked(torch.zeros(1, 2, 1), torch.tensor([[True, False]]))
    with pytest.raises(ConfigError, match=f"'{reduction}' reduction cannot take a normalizer"):
        losses.MeanSquaredError(reduction=reduction)(torch.zeros(1, 2, 1), pred, normalizer=1)


def test_compile_refuses_the_none_reduction():
    model = Sequential([Dense(1)])
    with pytest.raises(ConfigError, match=r"(?s)reduction is 'none'.*reduction='mean'"):
        model.compile("sgd", losses.MeanSquaredError(reduction="none"))


def test_per_sequence_weight_is_each_step_of_the_sequence():
    # Keras 3 fails on (batch,) weights with a (batch, time) mask; ours broadcast them.
    mask = _mask("gaps")
    pred, y, our_pred, our_y = _data("sparse", mask)
    weight = torch.tensor([1.0, 2.0, 0.5])
    expected = _keras_loss(
        keras.losses.SparseCategoricalCrossentropy, {}, pred, y, mask, weight[:, None].expand(B, T)
    )
    got = losses.SparseCategoricalCrossentropy()(our_y, Masked(our_pred, mask), weight)
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-6)


def test_probabilities_are_clipped_like_keras():
    mask = _mask("post")
    probs = F.one_hot(torch.zeros(B, T, dtype=torch.long), C).float()  # exact 0s and 1s
    y = torch.ones(B, T, dtype=torch.long)  # the target class has probability 0
    cases = [
        (
            losses.SparseCategoricalCrossentropy,
            keras.losses.SparseCategoricalCrossentropy,
            probs,
            y,
        ),
        (
            losses.CategoricalCrossentropy,
            keras.losses.CategoricalCrossentropy,
            probs,
            F.one_hot(y, C).float(),
        ),
        (
            losses.BinaryCrossentropy,
            keras.losses.BinaryCrossentropy,
            probs[..., 1:2],
            torch.ones(B, T, 1),
        ),
    ]
    for ours, theirs, pred, target in cases:
        expected = _keras_loss(theirs, {}, pred, target, mask, None)
        got = ours()(target, Masked(pred, mask))
        torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-6)
        assert float(got) == pytest.approx(-np.log(1e-7), rel=1e-4)


def _keras_model(units, activation, kernel, bias):
    model = keras.Sequential(
        [
            keras.Input((T, FEAT)),
            keras.layers.Masking(0.0),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    model.layers[-1].set_weights([kernel.numpy(), bias.numpy()])
    return model


@pytest.mark.parametrize(
    ("loss_name", "units", "activation"),
    [
        ("sparse_categorical_crossentropy", C, "softmax"),
        ("mse", FEAT, None),
        ("msle", FEAT, None),
        ("log_cosh", FEAT, None),
    ],
)
def test_keras_evaluate_parity_with_masking_model(loss_name, units, activation):
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor(MASKS["post"] + MASKS["pre"] + MASKS["gaps"], dtype=torch.bool)
    x = torch.randn(len(mask), T, FEAT, generator=g).masked_fill(~mask[..., None], 0.0)
    if units == FEAT:
        y = torch.randn(len(mask), T, FEAT, generator=g).abs()
        our_y = y.masked_fill(~mask[..., None], float("nan"))
    else:
        y = torch.randint(0, C, (len(mask), T), generator=g)
        our_y = y.masked_fill(~mask, IGNORE_INDEX)
    weight = torch.rand(len(mask), T, generator=g)
    ours = Sequential([Masking(0.0), Dense(units, activation=activation)])
    out = ours(x)
    theirs = _keras_model(
        units, activation, ours.layers[-1].kernel.detach(), ours.layers[-1].bias.detach()
    )
    theirs.compile(loss=loss_name)
    for sample_weight in (None, weight):
        expected = theirs.evaluate(
            x.numpy(),
            y.numpy(),
            batch_size=len(mask),
            verbose=0,
            sample_weight=None if sample_weight is None else sample_weight.numpy(),
        )
        got = losses.get_loss(loss_name)(our_y, out, sample_weight=sample_weight)
        torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-6)


# ------------------------------------------------------------------ keras2 reduction
def _keras2_reference(score, mask, weights):
    """Seed 002's weighted_masked_objective, in numpy, for score (batch, time)."""
    score = score.copy()
    if mask is not None:
        mask = mask.astype(np.float64)
        score *= mask
        score /= mask.mean() + 1e-7
    if weights is not None:
        score = score.mean(axis=tuple(range(weights.ndim, score.ndim)))
        score *= weights
        score /= np.mean((weights != 0).astype(np.float64))
    return score.mean()


@pytest.mark.parametrize("weights", [None, "sequence", "step"])
@pytest.mark.parametrize("mask_name", ["post", "gaps", None])
def test_keras2_reduction_matches_the_seed_formula(mask_name, weights):
    mask = None if mask_name is None else _mask(mask_name)
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(B, T, FEAT, generator=g)
    y = torch.randn(B, T, FEAT, generator=g)
    weight = {
        None: None,
        "sequence": torch.tensor([1.0, 0.0, 3.0]),
        "step": torch.rand(B, T, generator=g).masked_fill(torch.eye(B, T) > 0, 0),
    }[weights]
    score = ((pred.double() - y.double()) ** 2).mean(-1).numpy()
    expected = _keras2_reference(
        score,
        None if mask is None else mask.numpy(),
        None if weight is None else weight.double().numpy(),
    )
    got = losses.MeanSquaredError(reduction="keras2")(y, Masked(pred, mask), weight)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_keras2_weights_batches_by_their_real_fraction():
    # Keras 2 divides by mean(mask) + eps, so it is the mean over real steps, per batch.
    mask = _mask("post")
    _, _, our_pred, our_y = _data("regression", mask)
    mean = losses.MeanSquaredError()(our_y, Masked(our_pred, mask))
    keras2 = losses.MeanSquaredError(reduction="keras2")(our_y, Masked(our_pred, mask))
    real = mask.float().mean()
    torch.testing.assert_close(keras2, mean * real / (real + 1e-7), atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------ properties
def _reference(kind, rows_pred, rows_y, reduction, delta=1.0):
    """Plain torch on the real steps only (no mask anywhere)."""
    per_row = []
    for p, t in zip(rows_pred, rows_y):
        if kind == "sparse_logits":
            per_row.append(F.cross_entropy(p, t, reduction="none"))
        elif kind == "mse":
            per_row.append(F.mse_loss(p, t, reduction="none").mean(-1))
        elif kind == "mae":
            per_row.append(F.l1_loss(p, t, reduction="none").mean(-1))
        elif kind == "huber":
            per_row.append(F.huber_loss(p, t, reduction="none", delta=delta).mean(-1))
        elif kind == "msle":
            logs = [v.clamp(min=1e-7).log1p() for v in (p, t)]
            per_row.append((logs[0] - logs[1]).square().mean(-1))
        elif kind == "logcosh":
            per_row.append((p - t).double().cosh().log().float().mean(-1))
        else:
            per_row.append(F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(-1))
    steps = torch.cat(per_row)
    if reduction == "none":
        return steps
    if reduction in ("mean", "mean_with_sample_weight"):  # no weights: the same mean
        return steps.mean()
    if reduction == "sum":
        return steps.sum()
    return torch.stack([r.mean() for r in per_row if len(r)]).mean()


LOSS_FOR = {
    "sparse_logits": lambda r: losses.SparseCategoricalCrossentropy(from_logits=True, reduction=r),
    "mse": lambda r: losses.MeanSquaredError(reduction=r),
    "mae": lambda r: losses.MeanAbsoluteError(reduction=r),
    "huber": lambda r: losses.Huber(delta=0.5, reduction=r),
    "msle": lambda r: losses.MeanSquaredLogarithmicError(reduction=r),
    "logcosh": lambda r: losses.LogCosh(reduction=r),
    "binary_logits": lambda r: losses.BinaryCrossentropy(from_logits=True, reduction=r),
}


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(list(LOSS_FOR)),
    reduction=st.sampled_from(["mean", "sum", "sequence_mean", "mean_with_sample_weight", "none"]),
    rows=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    fill=st.sampled_from([0.0, float("nan"), float("inf"), -1e30]),
    seed=st.integers(0, 2**16),
)
def test_loss_equals_its_unpadded_computation(kind, reduction, rows, extra, fill, seed):
    g = torch.Generator().manual_seed(seed)
    time = max(len(r) for r in rows) + extra
    mask = torch.zeros(len(rows), time, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, : len(r)] = torch.tensor(r)
    mask[0, 0] = True  # at least one real step
    feat = C if kind == "sparse_logits" else FEAT
    pred = torch.randn(len(rows), time, feat, generator=g)
    if kind == "sparse_logits":
        y = torch.randint(0, C, (len(rows), time), generator=g)
        padded_y = y.masked_fill(~mask, IGNORE_INDEX)
    else:
        y = torch.rand(len(rows), time, feat, generator=g).round()
        padded_y = y.masked_fill(~mask[..., None], fill)
    padded_pred = pred.masked_fill(~mask[..., None], fill)
    got = LOSS_FOR[kind](reduction)(padded_y, Masked(padded_pred, mask))
    if reduction == "none":  # the real steps' losses, in order; 0 at padded steps
        assert torch.equal(got.mask, mask) and not got.values[~mask].any()
        got = got.values[mask]
    expected = _reference(
        kind,
        [p[m] for p, m in zip(pred, mask)],
        [t[m] for t, m in zip(y, mask)],
        reduction,
        delta=0.5,
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ padding never leaks
ALL_LOSSES = {
    "sparse": losses.SparseCategoricalCrossentropy(),
    "onehot": losses.CategoricalCrossentropy(),
    "binary": losses.BinaryCrossentropy(),
    "mse": losses.MeanSquaredError(),
    "mae": losses.MeanAbsoluteError(),
    "huber": losses.Huber(),
    "msle": losses.MeanSquaredLogarithmicError(),
    "logcosh": losses.LogCosh(),
}


@pytest.mark.parametrize("reduction", ["mean", "keras2", "sequence_mean", "sum"])
@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_nan_padding_gives_finite_loss_and_zero_gradient_at_padding(name, reduction):
    mask = _mask("gaps")
    kind = _kind(name)
    _, _, pred, y = _data(kind, mask)
    pred = pred.masked_fill(~mask[..., None], float("nan")).requires_grad_()
    loss = type(ALL_LOSSES[name])(reduction=reduction)(y, Masked(pred, mask))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[~mask] == 0).all()
    assert (pred.grad[mask].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("reduction", ["mean", "keras2", "sequence_mean", "sum"])
@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_batch_without_real_step_gives_zero(name, reduction):
    mask = torch.zeros(B, T, dtype=torch.bool)
    kind = _kind(name)
    _, _, pred, y = _data(kind, mask)
    pred = pred.requires_grad_()
    loss = type(ALL_LOSSES[name])(reduction=reduction)(y, Masked(pred, mask))
    loss.backward()
    assert loss.item() == 0.0
    assert (pred.grad == 0).all()


def test_nan_inputs_at_padding_never_reach_the_weights_gradient():
    x = torch.randn(B, T, FEAT).masked_fill(~_mask("pre")[..., None], float("nan"))
    model = Sequential([Masking(float("nan")), Dense(C, activation="softmax")])
    y = torch.randint(0, C, (B, T)).masked_fill(~_mask("pre"), IGNORE_INDEX)
    loss = losses.SparseCategoricalCrossentropy()(y, model(x))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_per_sequence_targets_without_time_axis():
    logits = torch.randn(6, C)
    y = torch.randint(0, C, (6,))
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    torch.testing.assert_close(got, F.cross_entropy(logits, y), atol=1e-6, rtol=1e-6)
    pred = torch.randn(6, 1)
    target = torch.randn(6)
    torch.testing.assert_close(
        losses.MeanSquaredError()(target, pred),
        F.mse_loss(pred[:, 0], target),
        atol=1e-6,
        rtol=1e-6,
    )
    seq = losses.MeanSquaredError(reduction="sequence_mean")(target, pred)
    torch.testing.assert_close(seq, F.mse_loss(pred[:, 0], target), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", ["msle", "logcosh"])
def test_per_sequence_values_match_keras3(case):
    # One target row per sequence (no time axis), with and without sample weights.
    ours_cls, keras_cls, _ = CASES[case]
    g = torch.Generator().manual_seed(6)
    pred, y = torch.randn(6, FEAT, generator=g) * 3, torch.randn(6, FEAT, generator=g) * 3
    weight = torch.rand(6, generator=g)
    for sample_weight in (None, weight):
        expected = keras_cls()(y, pred, sample_weight=sample_weight)
        got = ours_cls()(y, pred, sample_weight=sample_weight)
        torch.testing.assert_close(got, torch.as_tensor(expected), atol=1e-6, rtol=1e-6)
        per_row = ours_cls(reduction="none")(y, pred, sample_weight=sample_weight)
        keras_per_row = keras_cls(reduction="none")(y, pred, sample_weight=sample_weight)
        torch.testing.assert_close(per_row, torch.as_tensor(keras_per_row), atol=1e-6, rtol=1e-6)


def test_log_cosh_stays_finite_where_cosh_overflows():
    # cosh(200) overflows float32; Keras's form gives |x| - log(2) there.
    pred = torch.tensor([[200.0], [-200.0]])
    got = losses.LogCosh(reduction="none")(torch.zeros(2), pred)
    expected = keras.losses.LogCosh(reduction="none")(torch.zeros(2, 1), pred)
    torch.testing.assert_close(got, torch.as_tensor(expected))
    torch.testing.assert_close(got, torch.full((2,), 200.0 - math.log(2.0)))


def test_unmasked_sequence_output_counts_every_step():
    pred = torch.randn(B, T, FEAT)
    y = torch.randn(B, T, FEAT)
    torch.testing.assert_close(
        losses.MeanAbsoluteError()(y, pred), F.l1_loss(pred, y), atol=1e-6, rtol=1e-6
    )


def test_masked_output_without_feature_axis():
    mask = _mask("post")
    pred = torch.randn(B, T)
    y = torch.randn(B, T)
    got = losses.MeanSquaredError()(y.masked_fill(~mask, float("nan")), Masked(pred, mask))
    torch.testing.assert_close(got, F.mse_loss(pred[mask], y[mask]), atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------ weights
def test_class_weight_is_a_per_step_sample_weight():
    mask = _mask("gaps")
    _, y, pred, our_y = _data("sparse", mask)
    table = [0.5, 2.0, 1.0, 3.0]
    loss = losses.SparseCategoricalCrossentropy()
    seq_weight = torch.tensor([1.0, 2.0, 0.5])
    expected = loss(
        our_y, Masked(pred, mask), sample_weight=seq_weight[:, None] * torch.tensor(table)[y]
    )
    for class_weight in (table, dict(enumerate(table))):
        got = loss(our_y, Masked(pred, mask), sample_weight=seq_weight, class_weight=class_weight)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    partial = loss(our_y, Masked(pred, mask), class_weight={1: 2.0})
    ones = torch.ones(B, T).masked_fill(y == 1, 2.0)
    torch.testing.assert_close(partial, loss(our_y, Masked(pred, mask), sample_weight=ones))


def test_class_weight_for_one_hot_and_binary_targets():
    mask = _mask("post")
    _, y, pred, our_y = _data("onehot", mask)
    table = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss = losses.CategoricalCrossentropy()
    torch.testing.assert_close(
        loss(our_y, Masked(pred, mask), class_weight=table.tolist()),
        loss(our_y, Masked(pred, mask), sample_weight=table[y.argmax(-1)]),
    )
    probs = torch.rand(B, T, 1)
    labels = torch.randint(0, 2, (B, T)).float()
    bce = losses.BinaryCrossentropy()
    torch.testing.assert_close(
        bce(labels, Masked(probs, mask), class_weight={0: 1.0, 1: 4.0}),
        bce(labels, Masked(probs, mask), sample_weight=1 + 3 * labels),
    )


# ------------------------------------------------------------------ errors
def test_ignore_index_at_real_step_without_mask_explains_the_lost_mask():
    _, _, pred, y = _data("sparse", _mask("post"))
    with pytest.raises(MaskError, match=r"(?s)IGNORE_INDEX = -100.*output mask: None.*Lambda"):
        losses.SparseCategoricalCrossentropy()(y, torch.nan_to_num(pred))


def test_ignore_index_at_real_step_with_mask_explains_mispadding():
    _, _, pred, y = _data("sparse", _mask("post"))
    with pytest.raises(MaskError, match=r"(?s)3 step\(s\).*padded differently"):
        losses.SparseCategoricalCrossentropy()(y, Masked(pred, _mask("gaps")))


def test_nan_float_target_at_real_step_is_a_mask_error():
    _, _, pred, y = _data("regression", _mask("post"))
    with pytest.raises(MaskError, match=r"(?s)NaN or inf.*output mask: None.*dropped the mask"):
        losses.MeanSquaredError()(y, torch.nan_to_num(pred))
    int_y = torch.full((B, T, 1), IGNORE_INDEX)
    with pytest.raises(MaskError, match=r"IGNORE_INDEX"):
        losses.BinaryCrossentropy()(int_y, torch.rand(B, T, 1))


def test_one_hot_targets_to_sparse_loss_get_a_hint():
    _, y, pred, _ = _data("onehot", _mask("post"))
    with pytest.raises(ShapeError, match=r"(?s)look one-hot.*CategoricalCrossentropy"):
        losses.SparseCategoricalCrossentropy()(y, Masked(pred, _mask("post")))


def test_class_ids_to_categorical_loss_get_a_hint():
    _, y, pred, _ = _data("sparse", _mask("post"))
    with pytest.raises(ShapeError, match=r"(?s)look like class ids.*SparseCategorical"):
        losses.CategoricalCrossentropy()(y, Masked(pred, _mask("post")))


def test_class_count_mismatch():
    pred = torch.rand(B, T, C)
    with pytest.raises(ShapeError, match=r"(?s)different numbers of classes.*4 classes.*3"):
        losses.CategoricalCrossentropy()(torch.zeros(B, T, 3), pred)
    with pytest.raises(ShapeError, match=r"(?s)outside the 4 classes.*class id 4.*relabel classes"):
        losses.SparseCategoricalCrossentropy()(torch.full((B, T), 4), pred)


def test_target_shape_mismatch():
    with pytest.raises(ShapeError, match=r"(?s)do not line up.*\(3, 5\).*\(3, 4\)"):
        losses.SparseCategoricalCrossentropy()(torch.zeros(B, 4), torch.rand(B, T, C))
    with pytest.raises(ShapeError, match=r"(?s)do not line up.*\(3, 5, 2\).*\(3, 5, 3\)"):
        losses.MeanSquaredError()(torch.zeros(B, T, 3), torch.rand(B, T, FEAT))
    with pytest.raises(ShapeError, match=r"(?s)one score per class.*\(3, 5\)"):
        losses.SparseCategoricalCrossentropy()(
            torch.zeros(B, T), Masked(torch.rand(B, T), _mask("post"))
        )


def test_fractional_class_ids():
    with pytest.raises(ShapeError, match=r"whole-number class ids"):
        losses.SparseCategoricalCrossentropy()(torch.tensor([0.5, 1, 2]), torch.rand(B, C))
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(
        torch.tensor([0.0, 1.0, 2.0]), torch.zeros(B, C)
    )
    torch.testing.assert_close(got, torch.tensor(np.log(C), dtype=torch.float32))


def test_weight_errors():
    pred, y = torch.rand(B, T, FEAT), torch.rand(B, T, FEAT)
    with pytest.raises(ShapeError, match=r"(?s)one weight per sequence or per step.*\(3,\)"):
        losses.MeanSquaredError()(y, pred, sample_weight=torch.ones(T))
    with pytest.raises(ConfigError, match=r"(?s)class_weight needs class targets.*sample_weight"):
        losses.MeanSquaredError()(y, pred, class_weight=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"(?s)one weight per class.*list of 4.*2 weight"):
        losses.SparseCategoricalCrossentropy()(
            torch.zeros(B, T), torch.rand(B, T, C), class_weight=[1.0, 2.0]
        )


def test_configuration_errors():
    with pytest.raises(ConfigError, match=r"(?s)Unknown loss reduction.*'sequence_mean'"):
        losses.MeanSquaredError(reduction="sum_over_batch")
    with pytest.raises(ConfigError, match=r"(?s)Unknown loss 'mean_sq'.*huber, log_cosh"):
        losses.get_loss("mean_sq")
    with pytest.raises(MaskwiseTypeError, match=r"name or a maskwise.losses.Loss"):
        losses.get_loss(F.mse_loss)
    with pytest.raises(MaskwiseTypeError, match=r"Masked.*or a tensor"):
        losses.MeanSquaredError()(torch.zeros(1, 1), [[1.0]])
    with pytest.raises(MaskwiseTypeError, match=r"(?s)not a Masked.*y\.values"):
        losses.MeanSquaredError()(Masked(torch.zeros(1, 1)), Masked(torch.zeros(1, 1)))


def test_get_loss_resolves_keras_names():
    assert isinstance(losses.get_loss("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get_loss("mean_absolute_error"), losses.MeanAbsoluteError)
    assert isinstance(losses.get_loss("huber"), losses.Huber)
    for name in ("msle", "MSLE", "mean_squared_logarithmic_error", "MeanSquaredLogarithmicError"):
        assert isinstance(losses.get_loss(name), losses.MeanSquaredLogarithmicError)
    for name in ("log_cosh", "logcosh", "LogCosh"):
        assert isinstance(losses.get_loss(name), losses.LogCosh)
    assert isinstance(
        losses.get_loss("SparseCategoricalCrossentropy"), losses.SparseCategoricalCrossentropy
    )
    loss = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get_loss(loss) is loss
    assert losses.get_loss("binary_crossentropy").get_config() == {
        "from_logits": False,
        "label_smoothing": 0.0,
        "reduction": "mean",
        "name": "binary_crossentropy",
    }


def test_class_weight_needs_one_binary_unit():
    with pytest.raises(ConfigError, match=r"(?s)class_weight needs class targets.*\(3, 5, 2\)"):
        losses.BinaryCrossentropy()(
            torch.ones(B, T, FEAT), torch.rand(B, T, FEAT), class_weight=[1.0, 2.0]
        )


# ------------------------------------------------------------------ Keras's argument order
@pytest.mark.parametrize("case", list(CASES))
def test_plain_tensors_in_keras_order_give_keras_numbers(case):
    # The Keras habit: `loss(y_true, y_pred)` on plain tensors, every step real.
    ours_cls, keras_cls, kwargs = CASES[case]
    kind = case if case.startswith(("sparse", "onehot", "binary")) else "regression"
    pred, y, _, _ = _data(kind, _mask("post"))
    expected = float(keras_cls(**kwargs)(y, pred))
    torch.testing.assert_close(
        ours_cls(**kwargs)(y, pred), torch.tensor(expected), atol=1e-5, rtol=1e-6
    )
    by_keyword = ours_cls(**kwargs)(y_pred=pred, y_true=y)
    torch.testing.assert_close(by_keyword, torch.tensor(expected), atol=1e-5, rtol=1e-6)


# ------------------------------------------------------------------ class_weight keys
@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (-1, r"key -1 is negative.*does not count from the end"),
        (4, r"key 4 is not one of the 4 classes"),
        ("1", r"key '1' is not an integer class id"),
        (1.5, r"key 1.5 is not an integer class id"),
        (1.0, r"key 1.0 is not an integer class id"),
        (True, r"key True is not an integer class id"),
    ],
)
def test_class_weight_keys_must_be_class_ids(key, problem):
    mask = _mask("post")
    _, _, pred, y = _data("sparse", mask)
    with pytest.raises(ConfigError, match=rf"(?s){problem}.*integer keys in 0\.\.3.*{{0: w0"):
        losses.SparseCategoricalCrossentropy()(y, Masked(pred, mask), class_weight={key: 2.0})


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ({0: math.nan}, r"class 0 is nan; weights are finite and >= 0"),
        ({1: -2.0}, r"class 1 is -2.0; weights are finite and >= 0"),
        ({2: math.inf}, r"class 2 is inf"),
        ({0: "heavy"}, r"class 0 is not a number"),
        ([1.0, 1.0, math.nan, 1.0], r"class 2 is nan"),
    ],
)
def test_class_weight_values_must_be_finite_and_non_negative(weights, problem):
    mask = _mask("post")
    _, _, pred, y = _data("sparse", mask)
    with pytest.raises(ConfigError, match=rf"(?s){problem}.*finite weight >= 0"):
        losses.SparseCategoricalCrossentropy()(y, Masked(pred, mask), class_weight=weights)


def test_class_weight_keys_of_a_binary_output_are_0_and_1():
    probs, labels = torch.rand(B, T, 1), torch.randint(0, 2, (B, T, 1)).float()
    with pytest.raises(ConfigError, match=r"(?s)key 2 is not one of the 2 classes.*0\.\.1"):
        losses.BinaryCrossentropy()(labels, Masked(probs), class_weight={0: 1.0, 2: 3.0})


def test_class_weight_numpy_integer_keys_and_list_length():
    mask = _mask("post")
    _, y, pred, our_y = _data("sparse", mask)
    loss = losses.SparseCategoricalCrossentropy()
    by_numpy_key = loss(our_y, Masked(pred, mask), class_weight={np.int64(3): 2.0})
    by_weight = loss(our_y, Masked(pred, mask), sample_weight=1.0 + (y == 3).float())
    torch.testing.assert_close(by_numpy_key, by_weight)
    with pytest.raises(ConfigError, match=r"(?s)one weight per class.*list of 4.*5 weight"):
        loss(our_y, Masked(pred, mask), class_weight=[1.0] * 5)


def test_integer_predictions_do_not_truncate_float_targets():
    y_true = torch.tensor([[0.5], [1.5]])
    y_pred = torch.tensor([[0], [2]])  # integer predictions (e.g. rounded by hand)
    expected = ((0.5 - 0.0) ** 2 + (1.5 - 2.0) ** 2) / 2
    assert losses.MeanSquaredError()(y_true, y_pred).item() == pytest.approx(expected)


# ---------------------------------------------------------------------- normalizer
def _pieces_case():
    """Logits, mask, class ids and sequence weights of a ragged batch of 4 sequences
    (lengths 5, 1, 2, 4); the pieces `[0:1]` and `[1:4]` hold 5 and 7 real steps."""
    torch.manual_seed(0)
    lengths = [5, 1, 2, 4]
    values = torch.randn(4, 5, 3, requires_grad=True)
    mask = lengths_to_mask(lengths, 5)
    y = torch.randint(0, 3, (4, 5))
    y[~mask] = IGNORE_INDEX
    weight = torch.tensor([1.0, 3.0, 0.5, 2.0])
    return values, mask, y, weight


@pytest.mark.parametrize("reduction", ["mean", "sequence_mean", "sum"])
def test_pieces_with_the_whole_batch_normalizer_add_up_to_the_whole_batch(reduction):
    values, mask, y, weight = _pieces_case()
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    whole = loss_fn(y, Masked(values, mask), weight, class_weight)
    pieces = [slice(0, 1), slice(1, 4)]  # 5 real steps, then 7
    outs = [Masked(values[p], mask[p]) for p in pieces]
    total = 1.0 if reduction == "sum" else sum(loss_fn.denominator(out) for out in outs)
    added = sum(
        loss_fn(y[p], out, weight[p], class_weight, normalizer=total)
        for p, out in zip(pieces, outs, strict=True)
    )
    torch.testing.assert_close(added, whole, rtol=1e-6, atol=1e-7)
    if reduction != "sum":  # the mean of the pieces' own means is another number
        with torch.no_grad():
            own = [loss_fn(y[p], out, weight[p], class_weight) for p, out in zip(pieces, outs)]
        assert abs(float(sum(own)) / 2 - float(whole.detach())) > 1e-2


def test_ddp_gradient_averaging_with_normalizer_n_over_w_gives_the_whole_batch_gradient():
    # DDP averages the W processes' gradients: with normalizer = N / W (N: the real
    # steps of the whole batch) the average is the gradient of the whole batch's mean.
    values, mask, y, weight = _pieces_case()
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    (whole_grad,) = torch.autograd.grad(loss_fn(y, Masked(values, mask), weight), values)
    pieces, world = [slice(0, 1), slice(1, 4)], 2
    total = sum(int(mask[p].sum()) for p in pieces)
    averaged = torch.zeros_like(values)
    naive = torch.zeros_like(values)
    for p in pieces:
        rows = Masked(values[p], mask[p])
        (grad,) = torch.autograd.grad(
            loss_fn(y[p], rows, weight[p], normalizer=total / world), values
        )
        averaged += grad / world
        (grad,) = torch.autograd.grad(loss_fn(y[p], rows, weight[p]), values)
        naive += grad / world
    torch.testing.assert_close(averaged, whole_grad, rtol=1e-6, atol=1e-8)
    assert float((naive - whole_grad).abs().max()) > 1e-3


def test_normalizer_replaces_the_count_and_zero_gives_zero():
    values = torch.zeros(1, 3, 1)
    out = Masked(values, lengths_to_mask([2], 3))
    y = torch.tensor([[[2.0], [4.0], [float("nan")]]])
    mse = losses.MeanSquaredError()
    assert float(mse(y, out)) == pytest.approx(10.0)  # (4 + 16) / 2
    assert float(mse(y, out, normalizer=5)) == pytest.approx(4.0)  # (4 + 16) / 5
    assert float(mse(y, out, normalizer=torch.tensor(10))) == pytest.approx(2.0)
    empty = Masked(values, lengths_to_mask([0], 3))
    assert float(mse(y, empty, normalizer=0)) == 0.0


def test_denominator_counts_what_each_reduction_divides_by():
    out = Masked(torch.zeros(3, 4, 2), lengths_to_mask([4, 0, 2], 4))
    assert int(losses.SparseCategoricalCrossentropy().denominator(out)) == 6
    seq = losses.SparseCategoricalCrossentropy(reduction="sequence_mean")
    assert int(seq.denominator(out)) == 2  # the empty sequence does not count
    assert int(losses.MeanSquaredError().denominator(torch.zeros(3, 1))) == 3  # per sequence
    with pytest.raises(ConfigError, match="'sum' reduction divides by no count"):
        losses.MeanSquaredError(reduction="sum").denominator(out)


@pytest.mark.parametrize(
    ("normalizer", "reduction", "error", "message"),
    [
        (4.0, "keras2", ConfigError, "'keras2' reduction cannot take a normalizer"),
        (-1.0, "mean", ConfigError, "finite number >= 0.*received: -1.0"),
        (float("nan"), "mean", ConfigError, "finite number >= 0.*received: nan"),
        ("4", "mean", ConfigError, "finite number >= 0.*received: '4'"),
        (True, "mean", ConfigError, "finite number >= 0.*received: True"),
        (torch.ones(2), "mean", ShapeError, "one number.*shape \\(2,\\)"),
    ],
)
def test_bad_normalizer_is_refused(normalizer, reduction, error, message):
    out = Masked(torch.zeros(1, 2, 1), lengths_to_mask([2], 2))
    with pytest.raises(error, match="(?s)" + message):
        losses.MeanSquaredError(reduction=reduction)(
            torch.zeros(1, 2, 1), out, normalizer=normalizer
        )


def test_a_class_axis_of_size_zero_is_a_named_error():
    for loss in (losses.CategoricalCrossentropy(), losses.SparseCategoricalCrossentropy()):
        with pytest.raises(ShapeError, match="no class axis"):
            loss(torch.zeros(0, dtype=torch.long), torch.zeros(0, 0))


def test_masked_predictions_beyond_units_are_a_named_error():
    y_pred = Masked(torch.zeros(2, 3, 1, 1), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"\(batch, time, units\) per step"):
        losses.MeanSquaredError()(torch.zeros(2, 3, 1, 1), y_pred)


def test_sparse_targets_of_any_integer_dtype_and_integer_scores():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    scores = torch.tensor([[2.0, -1.0], [0.5, 1.5]])
    ids = torch.tensor([0, 1])
    expected = loss(ids, scores)
    for dtype in (torch.bool, torch.uint8, torch.int32):
        torch.testing.assert_close(loss(ids.to(dtype), scores), expected)
    integer_scores = torch.tensor([[2, -1], [0, 1]])
    torch.testing.assert_close(loss(ids.float(), integer_scores), loss(ids, integer_scores.float()))


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_targets_outside_0_1_are_a_named_error(from_logits):
    loss = losses.BinaryCrossentropy(from_logits=from_logits)
    with pytest.raises(ShapeError, match=r"(?s)1 real step\(s\) have targets outside \[0, 1\]"):
        loss(torch.tensor([[-1.0], [1.0]]), torch.tensor([[0.3], [0.6]]))


@pytest.mark.parametrize(
    ("loss", "y_true", "units"),
    [
        (losses.SparseCategoricalCrossentropy(), torch.zeros(B, T, dtype=torch.long), C),
        (losses.CategoricalCrossentropy(), F.one_hot(torch.zeros(B, T).long(), C).float(), C),
        (losses.BinaryCrossentropy(), torch.ones(B, T, 1), 1),
    ],
)
def test_logits_read_as_probabilities_are_an_error_naming_from_logits(loss, y_true, units):
    """A model without a softmax and a loss left at from_logits=False: Keras clips the
    logits into a finite, wrong loss; here it is an error with the two fixes."""
    mask = _mask("post")
    logits = torch.full((B, T, units), 0.5)
    logits[0, 0] = -3.0  # one real step outside [0, 1]
    with pytest.raises(
        ShapeError,
        match=r"with from_logits=False the predictions must be probabilities, but 1 real "
        r"step\(s\) hold values outside \[0, 1\].\n.*\n  received: predictions from -3 to 1\n"
        r"  fix: .*activation='softmax'.*`from_logits=True`",
    ):
        loss(y_true, Masked(logits, mask))
    probs = torch.sigmoid(logits) if units == 1 else logits.softmax(-1)
    probs = torch.where(mask[..., None], probs, torch.full_like(probs, -7.0))
    assert torch.isfinite(loss(y_true, Masked(probs, mask)))  # padding is never read
    config = loss.get_config() | {"from_logits": True}
    assert torch.isfinite(type(loss)(**config)(y_true, Masked(logits, mask)))


def test_a_model_without_softmax_and_a_keras_loss_name_stops_at_the_first_batch():
    x = torch.randn(4, 3, FEAT)
    model = Sequential([Dense(2)])  # no softmax
    model.compile("adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match="must be probabilities"):
        model.fit(x, torch.zeros(4, 3, dtype=torch.long), verbose=0)
    keras_loss = keras.losses.SparseCategoricalCrossentropy()  # clips: finite and wrong
    assert np.isfinite(float(keras_loss(np.zeros((4, 3)), np.full((4, 3, 2), -1.0))))


def test_binary_crossentropy_of_a_nan_prediction_is_nan_not_a_pytorch_error():
    """A diverged model's NaN at a real step gives a NaN loss (which `fit`'s non-finite
    guard reports); NaN at a padded step changes nothing."""
    y = torch.tensor([[1.0, 0.0, 0.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, False]])
    nan_real = Masked(torch.tensor([[0.7, float("nan"), 0.3]]).unsqueeze(-1), mask)
    assert torch.isnan(losses.BinaryCrossentropy()(y, nan_real))
    nan_padded = Masked(torch.tensor([[0.7, 0.2, float("nan")]]).unsqueeze(-1), mask)
    expected = -(math.log(0.7) + math.log(1 - 0.2)) / 2
    assert losses.BinaryCrossentropy()(y, nan_padded).item() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ ignore_class
def _ignored_targets(y, mask, ignore_class, seed=4):
    """`y` with `ignore_class` at about a third of the real steps, and the step mask of
    those steps."""
    ignored = mask & (torch.rand(mask.shape, generator=torch.Generator().manual_seed(seed)) < 0.35)
    return torch.where(ignored, torch.full_like(y, ignore_class), y), ignored


@pytest.mark.parametrize("mask_name", [None, "gaps", "pre"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", KERAS_REDUCTIONS)
@pytest.mark.parametrize(("ignore_class", "from_logits"), [(255, True), (1, False), (-1, True)])
def test_ignore_class_matches_keras3(ignore_class, from_logits, reduction, weighted, mask_name):
    # Keras leaves the ignored steps out of the loss with its mask, so with padding
    # (Masking) the mean is over the real steps whose target is not ignore_class.
    mask = torch.ones(B, T, dtype=torch.bool) if mask_name is None else _mask(mask_name)
    pred, y, our_pred, our_y = _data("sparse_logits" if from_logits else "sparse", mask)
    y, ignored = _ignored_targets(y, mask, ignore_class)
    our_y, _ = _ignored_targets(our_y, mask, ignore_class)
    assert ignored.any() and (mask & ~ignored).any()
    weight = torch.rand(B, T, generator=torch.Generator().manual_seed(2)) if weighted else None
    keras_pred = pred.clone()
    if mask_name is not None:
        set_keras_mask(keras_pred, mask)
    theirs = keras.losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, ignore_class=ignore_class, reduction=reduction
    )
    keras_weight = None if weight is None else weight.clone()
    expected = torch.as_tensor(np.asarray(theirs(y, keras_pred, sample_weight=keras_weight)))
    ours = losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, ignore_class=ignore_class, reduction=reduction
    )
    output = Masked(our_pred) if mask_name is None else Masked(our_pred, mask)
    got = ours(our_y, output, sample_weight=weight)
    if isinstance(got, Masked):  # "none": 0 at padded and at ignored steps, as Keras's
        got = got.values
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-6)
    # Without ignore_class an out-of-range id is an error, and a class id counts.
    if reduction in ("sum_over_batch_size", "mean"):
        plain = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        if 0 <= ignore_class < C:
            assert float(plain(our_y, output, sample_weight=weight)) != pytest.approx(
                float(got), rel=1e-3
            )
        else:
            with pytest.raises(ShapeError, match="outside the"):
                plain(our_y, output)


def test_ignore_class_in_a_compiled_model_matches_keras_evaluate():
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor(MASKS["post"] + MASKS["pre"] + MASKS["gaps"], dtype=torch.bool)
    x = torch.randn(len(mask), T, FEAT, generator=g).masked_fill(~mask[..., None], 0.0)
    y, _ = _ignored_targets(torch.randint(0, C, (len(mask), T), generator=g), mask, 255)
    ours = Sequential([Masking(0.0), Dense(C, activation="softmax")])
    ours(x)  # built
    ours.compile(loss=losses.SparseCategoricalCrossentropy(ignore_class=255))
    theirs = _keras_model(
        C, "softmax", ours.layers[-1].kernel.detach(), ours.layers[-1].bias.detach()
    )
    theirs.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=255))
    expected = theirs.evaluate(x.numpy(), y.numpy(), batch_size=len(mask), verbose=0)
    our_y = y.masked_fill(~mask, IGNORE_INDEX).numpy()
    got = ours.evaluate(x.numpy(), our_y, batch_size=len(mask), checks="off")["loss"]
    assert got == pytest.approx(expected, abs=1e-5)


def test_ignore_class_counts_the_same_steps_in_pieces_and_in_the_epoch():
    # The steps the loss counts, for `normalizer=` and the epoch's loss, leave the
    # ignored steps out: two pieces normalised by the whole batch's count add up to it.
    mask = _mask("gaps")
    _, _, our_pred, our_y = _data("sparse_logits", mask)
    our_y, ignored = _ignored_targets(our_y, mask, 255)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    y_pred = Masked(our_pred, mask)
    assert torch.equal(loss.counted(our_y, y_pred), mask & ~ignored)
    n = loss.denominator(y_pred, our_y)
    assert int(n) == int((mask & ~ignored).sum())
    halves = [slice(0, 1), slice(1, B)]
    pieces = [loss(our_y[s], Masked(our_pred[s], mask[s]), normalizer=n) for s in halves]
    torch.testing.assert_close(sum(pieces), loss(our_y, y_pred))
    with pytest.raises(
        ConfigError, match=r"(?s)depend on the targets.*denominator\(y_pred, y_true\)"
    ):
        loss.denominator(y_pred)


def test_ignore_class_is_an_integer_and_has_no_keras2_form():
    with pytest.raises(ConfigError, match="ignore_class must be an integer"):
        losses.SparseCategoricalCrossentropy(ignore_class=0.5)
    with pytest.raises(ConfigError, match=r"(?s)no Keras 2 form.*reduction='mean'"):
        losses.SparseCategoricalCrossentropy(ignore_class=255, reduction="keras2")
    config = losses.SparseCategoricalCrossentropy(ignore_class=255).get_config()
    assert config["ignore_class"] == 255
