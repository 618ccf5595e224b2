"""`Finding`: one problem the doctor found, in plain words, with its fix.

Every finding has a stable code (`MW001`, ...), listed in `CODES` with a short title and
documented in `docs/doctor.md` with the user mistake (seed) it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]

CODES: dict[str, str] = {
    "MW001": "scrambled layout: the padding does not form whole steps",
    "MW002": "padding covers only some features of the padded steps",
    "MW003": "real steps equal to the mask value would be masked",
    "MW004": "the padding label is also a class",
    "MW005": "NaN or inf in the data",
    "MW006": "the model's output lost the mask",
    "MW007": "Masking applied to an already masked input",
    "MW008": "pre- and post-padding mixed",
    "MW009": "the model predicts one class on almost every real step",
    "MW010": "empty sequences or too much padding",
    "MW011": "targets do not line up with the inputs",
    "MW012": "the model cannot run on the data",
    "MW013": "padding changes the outputs at real steps",
    "MW014": "a time-major array: (time, batch, features)",
    "MW015": "the inputs of one sample have different real steps",
    "MW016": "per-sequence targets for a per-step output, or the reverse",
    "MW017": "the padding is not the value the model's Masking masks",
    "MW018": "an inverted mask: True at the padded steps, as PyTorch's key_padding_mask",
}

SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One problem: what is wrong (`message`) and what to do (`fix`).

    Args:
        code: stable identifier, a key of `CODES` (e.g. `"MW001"`).
        severity: `"error"` (training would silently go wrong), `"warning"` (probably a
            mistake) or `"info"` (worth knowing).
        message: the problem, naming the array or layer, the shape seen and expected.
        fix: what to change.
        sequence: index of the first sequence concerned, when there is one.
        step: index of the first time step concerned, when there is one.

    Example:
        >>> finding = Finding("MW005", "info", "x: the padding holds 2 NaN values.", "pad with 0.")
        >>> print(finding)
        MW005 info: x: the padding holds 2 NaN values.
          fix: pad with 0.
    """

    code: str
    severity: Severity
    message: str
    fix: str
    sequence: int | None = None
    step: int | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.severity}: {self.message}\n  fix: {self.fix}"


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; by code within each."""
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.code))
