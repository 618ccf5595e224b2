"""Checks that run a model on a small batch (MW006, MW007, MW012, MW017), read predictions (MW009)
and compare a batch's targets with the model's output (MW016).

The model runs in eval mode, without gradients, on the first sequences of the data.
Forward hooks record, for every module, whether its input and its output carry a
mask: the first module whose input has one and whose per-step output has none is where
the mask was lost.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import MaskError, MaskWarning
from ..layers import Embedding, Lambda, Masking, Normalization
from ..masked import Masked
from .data_checks import Layout, Padding, as_numpy, equals_mask_value
from .findings import Finding

BATCH = 32
# MW009: one class on at least this share of the real steps ...
ONE_CLASS_SHARE = 0.95
# ... while the targets use it on less than this share.
TARGET_SHARE = 0.9
MIN_STEPS = 10


@dataclass
class Event:
    """One module call: its name, whether its input/output carry a mask, their shapes."""

    name: str
    module: nn.Module
    in_mask: bool
    out_mask: bool
    in_time: int | None
    out_shape: tuple[int, ...] | None


@dataclass
class ModelRun:
    """What running the model on the first sequences showed."""

    findings: list[Finding] = field(default_factory=list)
    output: Any = None
    batch: Masked | None = None  # the batch as fed (mask None when the model makes it)
    n_outputs: int | None = None
    predictions: list[np.ndarray] | None = None


def run_model(
    model: nn.Module, layout: Layout, paddings: list[Padding], mask_value: float
) -> ModelRun:
    """Run `model` on up to `BATCH` sequences of `layout`; MW006, MW007, MW012."""
    batch, fed_mask = _batch(model, layout, paddings, mask_value)
    run = ModelRun(batch=batch if isinstance(batch, Masked) else Masked(batch))
    events: list[Event] = []
    handles = [
        module.register_forward_hook(_recorder(_label(name, module), events), with_kwargs=True)
        for name, module in model.named_modules()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", MaskWarning)
            run.output = model(batch)
    except MaskError as error:
        problem, _, fix = str(error).partition("\n  fix: ")
        run.findings.append(
            Finding(
                "MW006",
                "error",
                f"running the model on {layout.name} fails: {problem}",
                fix or "give the layer named above its mask rule.",
            )
        )
        return run
    except Exception as error:  # any failure to run is a finding, not a crash
        run.findings.append(
            Finding(
                "MW012",
                "error",
                f"the model cannot run on {layout.name} (a batch shaped "
                f"{tuple(batch.shape)}): {type(error).__name__}: {error}",
                "check the input shape the model expects; the doctor feeds "
                f"{layout.name} as (batch, time, features), or (batch, time) token ids.",
            )
        )
        return run
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    run.findings += _double_masking(events) + _masking_after_normalization(events)
    values = run.output.values if isinstance(run.output, Masked) else run.output
    if isinstance(values, torch.Tensor) and values.dim() >= 3:
        run.n_outputs = int(values.shape[-1])
        scores = values.float()
        classes = scores.argmax(-1) if values.shape[-1] > 1 else (scores[..., 0] > 0.5).long()
        run.predictions = list(classes.cpu().numpy())
        masked_somewhere = fed_mask or any(e.out_mask for e in events)
        if masked_somewhere and not _has_mask(run.output) and values.shape[1] == batch.shape[1]:
            run.findings.append(_lost_mask(events, tuple(values.shape)))
    return run


def check_layers(model: nn.Module) -> list[Finding]:
    """MW007 and MW017 without data: the layers of a `Sequential`, in order, and where
    masks start."""
    events = []
    masked = False
    for position, layer in enumerate(getattr(model, "layers", [])):
        events.append(Event(_label(f"layers.{position}", layer), layer, masked, False, None, None))
        masked = masked or isinstance(layer, Masking) or getattr(layer, "mask_zero", False)
    return _double_masking(events) + _masking_after_normalization(events)


def _batch(
    model: nn.Module, layout: Layout, paddings: list[Padding], mask_value: float
) -> tuple[Any, bool]:
    """The first sequences padded into one batch. Fed as a plain tensor when the model
    makes its own mask (Masking, Embedding), else as a `Masked` like `make_loader`'s."""
    sequences = layout.sequences[:BATCH]
    longest = max(len(s) for s in sequences)
    features = sequences[0].shape[1]
    fill = 0 if layout.tokens else mask_value
    values = np.full((len(sequences), longest, features), fill, dtype=np.float64)
    mask = np.zeros((len(sequences), longest), dtype=bool)
    for i, (seq, padding) in enumerate(zip(sequences, paddings)):
        values[i, : len(seq)] = seq
        mask[i, : len(seq)] = ~padding.pad
    if layout.tokens:
        tensor = torch.as_tensor(values[..., 0]).long()
    else:
        tensor = torch.as_tensor(values, dtype=torch.float32)
    makes_mask = any(
        isinstance(m, Masking) or (isinstance(m, Embedding) and m.mask_zero)
        for m in model.modules()
    )
    if makes_mask:
        return tensor, False
    return Masked(tensor, torch.as_tensor(mask)), True


