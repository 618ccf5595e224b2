"""`make_loader` and `Loader`: padded batches from in-memory or streamed sequences."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..doctor.guards import Guard
from ..errors import ConfigError, format_error
from .batch import Batch
from .datasets import SequenceDataset
from .sampler import (
    DistributedBatchSampler,
    LengthBucketSampler,
    RandomBatchSampler,
    _check_batch_size,
    check_rank,
    share,
)
from .tables import ParquetSequences

Data = SequenceDataset | ParquetSequences
Item = tuple[int, np.ndarray, Any]


class Loader:
    """Iterate padded `Batch`es; every iteration is a new epoch.

    Each batch is padded to its own longest sequence. With `bucketing=True` batches
    hold sequences of similar length (`LengthBucketSampler`), which cuts padding; with
    `bucketing=False` they are random (`shuffle=True`) or in data order. The order
    depends only on `seed` and the epoch number (0 for the first iteration, then 1, ...;
    `set_epoch` picks one). Use `Batch.index` to put predictions back in data order.

    A `ParquetSequences` source is streamed: sequences are bucketed and shuffled within
    a window of `data.window` sequences, so memory stays flat whatever the file size.

    Data parallel (`world_size > 1`, e.g. under torchrun): `batch_size` is the global
    batch, and this process gets its share of each one (`DistributedBatchSampler`):
    every process the same number of batches, together the batches of one process.
    A process's share of a global batch smaller than the world is an empty batch
    (`Batch.size == 0`). `len(loader)` counts batches, the same on every process.

    Args:
        data: a `SequenceDataset` or a `ParquetSequences`.
        batch_size: sequences per batch.
        shuffle: reshuffle every epoch.
        bucketing: batch sequences of similar length together.
        seed: the random seed.
        drop_last: drop a last batch smaller than `batch_size`.
        rank, world_size: this process's share of the global batches; None (both) reads
            them from the process group when each epoch starts (`maskwise.distributed`;
            one process without a group).
    """

    def __init__(
        self,
        data: Data,
        batch_size: int = 32,
        shuffle: bool = True,
        bucketing: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.data = data
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = shuffle
        self.bucketing = bucketing
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        if (rank is None) != (world_size is None):
            raise ConfigError(
                format_error(
                    "rank and world_size go together.",
                    received=f"rank={rank}, world_size={world_size}",
                    fix="pass both, or neither to read them from the process group.",
                )
            )
        self.placement = (
            None if rank is None or world_size is None else check_rank(rank, world_size)
        )
        if isinstance(data, ParquetSequences) and data.window < batch_size:
            raise ConfigError(
                format_error(
                    "The streaming window is smaller than a batch.",
                    expected=f"window >= batch_size = {batch_size}",
                    received=f"window = {data.window}",
                    fix="raise `window` in ParquetSequences.",
                )
            )

    @property
    def num_sequences(self) -> int:
        return len(self.data)

    @property
    def lengths(self) -> torch.Tensor:
        """int64 `(N,)`: every sequence's real length (for a Parquet file: one pass)."""
        return self.data.lengths

    def set_epoch(self, epoch: int) -> None:
        """The next iteration uses the order of `epoch`."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.num_sequences
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def rank_and_world(self) -> tuple[int, int]:
        """`(rank, world_size)` this loader serves: as given, else the process group's."""
        if self.placement is not None:
            return self.placement
        return distributed.rank(), distributed.world_size()

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        if isinstance(self.data, ParquetSequences):
            return self._stream(self.data, epoch)
        return self._in_memory(self.data, epoch)

    def _collate(self, data: SequenceDataset, indices: list[int]) -> Batch:
        """The batch at `indices`; an empty share is the empty head of a real batch."""
        if indices:
            return data.collate(indices)
        return data.collate([0]).head(0)

    def _sampler(
        self, lengths: torch.Tensor, seed: int, epoch: int, drop_last: bool
    ) -> LengthBucketSampler | RandomBatchSampler:
        sampler: LengthBucketSampler | RandomBatchSampler
        if self.bucketing:
            sampler = LengthBucketSampler(lengths, self.batch_size, self.shuffle, seed, drop_last)
        else:
            sampler = RandomBatchSampler(
                len(lengths), self.batch_size, self.shuffle, seed, drop_last
            )
        sampler.set_epoch(epoch)
        return sampler

    def _in_memory(self, data: SequenceDataset, epoch: int) -> Iterator[Batch]:
        sampler = self._sampler(data.lengths, self.seed, epoch, self.drop_last)
        for indices in DistributedBatchSampler(sampler, *self.rank_and_world()):
            yield self._collate(data, indices)

    def _stream(self, data: ParquetSequences, epoch: int) -> Iterator[Batch]:
        buffer: list[Item] = []
        window = 0
        for item in data:
            buffer.append(item)
            if len(buffer) >= data.window:
                buffer = yield from self._flush(data, buffer, epoch, window, final=False)
                window += 1
        if buffer:
            yield from self._flush(data, buffer, epoch, window, final=True)

    def _flush(
        self, data: ParquetSequences, buffer: list[Item], epoch: int, window: int, final: bool
    ) -> Generator[Batch, None, list[Item]]:
        """Batch a window of sequences; a partial batch is kept for the next window."""
        positions = torch.tensor([item[0] for item in buffer], dtype=torch.long)
        targets = None if data.target_col is None else [item[2] for item in buffer]
        window_data = SequenceDataset(
            [item[1] for item in buffer], targets, mask_value=None, num_features=data.num_features
        )
        # Window 0 uses the seed itself: a window holding the whole file gives the
        # batches of the same data in memory.
        seed = self.seed
        if window:
            seed = int(np.random.SeedSequence([self.seed, window]).generate_state(1)[0])
        rest: list[int] = []
        rank, world = self.rank_and_world()
        sampler = self._sampler(window_data.lengths, seed, epoch, self.drop_last and final)
        for indices in sampler:
            if not final and len(indices) < self.batch_size:
                rest = indices
                continue
            batch = self._collate(window_data, share(indices, rank, world))
            yield replace(batch, index=positions[batch.index])
        return [buffer[i] for i in rest]


