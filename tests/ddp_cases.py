"""Data-parallel training problems shared by `ddp_worker.py` (N processes) and
`test_distributed.py` (one process), so both sides train the same model on the same
ragged data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from maskwise import Sequential, distributed, layers, losses
from maskwise.data import make_loader

SEED = 0
BATCH = 6  # global batch
EPOCHS = 2
N = 21  # the last global batch holds 3 sequences: shares of 2 and 1


def ragged_data() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token sequences of lengths 1..15 (very uneven), tags `token % 3`."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 16, size=N)
    x = [rng.integers(1, 20, size=int(n)) for n in lengths]
    return x, [t % 3 for t in x]


def recurrent_tagger() -> Sequential:
    """Embedding(mask_zero) -> LSTM -> Dense(3 logits), weights fixed by `SEED`."""
    torch.manual_seed(SEED)
    model = Sequential(
        [
            layers.Embedding(20, 6, mask_zero=True),
            layers.LSTM(8, return_sequences=True),
            layers.Dense(3),
        ]
    )
    x, _ = ragged_data()
    with torch.no_grad():
        model(next(iter(make_loader(x[:2], batch_size=2, checks="off"))).x)
    return model


def hand_loop(
    wrap: Callable[[torch.nn.Module], torch.nn.Module], normalize: bool
) -> dict[str, Any]:
    """A hand-written loop: SGD on the global batches, this process's share of each.

    `normalize`: divide the loss by the real steps of the global batch (`normalizer=`),
    else by this share's own (the per-process mean). Returns the final weights and the
    indices of the sequences this process trained on, per epoch.
    """
    x, y = ragged_data()
    model = recurrent_tagger()
    net = wrap(model)
    loader = make_loader(x, y, batch_size=BATCH, seed=SEED)
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen: list[list[int]] = []
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        seen.append([])
        for batch in loader:
            assert batch.size > 0, "the shares of this problem are never empty"
            out = net(batch.x)
            normalizer = None
            if normalize:
                normalizer = distributed.global_real_steps(out) / distributed.world_size()
            loss = loss_fn(batch.y, out, normalizer=normalizer)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen[-1] += batch.index.tolist()
    return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()}, "seen": seen}