def _label(qualified: str, module: nn.Module) -> str:
    """A layer's own name, with its place in the model: `lambda_1 (layers.1)`."""
    own = getattr(module, "name", None) or type(module).__name__
    return f"{own} ({qualified})" if qualified and qualified != own else own


def _has_mask(obj: Any) -> bool:
    if isinstance(obj, Masked):
        return obj.mask is not None
    if isinstance(obj, list | tuple):
        return any(_has_mask(o) for o in obj)
    return False


def _time(obj: Any) -> int | None:
    if isinstance(obj, list | tuple):
        return _time(obj[0]) if obj else None
    values = obj.values if isinstance(obj, Masked) else obj
    return int(values.shape[1]) if isinstance(values, torch.Tensor) and values.dim() >= 2 else None


def _shape(obj: Any) -> tuple[int, ...] | None:
    values = obj.values if isinstance(obj, Masked) else obj
    return tuple(values.shape) if isinstance(values, torch.Tensor) else None


def _recorder(name: str, events: list[Event]) -> Any:
    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        in_mask = _has_mask(args) or kwargs.get("mask") is not None
        inputs = args[0] if args else None
        events.append(
            Event(name, module, in_mask, _has_mask(output), _time(inputs), _shape(output))
        )

    return hook


def _lost_mask(events: list[Event], out_shape: tuple[int, ...]) -> Finding:
    culprit = next(
        (
            e
            for e in events
            if e.in_mask
            and not e.out_mask
            and e.out_shape is not None
            and len(e.out_shape) >= 3
            and e.out_shape[1] == e.in_time
        ),
        None,
    )
    where = ""
    fix = (
        "return a Masked that keeps the mask (e.g. `x.with_values(new_values)` instead of "
        "a bare tensor, never `x.values` alone)."
    )
    if culprit is not None:
        where = (
            f" The mask disappears in {culprit.name} ({type(culprit.module).__name__}): "
            f"its input carries a mask, its output {culprit.out_shape} has none."
        )
        if isinstance(culprit.module, Lambda):
            fix = (
                "give the Lambda a mask rule instead of mask='drop': "
                "`Lambda(fn, mask=lambda inputs, mask: mask)` (or `mask[:, N:]` for a crop)."
            )
    return Finding(
        "MW006",
        "error",
        f"the model's output {out_shape} has a time axis but no mask, although its input "
        f"had one.{where} The loss would count the padded steps.",
        fix,
    )


def _double_masking(events: list[Event]) -> list[Finding]:
    findings = []
    previous: Event | None = None
    for event in events:
        if isinstance(event.module, Masking):
            after_embedding = previous is not None and isinstance(previous.module, Embedding)
            if event.in_mask or after_embedding:
                source = (
                    f"the output of Embedding {previous.name}"
                    if after_embedding and previous is not None
                    else "an input that already carries a mask"
                )
                findings.append(
                    Finding(
                        "MW007",
                        "error",
                        f"Masking layer {event.name} is applied to {source}. Embedded or "
                        "masked steps are no longer equal to the mask value, so this Masking "
                        "redefines the mask and the padded steps count as real.",
                        "remove this Masking: the mask already travels with the values "
                        "(use `Embedding(..., mask_zero=True)` to mask padded tokens).",
                    )
                )
        if not list(event.module.children()):
            previous = event
    return findings


