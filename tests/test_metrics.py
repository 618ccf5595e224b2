"""Masked metrics: Keras 3 parity, exact accumulation, padding never counts, errors."""

import copy

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from keras.src.backend.common.masking import set_keras_mask
from training_helpers import CLASSES, logits_loss, tagger

from maskwise import ConfigError, Masked, MaskError, MaskwiseTypeError, Sequential, metrics
from maskwise.layers import Dense, Masking
from maskwise.masked import IGNORE_INDEX, lengths_to_mask

B, T, C, FEAT = 3, 5, 4, 2
MASKS = {
    "post": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    "pre": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
    "gaps": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 1, 1]],
}


def _same(a, b):
    """Results equal to 1e-12 (floats, dicts of floats, or nested lists)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        a, b = list(a.values()), list(b.values())
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)


def _mask(name):
    return torch.tensor(MASKS[name], dtype=torch.bool)


def _data(kind, mask, seed=1):
    """Keras's (pred, target), finite everywhere, and maskwise's, with NaN or
    IGNORE_INDEX at padded steps."""
    g = torch.Generator().manual_seed(seed)
    n, time = mask.shape
    nan = float("nan")
    if kind == "sparse":
        pred = torch.randn(n, time, C, generator=g).softmax(-1)
        y = torch.randint(0, C, (n, time), generator=g)
        return pred, y, pred.masked_fill(~mask[..., None], nan), y.masked_fill(~mask, IGNORE_INDEX)
    if kind == "onehot":
        pred = torch.randn(n, time, C, generator=g).softmax(-1)
        y = F.one_hot(torch.randint(0, C, (n, time), generator=g), C).float()
    elif kind == "binary":
        pred = torch.rand(n, time, FEAT, generator=g)
        y = torch.randint(0, 2, (n, time, FEAT), generator=g).float()
    else:
        pred = torch.randn(n, time, FEAT, generator=g)
        y = torch.randn(n, time, FEAT, generator=g)
        if kind == "positive":  # MSLE's domain
            pred, y = pred.abs(), y.abs()
    return pred, y, pred.masked_fill(~mask[..., None], nan), y.masked_fill(~mask[..., None], nan)


CASES = {
    "sparse_acc": (
        metrics.SparseCategoricalAccuracy(),
        lambda: keras.metrics.SparseCategoricalAccuracy(),
        "sparse",
    ),
    "top2": (
        metrics.TopKAccuracy(2),
        lambda: keras.metrics.SparseTopKCategoricalAccuracy(2),
        "sparse",
    ),
    "top2_onehot": (
        metrics.TopKAccuracy(2),
        lambda: keras.metrics.TopKCategoricalAccuracy(2),
        "onehot",
    ),
    "categorical_acc": (
        metrics.CategoricalAccuracy(),
        lambda: keras.metrics.CategoricalAccuracy(),
        "onehot",
    ),
    "binary_acc": (
        metrics.BinaryAccuracy(threshold=0.4),
        lambda: keras.metrics.BinaryAccuracy(threshold=0.4),
        "binary",
    ),
    "mae": (metrics.MeanAbsoluteError(), lambda: keras.metrics.MeanAbsoluteError(), "regression"),
    "mse": (metrics.MeanSquaredError(), lambda: keras.metrics.MeanSquaredError(), "regression"),
    "msle": (
        metrics.MeanSquaredLogarithmicError(),
        lambda: keras.metrics.MeanSquaredLogarithmicError(),
        "positive",
    ),
    "logcosh": (metrics.LogCoshError(), lambda: keras.metrics.LogCoshError(), "regression"),
}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("case", list(CASES))
def test_mean_metrics_match_keras(case, mask_name, weighted):
    ours, make_keras, kind = CASES[case]
    mask = _mask(mask_name)
    theirs = make_keras()
    ours.reset()
    for seed in (1, 2):  # two batches: the state accumulates in both
        pred, y, our_pred, our_y = _data(kind, mask, seed)
        weight = torch.rand(B, T, generator=torch.Generator().manual_seed(seed))
        keras_pred = pred.clone()
        set_keras_mask(keras_pred, mask)
        theirs.update_state(y, keras_pred, sample_weight=weight.clone() if weighted else None)
        ours.update(
            our_y,
            Masked(our_pred, mask),
            sample_weight=weight.masked_fill(~mask, float("nan")) if weighted else None,
        )
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)


def test_per_class_metrics_match_keras():
    mask = torch.tensor(MASKS["post"] + MASKS["gaps"], dtype=torch.bool)
    pred, y, our_pred, our_y = _data("sparse", mask)
    weight = torch.rand(mask.shape, generator=torch.Generator().manual_seed(5))
    ours = {m.name: m for m in (metrics.Precision(), metrics.Recall(), metrics.F1Score())}
    for m in ours.values():
        m.update(our_y, Masked(our_pred, mask), sample_weight=weight)
    flat_pred, flat_y = pred.reshape(-1, C), F.one_hot(y, C).reshape(-1, C).float()
    flat_weight = (weight * mask).reshape(-1)
    f1 = keras.metrics.F1Score(average=None, threshold=None)
    f1.update_state(flat_y, flat_pred, sample_weight=flat_weight)
    f1_macro = keras.metrics.F1Score(average="macro", threshold=None)
    f1_macro.update_state(flat_y, flat_pred, sample_weight=flat_weight)
    results = {name: m.result() for name, m in ours.items()}
    for c in range(C):
        for name, keras_cls in [
            ("precision", keras.metrics.Precision),
            ("recall", keras.metrics.Recall),
        ]:
            theirs = keras_cls(top_k=1, class_id=c)
            theirs.update_state(flat_y, flat_pred, sample_weight=flat_weight)
            assert results[name][f"{name}/{c}"] == pytest.approx(float(theirs.result()), abs=1e-6)
        assert results["f1_score"][f"f1_score/{c}"] == pytest.approx(
            float(f1.result()[c]), abs=1e-6
        )
    assert results["f1_score"]["f1_score_macro"] == pytest.approx(
        float(f1_macro.result()), abs=1e-6
    )
    assert results["precision"]["precision_macro"] == pytest.approx(
        np.mean([results["precision"][f"precision/{c}"] for c in range(C)])
    )


KERAS_CONFUSION_ARGS = [
    {},
    {"thresholds": 0.3},
    {"thresholds": [0.2, 0.5, 0.8]},
    {"top_k": 1},
    {"class_id": 2},
    {"top_k": 2, "class_id": 1},
    {"top_k": 2, "thresholds": 0.4},
]


KERAS_CONFUSION_CASES = [
    (args, targets)
    for args in KERAS_CONFUSION_ARGS
    for targets in ["binary", "onehot", "multilabel", "ids"]
    # One output unit has no class to pick; class ids alone choose the per-class metric.
    if not (targets == "binary" and ("class_id" in args or "top_k" in args))
    and not (targets == "ids" and not args)
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("args", "targets"), KERAS_CONFUSION_CASES, ids=str)
@pytest.mark.parametrize("name", ["Precision", "Recall"])
def test_precision_and_recall_with_keras_arguments_match_keras(name, args, targets, weighted):
    # Keras's metric over the real steps: Keras's with sample_weight = mask (* weight).
    mask = _mask("gaps")
    g = torch.Generator().manual_seed(8)
    units = 1 if targets == "binary" else C
    probs = torch.rand(B, T, units, generator=g)
    if targets == "multilabel" or targets == "binary":
        labels = torch.randint(0, 2, (B, T, units), generator=g).float()
        our_y = labels.masked_fill(~mask[..., None], float("nan"))
    else:
        probs = probs.softmax(-1)
        ids = torch.randint(0, C, (B, T), generator=g)
        labels = F.one_hot(ids, C).float()
        our_y = labels if targets == "onehot" else ids.masked_fill(~mask, IGNORE_INDEX)
    weight = torch.rand(B, T, generator=g) if weighted else torch.ones(B, T)
    ours = getattr(metrics, name)(**args)
    theirs = getattr(keras.metrics, name)(**args)
    for rows in (slice(0, 1), slice(1, B)):  # two updates: the counts accumulate
        ours.update(our_y[rows], Masked(probs[rows], mask[rows]), sample_weight=weight[rows])
        keras_weight = (weight * mask)[rows, :, None]
        theirs.update_state(labels[rows], probs[rows], sample_weight=keras_weight)
    expected = np.asarray(theirs.result()).tolist()
    assert ours.result() == pytest.approx(expected, abs=1e-6)
    assert isinstance(ours.result(), type(expected))  # a float, or a list per threshold


@pytest.mark.parametrize("make", [metrics.Precision, metrics.Recall])
def test_one_sigmoid_unit_gives_keras_s_float_and_per_class_on_request(make):
    # Without the binary case choosing Keras's metric, `Precision()` on a sigmoid unit
    # returned a dict (`precision/0`, `precision/1`, `precision_macro`).
    mask = _mask("pre")
    probs = torch.rand(B, T, 1, generator=torch.Generator().manual_seed(6))
    labels = torch.randint(0, 2, (B, T, 1), generator=torch.Generator().manual_seed(7)).float()
    theirs = getattr(keras.metrics, make.__name__)()
    theirs.update_state(labels, probs, sample_weight=mask.float()[..., None])
    our_labels = labels.masked_fill(~mask[..., None], float("nan"))
    ours, per_class = make(), make(per_class=True)
    for metric in (ours, per_class):
        metric.update(our_labels, Masked(probs, mask))
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)
    name = per_class.name
    assert set(per_class.result()) == {f"{name}/0", f"{name}/1", f"{name}_macro"}
    assert per_class.result()[f"{name}/1"] == pytest.approx(float(theirs.result()), abs=1e-6)


def test_precision_arguments_are_checked():
    with pytest.raises(ConfigError, match=r"(?s)thresholds must be.*per_class=True, num_classes=3"):
        metrics.Precision(3)  # maskwise's old first argument, num_classes
    with pytest.raises(ConfigError, match="pass one or the other"):
        metrics.Recall(class_id=1, per_class=True)
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1"):
        metrics.Precision(top_k=0)
    with pytest.raises(ConfigError, match=r"class_id=4 is not one of the 4 output units"):
        metrics.Precision(class_id=4).update(torch.eye(4)[None], Masked(torch.eye(4)[None]))
    assert metrics.Precision(thresholds=[0.2, 0.7]).result() == [0.0, 0.0]
    assert metrics.Precision(num_classes=2).result() == {
        "precision/0": 0.0,
        "precision/1": 0.0,
        "precision_macro": 0.0,
    }


def test_confusion_matrix_counts_real_steps_only():
    mask = _mask("gaps")
    pred, y, our_pred, our_y = _data("sparse", mask)
    weight = torch.tensor([1.0, 2.0, 0.5])
    cm = metrics.ConfusionMatrix(num_classes=C)
    assert cm.result() == [[0.0] * C for _ in range(C)]
    cm.update(our_y, Masked(our_pred, mask), sample_weight=weight)
    expected = np.zeros((C, C))
    for i, t in zip(*np.nonzero(mask.numpy())):
        expected[y[i, t], pred[i, t].argmax()] += float(weight[i])
    np.testing.assert_allclose(np.array(cm.result()), expected, atol=1e-12)
    cm.reset()
    assert cm.result() == [[0.0] * C for _ in range(C)]


def test_accuracy_resolves_like_keras_and_matches_evaluate():
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor(MASKS["post"] + MASKS["pre"] + MASKS["gaps"], dtype=torch.bool)
    x = torch.randn(len(mask), T, FEAT, generator=g).masked_fill(~mask[..., None], 0.0)
    y = torch.randint(0, C, (len(mask), T), generator=g)
    ours = Sequential([Masking(0.0), Dense(C, activation="softmax")])
    out = ours(x)
    theirs = keras.Sequential(
        [
            keras.Input((T, FEAT)),
            keras.layers.Masking(0.0),
            keras.layers.Dense(C, activation="softmax"),
        ]
    )
    theirs.layers[-1].set_weights(
        [ours.layers[-1].kernel.detach().numpy(), ours.layers[-1].bias.detach().numpy()]
    )
    theirs.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, expected = theirs.evaluate(x.numpy(), y.numpy(), batch_size=len(mask), verbose=0)
    acc = metrics.get_metric("accuracy")
    acc.update(y.masked_fill(~mask, IGNORE_INDEX), out)
    assert acc.result() == pytest.approx(expected, abs=1e-6)
    assert isinstance(acc.resolved, metrics.SparseCategoricalAccuracy)

    binary = metrics.Accuracy()
    probs = torch.tensor([[[0.7], [0.2], [0.9]]])
    binary.update(torch.tensor([[1, 1, 0]]), Masked(probs, torch.tensor([[True, True, False]])))
    assert isinstance(binary.resolved, metrics.BinaryAccuracy)
    assert binary.result() == 0.5
    onehot = metrics.Accuracy()
    onehot.update(torch.eye(3)[None].flip(-1), torch.eye(3)[None])
    assert isinstance(onehot.resolved, metrics.CategoricalAccuracy)
    assert onehot.result() == pytest.approx(1 / 3)


ALL = [
    metrics.Accuracy,
    metrics.SparseCategoricalAccuracy,
    lambda: metrics.TopKAccuracy(2),
    metrics.Precision,
    metrics.Recall,
    metrics.F1Score,
    metrics.ConfusionMatrix,
]


@pytest.mark.parametrize("make", ALL)
def test_two_batches_equal_their_concatenation(make):
    # Batches with 9 and 3 real steps: an average of batch averages would differ.
    first = _mask("gaps")
    second = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)
    _, _, p1, y1 = _data("sparse", first, seed=1)
    _, _, p2, y2 = _data("sparse", second, seed=2)
    w1, w2 = torch.rand(B), torch.rand(B, 3)
    split, whole = make(), make()
    split.update(y1, Masked(p1, first), w1)
    split.update(y2, Masked(p2, second), w2)
    pad = T - 3
    whole.update(
        torch.cat([y1, F.pad(y2, (0, pad), value=IGNORE_INDEX)]),
        Masked(
            torch.cat([p1, F.pad(p2, (0, 0, 0, pad))]), torch.cat([first, F.pad(second, (0, pad))])
        ),
        torch.cat([w1[:, None].expand(B, T), F.pad(w2, (0, pad))]),
    )
    _same(split.result(), whole.result())


@pytest.mark.parametrize(
    "make", [metrics.MeanAbsoluteError, metrics.MeanSquaredError, metrics.BinaryAccuracy]
)
def test_regression_metrics_accumulate_exactly(make):
    first, second = _mask("post"), _mask("gaps")[:, :4]
    kind = "binary" if make is metrics.BinaryAccuracy else "regression"
    _, _, p1, y1 = _data(kind, first, seed=3)
    _, _, p2, y2 = _data(kind, second, seed=4)
    split, whole = make(), make()
    split.update(y1, Masked(p1, first))
    split.update(y2, Masked(p2, second))
    nan = float("nan")
    whole.update(
        torch.cat([y1, F.pad(y2, (0, 0, 0, 1), value=nan)]),
        Masked(
            torch.cat([p1, F.pad(p2, (0, 0, 0, 1), value=nan)]),
            torch.cat([first, F.pad(second, (0, 1))]),
        ),
    )
    _same(split.result(), whole.result())


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=4),
    extra=st.integers(0, 2),
    fill=st.sampled_from([0.0, float("nan"), float("inf"), 1e30]),
    seed=st.integers(0, 2**16),
)
def test_padded_batch_equals_real_steps_only(rows, extra, fill, seed):
    time = max(len(r) for r in rows) + extra
    mask = torch.zeros(len(rows), time, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, : len(r)] = torch.tensor(r)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(len(rows), time, C, generator=g)
    y = torch.randint(0, C, (len(rows), time), generator=g)
    for make in (
        metrics.SparseCategoricalAccuracy,
        lambda: metrics.TopKAccuracy(2),
        metrics.F1Score,
        metrics.ConfusionMatrix,
    ):
        padded, plain = make(), make()
        padded.update(
            y.masked_fill(~mask, IGNORE_INDEX),
            Masked(scores.masked_fill(~mask[..., None], fill), mask),
        )
        if mask.any():
            plain.update(y[mask], scores[mask])  # per-sequence form: (steps,), (steps, C)
        if plain.result() in ({}, []):
            continue  # the plain metric never learned the class count
        _same(padded.result(), plain.result())
    mae, plain_mae = metrics.MeanAbsoluteError(), metrics.MeanAbsoluteError()
    target = torch.randn(len(rows), time, FEAT, generator=g)
    pred = torch.randn(len(rows), time, FEAT, generator=g)
    mae.update(
        target.masked_fill(~mask[..., None], fill),
        Masked(pred.masked_fill(~mask[..., None], fill), mask),
    )
    plain_mae.update(target[mask], pred[mask])
    assert mae.result() == pytest.approx(
        (pred - target).abs()[mask].mean().item() if mask.any() else 0.0, abs=1e-6
    )
    _same(mae.result(), plain_mae.result())


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (metrics.MeanSquaredLogarithmicError, keras.metrics.MeanSquaredLogarithmicError),
        (metrics.LogCoshError, keras.metrics.LogCoshError),
    ],
)
def test_per_sequence_regression_metrics_match_keras(ours, theirs):
    # One target row per sequence (no time axis), weighted; NaN nowhere.
    g = torch.Generator().manual_seed(7)
    pred, y = torch.randn(6, FEAT, generator=g) * 3, torch.randn(6, FEAT, generator=g) * 3
    weight = torch.rand(6, generator=g)
    metric, keras_metric = ours(), theirs()
    metric.update(y, pred, sample_weight=weight)
    keras_metric.update_state(y, pred, sample_weight=weight)
    assert metric.name == keras_metric.name
    assert metric.result() == pytest.approx(float(keras_metric.result()), abs=1e-6)


def test_empty_results():
    assert metrics.SparseCategoricalAccuracy().result() == 0.0
    assert metrics.Precision().result() == {}
    assert metrics.ConfusionMatrix().result() == []
    acc = metrics.SparseCategoricalAccuracy()
    acc.update(
        torch.full((B, T), IGNORE_INDEX),
        Masked(torch.rand(B, T, C), torch.zeros(B, T, dtype=torch.bool)),
    )
    assert acc.result() == 0.0


def test_reset_forgets_the_epoch():
    acc = metrics.SparseCategoricalAccuracy()
    acc.update(torch.tensor([0, 1]), torch.eye(2))
    acc.reset()
    acc.update(torch.tensor([1, 0]), torch.eye(2))
    assert acc.result() == 0.0


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_root_mean_squared_error_is_keras_over_the_real_steps(mask_name):
    """Keras's `RootMeanSquaredError` drops the mask (its padded steps count), so the
    oracle is Keras's metric given the mask as its sample weight."""
    mask = _mask(mask_name)
    ours, theirs = metrics.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError()
    for seed in (1, 2):
        pred, y, our_pred, our_y = _data("regression", mask, seed)
        weight = torch.rand(B, T, generator=torch.Generator().manual_seed(seed))
        theirs.update_state(y, pred, sample_weight=weight * mask)
        ours.update(our_y, Masked(our_pred, mask), sample_weight=weight)
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)
    ours.reset()
    ours.update(our_y, Masked(our_pred, torch.zeros_like(mask)))
    assert ours.result() == 0.0


