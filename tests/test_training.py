"""compile / fit / evaluate / predict on ragged data, real steps only."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from training_helpers import (
    CLASSES,
    assert_same_weights,
    logits_loss,
    tagger,
    tagging_data,
    weights,
)

import maskwise
from maskwise import ConfigError, Masked, MaskwiseTypeError, Module, Sequential, ShapeError, layers
from maskwise.data import ParquetSequences, make_loader

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def compiled_tagger(lr: float = 0.01, dropout: float = 0.0) -> Sequential:
    model = tagger(dropout)
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=lr)
    return model


def hand_loss_and_accuracy(model: Sequential, x: list, y: list) -> tuple[float, float]:
    """Cross-entropy and accuracy over every real step, one sequence at a time."""
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for tokens, tags in zip(x, y, strict=True):
            logits = model(torch.as_tensor(tokens)[None]).values[0]
            target = torch.as_tensor(tags)
            total += float(-torch.log_softmax(logits.double(), -1)[range(len(tags)), target].sum())
            correct += int((logits.argmax(-1) == target).sum())
            count += len(tags)
    return total / count, correct / count


@pytest.mark.parametrize("device", DEVICES)
def test_fit_learns_a_ragged_tagging_task(device: str) -> None:
    x, y = tagging_data(160)
    model = compiled_tagger()
    history = model.fit(
        x, y, epochs=6, batch_size=16, validation_split=0.25, seed=0, verbose=0, device=device
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(6))
    assert all(len(v) == 6 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.95
    assert model.evaluate(x, y, device=device)["accuracy"] > 0.95
    assert next(model.parameters()).device.type == device


def test_logged_loss_and_evaluate_are_exact_means_over_real_steps() -> None:
    x, y = tagging_data(37, seed=1)
    model = tagger()
    model.compile(functools.partial(torch.optim.SGD, lr=0.0), logits_loss(), metrics=["accuracy"])
    # lr = 0: the weights never change, so the epoch's running figures are exact too.
    history = model.fit(x, y, epochs=1, batch_size=5, validation_data=(x, y), verbose=0)
    loss, accuracy = hand_loss_and_accuracy(model, x, y)
    results = model.evaluate(x, y, batch_size=7)
    assert results == pytest.approx({"loss": loss, "accuracy": accuracy}, abs=1e-6)
    assert history.history["loss"][0] == pytest.approx(loss, abs=1e-6)
    assert history.history["val_loss"][0] == pytest.approx(loss, abs=1e-6)
    assert history.history["accuracy"][0] == pytest.approx(accuracy, abs=1e-12)


def test_validation_split_keeps_the_tail_of_the_data() -> None:
    x, y = tagging_data(40, seed=2)
    model = tagger()
    model.compile(functools.partial(torch.optim.SGD, lr=0.0), logits_loss())
    history = model.fit(x, y, validation_split=0.25, batch_size=8, verbose=0, seed=0)
    assert history.history["val_loss"][0] == pytest.approx(
        hand_loss_and_accuracy(model, x[30:], y[30:])[0], abs=1e-6
    )
    assert history.history["loss"][0] == pytest.approx(
        hand_loss_and_accuracy(model, x[:30], y[:30])[0], abs=1e-6
    )


def test_predict_returns_true_lengths_in_the_original_order() -> None:
    x, _ = tagging_data(23, seed=3)
    model = tagger()
    predictions = model.predict(x, batch_size=4)
    assert [p.shape for p in predictions] == [(len(t), CLASSES) for t in x]
    with torch.no_grad():
        for tokens, predicted in zip(x, predictions, strict=True):
            alone = model(torch.as_tensor(tokens)[None]).values[0].numpy()
            np.testing.assert_allclose(predicted, alone, atol=1e-6)
    classes = maskwise.argmax(predictions)
    assert [c.tolist() for c in classes] == [p.argmax(-1).tolist() for p in predictions]
    assert [c.tolist() for c in model.predict_classes(x)] == [c.tolist() for c in classes]


def test_predict_stacks_per_sequence_outputs() -> None:
    x, _ = tagging_data(11, seed=4)
    model = Sequential(
        [layers.Embedding(20, 4, mask_zero=True), layers.GlobalAveragePooling1D(), layers.Dense(2)]
    )
    predictions = model.predict(x, batch_size=3)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (11, 2)
    with torch.no_grad():
        expected = np.stack([model(torch.as_tensor(t)[None]).values[0].numpy() for t in x])
    np.testing.assert_allclose(predictions, expected, atol=1e-6)
    np.testing.assert_array_equal(maskwise.argmax(predictions), expected.argmax(-1))


def test_argmax_thresholds_a_single_sigmoid_unit() -> None:
    out = maskwise.argmax([np.array([[0.2], [0.7]]), np.array([[0.51]])])
    assert [o.tolist() for o in out] == [[0, 1], [1]]


def test_nan_padding_trains_with_a_finite_loss() -> None:
    """Seed 001: padding with NaN must not turn the loss into NaN."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 10, size=24)
    x = np.full((24, 10, 2), np.nan, dtype=np.float32)
    y = np.full((24, 10, 1), np.nan, dtype=np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, 2))
        y[i, :n, 0] = x[i, :n].sum(-1)
    model = Sequential([layers.Masking(float("nan")), layers.Dense(1)])
    model.compile("adam", "mae", learning_rate=0.05)
    history = model.fit(x, y, epochs=8, batch_size=6, seed=0, verbose=0, mask_value=float("nan"))
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(model.evaluate(x, y, mask_value=float("nan"))["loss"])


