"""Read the doctor's inputs from files: `.npz`, `.npy`, long-format `.csv` / `.parquet`."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, format_error

X_NAMES = ("x", "X", "inputs", "features")
Y_NAMES = ("y", "Y", "labels", "targets", "target")
SEQUENCE_COLUMNS = (
    "sequence", "sequence_id", "seq", "seq_id", "series", "series_id", "sample",
    "sample_id", "sentence", "sentence_id", "utterance", "id",
)  # fmt: skip
ORDER_COLUMNS = ("step", "timestep", "time_step", "t", "time", "order", "position", "pos",
                 "frame", "index")  # fmt: skip
TARGET_COLUMNS = ("y", "label", "labels", "target", "tag", "class")


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
    the matching arrays, in natural order, into a list of sequences)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, x, y)
    if suffix == ".npy":
        return Loaded(np.load(path, allow_pickle=False), None, f"x = {path.name}")
    if suffix in (".csv", ".parquet"):
        return _load_long(path, sequence_col, order_col, feature_cols, target_col)
    raise ConfigError(
        format_error(
            f"maskwise doctor cannot read {path.name!r}.",
            expected="a .npz, .npy, .csv, .parquet or .keras file",
            received=f"suffix {suffix or '(none)'}",
        )
    )


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _select(arrays: Any, pattern: str) -> tuple[Any, str]:
    names = sorted(fnmatch.filter(arrays.files, pattern), key=_natural)
    if not names:
        raise ConfigError(
            format_error(
                f"no array in the .npz matches {pattern!r}.",
                expected=f"one of {arrays.files[:12]}",
                fix="pass --x NAME / --y NAME, or a glob such as 'X_batches_train_*'.",
            )
        )
    if names == [pattern]:
        return arrays[pattern], f"{pattern} {arrays[pattern].shape}"
    first = arrays[names[0]].shape
    return [arrays[n] for n in names], f"{pattern} ({len(names)} arrays like {first})"


def _default_patterns(files: list[str]) -> tuple[str, str | None]:
    """Names like x/y, else the first group `X..._0..9` and its `y` twin, else the first
    two arrays."""
    x = next((n for n in X_NAMES if n in files), None)
    if x is not None:
        return x, next((n for n in Y_NAMES if n in files), None)
    stems = list(dict.fromkeys(re.sub(r"\d+$", "", n) for n in files))
    for stem in stems:
        if stem != files[0] and stem[:1] in "xX" and len(stem) > 1:
            twin = next((t for t in ("y" + stem[1:], "Y" + stem[1:]) if t in stems), None)
            return stem + "*", (twin + "*" if twin else None)
    return files[0], (files[1] if len(files) > 1 else None)


def _load_npz(path: Path, x: str | None, y: str | None) -> Loaded:
    with np.load(path, allow_pickle=False) as arrays:
        default_x, default_y = _default_patterns(list(arrays.files))
        x_data, x_text = _select(arrays, x or default_x)
        y_pattern = y or default_y
        if y_pattern is None:
            return Loaded(x_data, None, f"x = {x_text}")
        y_data, y_text = _select(arrays, y_pattern)
    return Loaded(x_data, y_data, f"x = {x_text}; y = {y_text}")


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
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    columns = [str(c) for c in frame.columns]
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
        feature_cols = [
            c for c in columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])
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
    return Loaded(xs, ys, text)