def test_get_metric_resolves_keras_names():
    for name, cls in [
        ("acc", metrics.Accuracy),
        ("mae", metrics.MeanAbsoluteError),
        ("mse", metrics.MeanSquaredError),
        ("sparse_top_k_categorical_accuracy", metrics.TopKAccuracy),
        ("top_k_categorical_accuracy", metrics.TopKAccuracy),
        ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
        ("root_mean_squared_error", metrics.RootMeanSquaredError),
        ("msle", metrics.MeanSquaredLogarithmicError),
        ("MSLE", metrics.MeanSquaredLogarithmicError),
        ("mean_squared_logarithmic_error", metrics.MeanSquaredLogarithmicError),
        ("MeanSquaredLogarithmicError", metrics.MeanSquaredLogarithmicError),
        ("logcosh", metrics.LogCoshError),
        ("log_cosh", metrics.LogCoshError),
        ("LogCoshError", metrics.LogCoshError),
    ]:
        metric = metrics.get_metric(name)
        assert isinstance(metric, cls)
        assert metric.name == name
    assert metrics.get_metric("RootMeanSquaredError").name == "RootMeanSquaredError"  # Keras's
    metric = metrics.F1Score()
    assert metrics.get_metric(metric) is metric


def test_errors():
    with pytest.raises(ConfigError, match=r"(?s)Unknown metric 'accuracyy'.*acc, accuracy"):
        metrics.get_metric("accuracyy")
    with pytest.raises(MaskwiseTypeError, match=r"name or a maskwise.metrics.Metric"):
        metrics.get_metric(len)
    with pytest.raises(ConfigError, match=r"k must be a positive integer"):
        metrics.TopKAccuracy(0)
    with pytest.raises(ConfigError, match=r"num_classes must be an integer >= 2"):
        metrics.ConfusionMatrix(1)
    with pytest.raises(ConfigError, match=r"(?s)built for 3 classes.*predicts 4.*\(3, 5, 4\)"):
        metrics.Precision(num_classes=3).update(torch.zeros(B, T), torch.rand(B, T, C))
    _, _, pred, y = _data("sparse", _mask("post"))
    with pytest.raises(MaskError, match=r"(?s)sparse_categorical_accuracy.*IGNORE_INDEX.*Lambda"):
        metrics.SparseCategoricalAccuracy().update(y, torch.nan_to_num(pred))