def test_the_same_seed_gives_the_same_weights() -> None:
    x, y = tagging_data(48, seed=5)
    first = compiled_tagger(dropout=0.3)
    second, third = copy.deepcopy(first), copy.deepcopy(first)
    for model, seed in ((first, 7), (second, 7), (third, 8)):
        model.fit(x, y, epochs=2, batch_size=8, seed=seed, verbose=0)
    assert_same_weights(first, second)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(weights(first).values(), weights(third).values(), strict=True)
    )


def test_a_hand_written_loop_matches_fit() -> None:
    x, y = tagging_data(40, seed=6)
    by_fit = tagger()
    by_hand = copy.deepcopy(by_fit)
    loss_fn = logits_loss()
    by_fit.compile("adam", loss_fn)
    by_fit.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)

    loader = make_loader(x, y, batch_size=8, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        by_hand(next(iter(loader)).x)
    opt = maskwise.optimizers.Adam().build(by_hand.parameters())
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in loader:
            out = by_hand(batch.x)
            loss = loss_fn(batch.y, out, batch.sample_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert_same_weights(by_fit, by_hand)


class TwoInputs(Module):
    """Two token inputs, embedded, added, tagged (several inputs as arguments)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = layers.Embedding(20, 8, mask_zero=True)
        self.b = layers.Embedding(20, 8, mask_zero=True)
        self.add = layers.Add()
        self.out = layers.Dense(CLASSES)

    def forward(self, a: Masked, b: Masked) -> Masked:
        return self.out(self.add([self.a(a), self.b(b)]))


def test_fit_passes_several_inputs_as_arguments() -> None:
    x, y = tagging_data(64, seed=7)
    model = TwoInputs()
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.02)
    history = model.fit((x, x), y, epochs=6, batch_size=8, seed=0, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert [p.shape[0] for p in model.predict((x, x))] == [len(t) for t in x]


def test_class_weight_and_sample_weight_reach_the_loss() -> None:
    x, y = tagging_data(24, seed=8)
    model = compiled_tagger()
    before = weights(model)
    model.fit(x, y, batch_size=8, class_weight={0: 0.0, 1: 0.0, 2: 0.0}, verbose=0, seed=0)
    model.fit(x, y, batch_size=8, sample_weight=np.zeros(24), verbose=0, seed=0)
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before if "embeddings" in k)


def test_compile_takes_optimizer_names_and_callables() -> None:
    x, y = tagging_data(8, seed=9)
    model = tagger()
    model.compile("rmsprop", logits_loss())
    model.fit(x, y, verbose=0)
    assert isinstance(model.optimizer, maskwise.optimizers.RMSprop)  # Keras's RMSprop
    assert model.optimizer.param_groups[0]["lr"] == 1e-3
    model.compile(
        functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True), logits_loss()
    )
    model.fit(x, y, verbose=0)
    group = model.optimizer.param_groups[0]
    assert isinstance(model.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)


def test_a_torch_optimizer_without_weights_made_after_it_is_refused_with_the_fix() -> None:
    x, y = tagging_data(8, seed=9)
    model = tagger()  # its Embedding is built now, its Dense layers at the first call
    model.compile(torch.optim.SGD(model.parameters(), lr=0.1), logits_loss())
    with pytest.raises(
        ConfigError, match=r"(?s)misses 4 of the model's 5 trainable weights.*fix:.*build"
    ):
        model.fit(x, y, verbose=0)  # only the Embedding would train
    model.layers[0].trainable = False  # the weights it misses are frozen: it holds all
    model.compile(torch.optim.SGD(model.layers[1:].parameters(), lr=0.1), logits_loss())
    before = weights(model)
    model.fit(x, y, verbose=0)
    assert [torch.equal(before[k], v) for k, v in weights(model).items()] == [True] + [False] * 4


def test_verbose_prints_a_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = tagging_data(16, seed=10)
    model = compiled_tagger()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=8, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("2/2 - ") and "real steps/s - loss: " in lines[1]
    model.fit(x, y, epochs=1, batch_size=8, verbose=1)  # not a terminal: plain lines
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/1" and lines[1].startswith("2/2 - ") and "accuracy: " in lines[1]


def test_fit_before_compile_is_a_clear_error() -> None:
    x, y = tagging_data(4)
    with pytest.raises(ConfigError, match=r"fit\(\) needs a compiled model"):
        tagger().fit(x, y, verbose=0)
    with pytest.raises(ConfigError, match=r"evaluate\(\) needs a compiled model"):
        tagger().evaluate(x, y)


def test_bad_compile_arguments_are_clear_errors() -> None:
    model = tagger()
    with pytest.raises(ConfigError, match="Unknown optimizer 'adamm'"):
        model.compile("adamm", "mse")
    with pytest.raises(ConfigError, match="compile needs a loss"):
        model.compile("adam")
    with pytest.raises(ConfigError, match=r"learning_rate=\.\.\.\) applies to optimizer names"):
        model.compile(torch.optim.SGD, "mse", learning_rate=0.1)
    with pytest.raises(MaskwiseTypeError, match="takes a name, a callable"):
        model.compile(3, "mse")


def test_missing_targets_are_a_clear_error() -> None:
    x, _ = tagging_data(4)
    model = compiled_tagger()
    with pytest.raises(ShapeError, match=r"fit\(\) needs targets"):
        model.fit(x, verbose=0)
    with pytest.raises(ShapeError, match=r"evaluate\(\) needs targets"):
        model.evaluate(x)


def test_a_bilstm_tagger_learns_a_task_that_needs_the_next_token() -> None:
    """The tag of a step is the next token's id mod 3 (0 at the last real step): only the
    backward direction, started at each sequence's last REAL step, can know it."""
    x, _ = tagging_data(96, seed=11, max_len=8)
    y = [np.append(tokens[1:] % CLASSES, 0) for tokens in x]
    model = Sequential(
        [
            layers.Embedding(20, 16, mask_zero=True),
            layers.Bidirectional(layers.LSTM(24, return_sequences=True)),
            layers.Dense(CLASSES),
        ]
    )
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.02)
    history = model.fit(x, y, epochs=12, batch_size=16, seed=0, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert [p.shape for p in model.predict(x[:5])] == [(len(t), CLASSES) for t in x[:5]]


def test_bad_validation_arguments_are_clear_errors() -> None:
    x, y = tagging_data(8)
    model = compiled_tagger()
    with pytest.raises(ConfigError, match=r"validation_split must be in \(0, 1\)"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ConfigError, match="pass validation_data instead"):
        model.fit(make_loader(x, y), validation_split=0.5, verbose=0)
    with pytest.raises(ConfigError, match="validation_data must be"):
        model.fit(x, y, validation_data=x, verbose=0)


def test_fit_takes_loaders_for_training_and_validation() -> None:
    x, y = tagging_data(24, seed=12)
    model = compiled_tagger()
    history = model.fit(
        make_loader(x, y, batch_size=8, seed=0),
        validation_data=make_loader(x, y, batch_size=8, shuffle=False),
        epochs=2,
        verbose=0,
    )
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y)["loss"], abs=1e-6)


