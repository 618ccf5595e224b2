"""The training engine's seams: overridable steps, the TrainingState a checkpoint
writes and reads, the callback order, and the training flag put back."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from training_helpers import assert_same_weights, logits_loss, tagger, tagging_data, weights

import maskwise
from maskwise import ConfigError, Masked, Sequential, checkpoint
from maskwise.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from maskwise.data import Batch, make_loader
from maskwise.training import CallbackList, Trainer, TrainingState, training_mode

PENALTY = 0.05


def l2(model: torch.nn.Module) -> torch.Tensor:
    return torch.stack([p.square().sum() for p in model.parameters()]).sum()


class PenalisedTagger(Sequential):
    """Overrides `train_step` on the model, as a Keras user does: the loss plus an L2
    penalty on the weights."""

    def train_step(self, batch: Batch) -> dict[str, Any]:
        trainer = self.trainer
        out = trainer.forward(batch.x)
        loss = trainer.compute_loss(batch, out, trainer.class_weight) + PENALTY * l2(self)
        trainer.zero_grad()
        trainer.backward(loss)
        trainer.optimizer_step(loss)
        trainer.update_metrics(batch, out.detach(), loss)
        return {"loss": loss.detach()}


class PenaltyTrainer(Trainer):
    """The same penalty from a `Trainer` subclass: only `compute_loss` changes."""

    def compute_loss(self, batch: Batch, out: Any, class_weight: Any = None) -> torch.Tensor:
        return super().compute_loss(batch, out, class_weight) + PENALTY * l2(self.model)


class TaggerWithPenaltyTrainer(Sequential):
    trainer_class = PenaltyTrainer


def hand_trained(model: torch.nn.Module, x: list, y: list, penalty: float) -> None:
    """Two epochs of SGD(0.1) by hand on fit's batches, with `penalty * l2` added."""
    loss_fn = logits_loss()
    loader = make_loader(x, y, batch_size=8, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        model(next(iter(loader)).x)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in loader:
            loss = loss_fn(batch.y, model(batch.x), batch.sample_weight) + penalty * l2(model)
            opt.zero_grad()
            loss.backward()
            opt.step()


def fitted(model: Sequential, x: list, y: list) -> Sequential:
    model.compile("sgd", logits_loss(), learning_rate=0.1)
    model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    return model


@pytest.mark.parametrize("model_class", [PenalisedTagger, TaggerWithPenaltyTrainer])
def test_an_overridden_step_trains_with_its_penalty(model_class: type[Sequential]) -> None:
    x, y = tagging_data(40, seed=3)
    base = tagger()
    by_hand = copy.deepcopy(base)
    plain = copy.deepcopy(base)
    penalised = model_class(copy.deepcopy(list(base.layers)))
    hand_trained(by_hand, x, y, PENALTY)
    fitted(penalised, x, y)
    fitted(plain, x, y)
    assert_same_weights(penalised, by_hand, atol=1e-6)
    # the penalty shrinks the weights: without it, fit ends elsewhere
    assert float(l2(penalised).detach()) < float(l2(plain).detach()) - 0.1


def test_an_overridden_predict_step_changes_predict() -> None:
    class Probabilities(Sequential):
        def predict_step(self, batch: Batch) -> Masked:
            out = super().predict_step(batch)
            return Masked(torch.softmax(out.values, -1), out.mask)

    x, _ = tagging_data(10, seed=1)
    base = tagger()
    base(torch.as_tensor(x[0])[None])  # build
    probabilities = Probabilities(copy.deepcopy(list(base.layers)))
    for logits, probs in zip(base.predict(x), probabilities.predict(x), strict=True):
        expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        np.testing.assert_allclose(probs, expected, rtol=1e-5)


# ---------------------------------------------------------------------- the state
def test_the_training_state_round_trips_through_a_checkpoint(tmp_path) -> None:
    x, y = tagging_data(24, seed=2)  # 3 batches of 8 per epoch
    model = tagger()
    model.compile("adam", logits_loss(), metrics=["accuracy"])
    stop = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    model.fit(x, y, epochs=2, batch_size=8, seed=7, verbose=0, callbacks=[stop])
    state = model.trainer.snapshot()
    assert state is not None
    assert (state.epoch, state.step, state.batch, state.loader_seed) == (2, 6, 0, 7)
    assert state.callbacks["EarlyStopping"]["monitor"] == "loss"
    assert state.callback_tensors["EarlyStopping"].keys() == model.state_dict().keys()

    path = checkpoint.save(model, tmp_path / "state.safetensors", state)
    read = checkpoint.read_state(checkpoint.Checkpoint(path))

    assert read is not None
    assert (read.epoch, read.step, read.batch, read.loader_seed) == (2, 6, 0, 7)
    assert read.compile == state.compile
    assert read.callbacks == state.callbacks
    for key, tensors in state.callback_tensors.items():
        assert read.callback_tensors[key].keys() == tensors.keys()
        assert all(torch.equal(read.callback_tensors[key][k], v) for k, v in tensors.items())
    assert state.optimizer is not None and read.optimizer is not None
    assert read.optimizer["param_groups"] == json.loads(json.dumps(state.optimizer["param_groups"]))
    for index, entries in state.optimizer["state"].items():
        for name, value in entries.items():
            torch.testing.assert_close(read.optimizer["state"][index][name], value)


def test_a_model_without_compile_saves_no_training_state(tmp_path) -> None:
    model = tagger()
    model(torch.ones(1, 3, dtype=torch.long))
    assert model.trainer.snapshot() is None
    path = model.save(tmp_path / "weights.safetensors")
    assert checkpoint.read_state(checkpoint.Checkpoint(path)) is None


def test_load_restores_the_counters_of_the_state(tmp_path) -> None:
    x, y = tagging_data(24, seed=2)
    model = tagger()
    model.compile("adam", logits_loss())
    model.fit(x, y, epochs=3, batch_size=8, seed=11, verbose=0)
    loaded = maskwise.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.trainer.state == TrainingState(epoch=3, step=9, batch=0, loader_seed=11)


# ---------------------------------------------------------------------- callbacks
def test_the_callback_list_runs_model_checkpoints_then_history_last(tmp_path) -> None:
    calls: list[str] = []

    class Named(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            calls.append(self.name)

    class Saving(ModelCheckpoint):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            calls.append("checkpoint")

    model = tagger()
    callbacks = CallbackList([Saving(tmp_path / "c"), Named("a"), Named("b")], model)
    callbacks.on_epoch_end(0, {"loss": 1.0})
    assert calls == ["a", "b", "checkpoint"]
    assert isinstance(callbacks.callbacks[-1], History)
    assert callbacks.history.history == {"loss": [1.0]}
    assert all(c.model is model for c in callbacks.callbacks)
    assert not callbacks.has_batch_hooks


# ---------------------------------------------------------------------- the training flag
class Failing(Sequential):
    """Raises in each step, to check that the doors put the training flag back."""

    def train_step(self, batch: Batch) -> dict[str, Any]:
        raise RuntimeError("step failed")

    def test_step(self, batch: Batch) -> dict[str, Any]:
        raise RuntimeError("step failed")

    def predict_step(self, batch: Batch) -> Masked:
        raise RuntimeError("step failed")


def failing_model() -> Failing:
    model = Failing(list(tagger().layers))
    model.compile("adam", logits_loss())
    return model


@pytest.mark.parametrize("training", [True, False])
def test_the_training_flag_is_put_back_when_a_step_raises(training: bool) -> None:
    x, y = tagging_data(8)
    model = failing_model()
    model.train(training)
    with pytest.raises(RuntimeError, match="step failed"):
        model.fit(x, y, verbose=0, seed=0)
    assert [m.training for m in model.modules()] == [training] * len(list(model.modules()))
    with pytest.raises(RuntimeError, match="step failed"):
        model.evaluate(x, y)
    assert model.training is training
    with pytest.raises(RuntimeError, match="step failed"):
        model.predict(x)
    assert model.training is training


@pytest.mark.parametrize("training", [True, False])
def test_the_doors_put_the_training_flag_back(training: bool) -> None:
    x, y = tagging_data(16)
    seen: list[bool] = []
    model = tagger(dropout=0.5)
    model.compile("adam", logits_loss())
    model.train(training)
    record = maskwise.callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: seen.append(model.training)
    )
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0, callbacks=[record])
    assert seen == [True, True]  # fit trains in training mode
    assert model.training is training
    model.evaluate(x, y)
    assert model.training is training
    model.predict(x)
    assert model.training is training


