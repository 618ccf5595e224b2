"""Host reads in a training step off the CPU: the layers read nothing back to the host
(each read would stall it on a GPU), and the whole forward, masked loss and backward
at most once. Run on CPU with the layers' off-CPU path (`off_the_cpu`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from host_reads import counting_host_reads, off_the_cpu

import maskwise
from maskwise import Sequential, losses
from maskwise.layers import GRU, LSTM, Bidirectional, Dense, Embedding, Masking

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
def test_a_training_step_off_the_cpu_reads_the_host_at_most_once(name: str) -> None:
    """Off the CPU the layers read nothing back and the step at most once (the masked
    loss's label check); on CPU the recurrent layers do read the lengths (to plan their
    kernel calls), which this count sees; both give the same loss and gradients."""
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
    assert [site for site in reads if LAYERS in site] == []
    assert sum(reads.values()) <= 1, reads
    assert any("_rnn_kernels.py" in site for site in cpu_reads)
    torch.testing.assert_close(loss, cpu_loss, atol=1e-6, rtol=1e-6)
    for got, expected in zip((p.grad for p in model.parameters()), cpu_grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
