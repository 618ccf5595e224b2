"""`fit(precision="fp16")`: float16 autocast with a grad scaler. Float16 training is
refused on CPU (PyTorch's CPU LSTM kernel has no float16), so these tests lift that
rule (`float16_runs_on`) and train a model whose recurrent layer does run in float16
on CPU (`SimpleRNN`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import logits_loss, tagging_data, weights

import maskwise
from maskwise import ConfigError, NonFiniteError, Sequential, checkpoint, layers
from maskwise.training import trainer as trainer_module

INITIAL_SCALE = 2.0**16  # torch.amp.GradScaler's default


@pytest.fixture(autouse=True)
def float16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(trainer_module, "float16_runs_on", lambda device: True)
    yield


def rnn_tagger() -> Sequential:
    torch.manual_seed(0)
    model = Sequential(
        [layers.Embedding(20, 8, mask_zero=True), layers.SimpleRNN(8, return_sequences=True),
         layers.Dense(3)]
    )  # fmt: skip
    model.compile("adam", logits_loss())
    model(torch.ones(1, 2, dtype=torch.long))
    return model


def fit(model: Sequential, epochs: int = 1, **kwargs: Any) -> maskwise.callbacks.History:
    x, y = tagging_data(16, seed=4)
    return model.fit(x, y, epochs=epochs, batch_size=16, seed=0, verbose=0, checks="off", **kwargs)


def test_fp16_runs_the_forward_in_float16_and_trains_like_float32() -> None:
    seen: list[torch.dtype] = []  # the recurrent layer's output dtype
    final = []
    for precision in (None, "fp16"):
        model = rnn_tagger()
        model.layers[1].register_forward_hook(lambda m, a, out: seen.append(out.values.dtype))
        final.append(fit(model, epochs=4, precision=precision).history["loss"])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert set(seen) == {torch.float32, torch.float16}
    assert final[1][0] == pytest.approx(final[0][0], rel=1e-3)
    assert final[1][-1] == pytest.approx(final[0][-1], rel=1e-3)
    assert final[1][-1] < final[1][0]  # it trains


def overflow_once(model: Sequential) -> None:
    """Make the scaled gradient of the last bias infinite in the next backward pass."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        handle.remove()
        return torch.full_like(grad, float("inf"))

    handle = model.layers[2].bias.register_hook(hook)


def test_an_overflowing_backward_skips_the_step_and_lowers_the_scale() -> None:
    model = rnn_tagger()
    fit(model, precision="fp16")
    assert model.trainer.scaler is not None
    assert model.trainer.scaler.get_scale() == INITIAL_SCALE
    before = weights(model)
    overflow_once(model)
    history = fit(model, precision="fp16")  # no NonFiniteError: a skipped step
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
    assert model.trainer.scaler.get_scale() == INITIAL_SCALE / 2
    assert torch.isfinite(torch.tensor(history.history["loss"])).all()
    fit(model, precision="fp16")  # and the next step is taken
    assert not all(torch.equal(before[k], v) for k, v in weights(model).items())


def test_a_non_finite_loss_still_stops_fp16_training() -> None:
    """The weights stay as they were, and the scaler, updated, trains the next fit."""
    model = rnn_tagger()
    before = weights(model)
    hook = model.layers[2].register_forward_hook(lambda m, a, out: out.with_values(out.values / 0))
    with pytest.raises(NonFiniteError, match="the loss is nan"):
        fit(model, precision="fp16")
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
    hook.remove()
    fit(model, precision="fp16")
    assert not all(torch.equal(before[k], v) for k, v in weights(model).items())


def test_the_grad_scaler_state_is_checkpointed_and_resumed(tmp_path: Path) -> None:
    model = rnn_tagger()
    overflow_once(model)
    fit(model, precision="fp16")
    path = model.save(tmp_path / "half.safetensors")
    state = checkpoint.read_state(checkpoint.Checkpoint(path))
    assert state is not None and state.grad_scaler is not None
    assert state.grad_scaler["scale"] == INITIAL_SCALE / 2
    resumed = rnn_tagger()
    fit(resumed, epochs=2, precision="fp16", resume_from=path)
    assert resumed.trainer.scaler is not None
    assert resumed.trainer.scaler.get_scale() == INITIAL_SCALE / 2
    loaded = maskwise.load(path)
    assert loaded.trainer.state.grad_scaler == state.grad_scaler


def test_a_damaged_grad_scaler_state_is_refused(tmp_path: Path) -> None:
    model = rnn_tagger()
    fit(model, precision="fp16")
    path = model.save(tmp_path / "half.safetensors")
    file = checkpoint.Checkpoint(path)
    file.metadata["trainer"]["grad_scaler"] = {"scale": "huge"}
    with pytest.raises(ConfigError, match=r"'trainer\.grad_scaler' entry is not a grad scaler"):
        checkpoint.read_state(file)