def _parquet(tmp_path, x: list, y: list) -> ParquetSequences:
    rows = [
        (i, t, tok, tag)
        for i, seq in enumerate(zip(x, y))
        for t, (tok, tag) in enumerate(zip(*seq))
    ]
    path = tmp_path / "tags.parquet"
    pd.DataFrame(rows, columns=["seq", "step", "tok", "tag"]).to_parquet(path, row_group_size=7)
    return ParquetSequences(path, "seq", "step", "tok", "tag", rows_per_read=5)


def test_fit_and_evaluate_stream_a_parquet_file_like_the_same_data_in_memory(tmp_path) -> None:
    x, y = tagging_data(40, seed=5)
    data = _parquet(tmp_path, x, y)
    streamed = compiled_tagger()
    in_memory = copy.deepcopy(streamed)  # the Embedding is built already
    kwargs = {"epochs": 2, "batch_size": 8, "seed": 0, "verbose": 0}
    logs = streamed.fit(data, validation_data=data, **kwargs).history
    expected = in_memory.fit(x, y, validation_data=(x, y), **kwargs).history
    assert logs.keys() == expected.keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key in logs:
        assert logs[key] == pytest.approx(expected[key], abs=1e-6)
    assert_same_weights(streamed, in_memory)
    assert streamed.evaluate(data)["loss"] == pytest.approx(
        in_memory.evaluate(x, y)["loss"], abs=1e-6
    )
    with pytest.raises(ConfigError, match="pass validation_data instead"):
        streamed.fit(data, validation_split=0.5, verbose=0)


