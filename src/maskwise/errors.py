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
    """Base class of every error raised by maskwise.

    Catch it to handle any of them; each is also a `ValueError` or a `TypeError`.

    Example:
        >>> try:
        ...     mw.losses.get_loss("nope")
        ... except MaskwiseError as error:
        ...     print(type(error).__name__, isinstance(error, ValueError))
        ConfigError True
    """


class MaskError(MaskwiseError, ValueError):
    """A mask is missing, malformed, or would be lost silently.

    Example:
        >>> try:
        ...     mw.lengths_to_mask([4], max_len=3)  # 4 real steps cannot fit in 3
        ... except MaskError as error:
        ...     print(error)
        A sequence length is longer than the time axis.
          expected: every length <= 3 (the time axis)
          received: length 4 for sequence 0
          fix: check that the time axis is axis 1 of values (batch, time, ...), ...
    """


class DoctorError(MaskError):
    """The doctor's checks found a masking mistake in what `fit`, `evaluate`, `predict` or
    `make_loader` received, before any training step.

    The message holds every error finding's code, message and fix.

    Attributes:
        findings: the error `Finding`s, in the doctor's order.
        code: the first finding's code (e.g. `"MW001"`).

    Example:
        >>> X = np.ones((5, 20)); X[:, 16:] = 0      # 5 features x 20 steps, post-padded
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> try:
        ...     model.fit(X.reshape(1, 20, 5), np.zeros((1, 20, 1)), verbose=0)
        ... except DoctorError as error:           # the reshape put features on the time axis
        ...     print(error.code, [f.severity for f in error.findings])
        MW001 ['error']
    """

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings
        self.code = findings[0].code if findings else None


class ShapeError(MaskwiseError, ValueError):
    """An array or tensor has a shape or layout maskwise cannot use as given.

    Example:
        >>> try:
        ...     Masked.pad([torch.ones(3, 2), torch.ones(2, 3)])  # 2 features, then 3
        ... except ShapeError as error:
        ...     print(error)
        Masked.pad needs sequences shaped (length_i, ...) with the same trailing axes.
        ...
          fix: make every sequence time-first; transpose any (features, time) array.
    """


class ConfigError(MaskwiseError, ValueError):
    """A layer, model, loss or training argument is invalid or unsupported.

    Example:
        >>> try:
        ...     layers.Dense(0)
        ... except ConfigError as error:
        ...     print(error)
        Dense units must be a positive integer.
          received: 0
    """


class MaskwiseTypeError(MaskwiseError, TypeError):
    """A value of the wrong type was passed (e.g. a plain module where a rule is needed).

    Example:
        >>> try:
        ...     mw.lengths_to_mask(["three"])
        ... except MaskwiseTypeError as error:
        ...     print(type(error).__name__, isinstance(error, TypeError))
        MaskwiseTypeError True
    """


class NonFiniteError(MaskwiseError, ValueError):
    """Training met a NaN or infinite loss, gradient or weight; the step was not kept.

    Example:
        >>> model = Sequential([layers.Dense(1)])
        >>> model.compile(optimizer=mw.optimizers.SGD(learning_rate=1e30), loss="mse")
        >>> x = y = np.ones((2, 3, 1), dtype="float32")
        >>> try:  # the first step makes the weight about 1e30: the next loss overflows
        ...     model.fit(x, y, epochs=2, verbose=0, seed=0)
        ... except NonFiniteError as error:
        ...     print(str(error).splitlines()[0])
        Training stopped at epoch 2, batch 1 (...): the loss is inf.
    """


class MaskWarning(UserWarning):
    """Something about a mask is probably a mistake (e.g. masking an already-masked input).

    Example:
        >>> import warnings
        >>> x = Masked(torch.tensor([[[1.0], [0.0], [2.0]]]), lengths_to_mask([2], 3))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     out = layers.Masking(0.0, name="masking")(x)  # padded step 2 holds 2.0
        >>> print(caught[0].message)
        Masking layer 'masking' got an input that already has a mask, and replaces it ...
    """


def format_error(
    problem: str,
    *,
    expected: str | None = None,
    received: str | None = None,
    fix: str | None = None,
) -> str:
    """Build a message in the house pattern: problem, expected, received, fix.

    Example:
        >>> print(format_error("Dropout rate must be in [0, 1).", expected="0 <= rate < 1",
        ...                    received="1.5", fix="pass a fraction, e.g. 0.2."))
        Dropout rate must be in [0, 1).
          expected: 0 <= rate < 1
          received: 1.5
          fix: pass a fraction, e.g. 0.2.
    """
    lines = [problem]
    if expected is not None:
        lines.append(f"  expected: {expected}")
    if received is not None:
        lines.append(f"  received: {received}")
    if fix is not None:
        lines.append(f"  fix: {fix}")
    return "\n".join(lines)
