"""A `maskwise.optimizers` optimizer through compile, fit, save, load and resume."""

from __future__ import annotations

import copy

import pytest

import maskwise
from maskwise import ConfigError, optimizers
from maskwise.optimizers import schedules
from tests.training_helpers import assert_same_weights, logits_loss, tagger, tagging_data


def make_optimizer() -> optimizers.AdamW:
    return optimizers.AdamW(schedules.ExponentialDecay(0.01, 3, 0.5), clipnorm=1.0)


def test_fit_builds_the_optimizer_and_a_checkpoint_restores_it(tmp_path):
    x, y = tagging_data(24)
    halves = tagger()
    straight, fresh = copy.deepcopy(halves), copy.deepcopy(halves)
    opt = make_optimizer()
    halves.compile(optimizer=opt, loss=logits_loss())
    halves.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    assert halves.optimizer is opt and opt.built
    assert opt.iterations == 3  # one update per batch
    assert opt.param_groups[0]["lr"] == 0.01 * 0.5 ** (2 / 3)  # the rate of the last step
    path = halves.save(tmp_path / "m.safetensors")

    restored = maskwise.load(path).optimizer
    assert isinstance(restored, optimizers.AdamW)
    assert restored.get_config() == opt.get_config()
    assert restored.iterations == 3

    straight.compile(optimizer=make_optimizer(), loss=logits_loss())
    straight.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    fresh.fit(x, y, epochs=2, batch_size=8, verbose=0, resume_from=path)
    assert fresh.optimizer.iterations == 6
    assert_same_weights(straight, fresh, atol=1e-6)


def test_one_optimizer_trains_one_model():
    x, y = tagging_data(8)
    opt = optimizers.SGD(0.1)
    first, second = tagger(), tagger()
    first.compile(optimizer=opt, loss=logits_loss())
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.compile(optimizer=opt, loss=logits_loss())  # compiled again: still its weights
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert opt.iterations == 2
    second.compile(optimizer=opt, loss=logits_loss())
    with pytest.raises(ConfigError, match=r"(?s)already built on another model's weights.*new"):
        second.fit(x, y, epochs=1, batch_size=8, verbose=0)


class Halving(schedules.LearningRateSchedule):
    """A schedule of the user's own, without `get_config`."""

    def __call__(self, step: int) -> float:
        return 0.1 / 2**step


def test_a_schedule_of_your_own_trains_and_saves_the_weights(tmp_path):
    x, y = tagging_data(8)
    model = tagger()
    model.compile(optimizer=optimizers.SGD(Halving()), loss=logits_loss())
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert model.optimizer.param_groups[0]["lr"] == 0.05  # the rate of the 2nd step
    loaded = maskwise.load(model.save(tmp_path / "m.safetensors"))
    assert_same_weights(model, loaded)
    assert loaded.compiled is None  # compile it by hand, as with a loss of your own
