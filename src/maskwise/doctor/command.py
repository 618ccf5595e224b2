"""`maskwise doctor FILE`: find masking mistakes in a data file or a saved Keras model.

Prints every finding (code, severity, message, fix; codes are explained in
docs/doctor.md) and exits with status 1 when one of them is an error, 0 otherwise.
A file that cannot be read (missing, not a regular file, damaged, of another kind, too
large to sample) is a `ConfigError` naming it: `maskwise` prints it on one line and
exits with status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MaskwiseError
from . import check
from .files import load
from .findings import Finding
from .keras_file import check_keras_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help=".npz, .npy, .csv, .parquet data, or a .keras model")
    parser.add_argument(
        "--x",
        help="input array in an .npz; a glob such as "
        "'X_batches_train_*' stacks the matching arrays as sequences",
    )
    parser.add_argument("--y", help="per-step target array in an .npz (a glob too)")
    parser.add_argument(
        "--mask-value",
        type=float,
        default=0.0,
        help="the value that marks padded steps (default 0; 'nan' allowed)",
    )
    parser.add_argument("--sequence-col", help="long format: the sequence id column")
    parser.add_argument("--order-col", help="long format: the step order column")
    parser.add_argument("--feature-cols", help="long format: comma-separated feature columns")
    parser.add_argument("--target-col", help="long format: the per-step target column")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        return _doctor(path, args)
    except MaskwiseError as error:
        if path.name in str(error):
            raise
        raise type(error)(f"{path.name}: {error}") from error


def _doctor(path: Path, args: argparse.Namespace) -> int:
    if path.suffix.lower() == ".keras":
        findings = check_keras_file(path)
        print(f"maskwise doctor: model {path.name}")
    else:
        features = args.feature_cols.split(",") if args.feature_cols else None
        data = load(
            path,
            x=args.x,
            y=args.y,
            sequence_col=args.sequence_col,
            order_col=args.order_col,
            feature_cols=features,
            target_col=args.target_col,
        )
        print(f"maskwise doctor: {path.name}: {data.description}")
        findings = check(data.x, data.y, mask_value=args.mask_value)
    print(report(findings))
    return 1 if any(f.severity == "error" for f in findings) else 0


def report(findings: list[Finding]) -> str:
    """The findings as text, one block each, and a count by severity."""
    if not findings:
        return "no masking problem found."
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    summary = ", ".join(
        f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items()
    )
    return "\n\n".join(str(f) for f in findings) + f"\n\n{summary}"
