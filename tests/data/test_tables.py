import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import ConfigError, MaskwiseTypeError, ShapeError
from maskwise.data import ParquetSequences, from_dataframe, make_loader


def _data(n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=n)
    xs = [rng.normal(size=(t, 2)).astype(np.float32) for t in lengths]
    ys = [rng.integers(0, 3, size=t) for t in lengths]
    return xs, ys


def _long(xs, ys, ids=None) -> pd.DataFrame:
    ids = list(range(len(xs))) if ids is None else ids
    rows = [
        {"seq": sid, "step": t, "a": x[t, 0], "b": x[t, 1], "label": y[t]}
        for sid, x, y in zip(ids, xs, ys, strict=True)
        for t in range(len(x))
    ]
    return pd.DataFrame(rows)


def _same_batches(left, right) -> None:
    left, right = list(left), list(right)
    assert len(left) == len(right)
    for p, q in zip(left, right, strict=True):
        assert p.index.tolist() == q.index.tolist()
        torch.testing.assert_close(p.x.values, q.x.values, rtol=0, atol=0)
        assert torch.equal(p.x.mask, q.x.mask) and torch.equal(p.y, q.y)


def _write(df: pd.DataFrame, path, row_group_size: int) -> None:
    pq.write_table(
        pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group_size
    )


def test_dataframe_gives_the_batches_of_the_list_path():
    xs, ys = _data()
    df = _long(xs, ys).sample(frac=1.0, random_state=0)  # rows in any order
    data = from_dataframe(df, "seq", "step", ["a", "b"], "label")
    assert data.sequence_ids == list(range(30))
    _same_batches(
        make_loader(data, batch_size=4, seed=3), make_loader(xs, ys, batch_size=4, seed=3)
    )


def test_dataframe_per_sequence_targets_and_token_column():
    df = pd.DataFrame({"id": ["b", "b", "a"], "t": [1, 0, 0], "tok": [4, 3, 9], "cls": [1, 1, 0]})
    batch = from_dataframe(df, "id", "t", "tok", "cls", per_step=False).collate([0, 1])
    assert batch.x.values.tolist() == [[9, 0], [3, 4]] and batch.y.tolist() == [0, 1]
    df.loc[0, "cls"] = 0
    with pytest.raises(ShapeError, match="Sequence 'b' has different targets"):
        from_dataframe(df, "id", "t", "tok", "cls", per_step=False)
    with pytest.raises(ConfigError, match="has no column 'nope'"):
        from_dataframe(df, "id", "t", ["nope"])


def test_parquet_spanning_row_groups_gives_the_batches_of_the_list_path(tmp_path):
    xs, ys = _data()
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=7)
    assert pq.ParquetFile(path).metadata.num_row_groups > 10
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=64, rows_per_read=5)
    assert data.lengths.tolist() == [len(x) for x in xs]
    for shuffle in (False, True):  # one window holds all: the same order as in memory
        _same_batches(
            make_loader(data, batch_size=4, shuffle=shuffle, seed=2),
            make_loader(xs, ys, batch_size=4, shuffle=shuffle, seed=2),
        )
    small = ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=8, rows_per_read=5)
    _same_batches(
        make_loader(small, batch_size=4, shuffle=False, bucketing=False),
        make_loader(xs, ys, batch_size=4, shuffle=False, bucketing=False),
    )


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 40),
    window=st.integers(4, 20),
    batch_size=st.integers(1, 4),
    seed=st.integers(0, 1000),
    bucketing=st.booleans(),
    rows_per_read=st.integers(1, 30),
)
def test_streaming_yields_every_sequence_once_per_epoch(
    tmp_path_factory, n, window, batch_size, seed, bucketing, rows_per_read
):
    xs, ys = _data(n, seed)
    path = tmp_path_factory.mktemp("p") / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=5)
    data = ParquetSequences(
        path, "seq", "step", ["a", "b"], "label", window=window, rows_per_read=rows_per_read
    )
    loader = make_loader(data, batch_size=batch_size, seed=seed, bucketing=bucketing)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert sum(b.size < batch_size for b in batches) <= 1
        for b in batches:  # each row's values and targets are its own sequence's
            for row, i in enumerate(b.index.tolist()):
                t = len(xs[i])
                torch.testing.assert_close(
                    b.x.values[row, :t], torch.from_numpy(xs[i]), rtol=0, atol=0
                )
                assert b.y[row, :t].tolist() == ys[i].tolist()
        seen = [i for b in batches for i in b.index.tolist()]
        assert sorted(seen) == list(range(n))


