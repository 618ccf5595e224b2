import numpy as np
import pytest
import torch

from maskwise import ConfigError, DoctorError, Masked, ShapeError
from maskwise.data import Batch, Loader, SequenceDataset, make_loader


def _ragged(n: int = 40, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, size=n)
    xs = [rng.normal(size=(t, 3)).astype(np.float32) for t in lengths]
    ys = [rng.integers(0, 2, size=t) for t in lengths]
    return xs, ys


def test_batches_match_hand_padding_and_cover_the_data_once():
    xs, ys = _ragged()
    loader = make_loader(xs, ys, batch_size=8, seed=5)
    assert len(loader) == 5 and loader.num_sequences == 40
    assert loader.lengths.tolist() == [len(a) for a in xs]
    seen = []
    for batch in loader:
        rows = batch.index.tolist()
        seen += rows
        time = max(len(xs[i]) for i in rows)
        expected = torch.zeros(len(rows), time, 3)
        expected_y = torch.full((len(rows), time), -100)
        for r, i in enumerate(rows):
            expected[r, : len(xs[i])] = torch.from_numpy(xs[i])
            expected_y[r, : len(xs[i])] = torch.from_numpy(ys[i])
        torch.testing.assert_close(batch.x.values, expected, rtol=0, atol=0)
        assert batch.x.mask.sum(1).tolist() == [len(xs[i]) for i in rows]
        assert torch.equal(batch.y, expected_y)
    assert sorted(seen) == list(range(40))


def test_each_iteration_is_a_new_reproducible_epoch():
    xs, ys = _ragged()
    a, b = make_loader(xs, ys, batch_size=8, seed=1), make_loader(xs, ys, batch_size=8, seed=1)
    epoch0 = [x.index.tolist() for x in a]
    epoch1 = [x.index.tolist() for x in a]
    assert epoch0 != epoch1
    assert [x.index.tolist() for x in b] == epoch0
    b.set_epoch(1)
    assert [x.index.tolist() for x in b] == epoch1


def test_bucketing_reduces_padding_in_the_loader():
    rng = np.random.default_rng(2)
    xs = [np.ones((int(t), 1), np.float32) for t in np.ceil(rng.lognormal(2.5, 0.9, size=600))]

    def padded(loader: Loader) -> int:
        return sum(int((~b.x.mask).sum()) for b in loader)

    bucketed = padded(make_loader(xs, batch_size=16))
    random = padded(make_loader(xs, batch_size=16, bucketing=False))
    assert bucketed < random