def test_training_mode_puts_the_flag_back_after_an_exception() -> None:
    model = tagger(dropout=0.5)
    model.train()
    with pytest.raises(ValueError, match="inside"), training_mode(model, False):
        assert not any(m.training for m in model.modules())
        raise ValueError("inside")
    assert all(m.training for m in model.modules())


def test_the_model_reads_and_sets_its_trainers_attributes() -> None:
    x, y = tagging_data(16)
    model = tagger()
    assert (model.compiled, model.optimizer, model.history, model.epochs_done) == (
        None,
        None,
        None,
        0,
    )
    model.compile("sgd", logits_loss(), learning_rate=0.1)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    assert model.history is history is model.trainer.history
    assert model.optimizer is model.trainer.optimizer
    assert model.epochs_done == 2
    model.stop_training = True
    assert model.trainer.stop_training
    before = weights(model)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)  # stop_training reset
    assert model.epochs_done == 3
    assert any(not torch.equal(v, before[k]) for k, v in weights(model).items())


def test_the_state_follows_the_loader_position_through_the_epochs() -> None:
    x, y = tagging_data(24)  # 3 batches of 8 per epoch
    model = tagger()
    model.compile("adam", logits_loss())
    seen: list[tuple[int, int, int]] = []

    def record(batch: int, logs: dict) -> None:
        state = model.trainer.state
        seen.append((state.epoch, state.batch, state.step))

    callback = maskwise.callbacks.LambdaCallback(on_batch_end=record)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0, callbacks=[callback])
    assert seen == [(0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 1, 4), (1, 2, 5), (1, 3, 6)]
    assert (model.trainer.state.epoch, model.trainer.state.batch) == (2, 0)