def _masking_after_normalization(events: list[Event]) -> list[Finding]:
    """MW017: a `Masking` right after a `Normalization` on values without a mask (a
    padded array): the normalization turned the padding into `-mean / std`, which is not
    the mask value, so the `Masking` finds no padding. (On masked values, `Normalization`
    keeps the padded steps at 0, and a `Masking` there is MW007.)"""
    findings = []
    previous: Event | None = None
    for event in events:
        after = previous is not None and isinstance(previous.module, Normalization)
        if isinstance(event.module, Masking) and after and not event.in_mask:
            findings.append(
                Finding(
                    "MW017",
                    "error",
                    f"Masking layer {event.name} comes after Normalization "
                    f"{previous.name if previous else ''}: the normalization turns the "
                    "padded steps into -mean / std, not the mask value, so this Masking "
                    "finds no padding and every padded step counts as real.",
                    "put the Masking first: `Sequential([Masking(mask_value), "
                    "Normalization(), ...])` (the Normalization keeps the padded steps at "
                    "0), and adapt the Normalization on the real steps: `norm.adapt(x)`.",
                )
            )
        if not list(event.module.children()):
            previous = event
    return findings


def as_class_ids(predictions: Any) -> list[np.ndarray]:
    """Class ids per sequence from ids `(batch, time)` or scores `(batch, time, classes)`."""
    if isinstance(predictions, list | tuple):
        return [r for p in predictions for r in as_class_ids(as_numpy(p)[None])]
    array = as_numpy(predictions)
    if array.ndim == 3:
        array = array.argmax(-1) if array.shape[-1] > 1 else (array[..., 0] > 0.5)
    elif not np.array_equal(array, np.round(array)):
        array = array > 0.5
    return list(array.astype(np.int64))


def check_predictions(
    predictions: list[np.ndarray], paddings: list[Padding], targets: list[np.ndarray] | None
) -> list[Finding]:
    """MW009: one class predicted on (almost) every real step, unlike the targets."""
    real_predictions, real_targets, pad_labels = [], [], set()
    for i, (row, padding) in enumerate(zip(predictions, paddings)):
        n = min(len(row), len(padding.pad))
        real = ~padding.pad[:n]
        real_predictions.append(row[:n][real])
        if targets is not None:
            real_targets.append(targets[i][:n][real])
            pad_labels |= {int(v) for v in targets[i][:n][~real] if np.isfinite(v)}
    values = np.concatenate(real_predictions)
    if len(values) < MIN_STEPS:
        return []
    classes, counts = np.unique(values, return_counts=True)
    top = int(classes[counts.argmax()])
    share = counts.max() / len(values)
    if share < ONE_CLASS_SHARE:
        return []
    detail = ""
    if targets is not None:
        labels = np.concatenate(real_targets)
        if len(labels) and (labels == top).mean() >= TARGET_SHARE:
            return []
        detail = f"; the targets at those steps use classes {sorted({int(v) for v in labels})}"
        if top in pad_labels:
            detail += f", and {top} is the padding label: the model learned to predict padding"
    return [
        Finding(
            "MW009",
            "error",
            f"the model predicts class {top} at {counts.max()} of {len(values)} real steps "
            f"({share:.0%}){detail}: the 'every prediction is the same class' symptom.",
            "fix the data first (MW001 layout, MW004 padding label): when real steps look "
            "alike the model predicts one class; evaluate on real steps only (maskwise "
            "metrics read the mask).",
        )
    ]


