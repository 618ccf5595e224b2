"""`maskwise.regularizers`: penalties against hand math and against Keras's on the
same tensor."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from maskwise import ConfigError, regularizers
from maskwise.regularizers import L1, L1L2, L2

W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]])
ABS, SQUARES = 6.75, 1 + 4 + 0.25 + 9 + 0.0625


def _keras(regularizer, w: torch.Tensor) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(regularizer(w))))


@pytest.mark.parametrize(
    ("ours", "theirs", "hand"),
    [
        (L1(0.3), keras.regularizers.L1(0.3), 0.3 * ABS),
        (L2(0.2), keras.regularizers.L2(0.2), 0.2 * SQUARES),
        (L1L2(0.1, 0.4), keras.regularizers.L1L2(0.1, 0.4), 0.1 * ABS + 0.4 * SQUARES),
        (regularizers.get("l1"), keras.regularizers.get("l1"), 0.01 * ABS),
        (regularizers.get("l2"), keras.regularizers.get("l2"), 0.01 * SQUARES),
        (regularizers.get("l1l2"), keras.regularizers.get("l1l2"), 0.0),
    ],
    ids=["L1", "L2", "L1L2", "l1", "l2", "l1l2"],
)
def test_penalties_match_hand_math_and_keras(ours, theirs, hand):
    value = ours(W).item()
    assert value == pytest.approx(hand, rel=1e-6)
    assert value == pytest.approx(_keras(theirs, W), rel=1e-6)


def test_keras_2_name_l1_l2_has_its_default_factors():
    assert regularizers.get("l1_l2")(W).item() == pytest.approx(0.01 * (ABS + SQUARES))


def test_a_penalty_has_the_weights_dtype_and_gradient():
    w = W.double().requires_grad_()
    penalty = L2(0.5)(w)
    penalty.backward()
    assert penalty.dtype == torch.float64
    torch.testing.assert_close(w.grad, w.detach())  # d/dw 0.5 * w^2


def test_configs_round_trip_as_keras_writes_them():
    for reg, keras_reg in ((L1(0.3), keras.regularizers.L1(0.3)), (L1L2(0.1, 0.2), None)):
        assert type(reg).from_config(reg.get_config()) == reg
        if keras_reg is not None:
            assert reg.get_config() == pytest.approx(keras_reg.get_config())
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}) == L2(0.5)
    assert L1(None).l1 == 0.01  # Keras: None means the default


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: L2(-0.1), r"L2 l2 must be a finite number >= 0.\n  received: -0.1"),
        (lambda: L1L2(l1="a"), "L1L2 l1 must be a finite number"),
        (lambda: regularizers.get("l3"), r"Unknown regularizer 'l3'.\n.*'l1_l2', 'l1l2', 'l2'"),
    ],
)
def test_refusals(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
