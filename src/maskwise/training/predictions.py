"""`predict`'s results: each sequence's output without padding, in the data's order,
and `argmax` to turn them into class ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..masked import Masked


def argmax(predictions: np.ndarray | Sequence[np.ndarray]) -> Any:
    """Class ids from `predict`'s output: per sequence (a list of int arrays) or stacked.

    The highest-scoring class at each step; with a single output unit (a sigmoid),
    `1` where the score is above 0.5, like Keras's `predict_classes`.

    Example:
        >>> argmax([np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0.3, 0.7]])])
        [array([1, 0]), array([1])]
    """

    def classes(scores: np.ndarray) -> np.ndarray:
        if scores.shape[-1] == 1:
            return (scores[..., 0] > 0.5).astype(np.int64)
        return scores.argmax(-1)

    if isinstance(predictions, np.ndarray):
        return classes(predictions)
    return [classes(np.asarray(p)) for p in predictions]


class Predictions:
    """Collects `predict`'s batches (in any order) and gives them back in the data's.

    Example:
        >>> gathered = Predictions()
        >>> gathered.add([1], Masked(torch.tensor([[[5.0], [6.0]]]), lengths_to_mask([1], 2)))
        >>> gathered.add([0], Masked(torch.tensor([[[1.0], [2.0]]]), lengths_to_mask([2], 2)))
        >>> gathered.result()  # in data order, each without its padding
        [array([[1.], [2.]], dtype=float32), array([[5.]], dtype=float32)]
    """

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}
        self.masked = False

    def add(self, index: Sequence[int], out: Masked) -> None:
        """Keep the real steps of each row of `out`, under its position in the data.

        `out` comes to the host whole (two copies: its values and its mask) and is cut
        into rows there: cutting it on a GPU would read each row's length back and copy
        each row, stalls of the host per sequence."""
        self.masked = self.masked or out.mask is not None
        for i, row in zip(index, out.to("cpu").unpad(), strict=True):
            self.rows[i] = row.numpy()

    def result(self) -> list[np.ndarray] | np.ndarray:
        """One array per sequence, in order; stacked when the output has no mask and
        every sequence's output has the same shape."""
        ordered = [self.rows[i] for i in range(len(self.rows))]
        if not self.masked and len({r.shape for r in ordered}) == 1:
            return np.stack(ordered)
        return ordered
