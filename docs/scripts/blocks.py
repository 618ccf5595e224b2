"""The Python code blocks of a docs page: what the tests run and the build executes."""

from __future__ import annotations

import re
from pathlib import Path

FENCE = re.compile(r"^```(.*?)\n(.*?)^```", flags=re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The blocks of `page` fenced as `python`, in order, except inclusions (`--8<--`);
    a block fenced as `{.python .no-run}` is shown but not run."""
    return [
        body
        for info, body in FENCE.findall(page.read_text())
        if info.strip() == "python" and not body.startswith("--8<--")
    ]
