"""The exceptions and warnings maskwise raises.

Every error maskwise raises is a `MaskwiseError`, and also a `ValueError` or a
`TypeError` so that generic handlers keep working. Messages follow one pattern:
what went wrong, what was expected, what was received, and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "ConfigError",
    "DoctorError",
    "MaskError",
    "MaskWarning",
    "MaskwiseError",
    "MaskwiseTypeError",
    "NonFiniteError",
    "ShapeError",
    "format_error",
]

if TYPE_CHECKING:
    from .doctor.findings import Finding


class MaskwiseError(Exception):
    """Base class of every error raised by maskwise."""


class MaskError(MaskwiseError, ValueError):
    """A mask is missing, malformed, or would be lost silently."""


class DoctorError(MaskError):
    """The doctor's checks found a masking mistake in what `fit`, `evaluate`, `predict` or
    `make_loader` received, before any training step.

    The message holds every error finding's code, message and fix.

    Attributes:
        findings: the error `Finding`s, in the doctor's order.
        code: the first finding's code (e.g. `"MW001"`).
    """

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings
        self.code = findings[0].code if findings else None


class ShapeError(MaskwiseError, ValueError):
    """An array or tensor has a shape or layout maskwise cannot use as given."""


class ConfigError(MaskwiseError, ValueError):
    """A layer, model, loss or training argument is invalid or unsupported."""


class MaskwiseTypeError(MaskwiseError, TypeError):
    """A value of the wrong type was passed (e.g. a plain module where a rule is needed)."""


class NonFiniteError(MaskwiseError, ValueError):
    """Training met a NaN or infinite loss, gradient or weight; the step was not kept."""


class MaskWarning(UserWarning):
    """Something about a mask is probably a mistake (e.g. masking an already-masked input)."""


def format_error(
    problem: str,
    *,
    expected: str | None = None,
    received: str | None = None,
    fix: str | None = None,
) -> str:
    """Build a message in the house pattern: problem, expected, received, fix."""
    lines = [problem]
    if expected is not None:
        lines.append(f"  expected: {expected}")
    if received is not None:
        lines.append(f"  received: {received}")
    if fix is not None:
        lines.append(f"  fix: {fix}")
    return "\n".join(lines)