def test_streaming_epochs_differ(tmp_path):
    xs, ys = _data(60)
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=50)
    loader = make_loader(
        ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=16), batch_size=4
    )
    first = [b.index.tolist() for b in loader]
    assert [b.index.tolist() for b in loader] != first


def test_parquet_errors(tmp_path):
    xs, ys = _data(4)
    path = tmp_path / "seq.parquet"
    df = _long(xs, ys, ids=[1, 2, 1, 3])
    _write(df, path, row_group_size=3)
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label")
    with pytest.raises(ShapeError, match="Sequence id 1 appears again"):
        list(make_loader(data))
    with pytest.raises(ConfigError, match="has no column 'c'"):
        ParquetSequences(path, "seq", "step", ["a", "c"])
    with pytest.raises(ConfigError, match="window is smaller than a batch"):
        make_loader(ParquetSequences(path, "seq", "step", ["a"], window=2), batch_size=4)


def test_streaming_does_not_hold_the_file_in_memory(tmp_path):
    xs, ys = _data(2000)
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=300)  # ~30 row groups
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=16, rows_per_read=300)
    peak = 0
    for _ in make_loader(data, batch_size=8):
        peak = max(peak, pa.total_allocated_bytes())
    file_bytes = pq.read_table(path).nbytes
    assert peak < file_bytes / 5


