"""Every finding code is documented, and findings print their code, severity and fix."""

from __future__ import annotations

import re
from pathlib import Path

from maskwise.doctor import CODES, Finding
from maskwise.doctor.findings import sort_findings

ROOT = Path(__file__).resolve().parents[2]


def emitted_codes() -> set[str]:
    source = "".join(p.read_text() for p in (ROOT / "src/maskwise/doctor").glob("*.py"))
    return set(re.findall(r'"(MW\d{3})"', source))


def test_every_emitted_code_is_listed_and_documented() -> None:
    docs = (ROOT / "docs/doctor.md").read_text()
    documented = set(re.findall(r"^### (MW\d{3}):", docs, flags=re.MULTILINE))
    assert emitted_codes() == set(CODES)
    assert documented == set(CODES)


def test_finding_text_and_order() -> None:
    info = Finding("MW010", "info", "x: 60% of all steps are padding.", "bucket.")
    error = Finding("MW001", "error", "x: scrambled.", "use `x.T`.", sequence=0)
    assert str(error) == "MW001 error: x: scrambled.\n  fix: use `x.T`."
    assert sort_findings([info, error]) == [error, info]
