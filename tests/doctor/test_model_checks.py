"""The doctor's model checks: a model run on a small batch shows where a mask is lost."""

from __future__ import annotations

import numpy as np
import torch

from maskwise import Masked, Module, Sequential, doctor, layers
from maskwise.masked import IGNORE_INDEX

from .helpers import codes, padded, seed000


def seed000_data() -> tuple[np.ndarray, np.ndarray]:
    xs, ys = seed000()
    return np.stack([X.T for X in xs]), np.stack(ys)


# ---------------------------------------------------------------- MW004 with a model
def test_dense3_makes_the_padding_label_a_class() -> None:
    x, y = seed000_data()
    model = Sequential([layers.Masking(0.0), layers.Dense(3, activation="softmax")])
    findings = doctor.check(x, y, model)
    assert [(f.code, f.severity) for f in findings] == [("MW004", "error")]
    assert "3 outputs, one of them for 0" in findings[0].message
    assert "1->0, 2->1" in findings[0].fix and "2 output units" in findings[0].fix


def test_relabelled_targets_with_dense2_are_clean() -> None:
    x, y = seed000_data()
    y = np.where(y == 0, IGNORE_INDEX, y - 1)
    model = Sequential([layers.Masking(0.0), layers.Dense(2, activation="softmax")])
    assert doctor.check(x, y, model) == []


# ---------------------------------------------------------------- MW006
def test_lambda_that_drops_the_mask_is_named() -> None:
    x = padded([6, 3, 4])
    model = Sequential(
        [
            layers.Masking(0.0),
            layers.Lambda(lambda v: v * 2, mask="drop", name="double"),
            layers.Dense(2),
        ]
    )
    (finding,) = doctor.check(x, model=model)
    assert finding.code == "MW006" and finding.severity == "error"
    assert "output (3, 6, 2) has a time axis but no mask" in finding.message
    assert "disappears in double (layers.1) (Lambda)" in finding.message
    assert "Lambda(fn, mask=lambda inputs, mask: mask)" in finding.fix


def test_cropping_lambda_without_mask_rule_is_reported() -> None:
    # Seed 001's `Lambda(lambda x: x[:, N:, :])`: maskwise raises, the doctor reports.
    model = Sequential([layers.Masking(0.0), layers.Lambda(lambda v: v[:, 2:]), layers.Dense(1)])
    (finding,) = doctor.check(padded([6, 3]), model=model)
    assert finding.code == "MW006"
    assert "changed the time axis but has no mask rule" in finding.message
    assert "mask=lambda inputs, mask: mask[:, N:]" in finding.fix


def test_module_that_returns_bare_values_loses_the_mask() -> None:
    class Tagger(Module):
        def __init__(self) -> None:
            super().__init__()
            self.out = layers.Dense(2)

        def forward(self, x: Masked) -> torch.Tensor:
            return self.out(x.values).values

    (finding,) = doctor.check(padded([5, 2]), model=Tagger())
    assert finding.code == "MW006"
    assert "disappears in Tagger (Tagger)" in finding.message


def test_mask_kept_or_consumed_is_clean() -> None:
    x = padded([6, 3, 4])
    keep = Sequential(
        [layers.Masking(0.0), layers.Lambda(lambda v: v * 2, mask=lambda v, m: m), layers.Dense(2)]
    )
    assert doctor.check(x, model=keep) == []
    pooled = Sequential([layers.Masking(0.0), layers.GlobalAveragePooling1D(), layers.Dense(2)])
    assert doctor.check(x, model=pooled) == []
    # No Masking in the model: fit feeds the padded array as it is, and the padding is
    # read as data (MW006), unless the zeros are data and say so.
    (finding,) = doctor.check(x, model=Sequential([layers.Dense(2)]))
    assert finding.code == "MW006" and "makes no mask" in finding.message
    assert "mask_value=None" in finding.fix


# ---------------------------------------------------------------- MW007
def test_masking_after_embedding_or_masking() -> None:
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    for embedding in (layers.Embedding(10, 4, mask_zero=True), layers.Embedding(10, 4)):
        model = Sequential([embedding, layers.Masking(0.0), layers.Dense(2)])
        (finding,) = doctor.check(tokens, model=model)
        assert finding.code == "MW007" and finding.severity == "error"
        assert "the output of Embedding" in finding.message
    twice = Sequential([layers.Masking(0.0), layers.Masking(0.0), layers.Dense(2)])
    (finding,) = doctor.check(padded([5, 2]), model=twice)
    assert finding.code == "MW007" and "already carries a mask" in finding.message


