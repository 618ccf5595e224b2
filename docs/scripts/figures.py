"""The trace heat maps of "What happens to padded steps", drawn by the page's own code.

`render()` runs the page's Python blocks (which call `trace(...).plot(...)`) in a
temporary folder and returns `{site path: PNG bytes}`; the docs build (`hooks.py`) adds
them to the site, so each picture is what the code above it draws today.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from blocks import python_blocks

PAGE = Path(__file__).resolve().parents[1] / "guide/padded-steps.md"
PICTURES = ("trace-tagger.png", "trace-classifier.png")


def render() -> dict[str, bytes]:
    """The PNG of each trace on the page, by its path in the site."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            contextlib.chdir(folder),
            contextlib.redirect_stdout(io.StringIO()),  # the blocks print their tables
        ):
            namespace: dict = {"__name__": "docs"}
            for number, block in enumerate(python_blocks(PAGE), start=1):
                exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)
            return {f"img/{name}": (Path(folder) / name).read_bytes() for name in PICTURES}
    finally:
        torch.set_num_threads(threads)
