"""Keras 3 parity of the metrics Keras users compile with sequence models: F-scores
and the cross-entropy metrics' arguments, over the real steps (Keras's value with the
mask, or with `sample_weight=mask` for the metrics that do not read it)."""

import keras
import pytest
import torch
import torch.nn.functional as F
from keras.src.backend.common.masking import set_keras_mask

from maskwise import ConfigError, Masked, metrics
from maskwise.masked import IGNORE_INDEX, lengths_to_mask

B, T, C = 3, 5, 4
LENGTHS = [[5, 3, 1], [4, 5, 2]]  # two updates


def _batch(kind, seed):
    """(scores, Keras's targets, maskwise's targets, mask, weight) of one padded batch."""
    g = torch.Generator().manual_seed(seed)
    mask = lengths_to_mask(torch.tensor(LENGTHS[seed % 2]), T)
    weight = torch.rand(B, generator=g) + 0.5
    ids = torch.randint(0, C, (B, T), generator=g)
    if kind == "sigmoid":
        scores = torch.rand(B, T, 1, generator=g)
        y = torch.randint(0, 2, (B, T, 1), generator=g).float()
    elif kind == "multilabel":
        scores = torch.rand(B, T, C, generator=g)
        y = torch.randint(0, 2, (B, T, C), generator=g).float()
    else:
        scores = torch.randn(B, T, C, generator=g).softmax(-1)
        y = F.one_hot(ids, C).float() if kind == "onehot" else ids
    ours = (
        y.masked_fill(~mask, IGNORE_INDEX)
        if kind == "ids"
        else y.masked_fill(~mask[..., None], float("nan"))
    )
    return scores, y, ours, mask, weight


FBETA_CASES = [
    (kind, beta, threshold)
    for kind in ("sigmoid", "multilabel", "onehot", "ids")
    for beta, threshold in ((1.0, None), (1.0, 0.5), (2.0, 0.3))
    # One sigmoid unit without a threshold is refused on purpose:
    # test_fbeta_refuses_keras_s_all_positive_single_unit.
    if not (kind == "sigmoid" and threshold is None)
]


@pytest.mark.parametrize(("kind", "beta", "threshold"), FBETA_CASES)
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fbeta_score_matches_keras_over_the_real_steps(kind, average, beta, threshold, weighted):
    ours = metrics.FBetaScore(average, beta, threshold, per_class=False)
    theirs = keras.metrics.FBetaScore(average=average, beta=beta, threshold=threshold)
    for seed in (1, 2):
        scores, y, our_y, mask, weight = _batch(kind, seed)
        ours.update(our_y, Masked(scores, mask), weight if weighted else None)
        keras_y = F.one_hot(y, C).float() if kind == "ids" else y
        step_weight = weight[:, None].expand(B, T) if weighted else torch.ones(B, T)
        theirs.update_state(keras_y[mask], scores[mask], sample_weight=step_weight[mask])
    expected = theirs.result().detach().cpu().tolist()
    assert ours.result() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("kind", ["multilabel", "onehot"])
def test_f1_score_per_sequence_is_keras_s(kind):
    # Per-sequence outputs (batch, units), no mask: Keras's metric unchanged.
    scores, y, _, _, weight = _batch(kind, 3)
    scores, y = scores[:, 0], y[:, 0]
    ours, theirs = metrics.F1Score(), keras.metrics.F1Score()
    ours.update(y, scores, weight)
    theirs.update_state(y, scores, sample_weight=weight)
    assert ours.result() == pytest.approx(theirs.result().tolist(), abs=1e-5)
    macro = metrics.F1Score(average="macro", threshold=0.5)
    keras_macro = keras.metrics.F1Score(average="macro", threshold=0.5)
    macro.update(y, scores)
    keras_macro.update_state(y, scores)
    assert macro.result() == pytest.approx(float(keras_macro.result()), abs=1e-5)


def test_f1_score_keeps_the_per_class_dict_for_class_ids():
    scores, _, our_y, mask, _ = _batch("ids", 1)
    by_default, asked = metrics.F1Score(), metrics.F1Score(per_class=True)
    for m in (by_default, asked):
        m.update(our_y, Masked(scores, mask))
    assert by_default.result() == asked.result()
    assert set(asked.result()) == {f"f1_score/{c}" for c in range(C)} | {"f1_score_macro"}
    # Keras's macro average over the real steps (class ids one-hot encoded) is the same
    keras_macro = metrics.F1Score(average="macro")
    keras_macro.update(our_y, Masked(scores, mask))
    assert keras_macro.result() == pytest.approx(asked.result()["f1_score_macro"], abs=1e-9)


