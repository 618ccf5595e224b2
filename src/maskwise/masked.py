"""`Masked`: a batch of padded sequences that carries its mask with it.

Convention, used everywhere in maskwise: `values` is a tensor `(batch, time, ...)`;
`mask` is a bool tensor `(batch, time)` where True marks a real step and False a
padded one, or `None` meaning "every step is real". The mask travels *with* the values
through every layer, so it cannot be forgotten between two of them.

This module also holds the mask algebra every other module uses: building masks from
lengths, combining masks, and the stable compaction that moves real steps to the front
(the recurrent layers' fast path). No other module re-implements these.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NoReturn

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch.utils.weak import WeakTensorKeyDictionary

from .errors import MaskError, MaskwiseTypeError, ShapeError, format_error

__all__ = [
    "IGNORE_INDEX",
    "Masked",
    "combine_masks",
    "fill_padding",
    "lengths_to_mask",
]

Padding = Literal["post", "pre"]

IGNORE_INDEX = -100
"""The target value at padded steps of integer (class) targets. No class id can equal
it (class ids are >= 0), so padding can never be learned as a class. It is
PyTorch's own `ignore_index` default."""


class Masked:
    """Values `(batch, time, ...)` with a mask `(batch, time)` (True = real step) or None.

    Immutable: the methods return new objects. Registered as a PyTorch pytree, so
    `torch.utils._pytree`, `torch.compile` and `torch.func` see through it.

    Example:
        >>> x = Masked.pad([torch.ones(3, 2), torch.ones(1, 2)])
        >>> x.values.shape, x.lengths.tolist()
        (torch.Size([2, 3, 2]), [3, 1])

    Args:
        values: tensor `(batch, time, ...)`.
        mask: bool tensor `(batch, time)`, True = real step; None = no mask.
    """

    __slots__ = ("mask", "values")
    values: torch.Tensor
    mask: torch.Tensor | None

    def __init__(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if isinstance(values, Masked):
            raise MaskwiseTypeError(
                format_error(
                    "Masked(values, mask) got a Masked as `values`.",
                    fix="pass `x.values`, or use `x.with_mask(mask)` to replace a mask.",
                )
            )
        if not isinstance(values, torch.Tensor):
            raise MaskwiseTypeError(
                format_error(
                    "Masked values must be a torch.Tensor.",
                    received=type(values).__name__,
                    fix="convert first, e.g. `torch.as_tensor(array)`.",
                )
            )
        if values.dim() < 2:
            raise ShapeError(
                format_error(
                    "Masked values need at least a batch and a time axis.",
                    expected="(batch, time, ...)",
                    received=f"shape {tuple(values.shape)}",
                    fix="add the missing axis, e.g. `values.unsqueeze(0)` for one sequence.",
                )
            )
        if mask is not None:
            _check_mask(mask, values)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "mask", mask)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Masked is immutable: use `with_values` or `with_mask`.")

    def __reduce__(self) -> tuple[type[Masked], tuple[torch.Tensor, torch.Tensor | None]]:
        """`copy.copy`, `copy.deepcopy` and `pickle` (so `torch.save` of a model that
        holds a `Masked`) rebuild it from its values and mask, as attribute assignment
        is refused."""
        return (Masked, (self.values, self.mask))

    def __repr__(self) -> str:
        if self.mask is None:
            mask_text = "mask=None"
        else:
            mask_text = f"real={self.coverage:.0%} of {self.mask.numel()} steps"
        return f"Masked(values={tuple(self.values.shape)} {self.values.dtype}, {mask_text})"

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        """A PyTorch function or module given a `Masked` (a `torch.nn.Linear` in your
        own `forward`, `torch.relu(x)`): a `MaskwiseTypeError` naming the function and
        the ways to keep the mask, instead of PyTorch's "must be Tensor, not Masked"."""
        name = getattr(func, "__name__", repr(func))
        raise MaskwiseTypeError(
            format_error(
                f"torch's `{name}` got a maskwise Masked (values + mask), not a tensor.",
                expected="a torch.Tensor: PyTorch functions and modules do not read masks",
                received="Masked(values, mask)",
                fix="for a per-step function keep the mask with the values: "
                f"`x.with_values({name}(x.values, ...))`; for a per-step module call "
                "`layers.Lambda(module)(x)` (in mw.Sequential it is wrapped for you); for a "
                "function that mixes steps (sum, mean, cat over time) use the maskwise "
                "layer (GlobalAveragePooling1D, Concatenate, ...), which reads the mask.",
            )
        )

    # A Masked is not an array: numpy and torch would otherwise make of it a 0-d object
    # array (`np.asarray`) or fail with "Could not infer dtype of Masked" (`torch.tensor`,
    # which reads it as a sequence through `__len__`). Indexing and iterating raise
    # `refuse_tensor_habits`'s error.
    def __array__(self, dtype: Any = None, copy: Any = None) -> NoReturn:
        _refuse_conversion("np.asarray(x) (or np.array)")

    def __len__(self) -> NoReturn:
        _refuse_conversion("len(x), torch.tensor(x) or torch.as_tensor(x)")

    def __bool__(self) -> bool:
        """A Masked is always true (it defines `__len__` only to refuse it)."""
        return True

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def time(self) -> int:
        return self.values.shape[1]

    @property
    def full_mask(self) -> torch.Tensor:
        """The mask, or an all-True `(batch, time)` mask when there is none."""
        if self.mask is not None:
            return self.mask
        return torch.ones(self.values.shape[:2], dtype=torch.bool, device=self.values.device)

    @property
    def lengths(self) -> torch.Tensor:
        """Number of real steps per sequence, int64 `(batch,)`."""
        return self.full_mask.sum(dim=1)

    @property
    def coverage(self) -> float:
        """Fraction of steps that are real (1.0 without a mask)."""
        if self.mask is None or self.mask.numel() == 0:
            return 1.0
        return float(self.mask.float().mean())

    # ------------------------------------------------------------------ new objects
    def with_values(self, values: torch.Tensor) -> Masked:
        """The same mask on new values (their batch and time axes must match)."""
        return Masked(values, self.mask)

    def with_mask(self, mask: torch.Tensor | None) -> Masked:
        """The same values under another mask."""
        return Masked(self.values, mask)

    def to(self, *args: Any, **kwargs: Any) -> Masked:
        """Like `Tensor.to`: values move and cast; the mask only moves (it stays bool),
        asynchronously too with `non_blocking=True`."""
        values = self.values.to(*args, **kwargs)
        non_blocking = bool(kwargs.get("non_blocking", False))
        mask = (
            None
            if self.mask is None
            else self.mask.to(device=values.device, non_blocking=non_blocking)
        )
        return Masked(values, mask)

    def detach(self) -> Masked:
        return Masked(self.values.detach(), self.mask)

    def fill_padding(self, value: float = 0.0) -> Masked:
        """Values with every padded step set to `value` (uses `where`, so NaN padding goes)."""
        if self.mask is None:
            return self
        return Masked(fill_padding(self.values, self.mask, value), self.mask)

    def unpad(self) -> list[torch.Tensor]:
        """One tensor per sequence holding only its real steps, in order `(length_i, ...)`.

        Works for any mask, not only trailing padding: masked steps in the middle of a
        sequence are left out too.
        """
        if self.mask is None:
            return list(self.values.unbind(0))
        return [row[keep] for row, keep in zip(self.values, self.mask, strict=True)]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_lengths(
        cls,
        values: torch.Tensor,
        lengths: Sequence[int] | torch.Tensor | np.ndarray,
        padding: Padding = "post",
    ) -> Masked:
        """Mask `values (batch, time, ...)` from per-sequence lengths.

        `padding="post"` means the real steps come first; `"pre"` means they come last.
        """
        if not isinstance(values, torch.Tensor):
            values = torch.as_tensor(np.asarray(values))
        if values.dim() < 2:
            raise ShapeError(
                format_error(
                    "from_lengths needs values with a batch and a time axis.",
                    expected="(batch, time, ...)",
                    received=f"shape {tuple(values.shape)}",
                )
            )
        mask = lengths_to_mask(lengths, values.shape[1], padding=padding, device=values.device)
        if mask.shape[0] != values.shape[0]:
            raise ShapeError(
                format_error(
                    "from_lengths got one length per sequence for a different batch size.",
                    expected=f"{values.shape[0]} lengths (batch axis of values)",
                    received=f"{mask.shape[0]} lengths",
                )
            )
        return cls(values, mask)

    @classmethod
    def pad(
        cls,
        sequences: Sequence[torch.Tensor | np.ndarray],
        value: float = 0.0,
        padding: Padding = "post",
        dtype: torch.dtype | None = None,
        max_len: int | None = None,
    ) -> Masked:
        """Pad a list of `(length_i, ...)` sequences into one batch, with its mask.

        Args:
            sequences: one array per sequence, time first; trailing axes must agree.
            value: what the padded steps hold (irrelevant to maskwise, which reads the
                mask; it matters only to code that ignores it).
            padding: `"post"` (pad after the real steps, default) or `"pre"`.
            dtype: cast to this dtype (default: the sequences' dtypes promoted together
                by `torch.promote_types`, as `torch.cat` does: int64 and float32 give
                float32, float32 and float64 give float64, so no value is truncated).
            max_len: pad to this length instead of the longest sequence's.
        """
        if padding not in ("post", "pre"):
            raise MaskError(
                format_error(
                    "Unknown padding side.",
                    expected="'post' or 'pre'",
                    received=repr(padding),
                )
            )
        if len(sequences) == 0:
            raise ShapeError(format_error("Masked.pad got no sequences.", fix="pass at least one."))
        tensors = [_as_tensor(s) for s in sequences]
        if dtype is None:
            dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
        trailing = {tuple(t.shape[1:]) for t in tensors}
        if any(t.dim() == 0 for t in tensors) or len(trailing) != 1:
            shapes = sorted({tuple(t.shape) for t in tensors})[:4]
            raise ShapeError(
                format_error(
                    "Masked.pad needs sequences shaped (length_i, ...) with the same "
                    "trailing axes.",
                    expected="e.g. (12, 5), (7, 5), (20, 5) for 5 features",
                    received=f"shapes such as {shapes}",
                    fix="make every sequence time-first; transpose any (features, time) array.",
                )
            )
        lengths = [t.shape[0] for t in tensors]
        longest = max(lengths)
        total = longest if max_len is None else max_len
        if total < longest:
            raise ShapeError(
                format_error(
                    "Masked.pad: max_len is shorter than the longest sequence.",
                    expected=f"max_len >= {longest}",
                    received=f"max_len={max_len}",
                    fix="raise max_len, or truncate the sequences first.",
                )
            )
        first = tensors[0]
        if padding == "post" and total == longest:  # one copy in C++, not one per row
            same = [t.to(first.device, dtype) for t in tensors]
            values = torch.nn.utils.rnn.pad_sequence(same, batch_first=True, padding_value=value)
            return cls.from_lengths(values, lengths, padding=padding)
        values = torch.full(
            (len(tensors), total, *first.shape[1:]), value, dtype=dtype, device=first.device
        )
        for row, seq in enumerate(tensors):
            n = seq.shape[0]
            if padding == "post":
                values[row, :n] = seq
            else:
                values[row, total - n :] = seq
        return cls.from_lengths(values, lengths, padding=padding)