def test_unsharded_streamed_shares_are_the_shares_of_the_streamed_batches(tmp_path):
    xs, ys = _data(37)
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=20)
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=16, shard=False)
    single = list(make_loader(data, batch_size=6, seed=2))
    ranks = [list(make_loader(data, batch_size=6, seed=2, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for step, batch in enumerate(single):
        indices = batch.index.tolist()
        assert [b.index.tolist() for b in (ranks[0][step], ranks[1][step])] == [
            indices[0::2],
            indices[1::2],
        ]


def _steps_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"seq": [0.0, 0.0, 1.0, 1.0], "step": [0.0, 1.0, 0.0, 1.0], "a": [1.0, 2.0, 3.0, 4.0]},
        index=[10, 11, 12, 13],
    )


@pytest.mark.parametrize(("column", "what"), [("seq", "sequence id"), ("step", "step number")])
def test_dataframe_rows_without_an_id_or_a_step(column, what):
    df = _steps_frame()
    df.loc[12, column] = np.nan
    pattern = (
        rf"(?s)Column '{column}' has no {what} at row 12 .*fix: .*dropna\(subset=\['{column}'\]\)"
    )
    with pytest.raises(ShapeError, match=pattern):
        from_dataframe(df, "seq", "step", ["a"])
    strings = _steps_frame().astype({"seq": str})
    strings.loc[11, "seq"] = None
    with pytest.raises(ShapeError, match="Column 'seq' has no sequence id at row 11"):
        from_dataframe(strings, "seq", "step", ["a"])


def test_dataframe_duplicate_steps():
    df = _steps_frame()
    df.loc[13, "step"] = 0.0
    pattern = (
        r"(?s)Sequence 1.0 has two rows with step 0.0 in column 'step' \(the second at row "
        r"13\).*fix: drop the duplicates"
    )
    with pytest.raises(ShapeError, match=pattern):
        from_dataframe(df, "seq", "step", ["a"])


def test_parquet_rows_without_an_id_or_a_step_and_duplicate_steps(tmp_path):
    for column, what in (("seq", "sequence id"), ("step", "step number")):
        df = _steps_frame()
        df.loc[13, column] = np.nan
        path = tmp_path / f"{column}.parquet"
        _write(df, path, row_group_size=2)
        data = ParquetSequences(path, "seq", "step", ["a"], rows_per_read=2)
        with pytest.raises(ShapeError, match=f"Column '{column}' has no {what} at row 3 "):
            list(data)
    with pytest.raises(ShapeError, match="Column 'seq' has no sequence id at row 3 "):
        ParquetSequences(tmp_path / "seq.parquet", "seq", "step", ["a"]).lengths  # noqa: B018
    df = _steps_frame()
    df.loc[13, "step"] = 0.0
    _write(df, tmp_path / "twice.parquet", row_group_size=3)
    data = ParquetSequences(tmp_path / "twice.parquet", "seq", "step", ["a"], rows_per_read=3)
    with pytest.raises(ShapeError, match=r"Sequence 1.0 has two rows with step 0.0 .*row 3\)"):
        list(data)


def _row_groups_read(monkeypatch) -> list[int]:
    """Record the row groups every `iter_batches` call reads (None: all of them)."""
    read: list[int] = []
    original = pq.ParquetFile.iter_batches

    def recording(self, *args, row_groups=None, **kwargs):
        read.extend(range(self.num_row_groups) if row_groups is None else row_groups)
        return original(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    return read


@pytest.mark.parametrize("drop_last", [False, True])
def test_sharded_streaming_reads_only_its_row_groups(tmp_path, monkeypatch, drop_last):
    xs, ys = _data(53, seed=1)  # lengths 1..8: sequences cross the row-group boundaries
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=23)
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label", window=8)
    n_groups = pq.ParquetFile(path).num_row_groups
    assert n_groups >= 8
    seen = []
    for rank in range(3):
        loader = make_loader(
            data, batch_size=7, seed=1, rank=rank, world_size=3, drop_last=drop_last
        )
        assert len(data.lengths) == 53  # the one pass over the id column, before recording
        read = _row_groups_read(monkeypatch)
        batches = list(loader)
        monkeypatch.undo()
        # Its own row groups, and the next one where its last sequence ends.
        own = {g for g in range(n_groups) if g % 3 == rank}
        assert set(read) <= own | {g + 1 for g in own}
        assert len(batches) == len(loader)  # the same count on every rank
        assert all(b.size <= len(range(rank, 7, 3)) for b in batches)
        mine = data.shard_positions(rank, 3).tolist()
        indices = [i for b in batches for i in b.index.tolist()]
        assert set(indices) <= set(mine)
        if not drop_last:
            assert sorted(indices) == mine
        for b in batches:  # each row's values are its own sequence's
            for row, i in enumerate(b.index.tolist()):
                t = len(xs[i])
                torch.testing.assert_close(
                    b.x.values[row, :t], torch.from_numpy(xs[i]), rtol=0, atol=0
                )
        seen.append(indices)
    assert len({len(make_loader(data, batch_size=7, rank=r, world_size=3)) for r in range(3)}) == 1
    if not drop_last:  # together, every sequence once
        assert sorted(i for indices in seen for i in indices) == list(range(53))


def test_sharded_streaming_needs_a_row_group_per_process(tmp_path):
    xs, ys = _data(6)
    path = tmp_path / "seq.parquet"
    _write(_long(xs, ys), path, row_group_size=1000)  # one row group
    data = ParquetSequences(path, "seq", "step", ["a", "b"], "label")
    loader = make_loader(data, batch_size=4, rank=1, world_size=2)
    with pytest.raises(ConfigError, match=r"(?s)Process 1 of 2 gets no row group.*shard=False"):
        list(loader)


@pytest.mark.parametrize(
    "column, values",
    [
        ("a", pd.Categorical(["u", "v", "u"])),
        ("a", ["u", "v", "w"]),
        ("label", pd.Categorical(["p", "q", "p"])),
    ],
)
def test_text_and_categorical_columns_name_the_column_and_the_encoding(tmp_path, column, values):
    df = pd.DataFrame({"seq": [0, 0, 1], "step": [0, 1, 0], "a": [1.0, 2.0, 3.0], "label": 0})
    df[column] = values
    with pytest.raises(MaskwiseTypeError, match=rf"(?s)Column '{column}'.*numbers.*cat\.codes"):
        from_dataframe(df, "seq", "step", ["a"], "label")
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(MaskwiseTypeError, match=rf"Column '{column}'"):
        list(ParquetSequences(tmp_path / "t.parquet", "seq", "step", ["a"], "label"))


def test_empty_dataframe_says_it_has_no_rows():
    df = pd.DataFrame({"seq": [], "step": [], "a": []})
    with pytest.raises(ShapeError, match="no rows"):
        from_dataframe(df, "seq", "step", ["a"])


def test_per_sequence_nan_target_is_one_target_not_different_ones():
    # NaN != NaN: a sequence whose rows all hold NaN holds one (missing) target.
    df = pd.DataFrame({"seq": [0, 0, 1], "step": [0, 1, 0], "a": [1.0, 2.0, 3.0]})
    df["label"] = [np.nan, np.nan, 1.0]
    ds = from_dataframe(df, "seq", "step", ["a"], "label", per_step=False)
    assert np.isnan(ds.collate([0]).y.item())
    df["label"] = [np.nan, 0.0, 1.0]
    with pytest.raises(ShapeError, match=r"(?s)different targets.*\[0\.0, nan\]"):
        from_dataframe(df, "seq", "step", ["a"], "label", per_step=False)


def test_dataframe_with_ids_in_its_index_says_reset_index():
    xs, ys = _data(3)
    df = _long(xs, ys).set_index(["seq", "step"])  # what a groupby leaves
    with pytest.raises(ConfigError, match=r"(?s)no column 'seq'.*index.*df\.reset_index\(\)"):
        from_dataframe(df, "seq", "step", ["a", "b"], "label")


def test_one_float_feature_named_alone_says_pass_a_list(tmp_path):
    # A column name alone means token ids; one float feature is a list of one column.
    df = pd.DataFrame({"seq": [0, 0, 1], "step": [0, 1, 0], "value": [0.5, 1.5, 2.5]})
    with pytest.raises(ShapeError, match=r"(?s)'value'.*token ids.*\['value'\]"):
        from_dataframe(df, "seq", "step", "value")
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ShapeError, match=r"\['value'\]"):
        list(ParquetSequences(tmp_path / "t.parquet", "seq", "step", "value"))
    batch = from_dataframe(df, "seq", "step", ["value"]).collate([0, 1])
    assert batch.x.values[..., 0].tolist() == [[0.5, 1.5], [2.5, 0.0]]


