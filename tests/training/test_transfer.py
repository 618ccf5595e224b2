"""`prefetch`: batches reach the device a batch ahead, pinned and copied without
blocking the host on CUDA; `fit`, `evaluate` and `predict` train on them. There is no
GPU here, so the copies are spied on: the order of the calls is the logic under test."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from maskwise import Sequential
from maskwise.data import Batch, make_loader
from maskwise.layers import LSTM, Dense, Masking
from maskwise.masked import Masked
from maskwise.training import prefetch, transfer

CUDA = torch.device("cuda")


def ragged(n: int = 6) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(length, 3)).astype(np.float32) for length in range(2, 2 + n)]
    return x, [rng.integers(0, 2, size=len(s)) for s in x]


def batches(n: int) -> list[Batch]:
    x, y = ragged(n)
    return list(make_loader(x, y, batch_size=1, shuffle=False, bucketing=False, checks="off"))


class Spy:
    """Records, in order, what is done to the batches: `pin`, `to` and `yield` events
    with the batch's data index."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int, Any]] = []
        spy = self

        def pin_memory(batch: Batch) -> Batch:
            spy.events.append(("pin", int(batch.index[0]), None))
            return batch

        def to(batch: Batch, device: Any, non_blocking: bool = False) -> Batch:
            spy.events.append(("to", int(batch.index[0]), (torch.device(device), non_blocking)))
            return batch  # the copy itself: CPU stays CPU

        monkeypatch.setattr(Batch, "pin_memory", pin_memory)
        monkeypatch.setattr(Batch, "to", to)


def test_each_next_batch_is_copied_before_the_current_one_is_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    for batch in prefetch(batches(3), CUDA):
        spy.events.append(("yield", int(batch.index[0]), None))
    order = [(kind, i) for kind, i, _ in spy.events]
    assert order == [
        ("pin", 0), ("to", 0),
        ("pin", 1), ("to", 1), ("yield", 0),
        ("pin", 2), ("to", 2), ("yield", 1),
        ("yield", 2),
    ]  # fmt: skip


def test_copies_to_cuda_are_pinned_and_non_blocking_elsewhere_plain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    list(prefetch(batches(2), CUDA))
    moves = [args for kind, _, args in spy.events if kind == "to"]
    assert moves == [(CUDA, True)] * 2
    assert [kind for kind, _, _ in spy.events].count("pin") == 2
    spy.events.clear()
    list(prefetch(batches(2), torch.device("cpu")))
    plain = ("to", (torch.device("cpu"), False))
    assert [(kind, args) for kind, _, args in spy.events] == [plain, plain]


def test_prefetch_keeps_every_batch_in_order_and_an_empty_source_empty() -> None:
    source = batches(4)
    got = list(prefetch(source, torch.device("cpu")))
    assert [int(b.index[0]) for b in got] == [0, 1, 2, 3]
    for a, b in zip(got, source, strict=True):
        assert isinstance(a.x, Masked) and isinstance(b.x, Masked)
        torch.testing.assert_close(a.x.values, b.x.values)
    assert list(prefetch([], torch.device("cpu"))) == []


def test_batch_to_keeps_the_index_on_the_host_and_passes_non_blocking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    real_to = torch.Tensor.to

    def to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(bool(kwargs.get("non_blocking", False)))
        return real_to(self, *args, **kwargs)

    batch = batches(1)[0]
    monkeypatch.setattr(torch.Tensor, "to", to)
    moved = batch.to("cpu", non_blocking=True)
    assert moved.index is batch.index
    assert seen == [True, True, True]  # values, mask, targets


def test_fit_evaluate_and_predict_copy_each_batch_before_the_step_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the loops: batch i + 1 is sent to the device before step i runs."""
    x, y = ragged(4)
    model = Sequential([Masking(0.0), LSTM(4, return_sequences=True), Dense(2, "softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    events: list[str] = []
    real_move = transfer.to_device

    def to_device(batch: Batch, device: torch.device) -> Batch:
        events.append("copy")
        return real_move(batch, device)

    monkeypatch.setattr(transfer, "to_device", to_device)
    for name in ("train_step", "test_step", "predict_step"):
        real = getattr(model.trainer, name)

        def step(batch: Batch, real: Any = real, name: str = name) -> Any:
            events.append(name)
            return real(batch)

        monkeypatch.setattr(model, name, step, raising=False)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False, bucketing=False)
    assert events[-4:] == ["copy", "copy", "train_step", "train_step"]
    events.clear()
    model.evaluate(x, y, batch_size=2)
    assert events == ["copy", "copy", "test_step", "test_step"]
    events.clear()
    model.predict(x, batch_size=2)
    assert events == ["copy", "copy", "predict_step", "predict_step"]
