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

    Example:
        >>> x = [np.ones((3, 2)), np.ones((1, 2)), np.ones((2, 2))]  # lengths 3, 1, 2
        >>> loader = Loader(SequenceDataset(x, y=[0, 1, 1]), batch_size=2, shuffle=False)
        >>> len(loader), [batch.x.lengths.tolist() for batch in loader]
        (2, [[1, 2], [3]])

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
        world = self.rank_and_world()[1]
        if isinstance(self.data, ParquetSequences) and self._sharded(world):
            return max(self._shard_batches(self.data, r, world) for r in range(world))
        n = self.num_sequences
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def rank_and_world(self) -> tuple[int, int]:
        """`(rank, world_size)` this loader serves: as given, else the process group's."""
        rank, world = self.placement or (distributed.rank(), distributed.world_size())
        if self.batch_size < world:
            raise ConfigError(
                format_error(
                    f"batch_size {self.batch_size} is smaller than the {world} processes: "
                    "some would never get a sequence.",
                    expected=f"batch_size >= {world} (the global batch, split across them)",
                    received=f"batch_size={self.batch_size}",
                    fix="raise batch_size; it counts the sequences of all processes.",
                )
            )
        return rank, world

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
        self, lengths: torch.Tensor, seed: int, epoch: int, drop_last: bool, batch_size: int
    ) -> LengthBucketSampler | RandomBatchSampler:
        sampler: LengthBucketSampler | RandomBatchSampler
        if self.bucketing:
            sampler = LengthBucketSampler(lengths, batch_size, self.shuffle, seed, drop_last)
        else:
            sampler = RandomBatchSampler(len(lengths), batch_size, self.shuffle, seed, drop_last)
        sampler.set_epoch(epoch)
        return sampler

    def _in_memory(self, data: SequenceDataset, epoch: int) -> Iterator[Batch]:
        sampler = self._sampler(data.lengths, self.seed, epoch, self.drop_last, self.batch_size)
        for indices in DistributedBatchSampler(sampler, *self.rank_and_world()):
            yield self._collate(data, indices)

    # ------------------------------------------------------------------ streaming
    def _sharded(self, world: int) -> bool:
        """Whether each process streams its own row groups (`ParquetSequences.shard`)."""
        return world > 1 and isinstance(self.data, ParquetSequences) and self.data.shard

    def _shard_batches(self, data: ParquetSequences, rank: int, world: int) -> int:
        """The batches process `rank` makes of its own sequences (sharded streaming)."""
        n = len(data.shard_positions(rank, world))
        size = len(share(range(self.batch_size), rank, world))
        return n // size if self.drop_last else -(-n // size)

    def _stream(self, data: ParquetSequences, epoch: int) -> Iterator[Batch]:
        """Stream the file in windows. One process, or `shard=False`: the global batches
        (each process takes its share of each). Sharded: this process's sequences in
        batches of its share of `batch_size`, then empty batches up to the count of the
        process with the most, so that every process makes the same number of steps."""
        rank, world = self.rank_and_world()
        sharded = self._sharded(world)
        made, last = 0, None
        for last in self._windows(data, epoch, rank, world, sharded):
            made += 1
            yield last
        if sharded and last is not None:
            for _ in range(len(self) - made):
                yield last.head(0)

    def _windows(
        self, data: ParquetSequences, epoch: int, rank: int, world: int, sharded: bool
    ) -> Iterator[Batch]:
        """The batches of the stream, a window of sequences at a time."""
        split: tuple[int, int] | None = (rank, world)
        items, size, key = iter(data), self.batch_size, []
        if sharded:
            if not len(data.shard_positions(rank, world)):
                raise ConfigError(
                    format_error(
                        f"Process {rank} of {world} gets no row group of {data.path}: the "
                        "file has fewer row groups than processes.",
                        fix="write the file with smaller row groups (`row_group_size=`), "
                        "or pass ParquetSequences(..., shard=False).",
                    )
                )
            split, size, key = None, len(share(range(self.batch_size), rank, world)), [rank]
            items = data.iter_shard(rank, world)
        buffer: list[Item] = []
        window = 0
        for item in items:
            buffer.append(item)
            if len(buffer) >= data.window:
                seed = self._window_seed(key, window)
                buffer = yield from self._flush(data, buffer, epoch, seed, False, size, split)
                window += 1
        seed = self._window_seed(key, window)
        yield from self._flush(data, buffer, epoch, seed, True, size, split)

    def _window_seed(self, key: list[int], window: int) -> int:
        """The shuffle seed of a window (`key`: the rank when sharded). Window 0 of one
        process uses the seed itself: a window holding the whole file gives the batches
        of the same data in memory."""
        if not window and not key:
            return self.seed
        return int(np.random.SeedSequence([self.seed, *key, window]).generate_state(1)[0])

    def _flush(
        self,
        data: ParquetSequences,
        buffer: list[Item],
        epoch: int,
        seed: int,
        final: bool,
        size: int,
        split: tuple[int, int] | None,
    ) -> Generator[Batch, None, list[Item]]:
        """Batch a window of sequences in batches of `size` (each process's share of
        them when `split` is `(rank, world_size)`); a partial batch is kept for the
        next window."""
        if not buffer:
            return []
        positions = torch.tensor([item[0] for item in buffer], dtype=torch.long)
        targets = None if data.target_col is None else [item[2] for item in buffer]
        window_data = SequenceDataset(
            [item[1] for item in buffer], targets, mask_value=None, num_features=data.num_features
        )
        rest: list[int] = []
        sampler = self._sampler(window_data.lengths, seed, epoch, self.drop_last and final, size)
        for indices in sampler:
            if not final and len(indices) < size:
                rest = indices
                continue
            batch = self._collate(window_data, indices if split is None else share(indices, *split))
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
