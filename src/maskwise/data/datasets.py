"""`SequenceDataset`: in-memory sequences in any of the forms users have, batched on demand.

Input forms (each becomes one model input):
- a padded array `(N, T, ...)` (numpy or torch): every batch is trimmed to its own
  longest sequence, and `Batch.x` is a `Masked` with `mask=None`. The model's own
  `Masking` layer (or `Embedding(mask_zero=True)`) creates the mask, exactly as in
  Keras; giving the batch a mask as well would make that layer warn about double
  masking. Lengths are inferred from the trailing steps whose features all
  equal `mask_value` (post-padding; `mask_value=None`: every step is real) and used
  only to bucket, to trim, and to pad the targets: per-step targets at those padded
  steps are replaced by `IGNORE_INDEX` (integers) or NaN (floats), so even a model that
  lost its mask cannot learn the padding silently (the loss raises on a padding target
  at a real step).
- a list of `(T_i, F)` arrays, one per sequence: padded per batch; `Batch.x` is a
  `Masked` with the mask from the lengths.
- a `Masked` whose real steps come first in every row (what `Masked.pad` makes):
  read as its rows cut to their real steps, so as the list of them (without a mask:
  every step of each row).
- a list of 1-D integer arrays (token ids for `Embedding`): padded with 0, values
  `(batch, time)` int64, mask from the lengths. A real token 0 gets a `MaskWarning`
  (an `Embedding(mask_zero=True)` would mask it).
- several inputs: a tuple of the forms above (a list holding a 3-D array is read as
  several inputs too, the Keras habit); `Batch.x` is then a tuple of `Masked`.

Targets `y`: per step, as a list of `(T_i, ...)` arrays or a padded array `(N, T, ...)`
whose axis 1 matches a padded input's time axis; or per sequence, `(N,)` / `(N, K)` or
a list of scalars; for a model with several outputs, a dict of them keyed by output name
(`Batch.y` is then a dict too). Integers stay as given (class ids need no "0 is padding"
slot). A padded array whose axis 1 matches the time axis could also be one row of `K`
values per sequence with `K == T` (a multi-output regression, a multi-label classifier):
it is read per step until the model's output says otherwise (`SequenceDataset.probe`
and `read_targets`, which `fit`, `evaluate` and the single-batch methods call once per
call: an output without a time axis reads it per sequence, as Keras does).

A padded target (or weight) array of three or more axes whose axis 1 is not the padded
inputs' time axis, such as the per-step targets `(N, T_out, ...)` of a model that crops,
shifts, strides or pools the time axis, cannot be trimmed along with the inputs: which
of its steps a trim would remove depends on the model. The batches of such a data set
keep the inputs' full padded time axis, as Keras's batches always do, and these targets
go whole into each batch, so the loss sees exactly Keras's outputs and targets (a
per-sequence array of three or more axes is batched alike: the same results, with more
padding to compute). Per-step class ids of such a model are passed as `(N, T_out, 1)`
(the sparse losses take that form): a 2-D `(N, K)` array stays per sequence, and its
batches are trimmed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import MaskWarning, ShapeError, format_error
from ..masked import Masked, lengths_to_mask, real_steps_first
from .batch import Batch
from .layout import check_sequences, trailing_lengths
from .padding import fill_after, pad_rows, pad_targets, to_tensor

_ARRAY = (np.ndarray, torch.Tensor)


class _PaddedInput:
    """A padded array `(N, T, ...)`; batches carry no mask (the model makes it)."""

    def __init__(self, values: torch.Tensor, mask_value: float | None, name: str) -> None:
        if values.dim() < 2:
            raise ShapeError(
                format_error(
                    f"{name}: a padded array needs a batch and a time axis.",
                    expected="(N, time, features), or (N, time) token ids",
                    received=f"shape {tuple(values.shape)}",
                    fix="ragged data is passed as a list of arrays, one per sequence.",
                )
            )
        self.values = values
        self.mask_value = mask_value
        self.time = values.shape[1]
        self.lengths = trailing_lengths(values, mask_value)
        if values.dim() == 3 and bool((self.lengths == self.time).all()) and values.shape[0]:
            _warn_if_time_last(values, mask_value, name)

    def __len__(self) -> int:
        return self.values.shape[0]

    def batch(self, index: torch.Tensor, time: int) -> Masked:
        values = self.values[index, :time]
        if time > self.time:  # another input of the batch is longer
            fill = 0.0 if self.mask_value is None else self.mask_value
            extra = torch.full(
                (values.shape[0], time - self.time, *values.shape[2:]), fill, dtype=values.dtype
            )
            values = torch.cat([values, extra], dim=1)
        return Masked(values, None)


class _RaggedInput:
    """One array per sequence `(T_i, ...)`; batches are padded and carry the mask."""

    def __init__(
        self,
        sequences: list[torch.Tensor],
        num_features: int | None,
        mask_value: float | None,
        name: str,
    ) -> None:
        check_sequences(sequences, num_features, mask_value, name)
        self.sequences = sequences
        self.lengths = torch.tensor([s.shape[0] for s in sequences], dtype=torch.long)
        if sequences[0].dim() == 1:
            _warn_on_zero_tokens(sequences, name)

    def __len__(self) -> int:
        return len(self.sequences)

    def batch(self, index: torch.Tensor, time: int) -> Masked:
        values = pad_rows([self.sequences[i] for i in index.tolist()], time)
        return Masked(values, lengths_to_mask(self.lengths[index], time, device=values.device))


class _Column:
    """Targets or sample weights: per step (padded with `fill`) or per sequence."""

    def __init__(
        self,
        data: Any,
        name: str,
        lengths: torch.Tensor,
        inputs: tuple[_PaddedInput | _RaggedInput, ...],
        fill: float | None,
        as_float: bool,
    ) -> None:
        self.fill = fill
        self.ragged: list[torch.Tensor] | None = None
        if hasattr(data, "to_numpy"):  # pandas
            data = data.to_numpy()
        n = len(lengths)
        if len(data) != n:
            raise ShapeError(
                format_error(
                    f"x and {name} hold different numbers of sequences.",
                    expected=f"len({name}) == len(x) == {n}",
                    received=f"len({name}) = {len(data)}",
                    fix="several inputs are passed as a tuple `(x1, x2, ...)`, not a list.",
                )
            )
        if not isinstance(data, _ARRAY):
            items = [to_tensor(item, f"{name}[{i}]") for i, item in enumerate(data)]
            times = {inp.time for inp in inputs if isinstance(inp, _PaddedInput)}
            if all(item.dim() == 0 for item in items):
                data = np.asarray([item.item() for item in items])
            elif (
                len({item.shape for item in items}) == 1
                and items[0].dim() >= 1
                and items[0].shape[0] in times
            ):
                data = torch.stack(items)  # per-step targets of a padded input
            else:
                if as_float or any(item.is_floating_point() for item in items):
                    items = [item.to(torch.float32) for item in items]
                _check_steps(items, name, lengths, inputs)
                self.per_step, self.ragged = True, items
                self.pending = self.keeps_time = False
                return
        values = to_tensor(data, name)
        self.values = values.to(torch.float32) if as_float else values
        times = {inp.time for inp in inputs if isinstance(inp, _PaddedInput)}
        self.per_step = values.dim() >= 2 and len(times) == 1 and values.shape[1] in times
        # Read per step from its shape alone, and the two readings differ (a sequence is
        # shorter than the padded time axis): the model's output settles it (`read_as`).
        self.pending = self.per_step and bool((lengths < values.shape[1]).any())
        self.keeps_time = self._keeps_time(bool(times))

    def _keeps_time(self, padded: bool) -> bool:
        """Per-step data of another time axis (see the module docstring): untrimmed batches."""
        return self.values.dim() >= 3 and padded and not self.per_step

    def read_as(self, per_step: bool) -> None:
        """Settle a pending column: one value per step, or per sequence (`pending`)."""
        self.per_step, self.pending = per_step, False
        self.keeps_time = self._keeps_time(True)

    def batch(
        self, index: torch.Tensor, time: int, lengths: torch.Tensor, as_given: bool = False
    ) -> torch.Tensor:
        if self.ragged is not None:
            return pad_targets([self.ragged[i] for i in index.tolist()], time, self.fill)
        if not self.per_step or (as_given and self.pending):
            return self.values[index]
        values = self.values[index, :time]
        return fill_after(values, lengths, self.fill)


def _per_step(output: Masked | torch.Tensor, time: int, width: int) -> bool | None:
    """Whether the targets of a pending column (axis 1 of `width`, the padded inputs'
    time axis) are one per step for `output`, the model's output on a sequence of
    `time < width` steps: True for an output with a mask or `time` steps on axis 1,
    False for one of `width` values per sequence; None for neither (the targets fit
    no reading of this output: the losses and the doctor's MW016 say so)."""
    values = output.values if isinstance(output, Masked) else output
    if isinstance(output, Masked) and output.mask is not None:
        return True
    if values.dim() < 2 or values.shape[1] not in (time, width):
        return None
    return bool(values.shape[1] == time)


def _check_steps(
    items: list[torch.Tensor],
    name: str,
    lengths: torch.Tensor,
    inputs: tuple[_PaddedInput | _RaggedInput, ...],
) -> None:
    for i, (item, length) in enumerate(zip(items, lengths.tolist(), strict=True)):
        if item.dim() >= 1 and item.shape[0] == length:
            continue
        fix = (
            f"give {name}[{i}] one entry per real step; for one target vector per "
            f"sequence pass `np.stack({name})`."
        )
        ragged = [inp for inp in inputs if isinstance(inp, _RaggedInput)]
        if ragged and ragged[0].sequences[i].dim() == 2:
            seq = ragged[0].sequences[i]
            if item.dim() >= 1 and item.shape[0] == seq.shape[1] != seq.shape[0]:
                fix = (
                    f"x[{i}] looks transposed: it is {tuple(seq.shape)} and {name}[{i}] has "
                    f"{seq.shape[1]} steps; pass `[a.T for a in x]` so each array is "
                    "(time, features)."
                )
        raise ShapeError(
            format_error(
                f"Per-step {name}[{i}] does not match the length of sequence {i}.",
                expected=f"{length} steps",
                received=f"shape {tuple(item.shape)}",
                fix=fix,
            )
        )


def _warn_on_zero_tokens(sequences: list[torch.Tensor], name: str) -> None:
    for i, seq in enumerate(sequences):
        zeros = torch.nonzero(seq == 0)
        if len(zeros):
            warnings.warn(
                f"{name}[{i}] holds token id 0 at step {int(zeros[0, 0])}, a real step: an "
                "Embedding(mask_zero=True) would mask it as padding. The batches carry "
                "their mask from the lengths, so use Embedding(mask_zero=False), or "
                "shift the ids by 1 to keep 0 for padding.",
                MaskWarning,
                stacklevel=5,
            )
            return


def _warn_if_time_last(values: torch.Tensor, mask_value: float | None, name: str) -> None:
    if mask_value is None:
        return
    columns = trailing_lengths(values.transpose(1, 2), mask_value)
    if bool((columns <= values.shape[2] - 2).any()):
        warnings.warn(
            f"{name} (batch, time, features) = {tuple(values.shape)} has no padded steps "
            f"at the end of axis 1, but its sequences end in features that are all "
            f"{mask_value}: it looks like (batch, features, time). Fix: pass "
            "`x.transpose(0, 2, 1)` (numpy) or `x.transpose(1, 2)` (torch).",
            MaskWarning,
            stacklevel=5,
        )


def _targets(
    y: Any, lengths: torch.Tensor, inputs: tuple[_PaddedInput | _RaggedInput, ...]
) -> _Column | dict[str, _Column]:
    """The targets: one column, or one per output name for a dict (several outputs)."""
    if isinstance(y, dict):
        return {
            name: _Column(v, f"y[{name!r}]", lengths, inputs, None, False) for name, v in y.items()
        }
    return _Column(y, "y", lengths, inputs, None, False)


def split_inputs(x: Any) -> tuple[bool, list[Any]]:
    """(several inputs?, the raw inputs)."""
    if isinstance(x, tuple):
        return True, list(x)
    if isinstance(x, list) and any(isinstance(a, _ARRAY) and a.ndim >= 3 for a in x):
        return True, x
    return False, [x]


def _make_input(
    raw: Any, mask_value: float | None, num_features: int | None, name: str
) -> _PaddedInput | _RaggedInput:
    if isinstance(raw, Masked):
        return _RaggedInput(_real_steps(raw, name), num_features, mask_value, name)
    if isinstance(raw, _ARRAY) and not (isinstance(raw, np.ndarray) and raw.dtype == object):
        return _PaddedInput(to_tensor(raw, name), mask_value, name)
    if not isinstance(raw, Sequence | np.ndarray):
        if isinstance(raw, torch.utils.data.DataLoader | torch.utils.data.Dataset):
            fix = (
                "a torch DataLoader's padded batches carry no mask: pass the arrays "
                "themselves (`fit(X, y)`), or make the loader with "
                "`maskwise.data.make_loader(x, y, batch_size=...)`, which pads each batch "
                "and keeps its mask."
            )
        elif isinstance(raw, Mapping):
            fix = (
                "several inputs go as a tuple `(x1, x2, ...)`, in the order of the model's "
                "inputs (`fit`, `evaluate` and `predict` of a functional Model also take a "
                "dict keyed by input names)."
            )
        else:
            fix = "convert it to a numpy array or torch tensor, or a list of them."
        raise ShapeError(
            format_error(
                f"{name}: unsupported input type.",
                expected="a padded array (N, time, ...) or a list of (time_i, ...) arrays",
                received=type(raw).__name__,
                fix=fix,
            )
        )
    if len(raw) == 0:
        raise ShapeError(format_error(f"{name} holds no sequences.", fix="pass at least one."))
    sequences = [to_tensor(a, f"{name}[{i}]") for i, a in enumerate(raw)]
    return _RaggedInput(sequences, num_features, mask_value, name)


def _real_steps(x: Masked, name: str) -> list[torch.Tensor]:
    """The sequences of a `Masked`, each row cut to its real steps (every step of a
    row without a mask), which must come first in the row, as in the batches made from
    them; a mask that is not so (steps masked in between, or True at the padding) is a
    `ShapeError` naming the fix."""
    values, mask = x.values, x.mask
    if mask is None:
        return list(values.unbind(0))
    post_padded = real_steps_first(mask)
    if not torch.equal(mask, post_padded):
        row = int((mask != post_padded).any(dim=1).nonzero()[0])
        raise ShapeError(
            format_error(
                f"{name}: the Masked's real steps do not come first in every row, so its "
                "sequences cannot be read from their lengths.",
                expected="a mask True at each row's first steps, False after them",
                received=f"row {row}: {mask[row].int().tolist()[:16]}",
                fix="a mask True at the padding (PyTorch's key_padding_mask) is inverted: "
                "pass `Masked(values, ~mask)`; for real steps in between padded ones, train "
                "in your own loop (the layers and losses take the Masked as it is).",
            )
        )
    lengths = mask.sum(dim=1).tolist()
    return [row[:n] for row, n in zip(values.unbind(0), lengths, strict=True)]


class SequenceDataset:
    """In-memory sequences (one or several inputs), targets and weights, batched on demand.

    See the module docstring for the accepted forms and the padding rules.

    Example:
        >>> ds = SequenceDataset([np.ones((3, 2)), np.ones((1, 2))], y=[[1, 0, 1], [2]])
        >>> b = ds.collate([0, 1])
        >>> b.x.mask.tolist(), b.y.tolist()
        ([[True, True, True], [True, False, False]], [[1, 0, 1], [2, -100, -100]])

    Args:
        x: the inputs (padded array, list of per-sequence arrays, or a tuple of them).
        y: targets, per step or per sequence, or a dict of them by output name (a
            model with several outputs), or None.
        sample_weight: per sequence `(N,)`, or per step like `y` (padded with 0), or None.
        mask_value: the padding value of padded arrays (None: no padding to infer); also
            used to check the layout of ragged lists.
        num_features: the features of a ragged input, to check its layout (optional).
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        mask_value: float | None = 0.0,
        num_features: int | None = None,
    ) -> None:
        self.sequence_ids: list[Any] | None = None  # set by `from_dataframe`
        self.several, raws = split_inputs(x)
        names = [f"x[{i}]" for i in range(len(raws))] if self.several else ["x"]
        self.inputs = tuple(
            _make_input(raw, mask_value, None if self.several else num_features, name)
            for raw, name in zip(raws, names, strict=True)
        )
        sizes = {len(inp) for inp in self.inputs}
        if len(sizes) != 1:
            raise ShapeError(
                format_error(
                    "The inputs hold different numbers of sequences.",
                    expected="every input with the same number of sequences",
                    received=f"sizes {[len(inp) for inp in self.inputs]}",
                )
            )
        if sizes == {0}:
            raise ShapeError(format_error("x holds no sequences.", fix="pass at least one."))
        self.lengths = torch.stack([inp.lengths for inp in self.inputs]).amax(dim=0)
        self.y = None if y is None else _targets(y, self.lengths, self.inputs)
        self.sample_weight = (
            None
            if sample_weight is None
            else _Column(sample_weight, "sample_weight", self.lengths, self.inputs, 0.0, True)
        )
        self.full_time = self._full_time()

    def _full_time(self) -> int | None:
        """The padded inputs' time axis when a target or weight column keeps it (see the
        module docstring), else None: each batch is trimmed to its longest sequence."""
        columns = list(self.y.values()) if isinstance(self.y, dict) else [self.y]
        if not any(c is not None and c.keeps_time for c in [*columns, self.sample_weight]):
            return None
        return self._padded_time()

    def _padded_time(self) -> int:
        """The padded inputs' time axis (the longest, for several)."""
        return max(inp.time for inp in self.inputs if isinstance(inp, _PaddedInput))

    def _columns(self) -> dict[str | None, _Column]:
        """The target columns by output name (None: the one `y` of a model with one
        output), without the sample weights."""
        if isinstance(self.y, dict):
            return dict(self.y.items())
        return {} if self.y is None else {None: self.y}

    def probe(self) -> Batch | None:
        """The inputs of the shortest sequence, at its own length, when a target or
        weight column is pending: a padded array whose axis 1 is the inputs' time axis
        `T`, read per step from its shape alone while a sequence is shorter than `T`,
        so that it could also be `T` values per sequence (`(N, K)` targets with
        `K == T`). The model's output on this batch tells the two apart (`read_targets`);
        None when no column is pending.

        Example:
            >>> x = np.zeros((2, 3, 1), "float32"); x[0] = 1; x[1, :2] = 1  # lengths 3, 2
            >>> SequenceDataset(x, np.ones((2, 3))).probe().x.values.shape  # sequence 1
            torch.Size([1, 2, 1])
            >>> SequenceDataset(x, np.ones((2, 4))).probe() is None  # 4 values: per sequence
            True
        """
        if not self._pending():
            return None
        real = self.lengths.masked_fill(self.lengths == 0, int(self.lengths.max()) + 1)
        index = torch.argmin(real).reshape(1)  # the shortest sequence with a real step
        time = max(int(self.lengths[index]), 1)
        xs = tuple(inp.batch(index, time) for inp in self.inputs)
        return Batch(xs if self.several else xs[0], None, None, index)

    def _pending(self) -> bool:
        """Whether a target or weight column waits for the model's reading (`probe`)."""
        columns = [*self._columns().values(), self.sample_weight]
        return any(column is not None and column.pending for column in columns)

    def read_targets(
        self, outputs_of: Callable[[Batch], Mapping[str | None, Masked | torch.Tensor]]
    ) -> None:
        """Settle the pending columns (see `probe`) from the model's outputs on the
        `probe()` batch, `outputs_of(batch)`, keyed by output name (None: the output of
        a model given one `y`): an output with a mask, or with the probe's steps on
        axis 1, reads its targets per step; one of `T` values without a time axis, as
        `T` values per sequence (Keras's reading: its targets go whole into the loss).
        An output that is neither leaves them per step, for the loss to refuse. Pending
        sample weights follow the outputs: outputs of both kinds are a `ShapeError`.

        Example:
            >>> x = np.zeros((2, 3, 1), "float32"); x[0] = 1; x[1, :2] = 1  # lengths 3, 2
            >>> data = SequenceDataset(x, np.ones((2, 3), "float32"))
            >>> data.collate([1]).y  # per step: trimmed to 2 steps
            tensor([[1., 1.]])
            >>> data.read_targets(lambda probe: {None: torch.zeros(1, 3)})  # no time axis
            >>> data.collate([1]).y  # per sequence: the row whole
            tensor([[1., 1., 1.]])
        """
        probe = self.probe()
        if probe is None:
            return
        outputs = outputs_of(probe)
        first = probe.x[0] if isinstance(probe.x, tuple) else probe.x
        time = first.values.shape[1]
        pending = [(key, c) for key, c in self._columns().items() if c.pending and key in outputs]
        for key, column in pending:
            kind = _per_step(outputs[key], time, column.values.shape[1])
            if kind is not None:
                column.read_as(kind)
        weight = self.sample_weight
        if weight is not None and weight.pending:
            width = weight.values.shape[1]
            kinds = {_per_step(out, time, width) for out in outputs.values()}
            read = [kind for kind in kinds if kind is not None]
            if len(read) > 1:
                raise ShapeError(
                    format_error(
                        f"sample_weight {tuple(weight.values.shape)} could hold one weight "
                        f"per step or a row of {width} weights per sequence, and the "
                        "model's outputs differ: some keep the time axis, some do not.",
                        fix="give one weight per sequence, shaped (N,).",
                    )
                )
            if read:
                weight.read_as(read[0])
        self.full_time = self._full_time()

    def __len__(self) -> int:
        return len(self.lengths)

    def collate(self, indices: Sequence[int] | torch.Tensor, *, as_given: bool = False) -> Batch:
        """The batch of the sequences at `indices`, padded to their longest one (to the
        inputs' full padded time axis for targets of another time axis, `full_time`).

        `as_given`: the targets and weights that wait for the model's reading (`probe`)
        come whole, neither trimmed nor filled, beside the inputs at their full padded
        time axis: the data as given, for checks that read it either way (the doctor's).

        Example:
            >>> x = np.zeros((2, 3, 1), "float32"); x[0] = 1; x[1, :2] = 1  # lengths 3, 2
            >>> data = SequenceDataset(x, np.ones((2, 3), "float32"))
            >>> data.collate([1]).y, data.collate([1], as_given=True).y
            (tensor([[1., 1.]]), tensor([[1., 1., 1.]]))
        """
        index = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[index]
        given = as_given and self._pending()
        time = self._padded_time() if given else self.full_time or max(int(lengths.max()), 1)
        xs = tuple(inp.batch(index, time) for inp in self.inputs)
        y: Any = None
        if isinstance(self.y, dict):
            y = {name: column.batch(index, time, lengths, given) for name, column in self.y.items()}
        elif self.y is not None:
            y = self.y.batch(index, time, lengths, given)
        weight = None
        if self.sample_weight is not None:
            weight = self.sample_weight.batch(index, time, lengths, given)
        return Batch(xs if self.several else xs[0], y, weight, index)
