"""Small models and data for the training, callback and checkpoint tests."""

from __future__ import annotations

import numpy as np
import torch

from maskwise import Sequential, layers, losses

VOCAB = 20
CLASSES = 3


def tagging_data(n: int, seed: int = 0, max_len: int = 12) -> tuple[list, list]:
    """A ragged tagging task: token ids 1..19, the tag of a token is `token % 3`."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for _ in range(n):
        tokens = rng.integers(1, VOCAB, size=int(rng.integers(2, max_len + 1)))
        x.append(tokens)
        y.append(tokens % CLASSES)
    return x, y


def tagger(dropout: float = 0.0) -> Sequential:
    """Embedding(mask_zero) -> Dense -> (Dropout) -> Dense(3 logits); built lazily."""
    stack = [layers.Embedding(VOCAB, 8, mask_zero=True), layers.Dense(16, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    return Sequential([*stack, layers.Dense(CLASSES)])


def logits_loss() -> losses.Loss:
    return losses.SparseCategoricalCrossentropy(from_logits=True)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0.0, msg=key)