def test_fbeta_refuses_keras_s_all_positive_single_unit():
    scores, _, our_y, mask, _ = _batch("sigmoid", 1)
    with pytest.raises(ConfigError, match=r"(?s)every step is a positive.*threshold=0\.5"):
        metrics.F1Score()(our_y, Masked(scores, mask))
    per_class = metrics.F1Score(per_class=True)(our_y, Masked(scores, mask))
    assert set(per_class) == {"f1_score/0", "f1_score/1", "f1_score_macro"}
    assert isinstance(metrics.F1Score(threshold=0.5)(our_y, Masked(scores, mask)), list)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: metrics.F1Score(3), r"average.*F1Score\(num_classes=3\)"),
        (lambda: metrics.F1Score("mean"), r"unsupported average"),
        (lambda: metrics.FBetaScore(beta=0.0), r"beta must be a number > 0"),
        (lambda: metrics.F1Score(threshold=1.5), r"threshold must be a number in \(0, 1\]"),
        (lambda: metrics.F1Score("macro", per_class=True), r"average is an argument of Keras"),
        (lambda: metrics.F1Score(per_class=False, num_classes=3), r"num_classes is an argument"),
        (lambda: metrics.SparseCategoricalCrossentropy(True), r"name must be a string"),
    ],
)
def test_keras_argument_refusals(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def _ignore_batch(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(B, T, C, generator=g).softmax(-1)
    ids = torch.randint(0, C + 1, (B, T), generator=g)  # C: the "void" label
    ids[0, 0] = C
    return probs, torch.where(ids == C, torch.full_like(ids, 255), ids)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_categorical_crossentropy_metric_ignore_class(masked, weighted):
    ours = metrics.SparseCategoricalCrossentropy(ignore_class=255)
    theirs = keras.metrics.SparseCategoricalCrossentropy(ignore_class=255)
    left_out = keras.metrics.SparseCategoricalCrossentropy(ignore_class=255)
    for seed in (1, 2):
        probs, ids = _ignore_batch(seed)
        mask = lengths_to_mask(torch.tensor(LENGTHS[seed % 2]), T) if masked else None
        weight = torch.rand(B, generator=torch.Generator().manual_seed(seed)) if weighted else None
        our_ids = ids if mask is None else ids.masked_fill(~mask, IGNORE_INDEX)
        ours.update(our_ids, Masked(probs, mask), weight)
        keras_probs = probs.clone()
        if mask is not None:
            set_keras_mask(keras_probs, mask)
        keras_weight = None if weight is None else weight[:, None].repeat(1, T)
        theirs.update_state(ids, keras_probs, sample_weight=keras_weight)
        # Keras's value over the steps that count: not padded, not ignored
        counted = (ids != 255) if mask is None else (ids != 255) & mask
        step_weight = counted.float() * (1.0 if weight is None else weight[:, None])
        left_out.update_state(ids, probs, sample_weight=step_weight)
    assert ours.result() == pytest.approx(float(left_out.result()), rel=1e-5)
    if masked or weighted:  # Keras's metric leaves them out too
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5)
    else:  # Keras's averages the ignored steps in as zeros: on purpose, maskwise does not
        assert float(theirs.result()) < ours.result()


@pytest.mark.parametrize("name", ["CategoricalCrossentropy", "BinaryCrossentropy"])
def test_label_smoothing_crossentropy_metrics_match_keras(name):
    scores, y, our_y, mask, weight = _batch("onehot", 1)
    ours = getattr(metrics, name)("smooth", from_logits=False, label_smoothing=0.1)
    theirs = getattr(keras.metrics, name)(label_smoothing=0.1)
    ours.update(our_y, Masked(scores, mask), weight)
    keras_scores = scores.clone()
    set_keras_mask(keras_scores, mask)
    theirs.update_state(y, keras_scores, sample_weight=weight[:, None].repeat(1, T))
    assert ours.name == "smooth"
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5)
