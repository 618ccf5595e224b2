"""`maskwise.constraints`: projections against hand math and against Keras's
constraint called on the same tensor."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from maskwise import ConfigError, constraints
from maskwise.constraints import MaxNorm, MinMaxNorm, NonNeg, UnitNorm

W = torch.tensor([[3.0, -0.1, 0.0], [4.0, 0.2, -2.0]])


def _keras(constraint, w: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(constraint(w.clone()))))


def test_max_norm_by_hand():
    out = MaxNorm(1.0, axis=0)(W)
    # column 0 has norm 5 -> scaled to 1; column 1 (norm ~0.224) is kept
    torch.testing.assert_close(out[:, 0], torch.tensor([0.6, 0.8]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[:, 1], W[:, 1], rtol=1e-5, atol=1e-6)


def test_non_neg_and_unit_norm_by_hand():
    assert torch.equal(NonNeg()(W), W.clamp_min(0))
    norms = UnitNorm(axis=1)(W).square().sum(dim=1)
    torch.testing.assert_close(norms, torch.ones(2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (MaxNorm(1.0, axis=0), keras.constraints.MaxNorm(1.0, axis=0)),
        (MaxNorm(2.5, axis=1), keras.constraints.MaxNorm(2.5, axis=1)),
        (MaxNorm(3.0, axis=[0, 1]), keras.constraints.MaxNorm(3.0, axis=[0, 1])),
        (UnitNorm(axis=0), keras.constraints.UnitNorm(axis=0)),
        (MinMaxNorm(0.5, 1.0, 0.7, axis=0), keras.constraints.MinMaxNorm(0.5, 1.0, 0.7, axis=0)),
        (NonNeg(), keras.constraints.NonNeg()),
        (constraints.get("max_norm"), keras.constraints.get("max_norm")),
        (constraints.get("unit_norm"), keras.constraints.get("unit_norm")),
        (constraints.get("min_max_norm"), keras.constraints.get("min_max_norm")),
    ],
    ids=lambda value: "keras" if type(value).__module__.startswith("keras") else repr(value),
)
def test_projections_match_keras(ours, theirs):
    torch.testing.assert_close(ours(W), _keras(theirs, W), rtol=1e-6, atol=1e-7)


def test_configs_round_trip_as_keras_writes_them():
    ours = MinMaxNorm(0.5, 2.0, 0.3, axis=1)
    assert MinMaxNorm.from_config(ours.get_config()) == ours
    assert ours.get_config() == keras.constraints.MinMaxNorm(0.5, 2.0, 0.3, axis=1).get_config()
    assert constraints.get({"class_name": "MaxNorm", "config": {"max_value": 3}}) == MaxNorm(3)


def test_unknown_name_is_refused():
    with pytest.raises(ConfigError, match=r"Unknown constraint 'maxnorm'.\n.*'max_norm'"):
        constraints.get("maxnorm")