# ------------------------------------------------------------------ Keras's names and order
@pytest.mark.parametrize("case", list(CASES))
def test_keras_names_and_order_on_plain_tensors(case):
    # A Keras user's code, unchanged: update_state(y_true, y_pred), result, reset_state.
    template, make_keras, kind = CASES[case]
    ours, theirs = copy.deepcopy(template), make_keras()
    ours.reset_state()
    for seed in (1, 2):
        pred, y, _, _ = _data(kind, _mask("post"), seed)
        theirs.update_state(y, pred)
        ours.update_state(y, pred)
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)
    ours.reset_state()
    theirs.reset_state()
    pred, y, _, _ = _data(kind, _mask("post"), 3)
    assert ours(y_pred=pred, y_true=y) == pytest.approx(float(theirs(y, pred)), abs=1e-6)


def test_update_state_is_update():
    assert metrics.Metric.update_state is metrics.Metric.update
    acc = metrics.SparseCategoricalAccuracy()
    acc.update(torch.tensor([0, 1]), torch.eye(2))
    acc.update_state(torch.tensor([0, 0]), torch.eye(2))
    assert acc.result() == 0.75


@pytest.mark.parametrize("case", list(CASES))
def test_mean_metrics_over_zero_real_steps_are_zero_like_keras(case):
    ours, make_keras, kind = CASES[case]
    none = torch.zeros(B, T, dtype=torch.bool)
    pred, y, our_pred, our_y = _data(kind, torch.ones(B, T, dtype=torch.bool))
    theirs = make_keras()
    keras_pred = pred.clone()
    set_keras_mask(keras_pred, none)
    theirs.update_state(y, keras_pred)
    ours.reset()
    ours.update(y_pred=Masked(our_pred, none), y_true=our_y)
    assert float(theirs.result()) == 0.0
    assert ours.result() == 0.0
    ours.reset()  # zero weights at every real step: zero real steps too
    ours.update(y_pred=our_pred, y_true=our_y, sample_weight=torch.zeros(B))
    assert ours.result() == 0.0