# ---------------------------------------------------------------------- non-finite values
def regression_data(n: int = 12, seed: int = 0) -> tuple[list, list]:
    """Ragged `(T_i, 2)` float sequences and per-step targets `(T_i, 1)`."""
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(int(t), 2)).astype(np.float32) for t in rng.integers(2, 6, size=n)]
    return x, [seq.sum(-1, keepdims=True) for seq in x]


def regressor(lr: float = 0.01) -> Sequential:
    model = Sequential([layers.Dense(4, activation="tanh"), layers.Dense(1)])
    model.compile("adam", "mse", learning_rate=lr)
    return model


def without_data_checks(model: Sequential) -> dict:
    """fit's data checks stop NaN inputs before the first step; these tests reach the
    training loop itself, so they turn the checks off where fit has them."""
    return {"checks": "off"} if "checks" in inspect.signature(model.fit).parameters else {}


def fit_recording(model: Sequential, x, y, **options) -> list[dict]:
    """fit batch by batch in order (batch size 4), recording the weights after each batch."""
    after: list[dict] = []
    record = maskwise.callbacks.LambdaCallback(
        on_batch_end=lambda b, logs: after.append(weights(model))
    )
    options = {"epochs": 1, "batch_size": 4, "shuffle": False, "bucketing": False, **options}
    model.fit(x, y, verbose=0, seed=0, callbacks=[record, *options.pop("callbacks", [])], **options)
    return after


