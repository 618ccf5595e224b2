"""`training_mode`: the one place that switches a model's training flag and puts it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def training_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Run the block with `model` in training (`True`) or evaluation (`False`) mode, then
    put its flag back as it was, also when the block raises.

    Example:
        >>> from torch import nn
        >>> model = nn.Dropout()
        >>> with training_mode(model, False):
        ...     model.training
        False
        >>> model.training
        True
    """
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)
