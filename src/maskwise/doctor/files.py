"""Read the doctor's inputs from files: `.npz`, `.npy`, long-format `.csv` / `.parquet`.

Files come from anywhere, so reading is bounded: only regular files are opened (not a
device such as `/dev/zero`, a FIFO, or a link to one), at most `MAX_SEQUENCES`
sequences and `MAX_VALUES` values are read (the first ones: the checks need a sample,
not the whole file), `.npy` arrays (also inside an `.npz`) are read row by row from
their header without decompressing past the sample, and tables are streamed in
chunks of about `CHUNK_VALUES` values. Whatever cannot be read is a `ConfigError`
naming the file and what was expected.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ConfigError, MaskwiseError, format_error

X_NAMES = ("x", "X", "inputs", "features")
Y_NAMES = ("y", "Y", "labels", "targets", "target")
SEQUENCE_COLUMNS = (
    "sequence", "sequence_id", "seq", "seq_id", "series", "series_id", "sample",
    "sample_id", "sentence", "sentence_id", "utterance", "id",
)  # fmt: skip
ORDER_COLUMNS = ("step", "timestep", "time_step", "t", "time", "order", "position", "pos",
                 "frame", "index")  # fmt: skip
TARGET_COLUMNS = ("y", "label", "labels", "target", "tag", "class")

# The sample the doctor checks, and the bounds on what it reads to get it.
MAX_SEQUENCES = 10_000
MAX_VALUES = 10_000_000  # of the inputs kept, and as many of the targets (80 MB as float64)
CHUNK_VALUES = 1_000_000  # a table is read this many cells at a time
MAX_COLUMNS = 10_000
MAX_HEADER_BYTES = 1 << 20  # a CSV header line longer than this is not a header

# Errors that mean "this file is not what its suffix says" (or it went away meanwhile).
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
KINDS = {
    ".npz": "a NumPy .npz archive of arrays (np.savez)",
    ".npy": "a NumPy .npy array (np.save)",
    ".csv": "a CSV table with a header line, one row per step",
    ".parquet": "a Parquet table, one row per step",
}


@dataclass
class Loaded:
    """Inputs and targets read from a file, and a line saying which data was used."""

    x: Any
    y: Any
    description: str


def load(
    path: str | Path,
    *,
    x: str | None = None,
    y: str | None = None,
    sequence_col: str | None = None,
    order_col: str | None = None,
    feature_cols: list[str] | None = None,
    target_col: str | None = None,
) -> Loaded:
    """Read a data file; `x`/`y` name arrays in an `.npz` (globs such as `X_train_*` stack
    the matching arrays, in natural order, into a list of sequences).

    Raises a `ConfigError` naming the file when it is missing, not a regular file, of
    an unsupported kind, or not readable as its suffix says.
    """
    path = Path(path)
    require_regular_file(path)
    suffix = path.suffix.lower()
    if suffix not in KINDS:
        raise ConfigError(
            format_error(
                f"maskwise doctor cannot read {path.name!r}.",
                expected="a .npz, .npy, .csv, .parquet or .keras file",
                received=f"suffix {suffix or '(none)'}",
            )
        )
    try:
        if suffix == ".npz":
            return _load_npz(path, x, y)
        if suffix == ".npy":
            with open(path, "rb") as stream:
                array, shape = read_npy(stream, path.name, MAX_SEQUENCES, MAX_VALUES)
            array = _sampled(path.name, array, shape)
            _require_inputs(path, f"{path.name} {shape}", array)
            return Loaded(array, None, f"x = {path.name} {_describe(shape, len(array))}")
        return _load_long(path, sequence_col, order_col, feature_cols, target_col)
    except MaskwiseError:
        raise
    except UNREADABLE as error:
        raise unreadable(path, KINDS[suffix], error) from error


def unreadable(path: Path, expected: str, error: BaseException) -> ConfigError:
    """The error for a file that is not what it claims to be."""
    detail = " ".join(str(error).split())[:200] or "no detail"
    return ConfigError(
        format_error(
            f"{path.name} cannot be read: it is damaged or not the kind of file its name says.",
            expected=expected,
            received=f"{type(error).__name__}: {detail}",
        )
    )


def require_regular_file(path: Path) -> None:
    """A `ConfigError` unless `path` is an existing regular file (links are followed:
    a link to a device is refused like the device)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as error:
        raise ConfigError(
            format_error(f"{path.name}: no such file.", received=str(path))
        ) from error
    if not stat.S_ISREG(mode):
        target = f" (a link to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise ConfigError(
            format_error(
                f"{path.name}{target} is not a regular file: the doctor reads files on disk "
                "only (a device or a FIFO can be endless).",
                expected="a data file",
                received=_file_kind(mode),
            )
        )


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISDIR: "a directory",
        stat.S_ISSOCK: "a socket",
    }
    return next((text for test, text in kinds.items() if test(mode)), stat.filemode(mode))