def check_target_kind(output: Any, y: torch.Tensor | None, time: int) -> list[Finding]:
    """MW016: one target per sequence for a per-step output, or one per step for a
    per-sequence output.

    Args:
        output: the model's output on one batch (a `Masked` or a tensor).
        y: that batch's targets, `(batch,)`, `(batch, units)` or `(batch, time, ...)`.
        time: the batch's number of steps (its inputs' time axis).
    """
    if y is None:
        return []
    values = output.values if isinstance(output, Masked) else output
    if not isinstance(values, torch.Tensor) or values.dim() < 2:
        return []
    per_step = _has_mask(output) or values.dim() >= 3
    shape, target_shape = tuple(values.shape), tuple(y.shape)
    if per_step and y.dim() == 1:
        message = (
            f"y holds one target per sequence (shape {target_shape} in the first batch), but "
            f"the model returns one output per step (shape {shape}): the loss would compare "
            "each sequence's label with every step."
        )
    elif not per_step and y.dim() >= 2 and y.shape[1] == time != values.shape[1]:
        message = (
            f"y holds one target per step (shape {target_shape} in the first batch, {time} "
            f"steps), but the model returns one output per sequence (shape {shape}): its last "
            "recurrent layer or a pooling layer consumed the time axis."
        )
    else:
        return []
    fix = (
        "for one label per sequence, end the model with one vector per sequence (an RNN "
        "with `return_sequences=False`, or `GlobalAveragePooling1D`) and give y shaped "
        "(N,); for one label per step, keep the time axis (`return_sequences=True`) and "
        "give y shaped (N, time) or a list of (time_i,) arrays."
    )
    return [Finding("MW016", "error", message, fix)]


def check_output_mask(
    output: Any,
    x: Masked | tuple[Masked, ...],
    padded: bool,
    model: Any = None,
    mask_made: bool | None = None,
) -> list[Finding]:
    """MW006 at the doors: on data with padding (`padded`), a per-step output `(batch,
    time, units)` with the inputs' time axis but no mask. `predict` would return each
    padded step as a prediction, and the layers that mix steps (a backward recurrent
    direction, attention, convolutions) computed on the padding; `fit` and `evaluate`
    would count it in the loss. The mask was never made (a padded array and no
    `Masking`) or a layer dropped it. A functional `model`'s outputs that are a layer's
    extra outputs (attention scores `(batch, time, time)`, states) have no mask to
    keep and are not checked.

    Any output, one vector per sequence too, when the inputs carry no mask and the
    model makes none from them (`mask_made` False: no `Masking`, no
    `Embedding(mask_zero=True)`): every layer then reads the padded steps as data (an
    LSTM runs through them; which end the padding is on changes the result).

    Example:
        >>> x = Masked.from_lengths(torch.zeros(2, 3, 1), [3, 1])
        >>> [f.code for f in check_output_mask(torch.zeros(2, 3, 4), x, padded=True)]
        ['MW006']
        >>> check_output_mask(x, x, padded=True), check_output_mask(torch.zeros(2, 4), x, True)
        ([], [])
    """
    first = x[0] if isinstance(x, tuple) else x
    if isinstance(output, dict):
        outputs = list(output.values())
    else:
        outputs = list(output) if isinstance(output, list | tuple) else [output]
    extras = [getattr(t, "index", 0) > 0 for t in getattr(model, "outputs", None) or ()]
    lost = [
        tuple(values.shape)
        for values, o, extra in (
            (o.values if isinstance(o, Masked) else o, o, i < len(extras) and extras[i])
            for i, o in enumerate(outputs)
        )
        if not extra
        and isinstance(values, torch.Tensor)
        and values.dim() >= 3
        and values.shape[:2] == first.values.shape[:2]
        and not _has_mask(o)
    ]
    if not padded:
        return []
    if not lost:
        if first.mask is not None or mask_made is not False:
            return []
        ids = first.values.dim() == 2 and not first.values.is_floating_point()
        return [no_mask_made(tokens=ids)]
    made = (
        "the inputs carry a mask, but a layer dropped it"
        if first.mask is not None
        else ("the model makes no mask from the padding, or a layer dropped it")
    )
    message = (
        f"the data has padding, but the model's output {lost[0]} keeps the time axis "
        f"without a mask ({made}): the padded steps are computed as real ones, "
        "counted by the loss and returned by predict."
    )
    return [Finding("MW006", "error", message, _MAKE_AND_KEEP_THE_MASK)]


_KEEP_THE_MASK = (
    "keep it: a custom forward returns a Masked (`x.with_values(...)`, not bare "
    "values), a Lambda gets `mask=`. "
    "`mw.doctor.check(x, model=model)` names the layer that loses it."
)
_MAKE_AND_KEEP_THE_MASK = (
    "make the mask: `layers.Masking(mask_value)` as the first layer for a padded "
    "array (`Embedding(mask_zero=True)` for token ids), or pass a list of "
    "sequences; " + _KEEP_THE_MASK
)


