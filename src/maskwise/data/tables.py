"""Sequences stored as tables in long format: one row per (sequence, step).

`from_dataframe` reads a pandas DataFrame into memory; `ParquetSequences` streams a
Parquet file in row-group-sized chunks, so a file larger than memory can be trained on.
Both need the optional `data` dependencies (`pip install maskwise[data]`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from .datasets import SequenceDataset

Columns = str | Sequence[str]
Chunk = dict[str, np.ndarray]


def _feature_list(feature_cols: Columns) -> list[str]:
    return [feature_cols] if isinstance(feature_cols, str) else list(feature_cols)


def _check_target_apart(names: list[str], target_col: str | None) -> None:
    """A `ConfigError` when the target column is also a feature: the model would read
    the answer from its inputs, and the accuracy would look perfect."""
    if target_col is not None and target_col in names:
        raise ConfigError(
            format_error(
                f"Column {target_col!r} is both the target and a feature.",
                expected="feature_cols without target_col",
                received=f"feature_cols={names}",
                fix=f"leave {target_col!r} out of feature_cols, e.g. "
                f"`[c for c in feature_cols if c != {target_col!r}]`.",
            )
        )


def _check_columns(
    available: Sequence[str], wanted: list[str], source: str, index: Sequence[Any] = ()
) -> None:
    """A `ConfigError` naming the first wanted column that `source` lacks; `index`: the
    DataFrame's index names (after a groupby or `set_index`, the ids are there)."""
    missing = [c for c in wanted if c not in available]
    if missing:
        in_index = [c for c in missing if c in index]
        raise ConfigError(
            format_error(
                f"{source} has no column {missing[0]!r}"
                + (f" ({in_index} are in its index)." if in_index else "."),
                expected=f"columns among {list(available)}",
                received=f"{missing}",
                fix="make the index columns again: `df.reset_index()`." if in_index else None,
            )
        )


def _chunk(
    columns: dict[str, np.ndarray],
    rows: np.ndarray,
    sequence_col: str,
    order_col: str,
    feature_cols: Columns,
    target_col: str | None,
) -> Chunk:
    """The arrays of one chunk of rows: ids, order, features `(rows, F)` or `(rows,)`,
    and `row`, each row's label in messages (its DataFrame index or its row in the file)."""
    names = _feature_list(feature_cols)
    for name in [*names, *([target_col] if target_col else [])]:
        _require_numbers(columns[name], name)
    if isinstance(feature_cols, str) and columns[feature_cols].dtype.kind not in "biu":
        raise ShapeError(
            format_error(
                f"feature_cols={feature_cols!r} names one column alone, which is read as "
                "token ids (integers), but it holds floats.",
                expected="integer token ids for a column named alone",
                received=f"dtype {columns[feature_cols].dtype}",
                fix=f"for one float feature per step pass a list: feature_cols=[{feature_cols!r}].",
            )
        )
    features = np.stack([columns[c] for c in names], axis=1)
    chunk = {
        "id": columns[sequence_col],
        "order": columns[order_col],
        "x": features[:, 0] if isinstance(feature_cols, str) else features,
        "row": rows,
    }
    _require_present(chunk, "id", sequence_col)
    _require_present(chunk, "order", order_col)
    _require_sortable(chunk["order"], order_col)
    if target_col is not None:
        chunk["y"] = columns[target_col]
    return chunk


def _require_numbers(values: np.ndarray, column: str) -> None:
    """A `MaskwiseTypeError` naming a feature or target column that holds text or
    categories: the model reads numbers, and which number stands for each category is the
    user's choice (codes for an embedding or a class target, one-hot columns otherwise)."""
    if values.dtype.kind in "biuf":
        return
    raise MaskwiseTypeError(
        format_error(
            f"Column {column!r} must hold numbers.",
            expected="a numeric (or bool) column",
            received=f"dtype {values.dtype} (e.g. {_plain(values[0])!r})",
            fix=f"encode it first: `df[{column!r}].astype('category').cat.codes` "
            "(integer codes, for an Embedding or a class target), or "
            f"`pd.get_dummies(df, columns=[{column!r}])` (one column per category).",
        )
    )


