"""Keras's argument order `(y_true, y_pred)` for losses and metrics: evidently swapped
arguments are an error that says so, never a silent wrong number; the right order and
the ambiguous cases go through."""

import keras
import pytest
import torch
import torch.nn.functional as F

from maskwise import Masked, MaskwiseTypeError, ShapeError, losses, metrics
from maskwise.masked import lengths_to_mask

B, T, C = 3, 5, 4
MASK = lengths_to_mask([5, 3, 1], T)
SWAPPED = r"(?s)look swapped: {seen}.*Keras's order, y_true \(the targets\) first.*swap the two"

LOSSES = [
    losses.SparseCategoricalCrossentropy(),
    losses.CategoricalCrossentropy(),
    losses.BinaryCrossentropy(),
    losses.MeanSquaredError(),
    losses.MeanAbsoluteError(),
    losses.Huber(),
]
METRICS = [
    metrics.Accuracy,
    metrics.SparseCategoricalAccuracy,
    metrics.CategoricalAccuracy,
    metrics.BinaryAccuracy,
    lambda: metrics.TopKAccuracy(2),
    metrics.MeanAbsoluteError,
    metrics.MeanSquaredError,
    metrics.Precision,
    metrics.Recall,
    metrics.F1Score,
    metrics.ConfusionMatrix,
]


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _scores_and_ids(time_axis=True):
    shape = (B, T) if time_axis else (B,)
    probs = torch.randn(*shape, C, generator=_g()).softmax(-1)
    return probs, torch.randint(0, C, shape, generator=_g(1))


def _probs_and_labels(units=1):
    probs = torch.rand(B, T, units, generator=_g())
    return probs, torch.randint(0, 2, (B, T, units), generator=_g(1)).float()


# ------------------------------------------------------------------ the model's output first
@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.name)
def test_masked_output_first_is_a_type_error_for_every_loss(loss):
    out = Masked(torch.rand(B, T, 1), MASK)
    with pytest.raises(MaskwiseTypeError, match=SWAPPED.format(seen="y_true is a Masked")) as err:
        loss(out, torch.zeros(B, T, dtype=torch.long))
    assert f"`{type(loss).__name__}()(y_true, y_pred)`" in str(err.value)
    assert "received: y_true: Masked, y_pred: Tensor" in str(err.value)


@pytest.mark.parametrize("make", METRICS)
def test_masked_output_first_is_a_type_error_for_every_metric(make):
    metric = make()
    with pytest.raises(MaskwiseTypeError, match=SWAPPED.format(seen="y_true is a Masked")) as err:
        metric.update(Masked(torch.rand(B, T, C), MASK), torch.zeros(B, T, dtype=torch.long))
    assert f"{type(metric).__name__}().update(y_true, y_pred)" in str(err.value)


# ------------------------------------------------------------------ scores and class ids
@pytest.mark.parametrize("time_axis", [True, False])
@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: losses.SparseCategoricalCrossentropy()(a, b),
        lambda a, b: losses.SparseCategoricalCrossentropy(from_logits=True)(a, b),
        lambda a, b: metrics.SparseCategoricalAccuracy().update(a, b),
        lambda a, b: metrics.Accuracy().update(a, b),
        lambda a, b: metrics.TopKAccuracy(2).update(a, b),
        lambda a, b: metrics.ConfusionMatrix().update(a, b),
    ],
)
def test_scores_first_and_class_ids_second_is_a_shape_error(call, time_axis):
    scores, ids = _scores_and_ids(time_axis)
    with pytest.raises(ShapeError, match=SWAPPED.format(seen="y_true looks like per-class")):
        call(scores, ids)
    with pytest.raises(ShapeError, match=r"(?s)class ids.*torch.int64"):
        call(scores, ids[..., None])  # ids with a trailing axis of 1 too
    call(ids, scores)  # the right order


