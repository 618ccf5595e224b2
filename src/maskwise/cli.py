"""The `maskwise` command line: `maskwise doctor FILE`, and the other subcommands.

Each subcommand lives in its own module, which defines `add_arguments(parser)` and
`run(args) -> int` (the exit status). A maskwise error or an `OSError` raised by a
subcommand is printed on one line to stderr, with exit status 2. `COMMANDS` lists
the subcommands; a new one is one line:
`register_command("demo", "maskwise.demo.command", "run the demo")`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import MaskwiseError

COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": (
        "maskwise.doctor.command",
        "find masking mistakes in a data file (.npz, .npy, .csv, .parquet) or a .keras model",
    ),
    "demo": (
        "maskwise.demo",
        "train masked vs unmasked models on the shipped data sets (or --data FILE.conllu)",
    ),
}


def register_command(name: str, module: str, help: str) -> None:
    """Add the subcommand `maskwise NAME`, implemented by `module`'s `add_arguments(parser)`
    and `run(args) -> int`."""
    COMMANDS[name] = (module, help)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="maskwise", description="Keras-style masking for padded sequences on PyTorch."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `maskwise` with `argv` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (MaskwiseError, OSError) as error:
        print(f"maskwise {args.command}: {one_line(error)}", file=sys.stderr)
        return 2


def one_line(error: BaseException) -> str:
    """An error's message on one line: the problem, then expected/received/fix."""
    first, *rest = str(error).splitlines() or [type(error).__name__]
    return " ".join(
        [first.strip(), "; ".join(line.strip() for line in rest if line.strip())]
    ).strip()


if __name__ == "__main__":
    sys.exit(main())