def test_text_step_numbers_raise_instead_of_sorting_as_text(tmp_path):
    # As text, "10" sorts before "9": the steps would be silently reordered.
    df = pd.DataFrame({"seq": [0] * 3, "step": ["8", "9", "10"], "a": [1.0, 2.0, 3.0]})
    with pytest.raises(MaskwiseTypeError, match=r"(?s)'step'.*text.*pd\.to_numeric"):
        from_dataframe(df, "seq", "step", ["a"])
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(MaskwiseTypeError, match="'step'"):
        list(ParquetSequences(tmp_path / "t.parquet", "seq", "step", ["a"]))
    dates = df.assign(step=pd.to_datetime(["2020-01-08", "2020-01-09", "2020-01-10"]))
    assert from_dataframe(dates, "seq", "step", ["a"]).collate([0]).x.values[0, :, 0].tolist() == [
        1.0,
        2.0,
        3.0,
    ]


def test_target_among_the_features_raises(tmp_path):
    # `feature_cols=[c for c in df.columns if c != "seq"]` takes the target too: the
    # model would read the answer from its inputs.
    xs, ys = _data(3)
    df = _long(xs, ys)
    with pytest.raises(ConfigError, match=r"(?s)'label' is both.*feature_cols"):
        from_dataframe(df, "seq", "step", ["step", "a", "b", "label"], "label")
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ConfigError, match="'label' is both"):
        ParquetSequences(tmp_path / "t.parquet", "seq", "step", ["a", "label"], "label")