def test_checkpoint_writes_a_state_for_any_module_without_asking_it(tmp_path) -> None:
    """`checkpoint` takes the state it is given: a plain module with no training API."""
    layer = torch.nn.Linear(2, 3)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9)
    layer(torch.ones(4, 2)).sum().backward()
    opt.step()
    state = TrainingState(
        epoch=4,
        step=40,
        batch=3,
        loader_seed=5,
        compile={"optimizer": None, "loss": None, "metrics": []},
        optimizer=opt.state_dict(),
    )
    path = checkpoint.save(layer, tmp_path / "plain.safetensors", state)
    read = checkpoint.read_state(checkpoint.Checkpoint(path))
    assert read is not None
    assert (read.epoch, read.step, read.batch, read.loader_seed) == (4, 40, 3, 5)
    assert read.compile == state.compile and read.callbacks == {}
    assert read.optimizer is not None
    restored = torch.optim.SGD(torch.nn.Linear(2, 3).parameters(), lr=0.1)
    restored.load_state_dict(read.optimizer)
    assert restored.param_groups[0]["lr"] == 0.5
    now = restored.state_dict()["state"]
    for index, entries in opt.state_dict()["state"].items():
        assert torch.equal(now[index]["momentum_buffer"], entries["momentum_buffer"])


def test_a_checkpoint_without_step_and_batch_reads_them_as_zero(tmp_path) -> None:
    """Files written before the step and batch counters existed still resume."""
    x, y = tagging_data(16)
    model = tagger()
    model.compile("adam", logits_loss())
    model.fit(x, y, epochs=1, batch_size=8, seed=3, verbose=0)
    path = model.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    metadata["trainer"] = json.dumps({"epoch": 1, "loader_seed": 3})
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=metadata)
    read = checkpoint.read_state(checkpoint.Checkpoint(old))
    assert read is not None
    assert (read.epoch, read.step, read.batch, read.loader_seed) == (1, 0, 0, 3)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, resume_from=old)
    assert history.epoch == [1]


def test_bf16_precision_runs_the_forward_in_bfloat16_and_trains_like_float32() -> None:
    from maskwise import layers

    x, y = tagging_data(32, seed=4)
    seen: list[bool] = []  # autocast to bfloat16 on, at each Dense call
    trained = []
    for precision in (None, "bf16"):
        torch.manual_seed(0)
        model = Sequential(
            [layers.Embedding(20, 8, mask_zero=True), layers.LSTM(8, return_sequences=True),
             layers.Dense(3)]
        )  # fmt: skip
        model.compile("adam", logits_loss(), metrics=["accuracy"])
        model(torch.ones(1, 2, dtype=torch.long))
        model.layers[2].register_forward_hook(
            lambda m, a, out: seen.append(
                torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
            )
        )
        history = model.fit(x, y, epochs=3, batch_size=8, seed=0, verbose=0, precision=precision)
        trained.append(history.history["loss"][-1])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert True in seen and False in seen  # each run in its own precision
    assert trained[1] == pytest.approx(trained[0], rel=0.05)  # bf16 trains as float32 does


@pytest.mark.parametrize(
    ("precision", "message"),
    [("fp16", r"fit\(precision='fp16'\) needs a GPU.*device cpu"), ("fp64", "Unsupported.*'fp16'")],
)
def test_unsupported_precisions_are_refused(precision, message) -> None:
    model = tagger()
    model.compile("adam", logits_loss())
    with pytest.raises(ConfigError, match=rf"(?s){message}"):
        model.fit(*tagging_data(4), verbose=0, precision=precision)


def test_fit_of_a_model_without_a_trainable_weight_names_the_fix() -> None:
    model = tagger()
    model.compile("adam", logits_loss())
    model.fit(*tagging_data(4), verbose=0)
    model.requires_grad_(False)  # every weight frozen, after the optimizer was made
    with pytest.raises(ConfigError, match=r"(?s)no weight to train.*fix: unfreeze"):
        model.fit(*tagging_data(4), verbose=0)
    with pytest.raises(ConfigError, match="no weight to train"):
        model.train_on_batch(*tagging_data(2))
    model.layers[-1].trainable = True  # the fix: fine-tune the head
    before = weights(model)
    model.fit(*tagging_data(4), verbose=0)
    assert not torch.equal(before["layers.2.kernel"], model.layers[2].kernel)
    assert torch.equal(before["layers.1.kernel"], model.layers[1].kernel)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_fit_under_a_context_without_gradients_names_the_fix(context) -> None:
    model = tagger()
    model.compile("adam", logits_loss())
    message = rf"(?s)fit\(\) was called under torch.{context.__name__}\(\).*fix: call fit"
    with context(), pytest.raises(ConfigError, match=message):
        model.fit(*tagging_data(4), verbose=0)
    with context(), pytest.raises(ConfigError, match="train_on_batch"):
        model.train_on_batch(*tagging_data(2))
    with context():
        model.evaluate(*tagging_data(4))  # no gradient needed: runs
    model.fit(*tagging_data(4), verbose=0)  # the fix