def read_npy(
    stream: IO[bytes], name: str, rows: int, values: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The first rows of the `.npy` array in `stream` (at most `rows` rows and `values`
    values), read without the rest; and the whole array's shape. No row is read when
    one alone holds more than `values` values."""
    version = np.lib.format.read_magic(stream)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise ConfigError(
            format_error(
                f"{name}: unsupported .npy format version {version}.", expected="1.0 or 2.0"
            )
        )
    try:
        shape, fortran_order, dtype = readers[version](stream)
    except (SyntaxError, tokenize.TokenError) as error:  # numpy parses the header as Python
        raise ValueError(f"{name}: the .npy header is damaged ({error})") from error
    if dtype.kind not in "biuf":
        raise ConfigError(
            format_error(
                f"{name} holds {dtype} values.",
                expected="numbers (bool, int or float arrays)",
                fix="convert it to numbers before saving, e.g. `x.astype(np.float32)`.",
            )
        )
    if not shape:
        raise ConfigError(
            format_error(f"{name} holds a single value.", expected="an array of sequences")
        )
    per_row = int(np.prod(shape[1:], dtype=object))
    n = shape[0]
    take = max(0, min(n, rows, values // max(per_row, 1)))
    if fortran_order and take < n:
        take = 0  # column-major rows are not contiguous: all or nothing
    count = take * per_row
    data = stream.read(count * dtype.itemsize)
    if len(data) < count * dtype.itemsize:
        raise ConfigError(
            format_error(
                f"{name} is truncated: its header says {shape} {dtype}, the data ends early.",
                expected=f"{count * dtype.itemsize} bytes of data",
                received=f"{len(data)} bytes",
            )
        )
    array = np.frombuffer(data, dtype).reshape(
        (take, *shape[1:]), order="F" if fortran_order else "C"
    )
    return array.copy(), shape


def _sampled(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array`, unless it is an empty sample of a non-empty array (rows too large)."""
    if len(array) == 0 and shape[0] > 0:
        raise _too_large(name, shape)
    return array


def _too_large(name: str, shape: tuple[int, ...]) -> ConfigError:
    return ConfigError(
        format_error(
            f"{name} {shape} is too large for the doctor to sample.",
            expected=f"sequences of at most {MAX_VALUES} values, in C order",
            fix=f"check a slice: `np.save('sample.npy', {name.split('.')[0]}[:1000])`.",
        )
    )


def _describe(shape: tuple[int, ...], taken: int) -> str:
    """An array's shape, and how many of its sequences the sample holds if not all."""
    if taken == shape[0]:
        return f"{shape}"
    return f"{shape}, the first {taken} sequences checked"


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class _Budget:
    """What is left to read of the sample of one group of arrays (the inputs, or the
    targets): sequences (rows) and values."""

    def __init__(self) -> None:
        self.rows = MAX_SEQUENCES
        self.values = MAX_VALUES

    def spend(self, array: np.ndarray) -> None:
        self.values -= array.size


def _member(
    archive: zipfile.ZipFile, name: str, rows: int, budget: _Budget
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The first `rows` rows of the array `name` in an `.npz`, read from its stream."""
    with archive.open(f"{name}.npy") as stream:
        array, shape = read_npy(stream, name, rows, budget.values)
    budget.spend(array)
    return array, shape


def _select(archive: zipfile.ZipFile, names: list[str], pattern: str, rows: int | None,
            budget: _Budget) -> tuple[Any, str, int]:  # fmt: skip
    """The arrays matching `pattern`: one array (its first rows), or a glob's arrays as a
    list of sequences (the first whole ones); their description and the rows taken."""
    matches = sorted(fnmatch.filter(names, pattern), key=_natural)
    if not matches:
        raise ConfigError(
            format_error(
                f"no array in the .npz matches {pattern!r}.",
                expected=f"one of {names[:12]}",
                fix="pass --x NAME / --y NAME, or a glob such as 'X_batches_train_*'.",
            )
        )
    limit = budget.rows if rows is None else rows
    if matches == [pattern]:
        array, shape = _member(archive, pattern, limit, budget)
        array = _sampled(pattern, array, shape)
        return array, f"{pattern} {_describe(shape, len(array))}", len(array)
    arrays: list[np.ndarray] = []
    for name in matches[:limit]:
        array, shape = _member(archive, name, budget.values, budget)
        if len(array) < shape[0]:  # only part of this sequence fits in the sample
            if not arrays:
                raise _too_large(name, shape)  # the first alone is too large
            break
        arrays.append(array)
    text = f"{pattern} ({len(matches)} arrays like {arrays[0].shape})"
    if len(arrays) < len(matches):
        text += f", the first {len(arrays)} checked"
    return arrays, text, len(arrays)


def _default_patterns(files: list[str]) -> tuple[str, str | None]:
    """Names like x/y, else the first group `X..._0..9` and its `y` twin, else the first
    array `X...` with a `y...` twin (`X_train`, `y_train`), else the first two arrays."""
    x = next((n for n in X_NAMES if n in files), None)
    if x is not None:
        return x, next((n for n in Y_NAMES if n in files), None)
    stems = list(dict.fromkeys(re.sub(r"\d+$", "", n) for n in files))
    for stem in stems:
        if stem not in files and stem[:1] in "xX" and len(stem) > 1:  # numbered arrays
            twin = next((t for t in ("y" + stem[1:], "Y" + stem[1:]) if t in stems), None)
            return stem + "*", (twin + "*" if twin else None)
    for name in files:  # one array each: a glob of its name would read it as sequences
        twin = next((t for t in ("y" + name[1:], "Y" + name[1:]) if t in files), None)
        if name[:1] in "xX" and len(name) > 1 and twin:
            return name, twin
    return files[0], (files[1] if len(files) > 1 else None)


def _load_npz(path: Path, x: str | None, y: str | None) -> Loaded:
    with zipfile.ZipFile(path) as archive:
        names = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        if not names:
            raise ConfigError(format_error(f"{path.name} holds no arrays.", expected=KINDS[".npz"]))
        default_x, default_y = _default_patterns(names)
        x_data, x_text, rows = _select(archive, names, x or default_x, None, _Budget())
        _require_inputs(path, x_text, x_data)
        y_pattern = y or default_y
        if y_pattern is None:
            return Loaded(x_data, None, f"x = {x_text}")
        y_data, y_text, _ = _select(archive, names, y_pattern, rows, _Budget())
        if any(np.ndim(a) == 0 for a in (y_data if isinstance(y_data, list) else [y_data])):
            raise _bad_shape(path, y_text, "targets: (sequences,) or (sequences, time)")
    return Loaded(x_data, y_data, f"x = {x_text}; y = {y_text}")


def _require_inputs(path: Path, text: str, x: np.ndarray | list[np.ndarray]) -> None:
    """Inputs the checks can read: one `(sequences, time[, features])` array with a
    sequence, or `(time[, features])` sequences."""
    if isinstance(x, list):
        if any(a.ndim not in (1, 2) for a in x):
            raise _bad_shape(path, text, "sequences shaped (time,) or (time, features)")
    elif x.ndim not in (2, 3) or len(x) == 0:
        raise _bad_shape(path, text, "(sequences, time) or (sequences, time, features), not empty")


def _bad_shape(path: Path, text: str, expected: str) -> ConfigError:
    return ConfigError(
        format_error(f"{path.name}: the data cannot be read as sequences.", expected=expected,
                     received=text)
    )  # fmt: skip


def _pick(columns: list[str], given: str | None, candidates: tuple[str, ...]) -> str | None:
    if given is not None:
        if given not in columns:
            raise ConfigError(
                format_error(f"no column {given!r}.", expected=f"one of {columns[:20]}")
            )
        return given
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _load_long(
    path: Path,
    sequence_col: str | None,
    order_col: str | None,
    feature_cols: list[str] | None,
    target_col: str | None,
) -> Loaded:
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is in the `data` extra
        raise ConfigError(
            format_error(f"reading {path.suffix} needs pandas.", fix="pip install 'maskwise[data]'")
        ) from error
    table = _Table(path)
    columns = table.columns
    seq = _pick(columns, sequence_col, SEQUENCE_COLUMNS)
    if seq is None:
        raise ConfigError(
            format_error(
                f"{path.name}: no column says which sequence a row belongs to.",
                expected=f"one row per step, with a column like {SEQUENCE_COLUMNS[:4]}",
                received=f"columns {columns[:20]}",
                fix="name it with --sequence-col (and the step order with --order-col).",
            )
        )
    order = _pick(columns, order_col, ORDER_COLUMNS)
    target = _pick(columns, target_col, TARGET_COLUMNS)
    if feature_cols is None:
        skip = {seq, order, target}
        first = table.first_rows()
        feature_cols = [
            c for c in columns if c not in skip and pd.api.types.is_numeric_dtype(first[c])
        ]
    missing = [c for c in feature_cols if c not in columns]
    if missing or not feature_cols:
        raise ConfigError(
            format_error(
                f"{path.name}: feature columns not found.",
                expected=f"columns among {columns[:20]}",
                received=str(missing or "no numeric column left"),
                fix="name them with --feature-cols a,b,c.",
            )
        )
    wanted = list(dict.fromkeys(c for c in (seq, order, target, *feature_cols) if c is not None))
    frame, complete = _sample_sequences(table.chunks(wanted), seq)
    for column in (*feature_cols, *([target] if target is not None else [])):
        frame[column] = _numbers(path, frame[column], "--target-col" if column == target
                                 else "--feature-cols")  # fmt: skip
    if order is not None:
        frame = frame.sort_values([seq, order], kind="stable")
    groups = [g for _, g in frame.groupby(seq, sort=False)]
    xs = [g[feature_cols].to_numpy(dtype=np.float64) for g in groups]
    ys = None if target is None else [g[target].to_numpy() for g in groups]
    text = (
        f"x = {len(xs)} sequences from column {seq!r} (order {order!r}, "
        f"features {feature_cols[:6]}{'...' if len(feature_cols) > 6 else ''})"
    )
    if target is not None:
        text += f"; y = column {target!r}"
    if not complete:
        text += f"; the first {len(xs)} sequences checked"
    return Loaded(xs, ys, text)


class _Table:
    """A long-format `.csv` or `.parquet` file read in chunks of about `CHUNK_VALUES`
    cells: its column names, its first rows (to tell numeric columns) and its chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        if self.csv:
            with open(path, "rb") as f:
                line = f.readline(MAX_HEADER_BYTES + 1)
            if len(line) > MAX_HEADER_BYTES:
                raise ConfigError(
                    format_error(
                        f"{path.name}: the first line is longer than {MAX_HEADER_BYTES} bytes.",
                        expected=KINDS[".csv"],
                    )
                )
            import pandas as pd

            self.columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        else:
            import pyarrow.parquet as pq

            self.columns = list(pq.read_schema(path).names)
        if len(self.columns) > MAX_COLUMNS:
            raise ConfigError(
                format_error(
                    f"{path.name} has {len(self.columns)} columns.",
                    expected=f"a long-format table: one row per step, at most {MAX_COLUMNS} "
                    "columns",
                )
            )
        self.rows_per_chunk = max(1, CHUNK_VALUES // max(len(self.columns), 1))

    def first_rows(self) -> Any:
        """The first chunk of rows, every column."""
        return next(self.chunks(self.columns), None) if self.columns else None

    def chunks(self, columns: list[str]) -> Iterator[Any]:
        """DataFrames of `columns`, `rows_per_chunk` rows each, in file order."""
        if self.csv:
            import pandas as pd

            with pd.read_csv(self.path, usecols=columns, chunksize=self.rows_per_chunk) as reader:
                yield from reader
            return
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20) as file:
            for batch in file.iter_batches(batch_size=self.rows_per_chunk, columns=columns):
                yield batch.to_pandas()


def _numbers(path: Path, column: Any, option: str) -> Any:
    """The column as numbers, or a `ConfigError` naming it and the option to change."""
    import pandas as pd

    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            format_error(
                f"{path.name}: column {column.name!r} holds values that are not numbers.",
                expected="numbers in the feature and target columns",
                received=" ".join(str(error).split())[:120],
                fix=f"name the right columns with {option}.",
            )
        ) from error


def _sample_sequences(chunks: Iterator[Any], seq: str) -> tuple[Any, bool]:
    """All the rows of the first `MAX_SEQUENCES` sequence ids (in file order), streamed
    from `chunks` with at most `MAX_VALUES` cells kept; and whether that is every
    sequence in the file.

    The whole file is read (the rows of a sequence may be anywhere in it), but only
    the sampled sequences' rows are kept. New sequences stop being admitted once half
    of `MAX_VALUES` is used, leaving room for the later rows of those admitted.
    """
    import pandas as pd

    admitted: dict[Any, None] = {}
    kept: list[Any] = []
    cells = 0
    complete = True
    for chunk in chunks:
        if len(admitted) < MAX_SEQUENCES and cells < MAX_VALUES // 2:
            room = MAX_SEQUENCES - len(admitted)
            new = [i for i in pd.unique(chunk[seq]) if i not in admitted]
            admitted.update(dict.fromkeys(new[:room]))
        rows = chunk[chunk[seq].isin(list(admitted))]
        complete = complete and len(rows) == len(chunk)
        cells += rows.size
        if cells > MAX_VALUES:
            raise ConfigError(
                format_error(
                    f"the first {len(admitted)} sequences hold more than {MAX_VALUES} values, "
                    "more than the doctor reads.",
                    expected=f"sequences of at most {MAX_VALUES // 2} values in all",
                    fix="check a part of the file: a few sequences, written to a new file.",
                )
            )
        kept.append(rows)
    if not kept:
        raise ConfigError(format_error("the table has no rows.", expected="one row per step"))
    return pd.concat(kept), complete
