"""Host reads in a training step off the CPU: the layers, the losses and the metrics
read nothing back to the host (each read would stall it on a GPU) once the first batch
of an epoch is checked exactly. Run on CPU with the off-CPU path (`off_the_cpu`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from host_reads import counting_host_reads, off_the_cpu

import maskwise
from maskwise import Sequential, losses, metrics
from maskwise.data import Batch
from maskwise.errors import ShapeError
from maskwise.layers import GRU, LSTM, Bidirectional, Dense, Embedding, Masking
from maskwise.masked import Masked

LAYERS = maskwise.layers.__file__.rsplit("/", 1)[0]

MODELS: dict[str, Callable[[], Sequential]] = {
    "masking_bilstm_dense": lambda: Sequential(
        [Masking(0.0), Bidirectional(LSTM(6, return_sequences=True)), Dense(3)]
    ),
    "embedding_bigru_dense": lambda: Sequential(
        [Embedding(9, 5, mask_zero=True), Bidirectional(GRU(6, return_sequences=True)), Dense(3)]
    ),
}


def ragged_batch(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded after, before, in holes, and an empty row; class targets."""
    torch.manual_seed(0)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1, 0], [0] * 7],
        dtype=torch.bool,
    )
    if name.startswith("embedding"):
        x = torch.randint(1, 9, mask.shape) * mask
    else:
        x = torch.randn(*mask.shape, 4) * mask.unsqueeze(-1)
    return x, torch.randint(0, 3, mask.shape)