def no_mask_made(tokens: bool = False) -> Finding:
    """MW006 for a padded array fed to a model that makes no mask from it (see
    `check_output_mask`), whatever its output. For token ids `(batch, time)` the mask
    is the Embedding's to make (`mask_zero=True`), not a `Masking`'s.

    Example:
        >>> "mask_zero=True" in no_mask_made(tokens=True).fix
        True
    """
    if tokens:
        message = (
            "the token ids are padded with id 0, but the model makes no mask from it (its "
            "`Embedding` has mask_zero=False): every layer reads the padding as tokens "
            "of id 0, so its outputs depend on how much padding each sequence has and at "
            "which end."
        )
        fix = (
            "make the mask: `Embedding(input_dim, output_dim, mask_zero=True)`, or pass "
            "the list of token sequences unpadded; " + _KEEP_THE_MASK + " If the model "
            "is meant to read the padding as tokens, say so: `mask_value=None` in `fit`, "
            "`evaluate` and `predict`."
        )
        return Finding("MW006", "error", message, fix)
    message = (
        "the data has padding, but the model makes no mask from it (no `Masking`, no "
        "`Embedding(mask_zero=True)`): every layer reads the padded steps as data, so "
        "its outputs depend on how much padding each sequence has and at which end."
    )
    fix = (
        _MAKE_AND_KEEP_THE_MASK + " If the padded values are data, say so: `mask_value=None` "
        "in `fit`, `evaluate` and `predict`."
    )
    return Finding("MW006", "error", message, fix)


def check_masking_value(model: nn.Module, layout: Layout, paddings: list[Padding]) -> list[Finding]:
    """MW017: a padded array whose padding is not the value of the model's `Masking`.

    The data checks find the padded steps from the door's `mask_value` (and read steps
    of NaN or inf as padding too), but the model masks what its first `Masking` layer
    finds: padding of another value reaches the model as real steps, where NaN makes
    every output NaN and zeros are read as data.

    Example:
        >>> x = np.ones((2, 3, 1)); x[0, 2:] = np.nan  # NaN padding
        >>> layout = Layout("x", list(x), padded_array=True)
        >>> pad = np.array([False, False, True])
        >>> paddings = [Padding(pad, "post"), Padding(np.zeros(3, bool), None)]
        >>> [f.code for f in check_masking_value(Masking(0.0), layout, paddings)]
        ['MW017']
        >>> check_masking_value(Masking(float("nan")), layout, paddings)
        []
    """
    qualified, masking = next(
        ((name, m) for name, m in model.named_modules() if isinstance(m, Masking)), ("", None)
    )
    if masking is None or not layout.padded_array or layout.tokens:
        return []
    value = float(masking.mask_value)
    unmasked = [
        (i, int(t))
        for i, (seq, padding) in enumerate(zip(layout.sequences, paddings, strict=True))
        for t in np.flatnonzero(padding.pad & ~equals_mask_value(seq, value).all(axis=-1))
    ]
    if not unmasked:
        return []
    i, t = unmasked[0]
    found = float(layout.sequences[i][t].ravel()[0])
    effect = "NaN makes every output NaN" if not np.isfinite(found) else "they count as data"
    refill = f" (`np.nan_to_num(x, nan={value})`)" if np.isnan(found) else ""
    return [
        Finding(
            "MW017",
            "error",
            f"{layout.name}: {len(unmasked)} padded steps hold {found} (first: sequence {i}, "
            f"step {t}), but the model's {_label(qualified, masking)} masks only steps "
            f"equal to {value}: it reads this padding as real steps, and {effect}.",
            f"make the two agree: `Masking(mask_value={_literal(found)})` in the model (and "
            f"`mask_value={_literal(found)}` in fit, evaluate and predict), or pad with "
            f"{value}{refill}.",
            sequence=i,
            step=t,
        )
    ]


def _literal(value: float) -> str:
    """`value` as Python source: `np.nan` for NaN, `float('inf')`, else its repr."""
    if np.isnan(value):
        return "np.nan"
    return repr(value) if np.isfinite(value) else f"float({str(value)!r})"
