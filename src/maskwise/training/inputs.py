"""What the doors receive, made ready for the loop: loaders from the data, the
validation split, the device, the model's call on a batch, and the refusals of data
that cannot train (no batch, no targets)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..data import Batch, Loader, ParquetSequences, SequenceDataset, make_loader
from ..errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from ..masked import Masked
from .modes import training_mode
from .outputs import split_outputs


def forward(model: Callable[..., Any], x: Masked | tuple[Masked, ...]) -> Any:
    """Call `model` on a batch's inputs: one `Masked`, or several as separate arguments.
    The output: a `Masked` or a tensor, or a list, tuple or dict of them (several
    outputs, see `maskwise.training.outputs`).

    Example:
        >>> a, b = Input(shape=(None, 1), name="a"), Input(shape=(None, 2), name="b")
        >>> model = Model([a, b], layers.Concatenate()([a, b]))
        >>> xa = Masked(torch.ones(1, 2, 1), lengths_to_mask([1], 2))
        >>> xb = Masked(torch.zeros(1, 2, 2), lengths_to_mask([2], 2))
        >>> out = forward(model, (xa, xb))  # model(xa, xb)
        >>> out.values.shape, out.mask.tolist()  # a step masked in any input is masked
        (torch.Size([1, 2, 3]), [[True, False]])
    """
    out = model(*x) if isinstance(x, tuple) else model(x)
    parts = list(out.values()) if isinstance(out, dict) else out
    parts = parts if isinstance(parts, list | tuple) and parts else [parts]
    if not all(isinstance(part, Masked | torch.Tensor) for part in parts):
        raise MaskwiseTypeError(
            format_error(
                f"The model returned a {type(out).__name__}, which training cannot read.",
                expected="a Masked (or a tensor) from forward, or a list or dict of them "
                "(one per output)",
                received=repr(out)[:80],
                fix="return the outputs the losses should see; keep other values for a "
                "separate method.",
            )
        )
    return out


def read_targets(loader: Loader, model: nn.Module, names: list[str], device: torch.device) -> None:
    """Settle the targets that the loader's data reads per step from their shape alone
    while they could be one row per sequence (`(N, K)` with `K` the padded inputs'
    time axis, `SequenceDataset.probe`): the model's output on its shortest sequence
    says which (`SequenceDataset.read_targets`). One forward pass of one sequence,
    once per door call, and only for such data (it builds a lazy model).

    Example:
        >>> x = np.zeros((2, 3, 1), "float32"); x[0, :3] = 1; x[1, :2] = 1  # lengths 3, 2
        >>> y = np.ones((2, 3), "float32")  # 3 values per sequence, or one per step?
        >>> model = Sequential([layers.Masking(0.0), layers.LSTM(2), layers.Dense(3)])
        >>> loader = make_loader(x, y, batch_size=2, shuffle=False)
        >>> read_targets(loader, model, ["output"], torch.device("cpu"))
        >>> next(iter(loader)).y.shape  # per sequence: the output has no time axis
        torch.Size([2, 3])
    """
    data = loader.data
    if not isinstance(data, SequenceDataset):
        return

    def outputs_of(probe: Batch) -> dict[str | None, Any]:
        with training_mode(model, False), torch.no_grad():
            out = forward(model, probe.to(device).x)
        outputs: dict[str | None, Any] = dict(zip(names, split_outputs(out, names), strict=True))
        if len(names) == 1:
            outputs[None] = outputs[names[0]]  # a model of one output takes `y` as it is
        return outputs

    data.read_targets(outputs_of)


def resolve_device(device: torch.device | str) -> torch.device:
    """`device` as a `torch.device`, after checking that a tensor can live there.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        maskwise.errors.ConfigError: Device 'gpu' is not available on this machine.
        ...
    """
    try:
        resolved = torch.device(device)
        torch.empty(0, device=resolved)
    except (RuntimeError, AssertionError, TypeError, ValueError) as error:
        available = ["cpu"]
        if torch.cuda.is_available():
            available += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            available.append("mps")
        raise ConfigError(
            format_error(
                f"Device {device!r} is not available on this machine.",
                expected="one of " + ", ".join(available),
                received=f"{device!r}: {(str(error) or type(error).__name__).split('. ')[0]}",
                fix="pass an available device, or leave device=None to use the model's.",
            )
        ) from error
    return resolved


def require_batches(loader: Any, what: str) -> None:
    """Refuse data that yields no batch (e.g. `drop_last=True` with fewer sequences than
    `batch_size`): `fit` would stop at once, `evaluate` report a loss of 0 on nothing.

    Example:
        >>> loader = make_loader([np.ones((2, 1))], [0], batch_size=2, drop_last=True)
        >>> require_batches(loader, "training data")
        Traceback (most recent call last):
        ...
        maskwise.errors.ConfigError: The training data yields no batch.
          received: 1 sequences, batch_size=2, drop_last=True
          fix: pass more sequences, a smaller batch_size, or drop_last=False.
    """
    if len(loader) > 0:
        return
    raise ConfigError(
        format_error(
            f"The {what} yields no batch.",
            received=f"{loader.num_sequences} sequences, batch_size={loader.batch_size}, "
            f"drop_last={loader.drop_last}",
            fix="pass more sequences, a smaller batch_size, or drop_last=False.",
        )
    )


def require_targets(y: torch.Tensor | dict[str, torch.Tensor] | None, what: str) -> None:
    """Refuse a batch without targets where `what` (`"fit"`, `"evaluate"`) needs them.

    Example:
        >>> require_targets(torch.tensor([1, 0]), "fit")  # targets: nothing to say
        >>> require_targets(None, "evaluate")
        Traceback (most recent call last):
        ...
        maskwise.errors.ShapeError: evaluate() needs targets, and the data holds none.
        ...
    """
    if y is None:
        raise ShapeError(
            format_error(
                f"{what}() needs targets, and the data holds none.",
                expected="y: per-step targets (a list of (T_i,) arrays or a padded array) "
                "or per-sequence targets (N,)",
                received="y=None",
                fix=f"call `model.{what}(x, y, ...)`, or build the data set with its targets.",
            )
        )


def data_loader(
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int,
    mask_value: float | None,
    shuffle: bool = False,
    bucketing: bool = True,
    seed: int = 0,
) -> Loader:
    """`make_loader` without its data checks: the door that called checked the data."""
    return make_loader(
        x,
        y,
        batch_size=batch_size,
        shuffle=shuffle,
        bucketing=bucketing,
        seed=seed,
        sample_weight=sample_weight,
        mask_value=mask_value,
        checks="off",
    )


def validation_loader(
    data: Any, batch_size: int, mask_value: float | None, bucketing: bool = True
) -> Loader | None:
    """The loader of `fit`'s `validation_data` (None without any); without `bucketing`
    its batches hold the sequences in order (`validation_steps` takes the first ones)."""
    if data is None:
        return None
    if isinstance(data, Loader | SequenceDataset | ParquetSequences):
        return data_loader(data, None, None, batch_size, mask_value, bucketing=bucketing)
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        weight = data[2] if len(data) == 3 else None
        return data_loader(data[0], data[1], weight, batch_size, mask_value, bucketing=bucketing)
    raise ConfigError(
        format_error(
            "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight), "
            "or a Loader / SequenceDataset / ParquetSequences.",
            received=type(data).__name__,
        )
    )


def split_validation(
    x: Any, y: Any, sample_weight: Any, validation_data: Any, validation_split: float
) -> tuple[Any, Any, Any, Any]:
    """`(x, y, sample_weight, validation_data)` with the last `validation_split` of the
    sequences moved into `validation_data` (Keras's rule: the first
    `floor(N * (1 - validation_split))` sequences train); unchanged for 0."""
    if not validation_split:
        return x, y, sample_weight, validation_data
    if (
        not 0.0 < validation_split < 1.0
        or validation_data is not None
        or isinstance(x, Loader | SequenceDataset | ParquetSequences)
    ):
        raise ConfigError(
            format_error(
                "validation_split must be in (0, 1), without validation_data, "
                "and x must be arrays or lists (it splits off their tail).",
                received=f"validation_split={validation_split!r}, x: {type(x).__name__}",
                fix="for a Loader or a data set, pass validation_data instead.",
            )
        )
    n = len(x[0]) if isinstance(x, tuple) else len(x)
    keep = math.floor(n * (1.0 - validation_split))  # Keras's rule
    if keep in (0, n):
        raise ConfigError(
            format_error(
                f"validation_split={validation_split!r} of {n} sequences leaves no "
                f"{'training' if keep == 0 else 'validation'} sequence.",
                expected=f"{n} * (1 - validation_split) rounded down between 1 and "
                f"{n - 1} (the training sequences)",
                fix="pass more sequences or another validation_split, or pass validation_data.",
            )
        )
    x, x_val = _split_tail(x, keep)
    y, y_val = _split_tail(y, keep)
    sample_weight, weight_val = _split_tail(sample_weight, keep)
    return x, y, sample_weight, (x_val, y_val, weight_val)


def _split_tail(data: Any, keep: int) -> tuple[Any, Any]:
    """(first `keep` rows, the rest) of arrays, lists, tensors, or tuples or dicts of
    them."""
    if data is None:
        return None, None
    if isinstance(data, tuple):
        pairs = [_split_tail(d, keep) for d in data]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    if isinstance(data, dict):  # the targets of several outputs
        split = {key: _split_tail(d, keep) for key, d in data.items()}
        return {k: p[0] for k, p in split.items()}, {k: p[1] for k, p in split.items()}
    return data[:keep], data[keep:]


def inputs_by_name(x: Any, model: nn.Module, door: str) -> Any:
    """`x` as the loaders take it: a dict keyed by the input names of a functional
    `Model` (Keras's `fit({"tokens": ..., "tags": ...}, y)`) becomes its values in the
    model's input order (a tuple; the value itself for one input); anything else is
    unchanged. A dict whose keys are not the model's input names, or a dict for a
    model without named inputs, is a `ConfigError` naming them.

    Example:
        >>> tokens = Input(shape=(None,), dtype="int64", name="tokens")
        >>> tags = Input(shape=(None, 2), name="tags")
        >>> model = Model([tokens, tags], layers.Dense(1)(tags))
        >>> inputs_by_name({"tags": "T", "tokens": "W"}, model, "fit")
        ('W', 'T')
    """
    if not isinstance(x, Mapping):
        return x
    names: list[str] | None = getattr(model, "input_names", None)
    if names is None:
        raise ConfigError(
            format_error(
                f"{door}() takes a dict of inputs only for a functional Model, whose inputs "
                "have names.",
                received=f"a dict with keys {sorted(map(str, x))} for a {type(model).__name__}",
                fix="pass one input as it is, several as a tuple `(x1, x2, ...)` in the "
                "order the model takes them; or build a `Model` from named `Input`s.",
            )
        )
    unknown = [key for key in x if key not in names]
    missing = [name for name in names if name not in x]
    if unknown or missing:
        problems = [f"unknown input name(s) {unknown}"] if unknown else []
        problems += [f"missing {missing}"] if missing else []
        raise ConfigError(
            format_error(
                f"The inputs given to {door}() do not match the model's inputs {names}.",
                expected=f"a dict with keys {names}",
                received=", ".join(problems),
                fix="key each input by the name of its `Input(..., name=...)`.",
            )
        )
    values = tuple(x[name] for name in names)
    return values if len(values) > 1 else values[0]


def validation_inputs(data: Any, model: nn.Module) -> Any:
    """`fit`'s `validation_data` with its inputs as `inputs_by_name` gives them."""
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        return (inputs_by_name(data[0], model, "fit"), *data[1:])
    return data


def require_grad_mode(door: str) -> None:
    """`fit` and `train_on_batch` called where PyTorch computes no gradient (inside
    `torch.no_grad()` or `torch.inference_mode()`): a `ConfigError` naming the context,
    not PyTorch's "element 0 of tensors does not require grad" at the first step."""
    if torch.is_grad_enabled():
        return
    context = "inference_mode" if torch.is_inference_mode_enabled() else "no_grad"
    raise ConfigError(
        format_error(
            f"{door}() was called under torch.{context}(), where PyTorch computes no "
            "gradient: it cannot train there.",
            fix=f"call {door} outside the `with torch.{context}():` block (evaluate and "
            "predict run under it).",
        )
    )
