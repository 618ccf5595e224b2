"""Write what each script in examples/ prints to docs/examples/output/<name>.txt.

The Examples pages show these files; tests/test_docs.py checks they are current.
Run from the repository root: `python docs/scripts/example_output.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    out = ROOT / "docs/examples/output"
    out.mkdir(parents=True, exist_ok=True)
    for example in sorted((ROOT / "examples").glob("*.py")):
        printed = subprocess.run(
            [sys.executable, str(example)], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        (out / f"{example.stem}.txt").write_text(printed)
        print(out / f"{example.stem}.txt")


if __name__ == "__main__":
    main()