_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//"}
_OPERATORS |= {"mod": "%", "pow": "**", "matmul": "@"}


def refuse_tensor_habits(cls: type, advice: Callable[[str, str], str]) -> None:
    """Give `cls`, an object that carries tensors but is not one, errors for the tensor
    habits instead of Python's bare ones: indexing (`x[:, 1:]`), arithmetic (`x + y`,
    `2 * x`, `-x`) raise a `MaskwiseTypeError`, and a `torch.Tensor` method it lacks
    (`x.mean`, `x.view`, `x.cpu`) an `AttributeError`, each with `advice(use, name)`:
    `use` is `"index"`, `"operator"` or `"method"`, `name` the operator or method.

    Example:
        >>> Masked(torch.zeros(1, 2, 1)).mean()
        Traceback (most recent call last):
        ...
        AttributeError: Masked has no `.mean`: ...
    """

    def index(self: Any, key: Any) -> Any:
        raise MaskwiseTypeError(advice("index", "[]"))

    def operator(name: str) -> Callable[..., Any]:
        def refuse(self: Any, *other: Any) -> Any:
            raise MaskwiseTypeError(advice("operator", name))

        return refuse

    def method(self: Any, name: str) -> Any:
        if name.startswith("__") or not hasattr(torch.Tensor, name):
            raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")
        raise AttributeError(advice("method", name))

    refusals = {"__getitem__": index, "__getattr__": method}
    refusals |= {"__neg__": operator("-x"), "__abs__": operator("abs(x)")}
    for name, symbol in _OPERATORS.items():
        refusals[f"__{name}__"] = operator(f"x {symbol} ...")
        refusals[f"__r{name}__"] = operator(f"... {symbol} x")
    for dunder, refusal in refusals.items():
        setattr(cls, dunder, refusal)


