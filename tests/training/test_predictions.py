"""`Predictions`: rows come back in data order at their true length, each batch brought
to the host whole before it is cut into rows (no per-sequence read of a device)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from maskwise.masked import Masked
from maskwise.training.predictions import Predictions


def test_each_batch_goes_to_the_host_once_and_is_cut_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moves: list[tuple[Any, ...]] = []
    cut_on: list[int] = []
    real_to, real_unpad = Masked.to, Masked.unpad

    def to(self: Masked, *args: Any, **kwargs: Any) -> Masked:
        moves.append(args)
        return real_to(self, *args, **kwargs)

    def unpad(self: Masked) -> list[torch.Tensor]:
        cut_on.append(len(moves))  # how many moves happened before the cut
        return real_unpad(self)

    monkeypatch.setattr(Masked, "to", to)
    monkeypatch.setattr(Masked, "unpad", unpad)
    values = torch.arange(12.0).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    predictions = Predictions()
    predictions.add([1, 0], Masked(values, mask))
    assert moves == [("cpu",)] and cut_on == [1]
    rows = predictions.result()
    assert isinstance(rows, list)
    np.testing.assert_array_equal(rows[0], [[6.0, 7.0], [10.0, 11.0]])
    np.testing.assert_array_equal(rows[1], [[0.0, 1.0], [2.0, 3.0]])
