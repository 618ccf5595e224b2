"""The leak probe (MW013): prove that padding cannot change what the real steps compute.

Declarations can be wrong (a `Lambda` that rolls time but keeps the mask, a custom layer
that averages over time), so the probe tests the contract instead: it runs the model on
a few sequences of one batch, then again on variants whose padding differs, and compares
every layer's outputs at the real steps, and the parameters' gradients:

- *other values*: the padded steps hold large random values;
- *NaN*: the padded steps hold NaN (a real step that turns NaN has read padding);
- *more padding*: padded steps are appended at the end (holding other values);
- *placement*: each sequence's real steps move to the other end of the time axis (the
  padding holding other values).

Where the padding is changed: at the padded steps of an input that carries its mask
(integer token ids get other ids inside the vocabulary, never NaN), and at the padded
steps of every layer's output (forward hooks), so that whatever reads a layer's output
(the next layer, code in a `Module`'s `forward`) sees changed padding, not the zeros a
maskwise layer writes there. An input whose mask the model makes (`Masking`,
`Embedding(mask_zero=True)`) keeps its padding value, so that the same steps stay
padded. A layer that reads padding as zeros can still depend on how much padding there
is or where it sits (a mean over time, a roll): the last two variants show that, and the
probe takes one full sequence (when the batch has one) beside those with padding, since
appending padding to it changes what it reads. The first layer (in call order, as
`maskwise.trace` lists them) whose real-step outputs differ is where padding leaks in.

The model runs in eval mode (dropout off, moving statistics) and is left as found: its
weights, their `.grad`, every module's training flag and the global random state.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, MaskWarning, format_error
from ..layers import Embedding, Lambda, Masking
from ..masked import Masked, as_masked, per_step
from ..models import Container, Module
from ..trace import _traced_layers
from .findings import Finding
from .model_checks import _label

RTOL = 1e-3
"""Relative tolerance between two runs (different batch shapes round differently); at
least 10 units in the last place of the dtype (TF32's on CUDA for float32)."""
ATOL = 1e-5
"""Absolute tolerance, relative to the largest value of the tensor compared; at least
one unit in the last place of the dtype."""
NOISE_MEAN, NOISE_STD = 5.0, 10.0
"""The *other values* put in the padding: large, far from real data, yet finite under
`exp` in float32."""
SEED = 1234

Variant = tuple[str, str]  # (short name, description for the message)
VALUES: Variant = ("other values", "the padded steps hold other values (random, large)")
NAN: Variant = ("NaN", "the padded steps hold NaN")
MORE: Variant = ("more padding", "padded steps are appended (holding other values)")
PLACEMENT: Variant = (
    "placement",
    "the real steps move to the other end of the time axis (the padding holding other values)",
)


@dataclass
class _Event:
    """One call of a watched module: its inputs and outputs (detached)."""

    module: nn.Module
    inputs: list[Masked]
    outputs: list[Masked]


@dataclass
class _Run:
    """One forward and backward pass of the model."""

    events: list[_Event]
    sources: list[torch.Tensor]  # the masks the padding is defined by, in order
    grads: list[torch.Tensor | None]


@dataclass
class _Setup:
    """How the padding of the probe batch can be changed."""

    inputs: tuple[Masked, ...]
    reference: list[torch.Tensor | None]  # per input, its real steps (own or model-made)
    direct: list[bool]  # per input, whether its padding values may be changed in place
    makers: list[nn.Module]  # layers that make a mask from values
    changed: list[nn.Module]  # layers whose padded outputs the variants change
    fills: list[torch.Tensor | None] = field(default_factory=list)  # a padded step's value
    vocabulary: int | None = None


class _Found(Exception):
    """Stops the discovery pass as soon as the model has made its masks."""


def probe_leaks(
    model: nn.Module, x: Masked | tuple[Masked, ...], *, rows: int = 4
) -> list[Finding]:
    """Run `model` on at most `rows` sequences of `x` with differently filled padding;
    one MW013 error if a real step's output or a gradient changes.

    Args:
        model: the model, called as `model(x)` or `model(*x)` for several inputs.
        x: one batch's inputs: a `Masked` (mask None when the model makes the mask from
            padded values) or a tuple of them.
        rows: how many sequences to probe (those with padding first, and one without
            padding when there is one).

    Returns:
        `[]` when nothing changes (or when there is no mask to probe, or the model cannot
        run on the batch: other checks report that), else one MW013 finding.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(
            format_error(
                "probe_leaks rows must be a positive integer.",
                expected="e.g. rows=4 (sequences probed)",
                received=repr(rows),
            )
        )
    inputs = tuple(as_masked(v) for v in (x if isinstance(x, tuple) else (x,)))
    names = {id(module): name for name, module in model.named_modules()}
    with _untouched(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskWarning)
        try:
            setup = _setup(model, inputs, rows)
            if setup is None:
                return []
            base = _run(model, setup, setup.inputs, None)
        except Exception:  # a model that cannot run is MW012's business
            return []
        worst: tuple[int, list[str], _Run, Variant] | None = None
        grad_leak: tuple[str, Variant] | None = None
        for variant, batch, noise, positional in _variants(setup):
            try:
                run = _run(model, setup, batch, noise)
            except Exception:  # e.g. a layer built for a fixed number of steps
                continue
            first, comparable = _first_difference(base, run, positional)
            if first is not None:
                if worst is None or first < worst[0]:
                    worst = (first, [variant[0]], run, variant)
                elif first == worst[0]:
                    worst[1].append(variant[0])
            elif comparable and grad_leak is None:
                parameter = _changed_gradient(model, base, run)
                if parameter is not None:
                    grad_leak = (parameter, variant)
    if worst is not None:
        first, exposed, run, variant = worst
        return [_output_finding(model, names, base, run, first, exposed, variant)]
    if grad_leak is not None:
        return [_gradient_finding(model, names, base, *grad_leak)]
    return []


# ---------------------------------------------------------------------- leaving no trace
@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's training flag and the random state restored."""
    modes = [(module, module.training) for module in model.modules()]
    cpu_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        torch.random.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


# ---------------------------------------------------------------------- the probe batch
def _setup(model: nn.Module, inputs: tuple[Masked, ...], rows: int) -> _Setup | None:
    """The probe batch (padded rows first) and where its padding can be changed; None
    when no mask exists anywhere."""
    remakes = any(isinstance(m, Masking) for m in model.modules())
    made = (
        _made_masks(model, inputs, remakes)
        if remakes or any(x.mask is None for x in inputs)
        else {}
    )
    makers = [maker for maker, _ in made.values()]
    reference = [
        made[i][1] if i in made else inputs[i].mask for i in range(len(inputs))
    ]  # a mask the model makes from an input replaces the input's own
    if all(m is None for m in reference) and not makers:
        return None
    order = _preferred_rows(reference, inputs[0].values.shape[0], rows)
    fills = [_fill(inputs[i], reference[i], made.get(i)) for i in range(len(inputs))]
    picked = tuple(_rows(x, order) for x in inputs)
    reference = [None if m is None else m[order.to(m.device)] for m in reference]
    picked, reference = _trim(picked, reference)
    vocabulary = min(
        (m.input_dim for m in model.modules() if isinstance(m, Embedding)), default=None
    )
    return _Setup(
        inputs=picked,
        reference=reference,
        direct=[x.mask is not None and i not in made for i, x in enumerate(picked)],
        makers=_unique([*makers, *_all_makers(model)]),
        changed=_unique([*makers, *_all_makers(model), *_traced_layers(model)]),
        fills=fills,
        vocabulary=vocabulary,
    )


def _preferred_rows(reference: list[torch.Tensor | None], batch: int, rows: int) -> torch.Tensor:
    """`rows` row indices: rows with padding and real steps first, and one full row when
    there is one (appending padding to it shows what a layer does with the padding a
    full row never has: layers read padding as zeros, so a step moved in from the
    padding holds the same zeros whatever the padding held); then the rest."""
    padded = torch.zeros(batch, dtype=torch.bool)
    empty = torch.zeros(batch, dtype=torch.bool)
    for mask in reference:
        if mask is not None and mask.shape[0] == batch:
            padded |= (~mask).any(dim=1).cpu()
            empty |= ~mask.any(dim=1).cpu()
    partial = torch.nonzero(padded & ~empty)[:, 0]
    full = torch.nonzero(~padded)[:, 0]
    first = partial[: rows - 1] if len(full) and rows > 1 else partial[:rows]
    rest = [full, partial[len(first) :], torch.nonzero(empty)[:, 0]]
    return torch.cat([first, *rest])[:rows]


def _made_masks(
    model: nn.Module, inputs: tuple[Masked, ...], remakes: bool
) -> dict[int, tuple[nn.Module, torch.Tensor]]:
    """For each input whose mask the model makes from its values (inputs without a mask;
    any input when the model has a `Masking`, which replaces a mask), the layer that
    makes it and that mask. One pass over the whole batch, stopped as soon as every such
    input has one (usually at the first layer)."""
    wanted = {i for i, x in enumerate(inputs) if remakes or x.mask is None}
    made: dict[int, tuple[nn.Module, torch.Tensor]] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        index = _input_index(args, inputs)
        makes = not _has_mask(args, kwargs) or isinstance(module, Masking)
        if index in wanted and isinstance(out, Masked) and out.mask is not None and makes:
            made[index] = (module, out.mask.detach())
            if set(made) == wanted:
                raise _Found

    handles = [
        m.register_forward_hook(hook, with_kwargs=True) for m in _watched(model) if m is not model
    ]
    try:
        with torch.no_grad():
            _call(model, inputs)
    except _Found:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return made


def _fill(
    x: Masked, reference: torch.Tensor | None, made: tuple[nn.Module, torch.Tensor] | None
) -> torch.Tensor | None:
    """The value of one padded step of `x` (for appending padding), or None."""
    if reference is None:
        return None
    if made is None:  # the input carries its mask: any value will do
        return torch.zeros_like(x.values[0, 0])
    padded = torch.nonzero(~reference)
    if len(padded):
        row, step = padded[0].tolist()
        return x.values[row, step]
    maker = made[0]
    if isinstance(maker, Masking):
        return torch.full_like(x.values[0, 0], maker.mask_value)
    if isinstance(maker, Embedding):
        return torch.zeros_like(x.values[0, 0])
    return None


def _rows(x: Masked, order: torch.Tensor) -> Masked:
    index = order.to(x.values.device)
    return Masked(x.values[index], None if x.mask is None else x.mask[index])


def _trim(
    inputs: tuple[Masked, ...], reference: list[torch.Tensor | None]
) -> tuple[tuple[Masked, ...], list[torch.Tensor | None]]:
    """Cut the trailing steps that are padding in every probed row of every input."""
    time = _time_axis(inputs, reference)
    if time is None:
        return inputs, reference
    real = torch.stack([m.any(dim=0) for m in reference if m is not None]).any(dim=0)
    last = int(torch.nonzero(real)[-1]) + 2 if bool(real.any()) else 1  # keep one padded
    if last >= time:
        return inputs, reference
    cut = tuple(
        x if m is None else Masked(x.values[:, :last], None if x.mask is None else x.mask[:, :last])
        for x, m in zip(inputs, reference, strict=True)
    )
    return cut, [None if m is None else m[:, :last] for m in reference]


def _time_axis(inputs: tuple[Masked, ...], reference: list[torch.Tensor | None]) -> int | None:
    """The steps of the inputs with known padding, when they share one time axis and no
    input without known padding has that many steps (then steps may be moved, cut or
    added in all of them); else None."""
    masks = [m for m in reference if m is not None]
    if not masks or len({m.shape for m in masks}) != 1:
        return None
    time = masks[0].shape[1]
    unknown = any(
        m is None and x.values.dim() >= 2 and x.values.shape[1] == time
        for x, m in zip(inputs, reference, strict=True)
    )
    return None if unknown else int(time)


def makes_a_mask(model: nn.Module, x: Masked | tuple[Masked, ...]) -> bool:
    """Whether `model`, run on the batch inputs `x`, makes a mask from an input that
    carries none (a `Masking`, an `Embedding(mask_zero=True)`, a custom layer's mask
    rule): one pass, stopped at the first mask made."""
    inputs = tuple(as_masked(v) for v in (x if isinstance(x, tuple) else (x,)))
    with _untouched(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskWarning)
        try:
            return bool(_made_masks(model, inputs, remakes=False))
        except Exception:  # a model that cannot run is MW012's business
            return True


def _all_makers(model: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in model.modules()
        if isinstance(m, Masking) or (isinstance(m, Embedding) and m.mask_zero)
    ]


def _unique(modules: list[nn.Module]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for module in modules:
        seen.setdefault(id(module), module)
    return list(seen.values())


# ---------------------------------------------------------------------- the variants
Noise = Callable[[torch.Tensor], torch.Tensor]


def _variants(setup: _Setup) -> Iterator[tuple[Variant, tuple[Masked, ...], Noise, bool]]:
    """Each variant: its name, its inputs, what fills the padding of every layer's output,
    and whether the steps move (more padding, placement). Every variant changes the
    padding's values; the last two also its amount or place."""
    batches = [(VALUES, setup.inputs, False), (NAN, setup.inputs, False)]
    longer = _more_padding(setup)
    if longer is not None:
        batches.append((MORE, longer, True))
    moved = _placement(setup)
    if moved is not None:
        batches.append((PLACEMENT, moved, True))
    for number, (variant, inputs, positional) in enumerate(batches):
        values = _nan_values if variant is NAN else _random_values
        generator = torch.Generator().manual_seed(SEED + number)

        def noise(like: torch.Tensor, values: Any = values, generator: Any = generator) -> Any:
            return values(like, generator)

        batch = tuple(
            _fill_padding(x, setup, i, noise, variant is NAN) if setup.direct[i] else x
            for i, x in enumerate(inputs)
        )
        yield variant, batch, noise, positional


def _random_values(values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(values.shape, generator=generator) * NOISE_STD + NOISE_MEAN
    return noise.to(device=values.device, dtype=values.dtype)


def _nan_values(values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.full_like(values, math.nan)


def _fill_padding(x: Masked, setup: _Setup, index: int, fill: Noise, nan: bool) -> Masked:
    """`x` with other values at its padded steps (other token ids for integer inputs,
    which cannot hold NaN)."""
    if x.mask is None or (nan and not x.values.is_floating_point()):
        return x
    keep = per_step(x.mask, x.values)
    if x.values.is_floating_point():
        other = fill(x.values)
    else:  # token ids: another id of the vocabulary
        high = max(2, setup.vocabulary or 2)
        generator = torch.Generator().manual_seed(SEED + index)
        other = torch.randint(1, high, x.values.shape, generator=generator)
        other = other.to(device=x.values.device, dtype=x.values.dtype)
    return Masked(torch.where(keep, x.values, other), x.mask)


def _more_padding(setup: _Setup) -> tuple[Masked, ...] | None:
    """The inputs with padded steps appended (half as many as the probe batch has steps,
    at least 2); None when an input with a time axis has no known padding value."""
    timed = [i for i, m in enumerate(setup.reference) if m is not None]
    if _time_axis(setup.inputs, setup.reference) is None or any(
        setup.fills[i] is None for i in timed
    ):
        return None
    out = list(setup.inputs)
    for i in timed:
        x, fill = setup.inputs[i], setup.fills[i]
        assert fill is not None
        extra = max(2, x.values.shape[1] // 2)
        tail = fill.expand(x.values.shape[0], extra, *fill.shape)
        values = torch.cat([x.values, tail.to(x.values.dtype)], dim=1)
        mask = None
        if x.mask is not None:
            mask = torch.cat([x.mask, x.mask.new_zeros(x.mask.shape[0], extra)], dim=1)
        out[i] = Masked(values, mask)
    return tuple(out)


def _placement(setup: _Setup) -> tuple[Masked, ...] | None:
    """The inputs with each row's block of real steps moved to the other end (a circular
    shift, so padding stays padding); only rows whose real steps are one block, the same
    in every input. None when no row moves."""
    time = _time_axis(setup.inputs, setup.reference)
    if time is None:
        return None
    masks = [m for m in setup.reference if m is not None]
    shifts = []
    for row in range(masks[0].shape[0]):
        real = masks[0][row]
        same = all(torch.equal(m[row], real) for m in masks[1:])
        steps = torch.nonzero(real)[:, 0].tolist()
        one_block = bool(steps) and steps[-1] - steps[0] + 1 == len(steps)
        if not (same and one_block) or len(steps) == time:
            shifts.append(0)
        else:
            shifts.append(time - 1 - steps[-1] if steps[0] == 0 else -steps[0])
    if not any(shifts):
        return None
    out = list(setup.inputs)
    for i, m in enumerate(setup.reference):
        if m is not None:
            x = setup.inputs[i]
            values = torch.stack([v.roll(s, 0) for v, s in zip(x.values, shifts, strict=True)])
            mask = None
            if x.mask is not None:
                mask = torch.stack([r.roll(s, 0) for r, s in zip(x.mask, shifts, strict=True)])
            out[i] = Masked(values, mask)
    return tuple(out)


# ---------------------------------------------------------------------- one run
def _run(model: nn.Module, setup: _Setup, inputs: tuple[Masked, ...], noise: Noise | None) -> _Run:
    """Forward with every watched module's inputs and outputs recorded (the padded
    outputs of the layers in `setup.changed` replaced by `noise`, when given), then the
    gradients of a fixed random weighting of the output's real steps."""
    events: list[_Event] = []
    sources = [
        x.mask for x, d in zip(inputs, setup.direct, strict=True) if d and x.mask is not None
    ]
    makers = {id(m) for m in setup.makers}

    def perturb(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if not isinstance(output, Masked) or output.mask is None:
            return None
        if id(module) in makers:
            sources.append(output.mask)
        if noise is None or not output.values.is_floating_point():
            return None
        keep = per_step(output.mask, output.values)
        return Masked(torch.where(keep, output.values, noise(output.values)), output.mask)

    def record(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        events.append(_Event(module, _flatten(args), _flatten(output)))

    changed = {id(m) for m in setup.changed}
    handles = [
        m.register_forward_hook(perturb, with_kwargs=True)
        for m in _watched(model)
        if id(m) in changed
    ]
    handles += [m.register_forward_hook(record, with_kwargs=True) for m in _watched(model)]
    try:
        with torch.enable_grad():
            output = _call(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    parameters = [p for p in model.parameters() if p.requires_grad]
    total = _objective(output, sources)
    grads: list[torch.Tensor | None] = [None] * len(parameters)
    if parameters and total is not None and total.requires_grad:
        grads = list(torch.autograd.grad(total, parameters, allow_unused=True))
    for event in events:
        event.inputs = [o.detach() for o in event.inputs]
        event.outputs = [o.detach() for o in event.outputs]
    return _Run(events, sources, grads)


def _call(model: nn.Module, inputs: tuple[Masked, ...]) -> Any:
    return model(*inputs) if len(inputs) > 1 else model(inputs[0])


def _watched(model: nn.Module) -> list[nn.Module]:
    """The model, its containers and `Module`s, and the layers `trace` shows (layers
    inside a layer, like the `Dense` in a `TimeDistributed`, see inner layouts and are
    part of their wrapper)."""
    containers = [m for m in model.modules() if isinstance(m, Container | Module)]
    return _unique([model, *containers, *_traced_layers(model)])


def _flatten(obj: Any) -> list[Masked]:
    if isinstance(obj, Masked):
        return [obj]
    if isinstance(obj, torch.Tensor):
        return [Masked(obj)]
    if isinstance(obj, list | tuple):
        return [m for item in obj for m in _flatten(item)]
    return []


def _has_mask(args: tuple, kwargs: dict) -> bool:
    return any(m.mask is not None for m in _flatten(args)) or kwargs.get("mask") is not None


def _input_index(args: tuple, inputs: tuple[Masked, ...]) -> int | None:
    """Which model input a layer was called on (the same tensor), if any."""
    first = _flatten(args[:1])
    if len(first) != 1:
        return None
    return next((i for i, x in enumerate(inputs) if first[0].values is x.values), None)


def _real(out: Masked, sources: list[torch.Tensor]) -> torch.Tensor:
    """The values at the real steps, row by row: by the output's own mask, else by the
    mask of the padding when the output keeps the batch and time axes (and has
    features), else all."""
    mask = out.mask if out.mask is not None else _aligned(out.values, sources)
    return out.values if mask is None else out.values[mask]


def _aligned(values: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor | None:
    """The mask of the padding for unmasked `(batch, time, features...)` values. Not for
    2-D values: a recurrent state `(batch, units)` has no time axis, even when its
    units happen to equal the number of steps."""
    if values.dim() < 3:
        return None
    return next((m for m in sources if m.shape == values.shape[:2]), None)


def _objective(output: Any, sources: list[torch.Tensor]) -> torch.Tensor | None:
    """A fixed random weighting of the output's real-step values (a plain sum could be
    constant, e.g. over softmax probabilities); None without a float output."""
    total = None
    for out in _flatten(output):
        real = _real(out, sources)
        if real.is_floating_point():
            generator = torch.Generator().manual_seed(SEED)
            weights = torch.randn(real.shape, generator=generator)
            term = (real * weights.to(device=real.device, dtype=real.dtype)).sum()
            total = term if total is None else total + term
    return total


# ---------------------------------------------------------------------- comparing runs
def _first_difference(base: _Run, run: _Run, positional: bool) -> tuple[int | None, bool]:
    """The index of the first event whose real-step outputs differ, and whether every
    event could be compared. When the steps move (`positional`), a layer that changes
    the length of a masked time axis (a crop, a stride) acts on positions, not on real
    steps: what follows it is not compared."""
    for k, (a, b) in enumerate(zip(base.events, run.events, strict=False)):
        if a.module is not b.module:
            return None, False
        if positional and _moves_steps(a):
            return None, False
        verdict = _compare(a.outputs, b.outputs, base.sources, run.sources, positional)
        if verdict == "differ":
            return k, False
        if verdict == "incomparable":
            return None, False
    return None, len(base.events) == len(run.events)


def _moves_steps(event: _Event) -> bool:
    """A masked input and a masked output with another number of steps."""
    times = {x.values.shape[1] for x in event.inputs if x.mask is not None}
    return any(
        o.mask is not None and o.values.shape[1] not in times for o in event.outputs
    ) and bool(times)


def _compare(
    a: list[Masked],
    b: list[Masked],
    a_sources: list[torch.Tensor],
    b_sources: list[torch.Tensor],
    positional: bool,
) -> str:
    """'same', 'differ' or 'incomparable' for two lists of outputs."""
    if len(a) != len(b):
        return "incomparable"
    for x, y in zip(a, b, strict=True):
        if (x.mask is None) != (y.mask is None):
            return "differ"
        counts_differ = (
            x.mask is not None
            and y.mask is not None
            and not torch.equal(x.mask.sum(dim=1), y.mask.sum(dim=1))
        )
        if counts_differ:
            return "incomparable" if positional else "differ"
        xa, ya = _real(x, a_sources), _real(y, b_sources)
        if xa.shape != ya.shape:
            return "incomparable"
        if not _close(xa, ya):
            return "differ"
    return "same"


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to tolerance; NaN and inf must sit at the same places."""
    if torch.equal(a, b):  # the usual case, in one pass (NaN is never equal: read below)
        return True
    if not a.is_floating_point():
        return False
    finite = torch.isfinite(a) & torch.isfinite(b)
    same_special = torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(
        torch.where(finite, 0, a.nan_to_num(0)), torch.where(finite, 0, b.nan_to_num(0))
    )
    if not same_special:
        return False
    rtol, atol = _tolerance(a)
    a, b = a[finite].double(), b[finite].double()
    if not a.numel():
        return True
    scale = float(a.abs().max().clamp(min=1.0))
    return bool(((a - b).abs() <= atol * scale + rtol * b.abs()).all())


def _tolerance(values: torch.Tensor) -> tuple[float, float]:
    """`(rtol, atol)` for values of this dtype and device."""
    eps = torch.finfo(values.dtype).eps
    if values.is_cuda and values.dtype == torch.float32:
        eps = max(eps, 2.0**-10)  # TF32 matmuls and convolutions
    return max(RTOL, 10 * eps), max(ATOL, eps)


def _changed_gradient(model: nn.Module, base: _Run, run: _Run) -> str | None:
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, base.grads, run.grads, strict=True):
        if (a is None) != (b is None):
            return name
        if a is not None and b is not None and not _close(a, b):
            return name
    return None


# ---------------------------------------------------------------------- findings
def _output_finding(
    model: nn.Module,
    names: dict[int, str],
    base: _Run,
    run: _Run,
    first: int,
    exposed: list[str],
    variant: Variant,
) -> Finding:
    event = base.events[first]
    module = event.module
    between = (
        _compare(event.inputs, run.events[first].inputs, base.sources, run.sources, False)
        == "differ"
    )
    if between:
        where = (
            f"the real-step inputs of {_describe(names, module)} already differ: the steps "
            "are mixed by code outside any layer, in the forward of "
            f"{_describe(names, _owner(model, names, module))}"
        )
    else:
        where = f"{_describe(names, module)} is the first layer whose real-step outputs change"
    return Finding(
        "MW013",
        "error",
        f"padding changes the outputs at real steps: when {variant[1]}, {where} "
        f"(exposed by: {', '.join(exposed)}). An operation there mixes steps (a roll, "
        "flip, cumulative sum, or a statistic over time) and reads the padding, so results "
        "depend on how much padding a batch has and what it holds.",
        _fix(module, between),
    )


def _describe(names: dict[int, str], module: nn.Module) -> str:
    """`roll (layers.1) (Lambda)`: the layer's name, place and class."""
    label = _label(names.get(id(module), ""), module)
    named = getattr(module, "name", None) is not None
    return f"{label} ({type(module).__name__})" if named else label


def _owner(model: nn.Module, names: dict[int, str], module: nn.Module) -> nn.Module:
    """The module whose forward calls `module`."""
    parent = names.get(id(module), "").rpartition(".")[0]
    return model.get_submodule(parent) if parent else model


def _fix(module: nn.Module, between: bool) -> str:
    if between:
        return (
            "do the step-mixing operation inside a layer that reads the mask (compute over "
            "the real steps only, e.g. with `Masked.fill_padding` and the lengths), or "
            "after pooling, or before the mask is made."
        )
    if isinstance(module, Masking):
        return (
            "remove this Masking: its input already carries a mask, and it recomputes the "
            "mask from values whose padding is no longer the mask value (MW007)."
        )
    if isinstance(module, Lambda) and isinstance(module.function, nn.Module):
        return (
            f"use a maskwise layer instead of the plain `{type(module.function).__name__}` "
            "(e.g. `layers.LayerNormalization` normalises each step alone), or wrap it with "
            "its real mask rule: `Lambda(module, mask=...)`."
        )
    if isinstance(module, Lambda):
        return (
            "give the Lambda a mask rule that matches what it does to the time axis "
            "(`Lambda(f, mask=lambda inputs, mask: ...)`: a flip or roll moves the mask "
            "too), or move the operation before the Masking or after pooling, or use a "
            "maskwise layer that reads the mask."
        )
    return (
        f"make `{type(module).__name__}` read the mask: compute over the real steps only "
        "(e.g. `Masked.fill_padding` before a sum over time, the lengths for a mean) and "
        "state its mask rule in `compute_mask`; or use a maskwise layer instead."
    )


def _gradient_finding(
    model: nn.Module, names: dict[int, str], base: _Run, parameter: str, variant: Variant
) -> Finding:
    owner = model.get_submodule(parameter.rpartition(".")[0])
    event = next((e for e in base.events if e.module is owner), None)
    unmasked = event is not None and all(x.mask is None for x in event.inputs)
    cause = (
        f" {_describe(names, owner)} gets no mask although the padding is there: the mask "
        "was lost before it (see MW006), so it computes on the padded steps."
        if unmasked and base.sources
        else " The padding reaches the weights in the backward pass (e.g. 0 * inf from a "
        "function whose derivative is infinite at the padding value)."
    )
    return Finding(
        "MW013",
        "error",
        f"padding changes the gradients: when {variant[1]}, the gradient of parameter "
        f"{parameter!r} changes although every layer's real-step outputs stay the same." + cause,
        "keep the mask up to this layer (return a `Masked`, give a `Lambda` its mask rule), "
        "and compute any operation on the real steps only (`Masked.fill_padding` to a safe "
        "value before it), or move it before the Masking.",
    )