def _masked_advice(use: str, name: str) -> str:
    if use == "index":
        return format_error(
            "A Masked is not indexed like a tensor: `x[...]` would cut the values apart "
            "from their mask.",
            fix="index both: `Masked(x.values[rows], x.mask[rows])` for some sequences; "
            "along time, `layers.Cropping1D` or `Lambda(fn, mask=lambda inputs, mask: "
            "mask[:, a:b])`; `x.unpad()` gives each sequence's real steps.",
        )
    if use == "operator":
        return format_error(
            f"Masked does not support `{name}`: maskwise does not guess the mask of the result.",
            fix="two Masked: a merge layer, `layers.Add()([a, b])` (Subtract, Multiply, "
            "...: a step padded in either input is padded in the output); a constant or "
            "a per-step tensor: `x.with_values(x.values * c)`.",
        )
    return format_error(
        f"Masked has no `.{name}`: it is values with a mask, not a tensor.",
        fix=f"per step: `x.with_values(x.values.{name}(...))`; over time, `x.values` "
        "holds the padding too: use `layers.GlobalAveragePooling1D()(x)` (or "
        "GlobalMaxPooling1D) or `x.unpad()`; to move it, `x.to(device)`.",
    )


refuse_tensor_habits(Masked, _masked_advice)
# A Masked is rebuilt from tensors alone (`Masked(values, mask)`, its `__reduce__`), so
# `torch.load`'s default `weights_only=True` may load a saved one.
torch.serialization.add_safe_globals([Masked])