def test_layer_order_is_checked_without_data() -> None:
    twice = Sequential([layers.Embedding(10, 4, mask_zero=True), layers.Masking(0.0)])
    (finding,) = doctor.check(model=twice)
    assert finding.code == "MW007" and "Masking layer masking" in finding.message
    once = Sequential([layers.Masking(0.0), layers.Dense(2), layers.Dense(1)])
    assert doctor.check(model=once) == []


def test_single_mask_source_is_clean() -> None:
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    model = Sequential([layers.Embedding(10, 4, mask_zero=True), layers.Dense(2)])
    assert doctor.check(tokens, model=model) == []


# ---------------------------------------------------------------- MW009
def test_one_class_predictions_are_found() -> None:
    x, y = seed000_data()
    zeros = np.zeros(y.shape, dtype=np.int64)
    findings = [f for f in doctor.check(x, y, predictions=zeros) if f.code == "MW009"]
    assert len(findings) == 1
    assert "class 0 at 127 of 127 real steps (100%)" in findings[0].message
    assert "0 is the padding label" in findings[0].message


def test_varied_predictions_are_clean() -> None:
    x, y = seed000_data()
    scores = np.eye(3)[y.astype(int)]  # perfect one-hot scores (batch, time, 3)
    assert "MW009" not in codes(doctor.check(x, y, predictions=scores))


def test_trained_model_predictions_are_checked() -> None:
    x, y = seed000_data()
    y = np.where(y == 0, IGNORE_INDEX, y - 1)
    model = Sequential([layers.Masking(0.0), layers.Dense(2)])
    model(torch.zeros(1, 1, 5))
    with torch.no_grad():
        model.layers[1].bias.copy_(torch.tensor([50.0, 0.0]))  # always class 0
    assert doctor.check(x, y, model) == []  # before training: predictions not judged
    (finding,) = doctor.check(x, y, model, trained=True)
    assert finding.code == "MW009"
    assert "targets at those steps use classes [0, 1]" in finding.message


# ---------------------------------------------------------------- MW012
def test_model_that_cannot_run() -> None:
    model = Sequential([layers.Dense(2, input_dim=7)])
    (finding,) = doctor.check(padded([4, 2], features=5), model=model)
    assert finding.code == "MW012" and "(2, 4, 5)" in finding.message


def test_model_mode_is_restored() -> None:
    model = Sequential([layers.Masking(0.0), layers.Dropout(0.5), layers.Dense(2)])
    model.train()
    doctor.check(padded([4, 2]), model=model)
    assert model.training


# ---------------------------------------------------------------- MW017 with a model
def test_nan_padding_that_the_masking_layer_does_not_mask() -> None:
    x = padded([3, 1, 2], value=np.nan)
    model = Sequential([layers.Masking(0.0), layers.LSTM(2, return_sequences=True)])
    findings = [f for f in doctor.check(x, model=model) if f.code == "MW017"]
    assert [(f.severity, f.sequence, f.step) for f in findings] == [("error", 1, 1)]
    assert "3 padded steps hold nan" in findings[0].message
    assert "`Masking(mask_value=np.nan)`" in findings[0].fix
    nan_model = Sequential([layers.Masking(np.nan), layers.LSTM(2, return_sequences=True)])
    assert "MW017" not in codes(doctor.check(x, model=nan_model))
    assert "MW017" not in codes(doctor.check(np.nan_to_num(x), model=model))


def test_masking_after_normalization_on_a_padded_array() -> None:
    """Keras's habit, `Normalization` then `Masking`: the padding is no longer zeros."""
    x = padded([5, 2])
    norm = layers.Normalization()
    norm.adapt(x)
    model = Sequential([norm, layers.Masking(0.0), layers.Dense(2)])
    (finding,) = doctor.check(x, model=model)
    assert finding.code == "MW017" and finding.severity == "error"
    assert "comes after Normalization" in finding.message and "Masking first" in finding.fix
    assert [f.code for f in doctor.check(model=model)] == ["MW017"]
    masking_first = Sequential([layers.Masking(0.0), norm, layers.Dense(2)])
    assert doctor.check(x, model=masking_first) == []
    assert doctor.check(model=masking_first) == []
