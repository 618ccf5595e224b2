"""`NonFiniteGuard`: one host read per good step; a non-finite loss, gradient or new
weight is named, and the step undone (weights and optimizer state exactly as before)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from host_reads import counting_host_reads

import maskwise
from maskwise.numerics import NonFiniteGuard

OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "torch_adam": functools.partial(torch.optim.Adam, lr=0.1),
    "torch_sgd_momentum": functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
    "keras_adam": lambda params: maskwise.optimizers.Adam(0.1).build(list(params)),
}


def same(a: Any, b: Any) -> bool:
    """Exact equality of nested optimizer state dicts (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def step(model: torch.nn.Module, guard: NonFiniteGuard, loss: torch.Tensor) -> None:
    """One guarded step, as `Trainer.optimizer_step` takes it."""
    model.zero_grad()
    loss.backward()
    guard.snapshot()
    guard.optimizer.step()
    guard.check(loss.detach(), epoch=1, batch=4)


def loss_of(model: torch.nn.Module, scale: float = 1.0) -> torch.Tensor:
    return (model(torch.ones(2, 3)) ** 2).mean() * scale


BAD_STEPS: dict[str, tuple[Callable[[torch.nn.Module, torch.optim.Optimizer], None], str]] = {
    "loss": (lambda model, opt: None, r"the loss is nan"),
    "gradient": (
        lambda model, opt: model.weight.register_hook(
            lambda grad: grad.index_fill(1, torch.tensor([1]), float("nan"))
        ),
        r"the gradient of 'weight': 2 of 6 values are NaN",
    ),
    "weight": (
        lambda model, opt: [group.update(lr=float("inf")) for group in opt.param_groups],
        r"the optimizer step made the weight '(weight|bias)' non-finite .* learning rate inf",
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_STEPS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_non_finite_step_is_named_and_undone_exactly(name: str, bad: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    guard = NonFiniteGuard(model, OPTIMIZERS[name](model.parameters()))
    step(model, guard, loss_of(model))  # a good step: the optimizer holds state
    spoil, message = BAD_STEPS[bad]
    spoil(model, guard.optimizer)
    weights = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(guard.optimizer.state_dict())
    loss = loss_of(model, float("nan") if bad == "loss" else 1.0)
    with pytest.raises(maskwise.NonFiniteError, match=rf"epoch 2, batch 5 .*: {message}") as error:
        step(model, guard, loss)
    assert ("put back" in str(error.value)) == (bad == "weight")
    assert same(model.state_dict(), weights)
    assert same(guard.optimizer.state_dict(), state)  # moments, step counts, lr, iterations


def test_an_undone_first_step_leaves_no_optimizer_state() -> None:
    model = torch.nn.Linear(3, 2)
    guard = NonFiniteGuard(model, torch.optim.Adam(model.parameters()))
    with pytest.raises(maskwise.NonFiniteError, match="the loss is nan"):
        step(model, guard, loss_of(model, float("nan")))
    assert guard.optimizer.state_dict()["state"] == {}


def test_a_good_step_reads_the_host_once_and_is_kept() -> None:
    model = torch.nn.Linear(3, 2)
    guard = NonFiniteGuard(model, torch.optim.SGD(model.parameters(), lr=0.1))
    before = copy.deepcopy(model.state_dict())
    loss = loss_of(model)
    loss.backward()
    expected = {k: v - 0.1 * p.grad for (k, v), p in zip(before.items(), model.parameters())}
    model.zero_grad()
    with counting_host_reads() as reads:
        step(model, guard, loss_of(model))
    assert sum(reads.values()) == 1, reads
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_under_a_grad_scaler_non_finite_gradients_are_left_to_the_scaler() -> None:
    """`gradients=False`: the scaler skipped the overflowing step; the weights are
    finite and the check passes, the loss still counts."""
    model = torch.nn.Linear(3, 2)
    guard = NonFiniteGuard(model, torch.optim.SGD(model.parameters(), lr=0.1))
    loss = loss_of(model)
    loss.backward()
    model.weight.grad.fill_(float("inf"))
    guard.snapshot()
    guard.check(loss.detach(), 0, 0, gradients=False)  # the scaler took no step
    with pytest.raises(maskwise.NonFiniteError, match="the loss is inf"):
        guard.check(torch.tensor(float("inf")), 0, 0, gradients=False)
