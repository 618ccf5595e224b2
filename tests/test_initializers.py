"""`maskwise.initializers`: Keras's formulas, checked by statistics over large draws
(against the formula and against Keras's own draws: the generators differ, so the
values cannot match), and exact values where an initializer is deterministic."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import torch

from maskwise import ConfigError, initializers
from maskwise.initializers import (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Identity,
    LecunNormal,
    LecunUniform,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
    compute_fans,
)

SHAPE = (300, 200)  # fan_in 300, fan_out 200
FAN_IN, FAN_OUT = SHAPE

# (ours, Keras name, variance by the formula, uniform limit or None)
SCALED = [
    (GlorotUniform, "glorot_uniform", 2 / (FAN_IN + FAN_OUT), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    (GlorotNormal, "glorot_normal", 2 / (FAN_IN + FAN_OUT), None),
    (HeUniform, "he_uniform", 2 / FAN_IN, math.sqrt(6 / FAN_IN)),
    (HeNormal, "he_normal", 2 / FAN_IN, None),
    (LecunUniform, "lecun_uniform", 1 / FAN_IN, math.sqrt(3 / FAN_IN)),
    (LecunNormal, "lecun_normal", 1 / FAN_IN, None),
]


def _keras_draw(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    values = keras.initializers.get(name)(shape)
    return torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(values)), dtype=torch.float64)


@pytest.mark.parametrize(("cls", "name", "variance", "limit"), SCALED, ids=[s[1] for s in SCALED])
def test_variance_scaling_presets_match_the_formula_and_keras(cls, name, variance, limit):
    ours = cls(seed=0)(SHAPE, torch.float64)
    keras_values = _keras_draw(name, SHAPE)
    assert ours.mean().abs() < 0.01 * math.sqrt(variance) * 10
    for values in (ours, keras_values):
        assert values.var().item() == pytest.approx(variance, rel=0.03)
    if limit is None:  # truncated at two standard deviations of the untruncated normal
        bound = 2 * math.sqrt(variance) / initializers.TRUNCATED_STD
        assert ours.abs().max() <= bound
        assert ours.abs().max() > 0.95 * bound
    else:
        assert ours.abs().max() <= limit
        assert ours.abs().max() > 0.99 * limit


def test_keras_names_give_the_same_formulas():
    for cls, name, _, _ in SCALED:
        assert type(initializers.get(name)) is cls
    untruncated = VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=1)(SHAPE)
    assert untruncated.var().item() == pytest.approx(2 / FAN_OUT, rel=0.03)
    assert untruncated.abs().max() > 2.5 * math.sqrt(2 / FAN_OUT)  # not truncated


def test_fans_of_a_convolution_kernel_count_the_window():
    assert compute_fans((3, 4, 5)) == (12, 15)
    assert compute_fans((7,)) == (7, 7)
    assert compute_fans(()) == (1, 1)
    draws = GlorotUniform(seed=0)((3, 40, 50))
    assert draws.abs().max() <= math.sqrt(6 / (3 * 40 + 3 * 50))


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 3, 4)])
def test_orthogonal_gives_orthonormal_columns_or_rows(shape):
    q = Orthogonal(gain=2.0, seed=3)(shape, torch.float64)
    assert q.shape == shape
    flat = q.reshape(-1, shape[-1]) / 2.0
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=torch.float64))


def test_deterministic_initializers_give_exact_values():
    assert torch.equal(Zeros()((2, 3)), torch.zeros(2, 3))
    assert torch.equal(Ones()((2, 3)), torch.ones(2, 3))
    assert torch.equal(Constant(0.25)((4,)), torch.full((4,), 0.25))
    assert torch.equal(Identity(gain=3.0)((2, 3)), 3.0 * torch.eye(2, 3))
    assert torch.equal(initializers.get("zeros")((2,), torch.float64), torch.zeros(2).double())


def test_random_defaults_are_keras_s():
    uniform = RandomUniform(seed=0)((100_000,))
    assert uniform.min() >= -0.05
    assert uniform.max() < 0.05
    assert uniform.max() > 0.049
    normal = RandomNormal(seed=0)((100_000,))
    assert normal.std().item() == pytest.approx(0.05, rel=0.02)
    truncated = TruncatedNormal(mean=1.0, stddev=0.1, seed=0)((100_000,))
    assert truncated.min() >= 0.8
    assert truncated.max() <= 1.2
    assert truncated.mean().item() == pytest.approx(1.0, abs=0.002)


def test_a_seed_draws_the_same_values_at_every_call():
    init = HeNormal(seed=7)
    assert torch.equal(init((5, 5)), init((5, 5)))
    assert not torch.equal(init((5, 5)), HeNormal(seed=8)((5, 5)))


@pytest.mark.parametrize(
    "init",
    [
        GlorotUniform(seed=3),
        VarianceScaling(0.5, "fan_avg", "uniform", seed=2),
        Orthogonal(gain=1.5),
        Constant(2.0),
        RandomNormal(0.1, 0.2, seed=1),
        Zeros(),
    ],
    ids=repr,
)
def test_configs_round_trip_and_read_keras_configs(init):
    assert type(init).from_config(init.get_config()) == init
    keras_config = {"class_name": type(init).__name__, "config": init.get_config()}
    assert initializers.get(keras_config) == init


def test_keras_config_of_the_same_initializer_has_the_same_arguments():
    ours = VarianceScaling(2.0, "fan_out", "uniform", seed=4).get_config()
    theirs = keras.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=4).get_config()
    assert {k: theirs[k] for k in ours} == ours


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: initializers.get("glorot"), r"Unknown initializer 'glorot'.\n  expected: one of"),
        (lambda: initializers.get(3), "Unknown initializer 3"),
        (lambda: Identity()((2, 3, 4)), r"Identity makes matrices.*\n  expected: a 2-D shape"),
        (lambda: Orthogonal()((5,)), "expected: a shape of 2 or more axes"),
        (lambda: VarianceScaling(mode="fan_sum"), r"mode 'fan_sum'.*\n.*'fan_in'"),
        (lambda: VarianceScaling(scale=0.0), "scale must be positive"),
        (lambda: GlorotUniform(seed=1.5), "seed must be an integer or None"),
    ],
)
def test_refusals_say_what_is_expected(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
