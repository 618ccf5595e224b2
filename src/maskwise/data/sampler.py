"""Batch samplers: `LengthBucketSampler` (similar lengths together), `RandomBatchSampler`,
and `DistributedBatchSampler` (one process's share of either).

All yield lists of indices, are reproducible from `seed`, and reshuffle
deterministically per epoch (`set_epoch`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError, format_error


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ConfigError(
            format_error("batch_size must be a positive integer.", received=repr(batch_size))
        )
    return batch_size


def _cut(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _Sampler:
    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool) -> None:
        self.n = n
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of `epoch` (same seed and epoch, same batches)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._batches(rng)
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return iter([b.tolist() for b in batches])


class LengthBucketSampler(_Sampler):
    """Batches of sequences of similar length, so each batch needs little padding.

    The indices are shuffled (a random tie-break), cut into pools of `pool_batches`
    batches, sorted by length within each pool and cut into batches; the batches are
    then shuffled. Only the last batch can be smaller than `batch_size`. With
    `shuffle=False` the pools are taken in data order and the batches kept in order.

    Example:
        >>> s = LengthBucketSampler([5, 1, 4, 2], batch_size=2, shuffle=False)
        >>> list(s)
        [[1, 3], [2, 0]]

    Args:
        lengths: the length of every sequence, `(N,)`.
        batch_size: sequences per batch.
        shuffle: reshuffle every epoch (from `seed` and the epoch number).
        seed: the random seed.
        drop_last: drop the last batch when it is smaller than `batch_size`.
        pool_batches: how many batches are sorted together; larger = less padding,
            smaller = more varied batches across epochs. None sorts the whole epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray | torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int | None = 50,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(len(self.lengths), batch_size, shuffle, seed, drop_last)
        self.pool = len(self.lengths) if pool_batches is None else pool_batches * self.batch_size
        self.pool = max(self.pool, 1)

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        batches: list[np.ndarray] = []
        for start in range(0, self.n, self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(_cut(pool, self.batch_size))
        return batches


class RandomBatchSampler(_Sampler):
    """Batches in random order (`shuffle=True`) or in data order, whatever the lengths.

    Example:
        >>> list(RandomBatchSampler(5, batch_size=2, shuffle=False))
        [[0, 1], [2, 3], [4]]
        >>> list(RandomBatchSampler(5, batch_size=2, shuffle=False, drop_last=True))
        [[0, 1], [2, 3]]
        >>> sorted(sum(RandomBatchSampler(5, batch_size=2), []))  # shuffled: each once
        [0, 1, 2, 3, 4]

    Args:
        n: number of sequences.
        batch_size: sequences per batch.
        shuffle: reshuffle every epoch (from `seed` and the epoch number).
        seed: the random seed.
        drop_last: drop the last batch when it is smaller than `batch_size`.
    """

    def __init__(
        self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> None:
        super().__init__(n, batch_size, shuffle, seed, drop_last)

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return _cut(order, self.batch_size)


def share(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Process `rank`'s share of a global batch: every `world_size`-th index from `rank`.

    Shares differ in size by at most one; taking every W-th sequence of a batch sorted
    by length gives every process sequences of about the same lengths (the same work
    per step). A batch of fewer sequences than processes leaves some shares empty.
    """
    return list(indices[rank::world_size])


def check_rank(rank: int, world_size: int) -> tuple[int, int]:
    """`(rank, world_size)` checked: `0 <= rank < world_size`."""
    for name, value in (("rank", rank), ("world_size", world_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(format_error(f"{name} must be an integer.", received=repr(value)))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(
            format_error(
                "rank must be in 0..world_size - 1.",
                received=f"rank={rank}, world_size={world_size}",
                fix="leave both None to read them from the process group (torchrun).",
            )
        )
    return rank, world_size


class DistributedBatchSampler:
    """One process's share of every batch of a batch sampler (data parallel).

    The wrapped sampler's `batch_size` is the *global* batch (Keras's meaning): each
    of its batches is split across the `world_size` processes (`share`), so every
    process gets the same number of batches, in an order fixed by the sampler's seed
    and epoch, and together the processes see exactly the batches one process would.
    The share of a global batch holding fewer sequences than processes may be empty.

    Example:
        >>> inner = LengthBucketSampler([5, 1, 4, 2], batch_size=2, shuffle=False)
        >>> list(DistributedBatchSampler(inner, rank=1, world_size=2))
        [[3], [0]]

    Args:
        sampler: a `LengthBucketSampler` or `RandomBatchSampler` of global batches.
        rank: this process's rank.
        world_size: the number of processes.
    """

    def __init__(
        self, sampler: LengthBucketSampler | RandomBatchSampler, rank: int, world_size: int
    ) -> None:
        self.sampler = sampler
        self.rank, self.world_size = check_rank(rank, world_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of `epoch` (every process must pass the same one)."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.sampler:
            yield share(indices, self.rank, self.world_size)