def test_nan_in_a_real_input_step_stops_fit_with_the_weights_of_the_last_good_batch() -> None:
    x, y = regression_data()
    x[5][1, 0] = np.nan  # sequence 5: the second batch of 4
    model = regressor()
    after: list[dict] = []
    with pytest.raises(
        maskwise.NonFiniteError, match=r"epoch 1, batch 2 \(both counted from 1"
    ) as error:
        after = fit_recording(model, x, y, **without_data_checks(model))
    message = str(error.value)
    assert "the loss is nan" in message
    assert "MW005" in message and "learning rate too high" in message and "sqrt" in message
    assert isinstance(error.value, maskwise.MaskwiseError) and isinstance(error.value, ValueError)
    good = regressor()
    good_after = fit_recording(good, x[:4], y[:4])  # the same first batch, nothing else
    assert len(good_after) == 1 and not after
    assert_same_weights(model, good)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_nan_sample_weight_stops_fit() -> None:
    x, y = regression_data()
    weight = np.ones(len(x))
    weight[9] = np.nan  # the third batch
    model = regressor()
    with pytest.raises(maskwise.NonFiniteError, match=r"epoch 1, batch 3 .*: the loss is nan"):
        fit_recording(model, x, y, sample_weight=weight, **without_data_checks(model))
    good = regressor()
    fit_recording(good, x[:8], y[:8])
    assert_same_weights(model, good)


def test_a_non_finite_gradient_with_a_finite_loss_names_the_weight() -> None:
    """sqrt has an infinite derivative at 0: the loss is finite, the gradient is not."""
    x, y = regression_data()
    x[0][0] = 0.0  # a real step of zeros: Dense's output there is its zero bias
    model = Sequential([layers.Dense(1), layers.Lambda(lambda t: torch.sqrt(t.abs()))])
    model.compile("sgd", "mse")
    with pytest.raises(
        maskwise.NonFiniteError,
        match=r"batch 1 .*the gradient of 'layers\.0\.kernel': 2 of 2 values are NaN",
    ):
        fit_recording(model, x, y)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(model.state_dict()["layers.0.bias"].abs().sum()) == 0.0  # no step taken


def test_an_infinite_learning_rate_step_is_undone_weights_and_optimizer_state() -> None:
    """A learning rate made infinite during training (fit's start refuses one): the
    weights and Adam's moments are put back as they were after the previous epoch."""
    x, y = regression_data()
    model = regressor()
    snapshots: list = []

    def at_epoch_begin(epoch: int, logs: dict) -> None:
        if epoch == 1:
            snapshots.append((weights(model), copy.deepcopy(model.optimizer.state_dict())))
            model.optimizer.param_groups[0]["lr"] = float("inf")

    boost = maskwise.callbacks.LambdaCallback(on_epoch_begin=at_epoch_begin)
    with pytest.raises(
        maskwise.NonFiniteError,
        match=r"epoch 2, batch 1 .*the optimizer step made the weight .* non-finite .*"
        r"learning rate inf",
    ):
        fit_recording(model, x, y, epochs=2, callbacks=[boost])
    before, state = snapshots[0]
    assert all(torch.equal(v, before[k]) for k, v in weights(model).items())
    now = model.optimizer.state_dict()["state"]
    assert now.keys() == state["state"].keys()
    for index, entries in state["state"].items():
        assert all(torch.equal(now[index][key], value) for key, value in entries.items())