@pytest.mark.parametrize("make", [metrics.Precision, metrics.Recall, metrics.F1Score])
def test_per_class_metrics_over_zero_real_steps_are_zero(make):
    none = torch.zeros(B, T, dtype=torch.bool)
    _, _, our_pred, our_y = _data("sparse", none)
    metric = make()
    metric.update(y_pred=Masked(our_pred, none), y_true=our_y)
    name = metric.name
    assert metric.result() == {**{f"{name}/{c}": 0.0 for c in range(C)}, f"{name}_macro": 0.0}
    assert make(num_classes=C).result() == metric.result()  # before any update, too


def test_a_confusion_matrix_over_zero_real_steps_is_zeros():
    none = torch.zeros(B, T, dtype=torch.bool)
    _, _, our_pred, our_y = _data("sparse", none)
    matrix = metrics.ConfusionMatrix()
    matrix.update(y_pred=Masked(our_pred, none), y_true=our_y)
    assert matrix.result() == [[0.0] * C for _ in range(C)]


def test_evaluate_on_sequences_all_of_length_zero_logs_zeros_not_nan():
    model = tagger()
    names = ["accuracy", "top_k_accuracy", "precision", "recall", "f1_score", "confusion_matrix"]
    model.compile("adam", logits_loss(), metrics=names)
    model(Masked(torch.ones(1, 1, dtype=torch.long)))  # build the lazy weights
    empty = [np.zeros(0, np.int64) for _ in range(4)]
    logs = model.evaluate(empty, empty, batch_size=2)
    assert logs.pop("confusion_matrix") == [[0.0] * CLASSES for _ in range(CLASSES)]
    per_class = [f"{name}/{c}" for name in names[2:5] for c in range(CLASSES)]
    macro = [f"{name}_macro" for name in names[2:5]]
    assert logs == dict.fromkeys(["loss", "accuracy", "top_k_accuracy", *per_class, *macro], 0.0)