def _require_sortable(steps: np.ndarray, column: str) -> None:
    """A `MaskwiseTypeError` for step numbers stored as text, which sort as text ("10"
    before "9") and would reorder the steps silently."""
    first = steps[:1].tolist()
    if steps.dtype.kind in "US" or (steps.dtype.kind == "O" and isinstance(first[0], str)):
        raise MaskwiseTypeError(
            format_error(
                f"Column {column!r} holds its steps as text, which sorts as text "
                "('10' before '9'), not in step order.",
                expected="numbers, dates or times",
                received=f"text such as {first[0]!r}",
                fix=f"convert it first: `df[{column!r}] = pd.to_numeric(df[{column!r}])` "
                f"(or `pd.to_datetime(df[{column!r}])` for dates).",
            )
        )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages and set lookups)."""
    return value.item() if isinstance(value, np.generic) else value


def _missing(values: np.ndarray) -> np.ndarray:
    """bool `(rows,)`: True where a key column holds no value (NaN, None, NaT)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "O":
        return np.array([v is None or v != v for v in values.tolist()], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def _require_present(chunk: Chunk, key: str, column: str) -> None:
    """A `ShapeError` naming the first row whose sequence id or step number is missing."""
    missing = np.flatnonzero(_missing(chunk[key]))
    if len(missing):
        row = _plain(chunk["row"][missing[0]])
        what = "sequence id" if key == "id" else "step number"
        raise ShapeError(
            format_error(
                f"Column {column!r} has no {what} at row {row!r} (NaN or None), so the "
                "row belongs to no sequence or has no place in its sequence.",
                expected=f"a {what} on every row",
                received=f"{len(missing)} rows without one, the first at row {row!r}",
                fix=f"fill or drop those rows first, e.g. `df.dropna(subset=[{column!r}])`.",
            )
        )


def _present_ids(ids: np.ndarray, rows: np.ndarray, column: str) -> Chunk:
    """A chunk of sequence ids alone (to count lengths), checked for missing ids."""
    chunk = {"id": ids, "row": rows}
    _require_present(chunk, "id", column)
    return chunk


def _grouped(chunks: Iterator[Chunk]) -> Iterator[list[Chunk]]:
    """Per sequence, the row slices holding it (a sequence may span several chunks).

    Raises a `ShapeError` when a sequence id appears again after another sequence.
    """
    pending: list[Chunk] = []
    pending_id: Any = None
    seen: set[Any] = set()
    for chunk in chunks:
        ids = chunk["id"]
        if len(ids) == 0:
            continue
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            sid = _plain(ids[start])
            piece = {key: value[start:end] for key, value in chunk.items()}
            if pending and sid == pending_id:
                pending.append(piece)
                continue
            if pending:
                yield pending
            if sid in seen:
                raise ShapeError(
                    format_error(
                        f"Sequence id {sid!r} appears again after other sequences.",
                        expected="the rows of each sequence stored together (grouped by id)",
                        received=f"rows of {sid!r} before and after other sequences",
                        fix="sort the table by sequence id (and step) before writing it, e.g. "
                        "`df.sort_values([sequence_col, order_col])`.",
                    )
                )
            seen.add(sid)
            pending, pending_id = [piece], sid
    if pending:
        yield pending


def _sequence(pieces: list[Chunk], per_step: bool, order_col: str) -> tuple[Any, np.ndarray, Any]:
    """(id, features `(T, ...)` in step order, target or None) of one sequence.

    Raises a `ShapeError` when two of its rows have the same step number.
    """
    joined = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
    order = np.argsort(joined["order"], kind="stable")
    x = joined["x"][order]
    sid = _plain(joined["id"][0])
    steps = joined["order"][order]
    repeated = np.flatnonzero(steps[1:] == steps[:-1])
    if len(repeated):
        step = _plain(steps[repeated[0]])
        row = _plain(joined["row"][order][repeated[0] + 1])
        raise ShapeError(
            format_error(
                f"Sequence {sid!r} has two rows with step {step!r} in column {order_col!r} "
                f"(the second at row {row!r}): the order of its steps is ambiguous.",
                expected="one row per (sequence, step)",
                received=f"a repeated step {step!r}",
                fix="drop the duplicates (`df.drop_duplicates([sequence_col, order_col])`) "
                "or number the steps 0, 1, 2, ... within each sequence.",
            )
        )
    if "y" not in joined:
        return sid, x, None
    y = joined["y"][order]
    if per_step:
        return sid, x, y
    if len(y) and not np.all((y == y[0]) | (_missing(y) & _missing(y[:1]))):  # NaN != NaN
        raise ShapeError(
            format_error(
                f"Sequence {sid!r} has different targets on its rows, but per_step=False.",
                expected="one target per sequence (the same on all its rows)",
                received=f"targets such as {np.unique(y)[:4].tolist()}",
                fix="pass per_step=True for one target per step.",
            )
        )
    return sid, x, y[0]


def from_dataframe(
    df: Any,
    sequence_col: str,
    order_col: str,
    feature_cols: Columns,
    target_col: str | None = None,
    per_step: bool = True,
) -> SequenceDataset:
    """An in-memory `SequenceDataset` from a long-format DataFrame (one row per step).

    Sequences are sorted by id, and each one's rows by `order_col`. A row without a
    sequence id or a step number (NaN, None), or two rows with the same (id, step), is a
    `ShapeError` naming the column and the row (its index label).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"id": [7, 7, 3], "t": [1, 0, 0], "a": [2.0, 1.0, 5.0]})
        >>> ds = from_dataframe(df, "id", "t", ["a"])
        >>> ds.collate([0, 1]).x.values[..., 0].tolist()
        [[5.0, 0.0], [1.0, 2.0]]

    Args:
        df: a pandas DataFrame.
        sequence_col: the column naming each row's sequence.
        order_col: the column ordering the steps within a sequence.
        feature_cols: a list of feature columns (values `(time, features)`), or one column
            name (values `(time,)`, e.g. token ids).
        target_col: the target column, or None.
        per_step: one target per step (True) or one per sequence (False: the column must
            hold the same value on all the rows of a sequence).
    """
    names = _feature_list(feature_cols)
    _check_target_apart(names, target_col)
    wanted = [sequence_col, order_col, *names, *([target_col] if target_col else [])]
    _check_columns(list(df.columns), wanted, "The DataFrame", list(df.index.names))
    if len(df) == 0:
        raise ShapeError(
            format_error(
                "The DataFrame has no rows, so it holds no sequence.",
                expected="at least one row (one step of one sequence)",
                received="an empty DataFrame",
                fix="check the filter or the file that built it.",
            )
        )
    frame = df.sort_values([sequence_col, order_col], kind="stable")
    columns = {c: frame[c].to_numpy() for c in dict.fromkeys(wanted)}
    rows = frame.index.to_numpy()
    chunk = _chunk(columns, rows, sequence_col, order_col, feature_cols, target_col)
    ids, xs, ys = zip(
        *(_sequence(p, per_step, order_col) for p in _grouped(iter([chunk]))), strict=True
    )
    dataset = SequenceDataset(
        list(xs),
        None if target_col is None else list(ys),
        mask_value=None,
        num_features=None if isinstance(feature_cols, str) else len(names),
    )
    dataset.sequence_ids = list(ids)
    return dataset


class ParquetSequences:
    """Sequences streamed from a long-format Parquet file, one chunk of rows at a time.

    Memory stays bounded by the chunk size and the loader's shuffle `window`, not by the
    file. The rows of each sequence must be stored together (a sequence may span
    row groups); a sequence id that reappears after another raises a `ShapeError`, and
    so do a missing id or step number and a repeated (id, step), naming the row (its
    number in the file).
    Iterating yields `(position, features, target)` per sequence, in file order.

    Data parallel: each process reads only its row groups (`shard`): a sequence belongs
    to the row group holding its first row, and row group `g` to process
    `g % world_size`. The loader batches each process's sequences apart (see `Loader`).

    Example:
        >>> import os, tempfile
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"id": [7, 7, 3], "t": [0, 1, 0], "a": [1.0, 2.0, 5.0],
        ...                      "label": [0, 1, 1]})
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     rows.to_parquet(os.path.join(folder, "train.parquet"))
        ...     data = ParquetSequences(os.path.join(folder, "train.parquet"), "id", "t", ["a"],
        ...                             "label")
        ...     batch = next(iter(mw.data.make_loader(data, batch_size=2, shuffle=False)))
        >>> batch.x.values[..., 0].tolist(), batch.y.tolist()  # shortest first (bucketing)
        ([[5.0, 0.0], [1.0, 2.0]], [[1, -100], [0, 1]])

    Args:
        path: the Parquet file.
        sequence_col, order_col, feature_cols, target_col, per_step: as in
            `from_dataframe`.
        window: how many sequences the loader buckets and shuffles together (memory
            holds about this many sequences).
        rows_per_read: rows read from the file at a time.
        shard: under data parallel, read only this process's row groups (True), or
            read the whole file and take this process's share of every batch (False:
            the batches of one process, exactly, at the cost of reading the file once
            per process).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        sequence_col: str,
        order_col: str,
        feature_cols: Columns,
        target_col: str | None = None,
        per_step: bool = True,
        *,
        window: int = 4096,
        rows_per_read: int = 65536,
        shard: bool = True,
    ) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.sequence_col = sequence_col
        self.order_col = order_col
        self.feature_cols = feature_cols
        self.target_col = target_col
        self.per_step = per_step
        self.window = window
        self.rows_per_read = rows_per_read
        self.shard = shard
        self.num_features = None if isinstance(feature_cols, str) else len(feature_cols)
        names = _feature_list(feature_cols)
        _check_target_apart(names, target_col)
        wanted = [sequence_col, order_col, *names, *([target_col] if target_col else [])]
        _check_columns(pq.ParquetFile(path).schema_arrow.names, wanted, f"{path}")
        self._columns = list(dict.fromkeys(wanted))
        self._lengths: torch.Tensor | None = None

    def _chunks(
        self, columns: list[str], rows: tuple[int, int] | None = None
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """The file's rows, `rows_per_read` at a time: (columns, the rows' numbers).
        `rows`: only the rows `[lo, hi)`, reading only the row groups that hold them."""
        import pyarrow.parquet as pq

        # pre_buffer=False: with it pyarrow keeps every row group it has read cached
        # until the file is closed, so memory would grow with the file.
        with pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20) as file:
            groups, start, (lo, hi) = None, 0, rows or (0, file.metadata.num_rows)
            if rows is not None:
                starts = self._group_starts(file)
                first = int(np.searchsorted(starts, lo, side="right")) - 1
                last = int(np.searchsorted(starts, hi, side="left"))
                groups, start = list(range(first, last)), int(starts[first])
            batches = file.iter_batches(
                batch_size=self.rows_per_read, columns=columns, row_groups=groups
            )
            for batch in batches:
                keep = slice(max(lo - start, 0), max(min(hi - start, batch.num_rows), 0))
                if keep.stop > keep.start:
                    yield (
                        {c: batch.column(c).to_numpy(zero_copy_only=False)[keep] for c in columns},
                        np.arange(start + keep.start, start + keep.stop),
                    )
                start += batch.num_rows

    @staticmethod
    def _group_starts(file: Any) -> np.ndarray:
        """int64 `(groups + 1,)`: the first row of each row group, then the row count."""
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
        return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, Any]]:
        return self._sequences(self._columns_chunks(None), 0)

    def _columns_chunks(self, rows: tuple[int, int] | None) -> Iterator[Chunk]:
        return (
            _chunk(c, r, self.sequence_col, self.order_col, self.feature_cols, self.target_col)
            for c, r in self._chunks(self._columns, rows)
        )

    def _sequences(
        self, chunks: Iterator[Chunk], first: int
    ) -> Iterator[tuple[int, np.ndarray, Any]]:
        for position, pieces in enumerate(_grouped(chunks), start=first):
            _, x, y = _sequence(pieces, self.per_step, self.order_col)
            yield position, x, y

    def shard_positions(self, rank: int, world_size: int) -> np.ndarray:
        """int64: the positions of the sequences process `rank` reads (`shard`): those
        whose first row lies in a row group `g` with `g % world_size == rank`."""
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path) as file:
            starts = self._group_starts(file)
        lengths = self.lengths.numpy()
        first_rows = np.cumsum(lengths) - lengths
        groups = np.searchsorted(starts, first_rows, side="right") - 1
        return np.flatnonzero(groups % world_size == rank)

    def iter_shard(self, rank: int, world_size: int) -> Iterator[tuple[int, np.ndarray, Any]]:
        """`(position, features, target)` of process `rank`'s sequences, in file
        order, reading only the row groups that hold them."""
        positions = self.shard_positions(rank, world_size)
        if not len(positions):
            return
        lengths = self.lengths.numpy()
        ends = np.cumsum(lengths)
        # Runs of consecutive positions: each is one range of rows read in one go.
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for run in np.split(positions, breaks):
            first, last = int(run[0]), int(run[-1])
            rows = (int(ends[first] - lengths[first]), int(ends[last]))
            yield from self._sequences(self._columns_chunks(rows), first)

    @property
    def lengths(self) -> torch.Tensor:
        """int64 `(N,)`: every sequence's length (one pass over the id column, cached)."""
        if self._lengths is None:
            chunks = (
                _present_ids(c[self.sequence_col], rows, self.sequence_col)
                for c, rows in self._chunks([self.sequence_col])
            )
            counts = [sum(len(p["id"]) for p in pieces) for pieces in _grouped(chunks)]
            self._lengths = torch.tensor(counts, dtype=torch.long)
        return self._lengths

    def __len__(self) -> int:
        return len(self.lengths)