def make_loader(
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    shuffle: bool = True,
    bucketing: bool = True,
    seed: int = 0,
    sample_weight: Any = None,
    mask_value: float | None = 0.0,
    drop_last: bool = False,
    num_features: int | None = None,
    checks: str = "raise",
    rank: int | None = None,
    world_size: int | None = None,
) -> Loader:
    """A `Loader` of padded batches from the data users have.

    `x` may be a padded array `(N, T, ...)`, a list of per-sequence arrays `(T_i, ...)`
    (token ids: `(T_i,)` integers), a tuple of those (several inputs), a
    `SequenceDataset` (e.g. from `from_dataframe`), a `ParquetSequences`, or a `Loader`
    (returned as it is). See `maskwise.data.datasets` for the padding rules; in short:
    ragged lists give batches with a mask, padded arrays give batches without one (the
    model's `Masking` makes it) whose padded targets are `IGNORE_INDEX` / NaN.

    Example:
        >>> loader = make_loader([np.ones((3, 2)), np.ones((1, 2))], [0, 1], batch_size=2)
        >>> batch = next(iter(loader))
        >>> batch.x.mask.shape, batch.y.shape
        (torch.Size([2, 3]), torch.Size([2]))

    Args:
        x: the inputs (see above).
        y: targets, per step or per sequence; None for a data set that holds its own.
        batch_size: sequences per batch.
        shuffle: reshuffle every epoch (from `seed` and the epoch number).
        bucketing: batch sequences of similar length together (less padding).
        seed: the random seed.
        sample_weight: per sequence `(N,)` or per step, or None.
        mask_value: the padding value of padded arrays; None = every step is real.
        drop_last: drop a last batch smaller than `batch_size`.
        num_features: the features of a ragged input, to check its layout (optional).
        checks: the doctor's data checks on a bounded sample of the data, before any
            batch is made (`maskwise.doctor.guards`): `"raise"` raises a `DoctorError`
            on a masking mistake (a scrambled or time-major layout, NaN at a real step,
            ...) and warns on a probable one; `"warn"` warns on both; `"off"` skips
            them. A `Loader` given as `x` is returned unchecked.
        rank, world_size: data parallel: `batch_size` is the global batch and this
            process gets its share of each (see `Loader`); None reads them from the
            process group (torchrun) when each epoch starts.
    """
    guard = Guard(checks, "make_loader", mask_value)
    if isinstance(x, Loader | SequenceDataset | ParquetSequences):
        if y is not None or sample_weight is not None:
            raise ConfigError(
                format_error(
                    f"make_loader got a {type(x).__name__} and separate targets or weights.",
                    expected="y=None and sample_weight=None (the data set holds them)",
                    fix="build the data set with its targets, e.g. "
                    "`SequenceDataset(x, y, sample_weight)`.",
                )
            )
        if isinstance(x, Loader):
            return x
        loader = Loader(x, batch_size, shuffle, bucketing, seed, drop_last, rank, world_size)
        guard.data(x)
        guard.model()
        return loader
    guard.data(x, y, sample_weight)
    guard.model()
    data = SequenceDataset(x, y, sample_weight, mask_value=mask_value, num_features=num_features)
    return Loader(data, batch_size, shuffle, bucketing, seed, drop_last, rank, world_size)