def test_an_undone_first_step_leaves_no_optimizer_state() -> None:
    x, y = regression_data()
    model = regressor()
    boost = maskwise.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: model.optimizer.param_groups[0].update(lr=math.inf)
    )
    with pytest.raises(maskwise.NonFiniteError, match="epoch 1, batch 1"):
        fit_recording(model, x, y, callbacks=[boost])
    assert model.optimizer.state_dict()["state"] == {}
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------------- argument edge cases
@pytest.mark.parametrize("rate", [math.nan, math.inf, -math.inf, -0.01])
def test_a_learning_rate_must_be_finite_and_not_negative(rate: float) -> None:
    x, y = tagging_data(8)
    with pytest.raises(
        ConfigError, match=r"compile\(learning_rate=...\) must be a finite number >= 0"
    ):
        tagger().compile("adam", logits_loss(), learning_rate=rate)
    model = tagger()
    model.compile(functools.partial(torch.optim.SGD, lr=rate), logits_loss())
    if rate < 0:  # PyTorch refuses a negative rate itself, with a ValueError
        with pytest.raises(ValueError, match="Invalid learning rate"):
            model.fit(x, y, verbose=0)
        return
    with pytest.raises(
        ConfigError, match=rf"(?s)optimizer SGD must be a finite number >= 0.*received: {rate}"
    ):
        model.fit(x, y, verbose=0)


def test_a_learning_rate_of_zero_is_allowed_and_freezes_the_weights() -> None:
    x, y = tagging_data(8)
    model = tagger()
    model.compile("adam", logits_loss(), learning_rate=0)
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    before = weights(model)
    model.fit(x, y, epochs=2, verbose=0)
    assert all(torch.equal(v, before[k]) for k, v in weights(model).items())
    with pytest.raises(MaskwiseTypeError, match="must be a number"):
        tagger().compile("adam", logits_loss(), learning_rate="1e-3")


UNAVAILABLE = ["gpu0", "cuda:99", "cpu:x"] + ([] if torch.backends.mps.is_available() else ["mps"])
UNAVAILABLE += [] if torch.cuda.is_available() else ["cuda"]


@pytest.mark.parametrize("device", UNAVAILABLE)
def test_an_unavailable_device_is_a_config_error_in_every_entry_point(device: str) -> None:
    x, y = tagging_data(8)
    model = compiled_tagger()
    message = (
        rf"(?s)Device '{re.escape(device)}' is not available on this machine.*expected: one of cpu"
    )
    with pytest.raises(ConfigError, match=message):
        model.fit(x, y, verbose=0, device=device)
    model.fit(x, y, verbose=0)
    with pytest.raises(ConfigError, match=message):
        model.evaluate(x, y, device=device)
    with pytest.raises(ConfigError, match=message):
        model.predict(x, device=device)


def test_validation_split_takes_keras_share_and_refuses_an_empty_side() -> None:
    x, y = tagging_data(10, seed=2)
    model = tagger()
    model.compile(functools.partial(torch.optim.SGD, lr=0.0), logits_loss())
    history = model.fit(x, y, validation_split=0.25, batch_size=8, verbose=0, seed=0)
    # Keras trains on the first floor(10 * 0.75) = 7 sequences and validates on 3
    assert history.history["val_loss"][0] == pytest.approx(
        hand_loss_and_accuracy(model, x[7:], y[7:])[0], abs=1e-6
    )
    with pytest.raises(
        ConfigError, match=r"validation_split=1e-17 of 10 sequences leaves no validation"
    ):
        model.fit(x, y, validation_split=1e-17, verbose=0)
    with pytest.raises(
        ConfigError, match=r"validation_split=0.5 of 1 sequences leaves no training"
    ):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)


