import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import ConfigError
from maskwise.data import DistributedBatchSampler, LengthBucketSampler, RandomBatchSampler


def _padded_steps(lengths: np.ndarray, batches: list[list[int]]) -> int:
    return sum(len(b) * int(lengths[b].max()) - int(lengths[b].sum()) for b in batches)


def test_bucketing_needs_less_padding_than_random_batches():
    lengths = np.ceil(np.random.default_rng(0).lognormal(3.0, 0.8, size=2000)).astype(int)
    bucketed = list(LengthBucketSampler(lengths, 32, seed=1))
    random = list(RandomBatchSampler(len(lengths), 32, seed=1))
    assert _padded_steps(lengths, bucketed) * 3 < _padded_steps(lengths, random)


def test_reproducible_from_seed_and_different_across_epochs():
    lengths = np.random.default_rng(1).integers(1, 50, size=300)
    a, b, c = (LengthBucketSampler(lengths, 16, seed=s) for s in (3, 3, 4))
    assert list(a) == list(b)
    assert list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) != first
    assert list(a) == list(b)


def test_unshuffled_bucketing_sorts_within_pools():
    s = LengthBucketSampler([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
    assert list(s) == [[1, 3], [4, 2], [0]]
    assert list(RandomBatchSampler(5, 2, shuffle=False)) == [[0, 1], [2, 3], [4]]
    assert len(s) == 3


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 30), min_size=1, max_size=80),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    epoch=st.integers(0, 5),
    drop_last=st.booleans(),
    pool=st.sampled_from([1, 3, None]),
)
def test_every_sequence_once_per_epoch(lengths, batch_size, seed, epoch, drop_last, pool):
    for sampler in (
        LengthBucketSampler(lengths, batch_size, True, seed, drop_last, pool_batches=pool),
        RandomBatchSampler(len(lengths), batch_size, True, seed, drop_last),
    ):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen = [i for b in batches for i in b]
        assert len(seen) == len(set(seen))
        assert sum(len(b) < batch_size for b in batches) <= 1  # only one short batch
        if drop_last:
            assert len(seen) == len(lengths) // batch_size * batch_size
        else:
            assert sorted(seen) == list(range(len(lengths)))


def test_bad_batch_size():
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        LengthBucketSampler([1, 2], 0)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=60),
    batch_size=st.integers(1, 9),
    world=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    epoch=st.integers(0, 3),
    bucketing=st.booleans(),
)
def test_distributed_shares_split_the_global_batches(
    lengths, batch_size, world, seed, epoch, bucketing
):
    def inner():
        if bucketing:
            return LengthBucketSampler(lengths, batch_size, seed=seed)
        return RandomBatchSampler(len(lengths), batch_size, seed=seed)

    single = inner()
    single.set_epoch(epoch)
    global_batches = list(single)
    per_rank = []
    for rank in range(world):
        sampler = DistributedBatchSampler(inner(), rank, world)
        sampler.set_epoch(epoch)
        per_rank.append(list(sampler))
        assert len(per_rank[-1]) == len(sampler) == len(global_batches)  # same count
    for step, batch in enumerate(global_batches):
        shares = [per_rank[r][step] for r in range(world)]
        assert sorted(i for s in shares for i in s) == sorted(batch)  # disjoint, complete
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1


def test_distributed_share_takes_every_wth_sequence_of_a_sorted_batch():
    inner = LengthBucketSampler([5, 1, 4, 2, 3, 6], batch_size=6, shuffle=False)
    assert list(DistributedBatchSampler(inner, 0, 2)) == [[1, 4, 0]]  # lengths 1, 3, 5
    assert list(DistributedBatchSampler(inner, 1, 2)) == [[3, 2, 5]]  # lengths 2, 4, 6
    few = LengthBucketSampler([5, 1, 4], batch_size=2, shuffle=False)
    assert list(DistributedBatchSampler(few, 1, 2)) == [[2], []]  # a short last batch


@pytest.mark.parametrize(
    ("rank", "world", "message"),
    [
        (2, 2, "rank must be in 0..world_size - 1.*rank=2, world_size=2"),
        (0, 0, "rank must be in 0..world_size - 1.*rank=0, world_size=0"),
        (-1, 2, "rank must be in 0..world_size - 1"),
        (0.0, 2, "rank must be an integer.*0.0"),
    ],
)
def test_distributed_sampler_refuses_a_bad_rank(rank, world, message):
    with pytest.raises(ConfigError, match="(?s)" + message):
        DistributedBatchSampler(RandomBatchSampler(4, 2), rank, world)