# ------------------------------------------------------------------ labels and probabilities
@pytest.mark.parametrize(
    ("make", "units"),
    [
        (losses.BinaryCrossentropy, 1),
        (losses.BinaryCrossentropy, 3),  # multi-label
        (lambda: losses.BinaryCrossentropy(from_logits=True), 1),
        (losses.CategoricalCrossentropy, C),
        (lambda: losses.CategoricalCrossentropy(from_logits=True), C),
    ],
)
def test_probabilities_first_and_labels_second_is_a_shape_error_for_cross_entropies(make, units):
    probs, labels = _probs_and_labels(units)
    if units == C:
        labels = F.one_hot(torch.randint(0, C, (B, T), generator=_g(1)), C).float()
    with pytest.raises(ShapeError, match=SWAPPED.format(seen="y_pred holds only 0s and 1s")):
        make()(probs, labels)
    with pytest.raises(ShapeError, match=r"only 0s and 1s"):
        make()(torch.logit(probs), labels)  # logits first
    if units == 1:
        with pytest.raises(ShapeError, match=r"only 0s and 1s"):
            make()(probs[..., 0], labels)  # (batch, time) against (batch, time, 1)


@pytest.mark.parametrize(
    "make", [metrics.BinaryAccuracy, metrics.Accuracy, metrics.Precision, metrics.ConfusionMatrix]
)
def test_probabilities_first_and_labels_second_is_a_shape_error_for_binary_metrics(make):
    probs, labels = _probs_and_labels()
    with pytest.raises(ShapeError, match=SWAPPED.format(seen="y_pred holds only 0s and 1s")):
        make().update(probs, labels)
    make().update(labels, probs)


def test_swapped_binary_cross_entropy_is_not_the_loss():
    # Why a swap must not pass: Keras's own loss on swapped arguments is another number.
    probs, labels = _probs_and_labels()
    right = float(keras.losses.BinaryCrossentropy()(labels, probs))
    assert float(losses.BinaryCrossentropy()(labels, probs)) == pytest.approx(right, rel=1e-5)
    assert float(keras.losses.BinaryCrossentropy()(probs, labels)) != pytest.approx(right, rel=0.1)


# ------------------------------------------------------------------ no false alarm
def test_soft_targets_and_hard_predictions_go_through_as_a_masked_output():
    # Exactly 0/1 predictions against soft targets look like a swap on plain tensors;
    # a Masked y_pred is always the model's output.
    soft = torch.tensor([[0.9], [0.2], [0.6]])
    hard = torch.tensor([[1.0], [0.0], [1.0]])
    with pytest.raises(ShapeError, match=r"pass it as Masked\(y_pred\)"):
        losses.BinaryCrossentropy()(soft, hard)
    expected = float(keras.losses.BinaryCrossentropy()(soft, hard))
    got = losses.BinaryCrossentropy()(soft, Masked(hard))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_right_order_with_labels_on_both_sides_or_soft_targets_is_no_swap():
    probs, labels = _probs_and_labels()
    accuracy = metrics.BinaryAccuracy()
    accuracy.update(labels, labels)  # hard predictions, hard targets
    assert accuracy.result() == 1.0
    soft = torch.randn(B, T, C, generator=_g(2)).softmax(-1)
    pred = torch.randn(B, T, C, generator=_g(3)).softmax(-1)
    expected = float(keras.losses.CategoricalCrossentropy()(soft, pred))
    assert float(losses.CategoricalCrossentropy()(soft, pred)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.BinaryCrossentropy()(probs, probs)) > 0  # soft targets, soft output


@pytest.mark.parametrize("make", [losses.MeanSquaredError, losses.MeanAbsoluteError, losses.Huber])
def test_regression_losses_on_plain_tensors_cannot_tell_and_need_not(make):
    # Equal shapes, both real-valued: undetectable, and these errors are symmetric in
    # their arguments, so the number is the same either way.
    pred = torch.randn(B, T, 2, generator=_g())
    target = torch.randn(B, T, 2, generator=_g(1))
    torch.testing.assert_close(make()(target, pred), make()(pred, target))


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.CategoricalCrossentropy()])
def test_scalar_predictions_are_refused(loss):
    with pytest.raises(ShapeError, match="y_pred is a scalar"):
        loss(torch.tensor(0.0), torch.tensor(0.0))
