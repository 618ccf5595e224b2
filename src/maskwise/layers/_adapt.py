"""What `Normalization.adapt` reads: the real steps of data in any of the library's
forms, chunk by chunk, and their mean and variance accumulated in float64.

Which steps are real follows the rest of the library:
- a list of `(time_i, features)` arrays, one per sequence: every step given (as
  `make_loader` reads it; the layout is checked as there);
- a padded array or tensor `(batch, time, ...)`: every step but those whose features
  all equal `mask_value`, the steps a `Masking(mask_value)` layer masks
  (`data.layout.padded_steps`); `mask_value=None`: every step;
- a `(samples, features)` array or tensor (no time axis): every row, as Keras;
- a `Masked`: the steps of its mask (every step without one);
- a `SequenceDataset` or a `Loader`: each sequence's steps up to its length, as their
  batches hold them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..errors import ShapeError, format_error
from ..masked import Masked, lengths_to_mask

DEFAULT_CHUNK = 1024
"""Sequences (or rows) read at a time when `adapt` is given no `batch_size`."""


def real_rows(
    data: Any, mask_value: float | None, batch_size: int | None, steps: int | None
) -> Iterator[torch.Tensor]:
    """The real steps of `data`, one chunk of `batch_size` sequences at a time, as rows
    `(n, features...)` in the data's own dtype; at most `steps` chunks (None: all)."""
    chunks = _chunks(data, mask_value, batch_size or DEFAULT_CHUNK)
    for number, rows in enumerate(chunks):
        if steps is not None and number >= steps:
            return
        yield rows


def _chunks(data: Any, mask_value: float | None, size: int) -> Iterator[torch.Tensor]:
    from ..data import Loader, SequenceDataset  # the data modules import the layers

    if isinstance(data, Masked):
        yield from _masked_rows(data, size)
    elif isinstance(data, SequenceDataset | Loader):
        yield from _dataset_rows(data, size)
    elif isinstance(data, np.ndarray | torch.Tensor) and data.dtype != object:
        yield from _array_rows(torch.as_tensor(data), mask_value, size)
    elif isinstance(data, list | tuple) and len(data) > 0:
        yield from _ragged_rows(data, mask_value, size)
    else:
        raise ShapeError(
            format_error(
                "Normalization.adapt cannot read this data.",
                expected="a padded array (batch, time, features), a list of (time_i, "
                "features) arrays, a Masked, a SequenceDataset or a Loader",
                received=type(data).__name__ if not isinstance(data, list | tuple) else "[]",
                fix="pass the sequences themselves, e.g. `layer.adapt(x_train)`.",
            )
        )


def _masked_rows(x: Masked, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, x.values.shape[0], size):
        values = x.values[start : start + size]
        mask = None if x.mask is None else x.mask[start : start + size]
        yield _rows(values, mask)


def _array_rows(
    values: torch.Tensor, mask_value: float | None, size: int
) -> Iterator[torch.Tensor]:
    from ..data.layout import padded_steps

    if values.dim() < 2:
        raise ShapeError(
            format_error(
                "Normalization.adapt needs a feature axis.",
                expected="(batch, time, features), or (samples, features)",
                received=f"shape {tuple(values.shape)}",
                fix="one feature per step: `x[..., None]`.",
            )
        )
    for start in range(0, values.shape[0], size):
        chunk = values[start : start + size]
        if chunk.dim() == 2:  # (samples, features): no time axis, no padding
            yield chunk
            continue
        real = None if mask_value is None else ~padded_steps(chunk, mask_value)
        yield _rows(chunk, real)


def _ragged_rows(data: Any, mask_value: float | None, size: int) -> Iterator[torch.Tensor]:
    from ..data.layout import check_sequences

    sequences = [torch.as_tensor(np.asarray(a)) for a in data]
    check_sequences(sequences, mask_value=mask_value, name="data")
    if sequences[0].dim() < 2:
        raise ShapeError(
            format_error(
                "Normalization.adapt got token ids: 1-D sequences have no feature axis.",
                expected="a list of (time_i, features) float arrays",
                received=f"shapes such as {tuple(sequences[0].shape)}",
                fix="normalize features, not token ids (an Embedding takes those).",
            )
        )
    for start in range(0, len(sequences), size):
        yield torch.cat(sequences[start : start + size])


def _dataset_rows(data: Any, size: int) -> Iterator[torch.Tensor]:
    """A `Loader`'s batches, or a `SequenceDataset`'s in order, `size` at a time."""
    from ..data import Batch, Loader

    batches: Iterator[Batch]
    if isinstance(data, Loader):
        batches = iter(data)
    else:
        batches = (
            data.collate(range(s, min(s + size, len(data)))) for s in range(0, len(data), size)
        )
    for batch in batches:
        if isinstance(batch.x, tuple):
            raise ShapeError(
                format_error(
                    "Normalization.adapt got data of several inputs.",
                    expected="the data of one input",
                    received=f"{len(batch.x)} inputs",
                    fix="adapt each input's Normalization on its own input's data.",
                )
            )
        values, mask = batch.x.values, batch.x.mask
        if mask is None:  # a padded array's batch: its lengths say where it ends
            mask = lengths_to_mask(data.lengths[batch.index], values.shape[1])
        yield _rows(values, mask)


def _rows(values: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """The steps of `values (batch, time, ...)` where `real (batch, time)` is True, as
    rows `(n, ...)`; every step when `real` is None."""
    return values.flatten(0, 1) if real is None else values[real.to(values.device)]


class Moments:
    """The count, mean and population variance of rows added chunk by chunk, in
    float64: each chunk's in two passes, merged with the running ones by Chan et al.'s
    rule, so that neither the chunking nor large offsets cost precision.

    Example:
        >>> moments = Moments()
        >>> moments.add(torch.tensor([[1.0], [2.0]])); moments.add(torch.tensor([[3.0]]))
        >>> moments.count, moments.mean.tolist(), moments.variance.tolist()
        (3, [2.0], [0.666...])
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = torch.zeros(0, dtype=torch.float64)
        self.sum_squares = torch.zeros(0, dtype=torch.float64)

    def add(self, rows: torch.Tensor) -> None:
        """Add rows `(n, k)`: n more observations of k quantities."""
        n = rows.shape[0]
        if n == 0:
            return
        rows = rows.to(torch.float64)
        mean = rows.mean(dim=0)
        sum_squares = (rows - mean).square().sum(dim=0)
        if self.count == 0:
            self.count, self.mean, self.sum_squares = n, mean, sum_squares
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.sum_squares = (
            self.sum_squares + sum_squares + delta.square() * (self.count * n / total)
        )
        self.count = total

    @property
    def variance(self) -> torch.Tensor:
        """The population variance (divided by the count), Keras's."""
        return self.sum_squares / max(self.count, 1)
