"""`Batch`: what iterating a `Loader` yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..masked import Masked


@dataclass(frozen=True)
class Batch:
    """One padded batch of sequences.

    Example:
        >>> loader = mw.data.make_loader([np.ones((3, 2)), np.ones((1, 2))], [[1, 0, 1], [2]],
        ...                              batch_size=2, shuffle=False)
        >>> batch = next(iter(loader))  # sequences of similar length together, shortest first
        >>> batch.size, batch.index.tolist(), batch.x.lengths.tolist()
        (2, [1, 0], [1, 3])
        >>> batch.y.tolist()  # per-step class ids, IGNORE_INDEX at the padded steps
        [[2, -100, -100], [1, 0, 1]]

    Args:
        x: a `Masked` `(batch, time, ...)`, or a tuple of them for several inputs.
        y: targets, or None. Per-step targets are `(batch, time, ...)` with
            `IGNORE_INDEX` (integer targets) or NaN (float targets) at padded steps;
            per-sequence targets are `(batch, ...)`. A model with several outputs has
            a dict of them, keyed by output name.
        sample_weight: float32 `(batch,)` per sequence, or `(batch, time)` per step
            (0 at padded steps), or None.
        index: int64 `(batch,)`, each row's position in the data set.
    """

    x: Masked | tuple[Masked, ...]
    y: torch.Tensor | dict[str, torch.Tensor] | None
    sample_weight: torch.Tensor | None
    index: torch.Tensor

    def __iter__(self) -> Iterator[Any]:
        """`x, y = batch` (in a loop: `for x, y in loader`), as a PyTorch `DataLoader`
        yields inputs and targets; `x, y, sample_weight = batch` for a batch with
        weights, so that a loop unpacking two cannot drop them silently."""
        parts = (
            (self.x, self.y) if self.sample_weight is None else (self.x, self.y, self.sample_weight)
        )
        return iter(parts)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on `device`: values, masks, targets and weights (dtypes kept).

        `index` stays on the host, where it is read (to put predictions in data order).
        With `non_blocking=True` from pinned memory (`pin_memory`), the copies to a GPU
        are queued without the host waiting for them.
        """

        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return self._map(move)

    def pin_memory(self) -> Batch:
        """The batch in page-locked host memory (needs CUDA), from which copies to the
        GPU run asynchronously (`to(..., non_blocking=True)`); `index` stays as it is."""

        def pin(t: Any) -> Any:
            if t is None:
                return None
            if isinstance(t, Masked):
                mask = None if t.mask is None else t.mask.pin_memory()
                return Masked(t.values.pin_memory(), mask)
            return t.pin_memory()

        return self._map(pin)

    def _map(self, move: Callable[[Any], Any]) -> Batch:
        """The batch with `move` applied to each input, the targets and the weights."""
        x = tuple(move(m) for m in self.x) if isinstance(self.x, tuple) else move(self.x)
        y = {k: move(v) for k, v in self.y.items()} if isinstance(self.y, dict) else move(self.y)
        return Batch(x, y, move(self.sample_weight), self.index)

    def head(self, rows: int) -> Batch:
        """The batch of its first `rows` sequences (`head(0)`: an empty batch with the
        same inputs, dtypes and feature axes, a process's share of a small last batch)."""

        def rows_of(m: Masked) -> Masked:
            return Masked(m.values[:rows], None if m.mask is None else m.mask[:rows])

        x = tuple(rows_of(m) for m in self.x) if isinstance(self.x, tuple) else rows_of(self.x)
        y = self.y
        if isinstance(y, dict):
            y = {name: targets[:rows] for name, targets in y.items()}
        elif y is not None:
            y = y[:rows]
        weight = None if self.sample_weight is None else self.sample_weight[:rows]
        return Batch(x, y, weight, self.index[:rows])

    @property
    def size(self) -> int:
        """Number of sequences in the batch."""
        return int(self.index.shape[0])
