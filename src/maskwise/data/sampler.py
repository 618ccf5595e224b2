"""Batch samplers: `LengthBucketSampler` (similar lengths together) and `RandomBatchSampler`.

Both yield lists of indices, are reproducible from `seed`, and reshuffle
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