def test_data_that_yields_no_batch_is_a_clear_error() -> None:
    x, y = tagging_data(5)
    model = compiled_tagger()
    model.fit(x, y, verbose=0)
    eaten = make_loader(x, y, batch_size=8, drop_last=True)
    no_batch = r"(?s)yields no batch.*5 sequences, batch_size=8, drop_last=True.*drop_last=False"
    with pytest.raises(ConfigError, match=no_batch.replace("yields", "training data yields")):
        model.fit(eaten, verbose=0)
    with pytest.raises(ConfigError, match=no_batch.replace("yields", "validation data yields")):
        model.fit(x, y, validation_data=eaten, verbose=0)
    with pytest.raises(ConfigError, match=no_batch.replace("yields", "evaluate yields")):
        model.evaluate(eaten)
    with pytest.raises(ConfigError, match=no_batch.replace("yields", "predict yields")):
        model.predict(make_loader(x, batch_size=8, drop_last=True))
    for call in (
        lambda: model.fit([], [], verbose=0),
        lambda: model.evaluate([], []),
        lambda: model.predict([]),
    ):
        with pytest.raises(ShapeError, match="x holds no sequences"):
            call()


def test_a_batch_without_real_steps_is_no_non_finite_step() -> None:
    """An all-padding batch has a loss of 0 and zero gradients, not 0/0: fit goes on."""
    x, y = tagging_data(4)
    empty = [np.zeros(0, np.int64) for _ in range(4)]
    model = compiled_tagger()
    after = fit_recording(model, empty + x, empty + y, epochs=2)
    assert len(after) == 4  # every batch trained, the empty ones included
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------- another time axis
# A model whose output time axis differs from its input's, trained on per-step targets
# of the output's length: the batches keep the full padded time axis, as Keras's, so
# `fit` gives Keras's weights for the same initial weights (SGD: the optimizers'
# arithmetic is then the same) whatever the batch size.

CROP = 5


def time_axis_data() -> tuple[np.ndarray, np.ndarray]:
    """Twelve zero-post-padded sequences (12, 30, 4) of lengths 7..30, targets
    (12, 30, 1): 1 at the real steps (the seed-001 setting)."""
    rng = np.random.default_rng(0)
    x = np.zeros((12, 30, 4), np.float32)
    y = np.zeros((12, 30, 1), np.float32)
    lengths = rng.integers(7, 31, 12)
    lengths[0] = 30
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, 4))
        y[i, :n, 0] = 1
    return x, y


def cropping_lstm(lib) -> list:
    """Masking -> LSTM -> Dense -> Lambda dropping the first CROP steps and the mask's."""
    return [
        lib.layers.Masking(0.0),
        lib.layers.LSTM(8, return_sequences=True),
        lib.layers.Dense(1),
        lib.layers.Lambda(lambda v: v[:, CROP:], mask=lambda inputs, mask: mask[:, CROP:]),
    ]


def valid_conv(lib) -> list:
    return [lib.layers.Conv1D(3, 3, padding="valid"), lib.layers.Dense(1)]


def strided_conv(lib) -> list:
    return [lib.layers.Conv1D(3, 3, strides=2), lib.layers.Dense(1)]


def cropped_dense(lib) -> list:
    return [lib.layers.Dense(2), lib.layers.Cropping1D((2, 3)), lib.layers.Dense(1)]


def pooled_conv(lib) -> list:
    pool = lib.layers.MaxPooling1D(2)
    return [lib.layers.Conv1D(3, 3, padding="same"), pool, lib.layers.Dense(1)]


def keras_and_ours(stack, x: np.ndarray, loss: str):
    """The Keras model and ours, compiled with SGD, with the same initial weights."""
    import keras

    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.layers.Input(x.shape[1:]), *stack(keras)])
    ours = Sequential(stack(maskwise))
    ours(torch.from_numpy(x[:1]))
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        model.compile("sgd", loss=loss)
    return theirs, ours