def test_unshuffled_unbucketed_loader_keeps_data_order_and_drop_last():
    xs, ys = _ragged(10)
    loader = make_loader(xs, ys, batch_size=4, shuffle=False, bucketing=False, drop_last=True)
    assert [b.index.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(loader) == 2


def test_padded_array_loader_has_no_mask_and_ignores_padded_targets():
    x = np.zeros((4, 6, 2), np.float32)
    y = np.ones((4, 6), np.int64)
    for i, t in enumerate([6, 2, 3, 1]):
        x[i, :t] = 1.0
    batch = next(iter(make_loader(x, y, batch_size=4, shuffle=False)))
    assert batch.x.mask is None
    assert batch.index.tolist() == [3, 1, 2, 0]
    assert batch.y.tolist() == [
        [1, -100, -100, -100, -100, -100],
        [1, 1, -100, -100, -100, -100],
        [1, 1, 1, -100, -100, -100],
        [1] * 6,
    ]


def test_batch_to_moves_everything():
    xs, ys = _ragged(4)
    batch = next(iter(make_loader(xs, ys, batch_size=4, sample_weight=np.ones(4))))
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and isinstance(moved.x, Masked)
    assert moved.x.mask.dtype == torch.bool and moved.y.dtype == torch.int64
    assert moved.size == 4


def test_a_batch_unpacks_as_a_pytorch_loaders_inputs_and_targets():
    xs, ys = _ragged(8)
    for x, y in make_loader(xs, ys, batch_size=4):  # PyTorch's `for x, y in loader`
        assert isinstance(x, Masked) and y.shape == x.shape[:2]
    batch = next(iter(make_loader(xs, ys, batch_size=4, shuffle=False)))
    x, y = batch
    assert x is batch.x and y is batch.y
    weighted = next(iter(make_loader(xs, ys, batch_size=4, sample_weight=np.ones(8))))
    x, y, weight = weighted  # with weights: three, so that `x, y = batch` cannot drop them
    assert weight is weighted.sample_weight
    with pytest.raises(ValueError, match="too many values to unpack"):
        x, y = weighted


def test_seed000_data_layout_error_through_make_loader():
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for length in (16, 20, 12):
        a = np.zeros((5, 20))
        a[:, :length] = rng.normal(size=(5, length)) + 2.0
        xs.append(a)
        ys.append(np.where(np.arange(20) < length, 1.0, 0.0))
    # The doctor's guard stops it first, with the repair; the loader's own check stays.
    with pytest.raises(DoctorError, match=r"MW001 error(.|\n)*use `\[s\.T for s in x\]`"):
        make_loader(xs, ys)
    with pytest.raises(ShapeError, match=r"\(features, time\) = \(5, 20\)"):
        make_loader(xs, ys, checks="off")


def test_loader_argument_errors():
    xs, ys = _ragged(4)
    data = SequenceDataset(xs, ys)
    with pytest.raises(ConfigError, match="separate targets or weights"):
        make_loader(data, ys)
    loader = make_loader(data)
    assert make_loader(loader) is loader
    with pytest.raises(ShapeError, match=r"len\(y\) = 3"):
        make_loader(xs, ys[:3])
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(xs, ys, batch_size=-1)


def test_each_rank_gets_its_share_of_the_global_batches():
    x, y = _ragged(23)
    single = [b.index.tolist() for b in make_loader(x, y, batch_size=8, seed=4)]
    ranks = [list(make_loader(x, y, batch_size=8, seed=4, rank=r, world_size=3)) for r in range(3)]
    assert [len(batches) for batches in ranks] == [len(single)] * 3
    for step, indices in enumerate(single):
        shares = [ranks[r][step].index.tolist() for r in range(3)]
        assert sorted(i for share in shares for i in share) == sorted(indices)
        for r in range(3):  # each share is padded to its own longest sequence
            batch = ranks[r][step]
            assert batch.x.values.shape[1] == max(len(x[i]) for i in shares[r])


def test_an_empty_share_is_an_empty_batch_with_the_data_layout():
    x, y = _ragged(5)
    batches = list(make_loader(x, y, batch_size=4, shuffle=False, rank=1, world_size=2))
    assert [b.size for b in batches] == [2, 0]  # the last global batch holds 1 sequence
    empty, full = batches[1], batches[0]
    assert empty.x.values.shape[0] == empty.x.mask.shape[0] == empty.y.shape[0] == 0
    assert empty.x.values.shape[2:] == full.x.values.shape[2:]
    assert empty.x.values.dtype == full.x.values.dtype and empty.y.dtype == full.y.dtype


def test_rank_and_world_size_go_together():
    x, y = _ragged(4)
    with pytest.raises(ConfigError, match=r"(?s)rank and world_size go together.*rank=1"):
        make_loader(x, y, rank=1)
    with pytest.raises(ConfigError, match=r"(?s)rank must be in.*rank=3, world_size=2"):
        make_loader(x, y, rank=3, world_size=2)


def test_the_global_batch_holds_at_least_one_sequence_per_process():
    x, y = _ragged(8)
    loader = make_loader(x, y, batch_size=2, rank=0, world_size=3)
    with pytest.raises(ConfigError, match=r"(?s)batch_size 2 is smaller than the 3 processes"):
        list(loader)


def test_a_list_of_empty_sequences_loads():
    x = [np.zeros((0, 2), "float32"), np.zeros((0, 2), "float32")]
    batch = next(iter(make_loader(x, batch_size=2, shuffle=False)))
    assert batch.x.lengths.tolist() == [0, 0]