def training_step(model: Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x))
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_training_step_off_the_cpu_reads_nothing_on_the_host(name: str) -> None:
    """Off the CPU the layers and the masked loss read nothing back (the labels are
    checked on the device); on CPU the recurrent layers do read the lengths (to plan
    their kernel calls), which this count sees; both give the same loss and gradients."""
    model = MODELS[name]()
    x, y = ragged_batch(name)
    training_step(model, x, y)  # build
    model.zero_grad()
    with counting_host_reads() as cpu_reads:
        cpu_loss = training_step(model, x, y)
    cpu_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with off_the_cpu(), counting_host_reads() as reads:
        loss = training_step(model, x, y)
    assert sum(reads.values()) == 0, reads
    assert any("_rnn_kernels.py" in site for site in cpu_reads)
    torch.testing.assert_close(loss, cpu_loss, atol=1e-6, rtol=1e-6)
    for got, expected in zip((p.grad for p in model.parameters()), cpu_grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def ragged_data(bad_label_at: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Eight token sequences and their class ids (one id out of range in sequence
    `bad_label_at`, if given)."""
    rng = np.random.default_rng(0)
    x = [rng.integers(1, 9, size=n) for n in (5, 3, 7, 2, 6, 4, 5, 3)]
    y = [rng.integers(0, 3, size=len(s)) for s in x]
    if bad_label_at is not None:
        y[bad_label_at][0] = 7
    return x, y


def tagger() -> Sequential:
    model = MODELS["embedding_bigru_dense"]()
    model.compile(
        optimizer="sgd",
        loss=losses.SparseCategoricalCrossentropy(from_logits=True),  # Dense(3): logits
        metrics=["acc", "f1_score"],
    )
    return model


def test_fit_off_the_cpu_reads_the_host_only_in_the_first_batch_and_the_guard() -> None:
    """Per training step of `fit`: the first batch of an epoch checks its token ids and
    labels exactly (host reads); every later step reads nothing, but for the
    non-finite guard's one check after the optimizer step (`numerics.py`)."""
    model = tagger()
    x, y = ragged_data()
    model.fit(x, y, batch_size=2, verbose=0)  # build
    per_step: list[dict[str, int]] = []
    real_step = model.trainer.train_step

    def train_step(batch: Batch) -> Any:
        before = dict(reads)
        logs = real_step(batch)
        per_step.append({k: v - before.get(k, 0) for k, v in reads.items() if v > before.get(k, 0)})
        return logs

    model.train_step = train_step  # type: ignore[method-assign]
    with off_the_cpu(), counting_host_reads() as reads:
        model.fit(x, y, batch_size=2, epochs=2, verbose=0, checks="off")
    assert len(per_step) == 8
    for index, step in enumerate(per_step):
        guard = sum(n for site, n in step.items() if "numerics.py" in site)
        rest = {site: n for site, n in step.items() if "numerics.py" not in site}
        assert guard == 1, step  # loss, gradients and new weights: one read
        if index % 4:  # not an epoch's first batch
            assert rest == {}, (index, rest)
        else:  # the exact checks: token ids, then the labels in the loss and 2 metrics
            assert any("embedding.py" in site for site in rest), rest
            assert sum(n for site, n in rest.items() if "losses.py" in site) == 3, rest


def test_a_bad_label_off_the_cpu_is_exact_in_the_first_batch_and_asserted_later() -> None:
    model = tagger()
    x, y = ragged_data(bad_label_at=0)
    with off_the_cpu(), pytest.raises(ShapeError, match="received: class id 7"):
        model.fit(x, y, batch_size=2, verbose=0, shuffle=False, bucketing=False)
    x, y = ragged_data(bad_label_at=5)  # the third batch, on the device
    with off_the_cpu(), pytest.raises(RuntimeError, match="outside the 3 classes"):
        model.fit(x, y, batch_size=2, verbose=0, shuffle=False, bucketing=False, checks="off")
    with pytest.raises(ShapeError, match="received: class id 7"):  # on CPU: exact anywhere
        model.fit(x, y, batch_size=2, verbose=0, shuffle=False, bucketing=False, checks="off")


@pytest.mark.parametrize(
    "metric",
    [
        metrics.SparseCategoricalAccuracy(),
        metrics.F1Score(num_classes=3),
        metrics.ConfusionMatrix(),
    ],
    ids=lambda m: m.name,
)
def test_metric_updates_off_the_cpu_read_nothing_on_the_host(
    metric: metrics.Metric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nor through `bincount`, which sizes its output from a host read of the largest id."""
    torch.manual_seed(0)
    scores = Masked(torch.randn(3, 5, 3), torch.rand(3, 5) > 0.3)
    labels = torch.randint(0, 3, (3, 5))
    monkeypatch.setattr(torch, "bincount", None)
    with off_the_cpu(), counting_host_reads() as reads:
        metric.update(labels, scores, sample_weight=torch.rand(3))
    assert sum(reads.values()) == 0, reads


MASK = torch.tensor([[True, True, False], [True, False, False]])
NAN = float("nan")
IDS = torch.tensor([[0, 2, -100], [1, -100, -100]])
FLOATS = torch.tensor([[0.0, 1.0, NAN], [1.0, NAN, NAN]])
TARGET_CASES: dict[str, tuple[losses.Loss, int, torch.Tensor, torch.Tensor, str]] = {
    # name: (loss, output units, good targets, bad targets, message)
    "class id out of range": (
        losses.SparseCategoricalCrossentropy(), 3, IDS,
        torch.tensor([[0, 3, -100], [1, -100, -100]]), "outside the 3 classes",
    ),
    "padding at a real step": (
        losses.SparseCategoricalCrossentropy(), 3, IDS,
        torch.tensor([[0, -100, -100], [1, -100, -100]]), r"padding \(IGNORE_INDEX\)",
    ),
    "fractional class id": (
        losses.SparseCategoricalCrossentropy(), 3, FLOATS,
        torch.tensor([[0.0, 1.5, NAN], [1.0, NAN, NAN]]), "whole-number class ids",
    ),
    "NaN regression target": (
        losses.MeanSquaredError(), 1, FLOATS,
        torch.tensor([[0.5, NAN, NAN], [1.0, NAN, NAN]]), r"padding \(NaN or inf\)\.",
    ),
    "binary target outside [0, 1]": (
        losses.BinaryCrossentropy(), 1, FLOATS,
        torch.tensor([[0.0, -1.0, NAN], [1.0, NAN, NAN]]), r"or outside \[0, 1\]",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_losses_off_the_cpu_check_targets_on_the_device(case: str) -> None:
    """Good targets: no host read; bad ones: the device-side assertion (which raises at
    once on CPU) with the loss's message."""
    loss, units, good, bad, message = TARGET_CASES[case]
    y_pred = Masked(torch.rand(2, 3, units), MASK)
    with off_the_cpu(), counting_host_reads() as reads:
        loss(good, y_pred)
    assert sum(reads.values()) == 0, reads
    with off_the_cpu(), pytest.raises(RuntimeError, match=message):
        loss(bad, y_pred)