@pytest.mark.parametrize(
    ("stack", "loss", "targets"),
    [
        (cropping_lstm, "mae", lambda y: y[:, CROP:]),
        (valid_conv, "mse", lambda y: y[:, 2:]),  # 28 output steps
        (strided_conv, "mse", lambda y: y[:, 1:29:2]),  # 14 output steps
        (cropped_dense, "mse", lambda y: y[:, 2:27]),
        (pooled_conv, "mse", lambda y: y[:, ::2]),  # 15 output steps
    ],
    ids=["lambda-crop", "conv1d-valid", "conv1d-strided", "cropping1d", "maxpooling1d"],
)
def test_fit_on_targets_of_another_time_axis_gives_keras_weights(stack, loss, targets) -> None:
    torch.set_num_threads(1)
    x, y = time_axis_data()
    y = np.ascontiguousarray(targets(y))
    theirs, ours = keras_and_ours(stack, x, loss)
    # The convolutions have no Masking: they read the zero padding as data, as Keras's
    # do (the targets say 0 there), which `mask_value=None` declares.
    data = {} if isinstance(ours.layers[0], maskwise.layers.Masking) else {"mask_value": None}
    theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, bucketing=False, verbose=0, **data)
    for got, want in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # one batch of everything is Keras's loss; smaller batches weigh every real step
    # once, so they give the same figure
    expected = theirs.evaluate(x, y, batch_size=len(x), verbose=0)
    whole = ours.evaluate(x, y, batch_size=len(x), verbose=0, **data)["loss"]
    assert whole == pytest.approx(expected)
    assert ours.evaluate(x, y, batch_size=4, verbose=0, **data)["loss"] == pytest.approx(expected)
    assert ours.test_on_batch(x, y) == pytest.approx(expected)
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    np.testing.assert_allclose(ours.get_weights()[0], theirs.get_weights()[0], atol=1e-6)


def test_targets_of_a_wrong_time_axis_name_the_output_length() -> None:
    x, y = time_axis_data()
    model = Sequential(cropping_lstm(maskwise))
    model.compile("sgd", loss="mae")
    with pytest.raises(ShapeError, match=r"targets have 27 steps and the model's output 25"):
        model.fit(x, y[:, 3:], batch_size=4, verbose=0)
    with pytest.raises(ShapeError, match=r"output's time axis, \(batch, output steps, features\)"):
        model.evaluate(x, y, batch_size=4, verbose=0)  # trimmed with the inputs


def test_per_step_class_ids_of_another_time_axis_go_with_a_feature_axis() -> None:
    """2-D ids (N, T_out) read as per-sequence (batches trimmed) and the loss names the
    fix; (N, T_out, 1) is per step and trains on every batch."""
    x, y = time_axis_data()
    stack = [*cropping_lstm(maskwise)[:2], layers.Dense(2, "softmax"), cropping_lstm(maskwise)[3]]
    model = Sequential(stack)
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    ids = y[:, CROP:, 0].astype(np.int64)
    with pytest.raises(ShapeError, match=r"\(batch, output steps, 1\)"):
        model.fit(x, ids, batch_size=4, verbose=0)
    history = model.fit(x, ids[..., None], batch_size=4, verbose=0)
    assert math.isfinite(history.history["loss"][0])


def test_fit_evaluate_and_predict_take_a_masked_as_the_list_of_its_sequences():
    """A PyTorch user's `Masked` batch goes to `fit`, `evaluate` and `predict` as it is,
    with the results of the list of its sequences."""
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randn(n, 3, generator=generator) for n in (5, 3, 4, 2)]
    y = [torch.randn(n, 1, generator=generator) for n in (5, 3, 4, 2)]
    results = []
    for x in (rows, Masked.pad(rows)):
        torch.manual_seed(0)
        model = Sequential([layers.LSTM(2, return_sequences=True), layers.Dense(1)])
        model.compile("sgd", loss="mse")
        history = model.fit(x, y, epochs=2, batch_size=2, verbose=0, seed=0)
        results.append((history.history["loss"], model.evaluate(x, y), model.predict(x)))
    (loss_a, eval_a, pred_a), (loss_b, eval_b, pred_b) = results
    assert loss_a == loss_b and eval_a == eval_b
    assert all(np.array_equal(a, b) for a, b in zip(pred_a, pred_b, strict=True))
