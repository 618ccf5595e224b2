"""Keras parity of `maskwise.optimizers`: the same weights and gradients, N updates,
the same weights as Keras's optimizers (torch backend), and the refusals."""

from __future__ import annotations

import copy
import functools

import keras
import numpy as np
import pytest
import torch

from maskwise import ConfigError, MaskwiseTypeError, optimizers
from maskwise.optimizers import schedules

STEPS = 5


def _gradients(step: int, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Fixed gradients per step, varied in sign and size (some over the clip norms)."""
    rng = np.random.default_rng(100 + step)
    return [rng.normal(0, 1.5, shape).astype("float32") for shape in shapes]


def _run_keras(make: functools.partial, start: list[np.ndarray]) -> list[np.ndarray]:
    variables = [keras.Variable(w.copy()) for w in start]
    opt = make()
    for step in range(STEPS):
        grads = [torch.as_tensor(g) for g in _gradients(step, [w.shape for w in start])]
        opt.apply_gradients(zip(grads, variables, strict=True))
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def _run_ours(make: functools.partial, start: list[np.ndarray]) -> list[np.ndarray]:
    params = [torch.nn.Parameter(torch.tensor(w)) for w in start]
    opt = make().build(params)
    for step in range(STEPS):
        for p, g in zip(params, _gradients(step, [w.shape for w in start]), strict=True):
            p.grad = torch.tensor(g)
        opt.step()
    assert opt.iterations == STEPS
    return [p.detach().numpy() for p in params]


CASES = [
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("Adam", {"learning_rate": 0.05, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("Adam", {"learning_rate": 0.05, "clipnorm": 1.0}),
    ("Adam", {"learning_rate": 0.05, "clipvalue": 0.5}),
    ("Adam", {"learning_rate": 0.05, "global_clipnorm": 1.0}),
    ("AdamW", {"learning_rate": 0.05}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-2}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("Nadam", {}),
    ("Nadam", {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("Adamax", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-3, "clipnorm": 1.0}),
    ("Lion", {"learning_rate": 0.01}),
    ("Lion", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "global_clipnorm": 1.0}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_same_weights_as_keras(name, kwargs):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    ours = _run_ours(functools.partial(getattr(optimizers, name), **kwargs), start)
    theirs = _run_keras(functools.partial(getattr(keras.optimizers, name), **kwargs), start)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours[0], start[0])  # the updates did something


SCHEDULE_CASES = [
    ("ExponentialDecay", (0.1, 2, 0.5), {}),
    ("ExponentialDecay", (0.1, 2, 0.5), {"staircase": True}),
    ("PiecewiseConstantDecay", ([1, 3], [0.1, 0.05, 0.01]), {}),
    ("CosineDecay", (0.1, 3), {"alpha": 0.1}),
    ("CosineDecay", (0.0, 3), {"warmup_target": 0.1, "warmup_steps": 2}),
    ("InverseTimeDecay", (0.1, 2, 0.5), {}),
    ("InverseTimeDecay", (0.1, 2, 0.5), {"staircase": True}),
    ("PolynomialDecay", (0.1, 5), {}),
    ("PolynomialDecay", (0.1, 3, 0.01, 2.0, True), {}),
    ("CosineDecayRestarts", (0.1, 2), {}),
    ("CosineDecayRestarts", (0.1, 3, 1.0, 0.5, 0.1), {}),
    ("CosineDecayRestarts", (0.1, 2, 1.5, 0.8), {"alpha": 0.2}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), SCHEDULE_CASES)
def test_schedules_match_keras(name, args, kwargs):
    ours = getattr(schedules, name)(*args, **kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(*args, **kwargs)
    for step in range(20):
        expected = float(keras.ops.convert_to_numpy(theirs(step)))
        # Keras computes in float32: a rate of 0.1 is exact to about 1e-8
        assert ours(step) == pytest.approx(expected, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", ["ExponentialDecay", "CosineDecay"])
def test_optimizer_with_schedule_matches_keras(name):
    args = (0.1, 2, 0.5) if name == "ExponentialDecay" else (0.1, 3)
    rng = np.random.default_rng(1)
    start = [rng.normal(size=(2, 3)).astype("float32")]
    ours = _run_ours(
        functools.partial(optimizers.SGD, getattr(schedules, name)(*args), momentum=0.5), start
    )
    theirs = _run_keras(
        functools.partial(
            keras.optimizers.SGD, getattr(keras.optimizers.schedules, name)(*args), momentum=0.5
        ),
        start,
    )
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6, atol=1e-6)


def test_state_dict_round_trip_continues_the_same():
    torch.manual_seed(0)
    start = torch.randn(3, 2)
    a = torch.nn.Parameter(start.clone())
    b = torch.nn.Parameter(start.clone())
    first = optimizers.Adam(0.1).build([a])
    for _ in range(2):
        a.grad = torch.ones_like(a)
        first.step()
    second = optimizers.Adam(0.1).build([b])
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    b.data.copy_(a.data)
    a.grad = b.grad = torch.full_like(a, 0.5)
    first.step()
    second.step()
    assert second.iterations == 3
    torch.testing.assert_close(a, b)


def test_refusals():
    with pytest.raises(
        MaskwiseTypeError, match=r"(?s)Adam takes Keras's arguments.*Adam\(learning_rate=1e-3\)"
    ):
        optimizers.Adam(torch.nn.Linear(2, 2).parameters())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"learning rate of SGD.*finite number >= 0"):
        optimizers.SGD(learning_rate=-1.0)
    with pytest.raises(ConfigError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    unbuilt = optimizers.RMSprop()
    with pytest.raises(ConfigError, match=r"RMSprop.step\(\) needs the optimizer built"):
        unbuilt.step()
    built = optimizers.SGD().build([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match="already built on a model's weights"):
        built.build([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match="one more value than boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="decay_steps must be a number > 0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)


def test_config_round_trip():
    opt = optimizers.AdamW(schedules.CosineDecay(0.1, 10), clipnorm=2.0)
    again = optimizers.AdamW.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    assert repr(optimizers.SGD(momentum=0.9)).startswith("SGD(learning_rate=0.01")


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_updates_all_weights_at_once_as_one_at_a_time(amsgrad):
    """Adam's multi-tensor update equals Keras's rule written for one weight, bit for
    bit, over several steps, for weights of two dtypes in one group."""
    gen = torch.Generator().manual_seed(0)
    shapes_dtypes = [((3, 4), torch.float32), ((5,), torch.float64), ((2, 2), torch.float32)]
    weights = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=d)) for s, d in shapes_dtypes]
    reference = [w.detach().clone() for w in weights]
    m = [torch.zeros_like(w) for w in reference]
    v = [torch.zeros_like(w) for w in reference]
    v_hat = [torch.zeros_like(w) for w in reference]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    adam = optimizers.Adam(learning_rate=lr, amsgrad=amsgrad).build(weights)
    for step in range(1, 5):
        grads = [torch.randn(w.shape, generator=gen, dtype=w.dtype) for w in weights]
        for w, g in zip(weights, grads, strict=True):
            w.grad = g.clone()
        adam.step()
        for i, g in enumerate(grads):  # Keras's update_step, one weight at a time
            dtype = reference[i].dtype
            rate = torch.tensor(lr, dtype=dtype)
            t, beta_1, beta_2 = (torch.tensor(x, dtype=dtype) for x in (step, b1, b2))
            alpha = float(rate * (1 - beta_2.pow(t)).sqrt() / (1 - beta_1.pow(t)))
            m[i].mul_(b1).add_(g, alpha=1 - b1)
            v[i].mul_(b2).add_(g.square(), alpha=1 - b2)
            second = v[i]
            if amsgrad:
                torch.maximum(v_hat[i], v[i], out=v_hat[i])
                second = v_hat[i]
            reference[i].sub_(m[i] * alpha / (second.sqrt() + eps))
        for w, r in zip(weights, reference, strict=True):
            assert torch.equal(w.detach(), r)