# ---------------------------------------------------------------------- AUC
def auc_batch(seed: int, units: int = 1) -> tuple[Masked, torch.Tensor, torch.Tensor]:
    """Probabilities `(4, 6, units)` (a few exactly on thresholds, 0 and 1), 0/1
    targets, per-sequence weights; the padded steps hold garbage."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(4, 6, units, generator=gen)
    probs[0, 0], probs[0, 1], probs[1, 0] = 0.0, 1.0, 100 / 199
    targets = (torch.rand(4, 6, units, generator=gen) < 0.4).float()
    mask = lengths_to_mask(torch.tensor([6, 3, 1, 5]), 6)
    probs[~mask] = 0.99
    targets[~mask] = 0.0
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    return Masked(probs, mask), targets, weight


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"curve": "PR"},
        {"num_thresholds": 7, "summation_method": "minoring"},
        {"curve": "PR", "summation_method": "majoring"},
    ],
)
@pytest.mark.parametrize("units", [1, 2])
def test_auc_matches_keras_on_the_real_steps(options, units):
    ours, theirs = metrics.AUC(**options), keras.metrics.AUC(**options)
    for seed in (0, 1):  # accumulated over two batches
        out, targets, weight = auc_batch(seed, units)
        ours.update(targets, out, weight)
        real = out.mask
        step_weight = weight[:, None].expand(4, 6)[real]
        theirs.update_state(targets[real], out.values[real], step_weight)
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)


def test_auc_ignores_padding_and_reads_logits():
    out, targets, weight = auc_batch(2)
    plain = metrics.AUC()
    plain.update(targets, out, weight)
    logits = Masked(torch.logit(out.values.clamp(1e-6, 1 - 1e-6)), out.mask)
    logits.values[~out.mask] = -50.0  # other padding
    from_logits = metrics.AUC(from_logits=True)
    from_logits.update(targets, logits, weight)
    assert from_logits.result() == pytest.approx(plain.result(), abs=1e-9)
    assert metrics.get_metric("auc").name == "auc"
    assert metrics.AUC().result() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_thresholds": 1}, "num_thresholds must be an integer > 1"),
        ({"curve": "PRGAIN"}, r"(?s)Unsupported AUC curve.*'ROC', 'PR'"),
        ({"summation_method": "sum"}, r"(?s)Unsupported AUC summation_method.*'minoring'"),
    ],
)
def test_auc_refusals(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        metrics.AUC(**kwargs)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=4),
    extra=st.integers(0, 2),
    fill=st.sampled_from([0.0, 1.0, float("nan"), 1e30]),
    seed=st.integers(0, 2**16),
)
def test_auc_of_a_padded_batch_is_the_auc_of_its_real_steps(rows, extra, fill, seed):
    time = max(len(r) for r in rows) + extra
    mask = torch.zeros(len(rows), time, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, : len(r)] = torch.tensor(r)
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(len(rows), time, 1, generator=g)
    targets = (torch.rand(len(rows), time, 1, generator=g) < 0.5).float()
    for curve in ("ROC", "PR"):
        padded, plain = metrics.AUC(curve=curve), metrics.AUC(curve=curve)
        padded.update(
            targets.masked_fill(~mask[..., None], float("nan")),
            Masked(probs.masked_fill(~mask[..., None], fill), mask),
        )
        plain.update(targets[mask], probs[mask])
        assert padded.result() == pytest.approx(plain.result(), abs=1e-12)


@pytest.mark.parametrize(
    ("name", "binary"),
    [
        ("sparse_categorical_crossentropy", False),
        ("categorical_crossentropy", False),
        ("binary_crossentropy", True),
    ],
)
def test_crossentropy_metrics_match_keras_over_the_real_steps(name, binary):
    g = torch.Generator().manual_seed(5)
    units = 1 if binary else 3
    probs = torch.rand(3, 4, units, generator=g) * 0.98 + 0.01
    if not binary:
        probs = probs / probs.sum(-1, keepdim=True)
    ids = torch.randint(0, 3, (3, 4), generator=g)
    targets = {
        "sparse_categorical_crossentropy": ids,
        "categorical_crossentropy": F.one_hot(ids, 3).float(),
        "binary_crossentropy": (ids[..., None] == 0).float(),
    }[name]
    mask = lengths_to_mask(torch.tensor([4, 2, 1]), 4)
    weight = torch.tensor([1.0, 3.0, 0.5])
    ours = metrics.get_metric(name)
    ours.update(targets, Masked(probs, mask), weight)
    theirs = keras.metrics.get(name)
    theirs.update_state(targets[mask], probs[mask], weight[:, None].expand(3, 4)[mask])
    assert ours.name == name
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5)


@pytest.mark.parametrize(
    "name",
    ["AUC", "SparseCategoricalAccuracy", "BinaryCrossentropy", "MAE", "bce", "F1Score", "acc"],
)
def test_names_give_the_metric_named_as_keras_compile_names_it(name):
    from keras.src.trainers.compile_utils import get_metric as keras_compile_metric

    y, pred = torch.zeros(2, 1), torch.full((2, 1), 0.5)
    theirs = keras_compile_metric(name, y, pred)
    metric = metrics.get_metric(name)
    assert metric.name == theirs.name == name  # the key of its value in the logs


NAN = float("nan")


@pytest.mark.parametrize(
    ("metric", "y_true", "scores"),
    [  # step 0: NaN scores (argmax reads NaN as highest: class 0, the target); step 1 right
        (metrics.SparseCategoricalAccuracy(), [[0, 1]], [[[NAN, 0.0], [0.0, 1.0]]]),
        (metrics.CategoricalAccuracy(), [[[1.0, 0.0], [0.0, 1.0]]], [[[NAN, 0.0], [0.0, 1.0]]]),
        (metrics.TopKAccuracy(1), [[0, 1]], [[[NAN, 0.0], [0.0, 1.0]]]),
        (metrics.BinaryAccuracy(), [[0.0, 1.0]], [[[NAN], [0.9]]]),
        (metrics.Accuracy(), [[0, 1]], [[[NAN, 0.0], [0.0, 1.0]]]),
    ],
)
def test_a_real_step_with_nan_scores_counts_as_wrong(metric, y_true, scores):
    y_pred = Masked(torch.tensor(scores), torch.tensor([[True, True]]))
    assert metric(torch.tensor(y_true), y_pred) == pytest.approx(0.5)


@pytest.mark.parametrize("binary", [False, True])
def test_per_class_metrics_count_nan_scores_as_a_miss_of_no_class(binary):
    # Steps (true class, prediction): (0, NaN), (0, 0), (1, 1), (1, 0); by hand,
    # class 0: predicted at 2 steps, right at 1; present at 2 steps, found at 1 (the NaN
    # step is a miss); class 1: predicted once, right; present twice, found once.
    mask = torch.tensor([[True, True, True, True, False]])
    if binary:
        y_true = torch.tensor([[0.0, 0.0, 1.0, 1.0, NAN]])
        y_pred = Masked(torch.tensor([[[NAN], [0.2], [0.9], [0.1], [0.5]]]), mask)
    else:
        y_true = torch.tensor([[0, 0, 1, 1, IGNORE_INDEX]])
        scores = [[NAN, NAN], [0.8, 0.2], [0.1, 0.9], [0.7, 0.3], [0.5, 0.5]]
        y_pred = Masked(torch.tensor([scores]), mask)
    matrix = metrics.ConfusionMatrix()
    matrix.update(y_true, y_pred)
    assert matrix.result() == [[1.0, 0.0], [1.0, 1.0]]
    assert matrix.unscored() == [1.0, 0.0]
    assert metrics.Precision(per_class=True)(y_true, y_pred) == pytest.approx(
        {"precision/0": 0.5, "precision/1": 1.0, "precision_macro": 0.75}
    )
    assert metrics.Recall(per_class=True)(y_true, y_pred) == pytest.approx(
        {"recall/0": 0.5, "recall/1": 0.5, "recall_macro": 0.5}
    )
    if binary:  # Keras's metric: the NaN step is below the threshold, a negative
        assert metrics.Precision()(y_true, y_pred) == 1.0  # step 2 only is positive
        assert metrics.Recall()(y_true, y_pred) == 0.5  # steps 2 and 3 hold a 1
    f1 = {0: 2 * 0.5 * 0.5 / 1.0, 1: 2 * 1.0 * 0.5 / 1.5}
    assert metrics.F1Score(per_class=True)(y_true, y_pred) == pytest.approx(
        {"f1_score/0": f1[0], "f1_score/1": f1[1], "f1_score_macro": (f1[0] + f1[1]) / 2}
    )


def test_nan_scores_count_once_whatever_the_weight_and_batches():
    # Two updates: the unscored weight adds up, and the matrix keeps its square shape.
    matrix = metrics.ConfusionMatrix(num_classes=3)
    assert matrix.unscored() == [0.0, 0.0, 0.0]
    scores = torch.tensor([[[NAN, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    for weight in (2.0, 3.0):
        matrix.update(torch.tensor([[2, 2]]), scores, sample_weight=torch.tensor([weight]))
    assert matrix.unscored() == [0.0, 0.0, 5.0]
    assert matrix.result() == [[0.0] * 3, [0.0] * 3, [0.0, 0.0, 5.0]]
