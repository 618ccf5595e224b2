"""`Optimizer` (base.py) under PyTorch's habits: torch's schedulers, param groups,
sparse gradients, copies and pickles, PyTorch's argument names."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from maskwise import ConfigError, MaskwiseTypeError, optimizers
from maskwise.optimizers import schedules


def _embedding_pair() -> tuple[torch.nn.Embedding, torch.nn.Embedding]:
    torch.manual_seed(0)
    sparse = torch.nn.Embedding(5, 2, sparse=True)
    dense = torch.nn.Embedding(5, 2)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZER_CLASSES))
def test_sparse_gradients_update_as_their_dense_equal(name):
    sparse, dense = _embedding_pair()
    cls = optimizers.OPTIMIZER_CLASSES[name]
    pairs = [(sparse, cls().build(sparse.parameters())), (dense, cls().build(dense.parameters()))]
    for _ in range(3):
        for module, opt in pairs:
            opt.zero_grad()
            module(torch.tensor([1, 2, 2])).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(sparse.weight, dense.weight)


def test_a_torch_scheduler_sets_a_numeric_rate():
    w = torch.nn.Parameter(torch.ones(1))
    sgd = optimizers.SGD(learning_rate=0.1).build([w])
    steps = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    for _ in range(3):
        w.grad = torch.ones(1)
        sgd.step()
        steps.step()
    torch.testing.assert_close(w.detach(), torch.tensor([1 - 0.1 - 0.05 - 0.025]))


def test_a_rate_changed_under_a_schedule_is_refused():
    w = torch.nn.Parameter(torch.ones(1))
    sgd = optimizers.SGD(schedules.ExponentialDecay(0.1, 1, 0.5)).build([w])
    steps = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.1)
    w.grad = torch.ones(1)
    sgd.step()
    steps.step()
    with pytest.raises(ConfigError, match="follows a schedule; something else changed it"):
        sgd.step()


def test_the_schedule_still_runs_after_a_state_dict_round_trip():
    w, v = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    rate = schedules.ExponentialDecay(0.1, 1, 0.5)
    first, second = optimizers.SGD(rate).build([w]), optimizers.SGD(rate).build([v])
    for _ in range(2):
        w.grad = torch.ones(1)
        first.step()
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    v.data.copy_(w.data)
    w.grad = v.grad = torch.ones(1)
    first.step()
    second.step()
    torch.testing.assert_close(w, v)


def test_a_group_lr_under_a_schedule_is_refused():
    w, v = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    sgd = optimizers.SGD(schedules.ExponentialDecay(0.1, 1, 0.5))
    with pytest.raises(ConfigError, match="group's own lr cannot be kept"):
        sgd.build([{"params": [w]}, {"params": [v], "lr": 0.5}])


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))])
def test_copies_keep_the_keras_arguments_and_the_state(copier):
    w = torch.nn.Parameter(torch.ones(2))
    adam = optimizers.Adam(schedules.ExponentialDecay(0.1, 1, 0.5), clipnorm=1.0).build([w])
    w.grad = torch.tensor([3.0, -1.0])
    adam.step()
    again = copier(adam)
    assert again.get_config() == adam.get_config()
    assert again.iterations == 1
    (param,) = again.param_groups[0]["params"]
    param.grad = w.grad = torch.tensor([1.0, 2.0])
    adam.step()
    again.step()
    torch.testing.assert_close(param, w)
    assert repr(copier(optimizers.Nadam(0.1))) == repr(optimizers.Nadam(0.1))


def test_pytorch_argument_names_name_the_keras_ones():
    with pytest.raises(MaskwiseTypeError, match="a learning rate, not the parameters"):
        optimizers.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"(?s)betas: beta_1= and beta_2=.*use one of") as error:
        optimizers.Adam(betas=(0.9, 0.99))
    assert "options" not in str(error.value)
    with pytest.raises(ConfigError, match="maximize: nothing: minimize the negated loss"):
        optimizers.SGD(maximize=True)