def _refuse_conversion(operation: str) -> NoReturn:
    """A `MaskwiseTypeError` for reading a `Masked` as an array or a sequence: it holds
    two tensors, and which one the caller wants (or whether per-sequence arrays) is
    theirs to say."""
    raise MaskwiseTypeError(
        format_error(
            f"{operation} got a maskwise Masked (values + mask), which is no array.",
            expected="a tensor or an array: the Masked's values, its mask, or its sequences",
            received="Masked(values, mask)",
            fix="take the part you need: `x.values` (the padded batch, (batch, time, ...)), "
            "`x.mask` (bool (batch, time), True = real step), `x.unpad()` (one tensor per "
            "sequence, of its true length), `x.lengths`; for a model's predictions as "
            "arrays, `model.predict(x)` returns one array per sequence.",
        )
    )


def _as_tensor(sequence: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(sequence, torch.Tensor):
        return sequence
    return torch.as_tensor(np.asarray(sequence))


def _check_mask(mask: Any, values: torch.Tensor) -> None:
    if not isinstance(mask, torch.Tensor):
        raise MaskwiseTypeError(
            format_error(
                "A mask must be a bool torch.Tensor (batch, time).",
                received=type(mask).__name__,
                fix="convert it, e.g. `torch.as_tensor(mask, dtype=torch.bool)`.",
            )
        )
    if mask.dtype != torch.bool:
        raise MaskError(
            format_error(
                "A mask must be bool, True = real step.",
                expected="dtype torch.bool",
                received=f"dtype {mask.dtype}",
                fix="use `mask.bool()` (nonzero = real step) or `mask == 1`; for an "
                "additive float mask (0 = real, -inf = padded), `mask == 0`.",
            )
        )
    if tuple(mask.shape) != tuple(values.shape[:2]):
        raise MaskError(
            format_error(
                "The mask does not match the values' batch and time axes.",
                expected=f"mask shape (batch, time) = {tuple(values.shape[:2])}",
                received=f"mask shape {tuple(mask.shape)} for values {tuple(values.shape)}",
                fix="a mask has one entry per (sequence, step); drop any feature axis, "
                "e.g. `mask.all(-1)`.",
            )
        )
    if mask.device != values.device:
        raise MaskError(
            format_error(
                "The mask and the values are on different devices.",
                expected=f"both on {values.device}",
                received=f"mask on {mask.device}",
                fix="move them together with `Masked(values, mask).to(device)`.",
            )
        )


# ---------------------------------------------------------------------- mask algebra
def real_steps_first(mask: torch.Tensor) -> torch.Tensor:
    """The mask `(batch, time)` with as many real steps in each row as `mask` has, all
    first: equal to `mask` exactly when every row is padded at its end (what
    `Masked.pad` and the loaders make).

    Example:
        >>> real_steps_first(torch.tensor([[True, False, True]])).tolist()
        [[True, True, False]]
    """
    return torch.arange(mask.shape[1], device=mask.device) < mask.sum(dim=1, keepdim=True)


def lengths_to_mask(
    lengths: Sequence[int] | torch.Tensor | np.ndarray,
    max_len: int | None = None,
    padding: Padding = "post",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool mask `(batch, max_len)` with `lengths[i]` real steps in row i.

    Lengths are whole numbers: floats are accepted only when they are (`3.0`); a
    fractional, NaN or infinite length, a negative one, or one longer than `max_len`
    raises a `MaskError` naming it, and a non-numeric one a `MaskwiseTypeError`.

    Example:
        >>> lengths_to_mask([3, 1], 4)
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
        >>> lengths_to_mask([3, 1], 4, padding="pre")[1].tolist()
        [False, False, False, True]
    """
    lengths_t = _whole_lengths(lengths, device)
    if lengths_t.dim() != 1:
        raise ShapeError(
            format_error(
                "lengths must be one integer per sequence.",
                expected="shape (batch,)",
                received=f"shape {tuple(lengths_t.shape)}",
            )
        )
    if lengths_t.numel() and int(lengths_t.min()) < 0:
        raise MaskError(
            format_error("Sequence lengths cannot be negative.", received=str(lengths_t.tolist()))
        )
    longest = int(lengths_t.max()) if lengths_t.numel() else 0
    total = longest if max_len is None else int(max_len)
    if longest > total:
        bad = int(torch.argmax(lengths_t))
        raise MaskError(
            format_error(
                "A sequence length is longer than the time axis.",
                expected=f"every length <= {total} (the time axis)",
                received=f"length {longest} for sequence {bad}",
                fix="check that the time axis is axis 1 of values (batch, time, ...), "
                "or pad to the longest sequence.",
            )
        )
    steps = torch.arange(total, device=lengths_t.device)
    if padding == "post":
        return steps.unsqueeze(0) < lengths_t.unsqueeze(1)
    if padding == "pre":
        return steps.unsqueeze(0) >= (total - lengths_t).unsqueeze(1)
    raise MaskError(
        format_error("Unknown padding side.", expected="'post' or 'pre'", received=repr(padding))
    )


def per_step(steps: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`steps (batch, time)` (a mask, or an index per step) viewed as `(batch, time, 1,
    ...)`, so that it broadcasts against `values (batch, time, ...)`.

    Example:
        >>> per_step(torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, 5, 3, 4)).shape
        torch.Size([2, 5, 1, 1])
    """
    return steps.reshape(steps.shape + (1,) * (values.dim() - 2))


def fill_padding(values: torch.Tensor, mask: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """`values (batch, time, ...)` with the steps where `mask` is False set to `value`.

    A select, not a multiplication: the padded steps become a constant, whatever they
    held (NaN, inf), and in the backward pass the select sends no gradient to them and
    drops whatever a function's derivative gave there (`sqrt` or `log` at the fill
    value: inf times a zero gradient is NaN) instead of multiplying it into a weight.
    It is `torch.where`'s result bit for bit; the fill with +0 of a float tensor runs
    as a bitwise AND (`_ZeroPadding`), about 3x faster on CPU, and returns a
    contiguous tensor.

    Example:
        >>> values = torch.tensor([[[1.0], [2.0], [float("nan")]]])
        >>> fill_padding(values, lengths_to_mask([2], 3), value=-1.0)[..., 0]
        tensor([[ 1.,  2., -1.]])
    """
    if not _plain_zero(value):
        return torch.where(per_step(mask, values), values, values.new_full((), value))
    if is_zero_filled(values, mask):
        return values
    if not _bitwise_fill_applies(values):
        return torch.where(per_step(mask, values), values, values.new_zeros(()))
    keep = per_step(mask, values).to(_SAME_SIZE_INTEGER[values.dtype]).neg_()  # -1: all bits
    if values.requires_grad and torch.is_grad_enabled():
        filled = _ZeroPadding.apply(values, keep)
    else:
        filled = _and_bits(values, keep)
    return remember_zero_filled(filled, mask)


def remember_zero_filled(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Record that `values` is as `fill_padding(values, mask)` returns it: +0 at every
    padded step, and no gradient passing back from there (see `_ZERO_FILLED`), so that
    filling it again by `mask` returns it as it is. For the code that makes such a
    tensor another way (the recurrent layers' gather of their outputs). Returns
    `values`."""
    if not torch.compiler.is_compiling() and not (values.is_inference() or mask.is_inference()):
        _ZERO_FILLED[values] = (mask, values._version, mask._version)  # inference: no version
    return values


_SAME_SIZE_INTEGER = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
"""The integer dtype of each float dtype's size, to AND its bits with."""


class _ZeroPadding(torch.autograd.Function):
    """`fill_padding(values, mask)` with +0, as a bitwise AND of each element's bits
    with those of `keep` (all ones at a real step, -1; all zeros at a padded one, 0).

    The result is `torch.where`'s, bit for bit (a real step's value whatever it is, NaN
    and -0 included; +0 at a padded step), and so is the gradient, the same AND: but an
    AND is one vectorized pass at memory speed, where PyTorch's CPU `where` with a mask
    broadcast over the features runs element by element, about 3x slower. The result
    is laid out batch-major whatever the input's layout (a fused recurrent kernel's
    output is time-major), which is what the next layer's matmul reads."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # The form with `ctx` first: PyTorch binds a `setup_context` Function's
        # arguments by `inspect.signature` at every call (about 0.1 ms).
        ctx.save_for_backward(keep)
        return _and_bits(values, keep)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return _ZeroPadding.apply(grad, keep), None


def _bitwise_fill_applies(values: torch.Tensor) -> bool:
    """Whether `_ZeroPadding` can fill `values`: a float dtype with an integer of its
    size, in eager mode (`torch.compile` and `torch.func`'s transforms trace `where`,
    which they fuse or batch, and not an AND into a preallocated tensor)."""
    return (
        values.dtype in _SAME_SIZE_INTEGER
        and not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
    )


def _and_bits(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`values` with the bits of each element ANDed with `keep`'s (broadcast), into a
    new contiguous tensor."""
    out = torch.empty(values.shape, dtype=keep.dtype, device=values.device)
    torch.bitwise_and(values.view(keep.dtype), keep, out=out)
    return out.view(values.dtype)


_ZERO_FILLED: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
"""The tensors `fill_padding` returned with +0 at the padded steps, each with the mask
they were filled by and the versions of both then (an in-place change bumps them).
Filling such a tensor again by the same mask, as the next layer does, returns it as it
is: the values are the same, and its padded steps already pass no gradient back (the
first fill's select drops whatever a later function's derivative gives there), so the
loss, the gradients and the weights are the same, one pass forwards and one backwards
fewer."""


def _plain_zero(value: float) -> bool:
    """Whether `value` is +0 (not -0, which `where` would write as -0)."""
    return value == 0 and math.copysign(1.0, value) > 0


def is_zero_filled(values: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether `values` is a tensor `fill_padding` returned for `mask` (or one recorded
    by `remember_zero_filled`; the same tensor, neither changed in place since), so that
    its padded steps hold +0 and pass no gradient back already."""
    if torch.compiler.is_compiling():
        return False
    entry = _ZERO_FILLED.get(values)
    return (
        entry is not None
        and entry[0] is mask
        and entry[1] == values._version
        and entry[2] == mask._version
    )


def _whole_lengths(
    lengths: Sequence[int] | torch.Tensor | np.ndarray, device: torch.device | str | None
) -> torch.Tensor:
    """`lengths` as an int64 tensor, refusing values that are not whole numbers (a cast
    would truncate 2.5 to 2 and turn NaN into a huge negative number, silently)."""
    try:
        array = lengths if isinstance(lengths, torch.Tensor) else np.asarray(lengths)
        tensor = torch.as_tensor(array, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise MaskwiseTypeError(
            format_error(
                "Sequence lengths must be integers.",
                received=f"{type(lengths).__name__} {str(lengths)[:80]} ({error})",
                fix="pass one integer per sequence, e.g. `[len(s) for s in sequences]`.",
            )
        ) from None
    if tensor.is_floating_point():
        whole = torch.isfinite(tensor) & (tensor == tensor.round())
        if not bool(whole.all()):
            bad = (~whole).nonzero()[0].tolist()
            raise MaskError(
                format_error(
                    "Sequence lengths must be whole numbers of steps.",
                    expected="integers >= 0 (floats only when whole, like 3.0)",
                    received=f"length {tensor[tuple(bad)].item()} at index "
                    f"{bad[0] if len(bad) == 1 else tuple(bad)}",
                    fix="count the real steps of each sequence, e.g. "
                    "`mask.sum(dim=1)` or `[len(s) for s in sequences]`.",
                )
            )
    elif tensor.is_complex():
        raise MaskwiseTypeError(
            format_error("Sequence lengths must be integers.", received=f"dtype {tensor.dtype}")
        )
    return tensor.long()


def combine_masks(masks: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """A step is real only where it is real in every mask; `None` masks are ignored.

    This is the merge rule (Keras's `Concatenate`, `Add`, ...): a step masked in any
    input is masked in the output.

    Example:
        >>> a = torch.tensor([[True, True, False]])
        >>> b = torch.tensor([[False, True, True]])
        >>> combine_masks([a, b, None])
        tensor([[False,  True, False]])
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for mask in present[1:]:
        if mask.shape != out.shape:
            raise MaskError(
                format_error(
                    "Cannot combine masks of different shapes.",
                    expected=f"all (batch, time) = {tuple(out.shape)}",
                    received=f"{tuple(mask.shape)}",
                    fix="pad every input of the merge to the same time axis.",
                )
            )
        out = out & mask
    return out


def compaction_order(mask: torch.Tensor) -> torch.Tensor:
    """Per-row permutation `(batch, time)` putting the real steps first, in their order.

    `values.gather(1, order)` moves each row's real steps to the front (a stable
    compaction) and its padded steps behind them; `scatter` with the same order undoes
    it. A non-contiguous or pre-padded mask then looks like post-padding.
    """
    return torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices


def gather_steps(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """`values (batch, time, ...)` reordered along time by `order (batch, time)`."""
    return values.gather(1, per_step(order, values).expand_as(values))


def as_masked(
    inputs: Masked | torch.Tensor | np.ndarray, mask: torch.Tensor | None = None
) -> Masked:
    """Turn a layer's input into a `Masked`.

    A `Masked` passes through (an explicit `mask` then replaces its own); a tensor or
    array becomes a `Masked` with `mask` (None = every step real).
    """
    if isinstance(inputs, Masked):
        return inputs if mask is None else inputs.with_mask(mask)
    if isinstance(inputs, np.ndarray):
        inputs = torch.as_tensor(inputs)
    if isinstance(inputs, torch.Tensor):
        return Masked(inputs, mask)
    raise MaskwiseTypeError(
        format_error(
            "A maskwise layer takes a Masked, a torch.Tensor or a numpy array.",
            received=type(inputs).__name__,
            fix="pad a list of sequences first: `Masked.pad(sequences)` (of a "
            "PackedSequence: `Masked.pad(torch.nn.utils.rnn.unpack_sequence(packed))`); "
            "for several inputs call a merge layer or a model with a list.",
        )
    )


def _flatten(x: Masked) -> tuple[list[Any], None]:
    return [x.values, x.mask], None


def _flatten_with_keys(x: Masked) -> tuple[list[tuple[Any, Any]], None]:
    """The leaves with their names (`torch.export` asks for them)."""
    return [(pytree.GetAttrKey("values"), x.values), (pytree.GetAttrKey("mask"), x.mask)], None


def _unflatten(children: Iterable[Any], _context: Any) -> Masked:
    # No validation here: pytree utilities may rebuild a Masked around leaves that are
    # not tensors (shapes, fakes, None) while they map over a structure.
    values, mask = children
    rebuilt = object.__new__(Masked)
    object.__setattr__(rebuilt, "values", values)
    object.__setattr__(rebuilt, "mask", mask)
    return rebuilt


pytree.register_pytree_node(
    Masked,
    _flatten,
    _unflatten,
    serialized_type_name="maskwise.masked.Masked",
    flatten_with_keys_fn=_flatten_with_keys,
)
