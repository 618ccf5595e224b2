"""Checks on the data alone: layout, padding, NaN, lengths (MW001-MW005, MW008, MW010, MW011,
MW014, MW015), and a given mask against the data (MW018).

The data is read as a list of sequences shaped `(time, features)`. A padded step is a
step at either end of a sequence whose every feature equals the mask value (or is NaN):
exactly the steps a `Masking(mask_value)` layer would mask at the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ShapeError, format_error
from ..masked import IGNORE_INDEX
from .findings import Finding

# MW001: a repair must account for this share of the mask-value entries, the given
# layout for less than this one.
CLEAN_SCORE = 0.9
SCRAMBLED_SCORE = 0.5
# MW010: more padding than this share of all steps deserves bucketing.
PADDING_FRACTION = 0.5
# MW014: at least this share of the all-mask-value steps lie between real steps.
TIME_MAJOR_SHARE = 0.25


@dataclass(frozen=True)
class Layout:
    """The inputs as sequences `(time, features)`, and how they were given.

    Args:
        name: the array's name in messages (`"x"`).
        sequences: one `(time, features)` array per sequence.
        padded_array: True when given as one `(batch, time, features)` array.
        tokens: True when given without a feature axis (`(batch, time)` token ids).
    """

    name: str
    sequences: list[np.ndarray]
    padded_array: bool
    tokens: bool = False


@dataclass(frozen=True)
class Padding:
    """Per sequence: `pad (time,)` bool, True = padded step; `side` "post", "pre" or None."""

    pad: np.ndarray
    side: str | None


def as_numpy(array: Any) -> np.ndarray:
    """A numpy copy of a numpy array, torch tensor or nested list."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def to_layout(x: Any, name: str = "x") -> Layout:
    """Read `x`: a padded array `(batch, time[, features])` or a list of sequences."""
    if isinstance(x, list | tuple):
        sequences = [as_numpy(s) for s in x]
        if not sequences:
            raise ShapeError(format_error(f"{name} holds no sequences.", fix="pass data."))
        tokens = all(s.ndim == 1 for s in sequences)
        if tokens:
            sequences = [s[:, None] for s in sequences]
        bad = [i for i, s in enumerate(sequences) if s.ndim != 2]
        if bad:
            raise ShapeError(
                format_error(
                    f"{name} must hold one (time, features) array per sequence.",
                    expected="2-D arrays (or 1-D token ids)",
                    received=f"sequence {bad[0]} shaped {sequences[bad[0]].shape}",
                )
            )
        return Layout(name, sequences, padded_array=False, tokens=tokens)
    array = as_numpy(x)
    if array.ndim == 2:
        return Layout(name, list(array[:, :, None]), padded_array=True, tokens=True)
    if array.ndim != 3:
        raise ShapeError(
            format_error(
                f"{name} must be a padded batch or a list of sequences.",
                expected="(batch, time, features), (batch, time), or a list of (time, features)",
                received=f"shape {array.shape}",
                fix="for one sequence add the batch axis: x[None].",
            )
        )
    return Layout(name, list(array), padded_array=True)


def equals_mask_value(seq: np.ndarray, mask_value: float) -> np.ndarray:
    """Bool array like `seq`: True where the entry equals the mask value."""
    if np.isnan(mask_value):
        return np.isnan(seq)
    return seq == mask_value


def find_padding(seq: np.ndarray, mask_value: float) -> Padding:
    """The padded steps of one sequence: the longer run of blank steps at either end."""
    eq = equals_mask_value(seq, mask_value)
    blank = eq.all(axis=-1) | (~np.isfinite(seq)).all(axis=-1)
    if seq.shape[0] == 0 or blank.all():
        return Padding(np.ones(seq.shape[0], bool), None)
    trail = int(np.argmin(blank[::-1]))
    lead = int(np.argmin(blank))
    pad = np.zeros(seq.shape[0], bool)
    if trail >= lead and trail > 0:
        pad[seq.shape[0] - trail :] = True
        return Padding(pad, "post")
    if lead > 0:
        pad[:lead] = True
        return Padding(pad, "pre")
    return Padding(pad, None)


def _layout_score(sequences: list[np.ndarray], mask_value: float) -> tuple[float, list[int]]:
    """Share of mask-value entries that lie in padded steps, and the padded step counts."""
    total = covered = 0
    pad_counts = []
    for seq in sequences:
        eq = equals_mask_value(seq, mask_value)
        padding = find_padding(seq, mask_value)
        total += int(eq.sum())
        covered += int(eq[padding.pad].sum())
        pad_counts.append(int(padding.pad.sum()))
    return (covered / total if total else 1.0), pad_counts


Repair = tuple[str, Callable[[np.ndarray], np.ndarray], str, bool]


def _repairs(layout: Layout) -> list[Repair]:
    """The likely layout repairs: (expression shown to the user, function, why, whether
    a feature always equal to the mask value would look like padding after it)."""
    name = layout.name
    a, b = layout.sequences[0].shape
    if layout.padded_array:
        transpose = f"np.swapaxes({name}, 1, 2)"
        undo = f"{name}.reshape(-1, {b}, {a}).swapaxes(1, 2)"
        redo = f"{name}.reshape(-1, {b}, {a})"
    else:
        transpose = f"[s.T for s in {name}]"
        undo = f"[s.reshape(s.shape[1], s.shape[0]).T for s in {name}]"
        redo = f"[s.reshape(s.shape[1], s.shape[0]) for s in {name}]"
    reshaped = (
        "`reshape` keeps the memory order, so reshaping a (features, time) array into "
        f"(time, features), like `X.reshape(1, {a}, {b})` on a ({b}, {a}) array, mixes "
        "features and time; transpose instead: `X.T`."
    )
    return [
        (
            transpose,
            lambda s: s.T,
            "each sequence was given as (features, time); maskwise and Keras read "
            "(time, features).",
            True,
        ),
        (undo, lambda s: s.reshape(s.shape[1], s.shape[0]).T, reshaped, False),
        (
            redo,
            lambda s: s.reshape(s.shape[1], s.shape[0]),
            "`reshape` keeps the memory order: reshape (time, features) data only to add "
            "or remove a batch axis.",
            False,
        ),
    ]


def check_layout(layout: Layout, mask_value: float) -> tuple[list[Finding], Layout]:
    """MW001: the mask-value entries do not form whole padded steps, but would after a
    transpose or an undone reshape. Returns the findings and the repaired layout."""
    if layout.tokens:
        return [], layout
    if _time_last(layout.sequences):
        first = layout.sequences[0].shape
        message = (
            f"{layout.name}: the sequences share their first axis ({first[0]}) and differ in "
            f"their second (e.g. {first} and {layout.sequences[1].shape}): they look like "
            "(features, time) arrays, but each sequence must be (time, features)."
        )
        fix = f"transpose each sequence: `[s.T for s in {layout.name}]`."
        repaired = [seq.T for seq in layout.sequences]
        return [Finding("MW001", "error", message, fix)], replace(layout, sequences=repaired)
    score, pad_counts = _layout_score(layout.sequences, mask_value)
    if score >= SCRAMBLED_SCORE:
        return [], layout
    best: tuple[float, str, str, list[np.ndarray], list[int]] | None = None
    for expression, repair, why, ambiguous in _repairs(layout):
        repaired = [repair(s) for s in layout.sequences]
        if layout.padded_array and len({s.shape for s in repaired}) != 1:
            continue
        new_score, new_counts = _layout_score(repaired, mask_value)
        # Padding varies with the length; a constant count could be a dead feature.
        varies = len(set(new_counts)) > 1 or (len(new_counts) == 1 and new_counts[0] > 1)
        plausible = any(new_counts) and (varies or not ambiguous)
        if new_score >= CLEAN_SCORE and plausible and (best is None or new_score > best[0]):
            best = (new_score, expression, why, repaired, new_counts)
    if best is None:
        return [], layout
    _, expression, why, repaired, new_counts = best
    n = len(layout.sequences)
    no_padding = sum(1 for c in pad_counts if c == 0)
    entries = sum(int(equals_mask_value(s, mask_value).sum()) for s in layout.sequences)
    size = sum(s.size for s in layout.sequences)
    steps = repaired[0].shape[0]
    shape = layout.sequences[0].shape
    if n == 1:
        seen = (
            f"has no step that is entirely {mask_value}, so Masking({mask_value}) would mask "
            "nothing"
            if no_padding
            else f"has all-{mask_value} steps that are not its padding"
        )
        found = f"the sequence (seen as {shape} = (time, features)) {seen}"
    else:
        others = (
            f", and the all-{mask_value} steps of the other {n - no_padding} are not their padding"
            if no_padding < n
            else ""
        )
        found = (
            f"{no_padding} of {n} sequences (each seen as {shape} = (time, features)) have no "
            f"step that is entirely {mask_value}, so Masking({mask_value}) would mask nothing "
            f"there{others}"
        )
    low, high = min(new_counts), max(new_counts)
    counts = f"{low}" if low == high else f"{low} to {high}"
    message = (
        f"{layout.name}: {entries / size:.0%} of the values equal the mask value "
        f"{mask_value}, but they do not form whole padded steps: {found}. The layout looks "
        f"scrambled: after `{expression}` the mask-value entries form whole trailing steps "
        f"({counts} padded steps of {steps})."
    )
    fix = f"use `{expression}`, so each sequence is (time, features) {repaired[0].shape}: {why}"
    finding = Finding("MW001", "error", message, fix)
    return [finding], replace(layout, sequences=repaired)


def check_time_major(layout: Layout, mask_value: float) -> tuple[list[Finding], Layout]:
    """MW014: a padded array given time-major, `(time, batch, features)`: many of its
    all-mask-value steps lie between real steps, and after swapping the first two axes
    every one of them is edge padding, of varying length, holding the mask-value
    entries. Returns the findings and the repaired layout."""
    if not layout.padded_array or len(layout.sequences) < 3:
        return [], layout
    interior, blank, _ = _blank_steps(layout.sequences, mask_value)
    if blank == 0 or interior < max(2, TIME_MAJOR_SHARE * blank):
        return [], layout
    swapped = list(np.swapaxes(np.stack(layout.sequences), 0, 1))
    swapped_interior, _, counts = _blank_steps(swapped, mask_value)
    score, _ = _layout_score(swapped, mask_value)
    if swapped_interior or len(set(counts)) < 2 or score < CLEAN_SCORE:
        return [], layout
    name = layout.name
    shape = (len(layout.sequences), *layout.sequences[0].shape[: 1 if layout.tokens else 2])
    message = (
        f"{name} {shape} looks time-major, (time, batch, features): {interior} of its "
        f"{blank} all-{mask_value} steps lie between real steps, where Masking({mask_value}) "
        f"would mask them as padding, but after `np.swapaxes({name}, 0, 1)` every one of them "
        f"is padding at the end of a sequence ({min(counts)} to {max(counts)} padded steps "
        f"of {len(layout.sequences)}). maskwise reads (batch, time, features), like Keras; "
        "`torch.nn.utils.rnn.pad_sequence` returns (time, batch, ...) unless "
        "`batch_first=True`."
    )
    fix = (
        f"swap the first two axes: `np.swapaxes({name}, 0, 1)` (torch: "
        f"`{name}.transpose(0, 1)`), or pad with `pad_sequence(..., batch_first=True)`."
    )
    return [Finding("MW014", "error", message, fix)], replace(layout, sequences=swapped)


def _blank_steps(sequences: list[np.ndarray], mask_value: float) -> tuple[int, int, list[int]]:
    """(all-mask-value steps between real steps, all-mask-value steps, padded steps per
    sequence)."""
    interior = total = 0
    counts = []
    for seq in sequences:
        padding = find_padding(seq, mask_value)
        blank = equals_mask_value(seq, mask_value).all(axis=-1)
        interior += int((blank & ~padding.pad).sum())
        total += int(blank.sum())
        counts.append(int(padding.pad.sum()))
    return interior, total, counts


def check_input_lengths(layouts: list[Layout], paddings: list[list[Padding]]) -> list[Finding]:
    """MW015: several inputs whose real steps differ within one sample, in a minority of
    the samples: one timeline whose inputs were padded or ordered differently. (Inputs
    that differ in most samples are separate timelines, e.g. an encoder's and a
    decoder's, and are left alone.)"""
    spans = np.array([[_span(layout, p) for p in pads] for layout, pads in zip(layouts, paddings)])
    differ = (spans != spans[:1]).any(axis=(0, 2))  # (samples,)
    if not differ.any() or differ.mean() > 0.5:
        return []
    i = int(np.flatnonzero(differ)[0])
    seen = ", ".join(
        f"{layout.name} steps {start}..{end - 1}"
        for layout, (start, end) in zip(layouts, spans[:, i])
    )
    message = (
        f"the inputs of one sample hold different real steps in {int(differ.sum())} of "
        f"{len(differ)} sequences, though they agree in the others (first: sequence {i}: "
        f"{seen}). Inputs combined step by step (`Concatenate`, `Add`) must share one "
        "timeline: a step real in one input and padding in another is half-masked."
    )
    fix = (
        "give every input of a sample the same real length, padded on the same side, and "
        "keep the inputs' sequences in the same order."
    )
    return [Finding("MW015", "error", message, fix, sequence=i)]


def _span(layout: Layout, padding: Padding) -> tuple[int, int]:
    """(first, last + 1) real step of one sequence; a list's sequence is real throughout."""
    if not layout.padded_array:
        return 0, len(padding.pad)
    real = np.flatnonzero(~padding.pad)
    return (int(real[0]), int(real[-1]) + 1) if len(real) else (0, 0)


def _time_last(sequences: list[np.ndarray]) -> bool:
    """Ragged sequences whose first axis is constant and second varies."""
    shapes = {seq.shape for seq in sequences}
    return len({a for a, _ in shapes}) == 1 and len({b for _, b in shapes}) > 1


def check_padding(layout: Layout, paddings: list[Padding], mask_value: float) -> list[Finding]:
    """MW002, MW003, MW008, MW010 on a (repaired) layout."""
    findings = []
    findings += _partial_padding(layout, paddings, mask_value)
    findings += _masked_real_steps(layout, paddings, mask_value)
    findings += _mixed_sides(layout, paddings)
    findings += check_lengths(layout, paddings)
    return findings


def _partial_padding(layout: Layout, paddings: list[Padding], mask_value: float) -> list[Finding]:
    hits = []
    for i, (seq, padding) in enumerate(zip(layout.sequences, paddings)):
        if padding.side is None and padding.pad.all():
            continue
        eq = equals_mask_value(seq, mask_value)
        real = np.flatnonzero(~padding.pad)
        ends = [real[::-1]] if padding.side == "post" else [real]
        if padding.side is None:
            ends = [real[::-1], real]
        for order in ends:
            run = _same_pattern_run(eq, order)
            if run:
                hits.append((i, sorted(run), eq[run[0]]))
                break
    if not hits:
        return []
    i, steps, pattern = hits[0]
    features = np.flatnonzero(pattern).tolist()
    others = np.flatnonzero(~pattern).tolist()
    message = (
        f"{layout.name}: in {len(hits)} of {len(layout.sequences)} sequences the last steps "
        f"equal the mask value {mask_value} in only some features, e.g. sequence {i}, steps "
        f"{steps[0]}..{steps[-1]}: features {_short(features)} are {mask_value} but features "
        f"{_short(others)} are not. They look like padding but count as real steps: "
        "Masking masks a step only when every feature equals the mask value."
    )
    fix = (
        f"give padded steps the mask value in every feature (e.g. `x[i, length:] = "
        f"{mask_value}`), or build the mask from lengths: `Masked.pad(list_of_sequences)` "
        "or `make_loader(list_of_sequences, y)`."
    )
    return [Finding("MW002", "error", message, fix, sequence=i, step=steps[0])]


def _same_pattern_run(eq: np.ndarray, order: np.ndarray) -> list[int]:
    """Steps at the end given by `order` sharing one partial mask-value pattern, if that
    pattern is rare among the other real steps (2 steps at least)."""
    if len(order) < 3:
        return []
    pattern = eq[order[0]]
    if pattern.all() or not pattern.any():
        return []
    run = 1
    while run < len(order) and (eq[order[run]] == pattern).all():
        run += 1
    rest = order[run:]
    if run < 2 or len(rest) == 0 or eq[np.ix_(rest, np.flatnonzero(pattern))].mean() >= 0.5:
        return []
    return order[:run].tolist()


def _masked_real_steps(layout: Layout, paddings: list[Padding], mask_value: float) -> list[Finding]:
    hits = []
    for i, (seq, padding) in enumerate(zip(layout.sequences, paddings)):
        if padding.pad.all():
            continue
        blank = equals_mask_value(seq, mask_value).all(axis=-1) & ~padding.pad
        hits += [(i, int(t)) for t in np.flatnonzero(blank)]
    if not hits:
        return []
    i, t = hits[0]
    sequences = len({s for s, _ in hits})
    if layout.tokens and mask_value == 0:
        return [_real_zero_tokens(layout.name, len(hits), sequences, i, t)]
    message = (
        f"{layout.name}: {len(hits)} real steps in {sequences} sequences equal the mask value "
        f"{mask_value} in every feature (first: sequence {i}, step {t}). They lie between "
        f"real steps, but Masking({mask_value}) would mask them too, as if they were padding."
    )
    fix = (
        "if these steps are real, build the mask from lengths instead of the mask value: "
        "`Masked.pad(list_of_sequences)` or `make_loader(list_of_sequences, y)`; or pad with "
        "a value the data cannot hold and use it as `mask_value`."
    )
    return [Finding("MW003", "warning", message, fix, sequence=i, step=t)]


def _real_zero_tokens(name: str, hits: int, sequences: int, i: int, t: int) -> Finding:
    """MW003 for token ids: id 0 between real steps, which `Embedding(mask_zero=True)`
    masks as padding (the mask of token ids is made by the Embedding, not a Masking)."""
    message = (
        f"{name}: {hits} real steps in {sequences} sequences hold token id 0 (first: "
        f"sequence {i}, step {t}). They lie between real steps, but "
        "Embedding(mask_zero=True) masks every id 0, as if it were padding."
    )
    fix = (
        "if id 0 is a real token, keep 0 for padding: shift the ids by 1 before padding "
        "(`[s + 1 for s in sequences]`, then `Embedding(input_dim + 1, ...)`); or pass "
        "the list of sequences unpadded, whose mask comes from their lengths, with "
        "`Embedding(mask_zero=False)`."
    )
    return Finding("MW003", "warning", message, fix, sequence=i, step=t)


def _mixed_sides(layout: Layout, paddings: list[Padding]) -> list[Finding]:
    post = [i for i, p in enumerate(paddings) if p.side == "post"]
    pre = [i for i, p in enumerate(paddings) if p.side == "pre"]
    if not post or not pre:
        return []
    minority = pre if len(pre) <= len(post) else post
    message = (
        f"{layout.name}: {len(post)} sequences are post-padded (padding after the real steps, "
        f"e.g. sequence {post[0]}) and {len(pre)} are pre-padded (padding before them, e.g. "
        f"sequence {pre[0]}). Two padding conventions in one array usually mean two "
        "pipelines were mixed."
    )
    fix = (
        "pad every sequence on one side, e.g. `Masked.pad(list_of_sequences, padding='post')`; "
        "code that reads lengths (taking the last step, `from_lengths`, packing) assumes one."
    )
    return [Finding("MW008", "warning", message, fix, sequence=minority[0])]


def check_lengths(layout: Layout, paddings: list[Padding]) -> list[Finding]:
    """MW010: sequences with no real step, and more padding than real steps."""
    findings = []
    empty = [i for i, p in enumerate(paddings) if p.pad.all()]
    if empty:
        findings.append(
            Finding(
                "MW010",
                "warning",
                f"{layout.name}: {len(empty)} of {len(paddings)} sequences have no real step "
                f"(first: sequence {empty[0]}). They add nothing to the loss and some "
                "frameworks turn their fully masked rows into NaN.",
                "drop empty sequences before training, e.g. keep `lengths > 0`.",
                sequence=empty[0],
            )
        )
    total = sum(len(p.pad) for p in paddings)
    padded = sum(int(p.pad.sum()) for p in paddings)
    if len(paddings) > 1 and padded > PADDING_FRACTION * total and len(paddings) > len(empty):
        lengths = np.array([int((~p.pad).sum()) for p in paddings])
        findings.append(
            Finding(
                "MW010",
                "info",
                f"{layout.name}: {padded / total:.0%} of all {total} steps are padding "
                f"(real lengths {lengths.min()} to {lengths.max()}, median "
                f"{int(np.median(lengths))}, padded to {max(len(p.pad) for p in paddings)}): "
                "most of the compute goes to padding.",
                "batch sequences of similar length: `make_loader(list_of_sequences, y)` "
                "buckets by length by default and pads each batch only to its longest "
                "sequence.",
            )
        )
    return findings


def check_inverted_mask(
    values: np.ndarray, mask: np.ndarray, mask_value: float, name: str
) -> list[Finding]:
    """MW018: a mask given with the data (`Masked(x, mask)`) that is True at the padding:
    PyTorch's `key_padding_mask` (True = padded) where maskwise wants True = real.

    The rule is exact: every step the mask calls real holds `mask_value` in every
    feature, while some step it calls padded holds other values. Correct data cannot
    meet it: its real steps would carry no value but the padding's.

    Example:
        >>> x = np.array([[[1.0], [2.0], [0.0]]])  # 2 real steps, 1 padded
        >>> [f.code for f in check_inverted_mask(x, np.array([[False, False, True]]), 0.0, "x")]
        ['MW018']
        >>> check_inverted_mask(x, np.array([[True, True, False]]), 0.0, "x")
        []
    """
    steps = values.reshape(*mask.shape, -1)
    blank = np.all(equals_mask_value(steps, mask_value), axis=-1)
    if not mask.any() or not blank[mask].all() or blank[~mask].all():
        return []
    sequence, step = (int(i[0]) for i in np.nonzero(mask & blank))
    message = (
        f"{name}: the mask looks inverted. Every step it marks real holds only the padding "
        f"value {mask_value:g} (first: sequence {sequence}, step {step}), and the data sits "
        "at the steps it marks padded. maskwise's mask is True = real; PyTorch's "
        "`key_padding_mask` is True = padded."
    )
    fix = "pass the opposite mask: `Masked(x, ~key_padding_mask)`, or `mask=~key_padding_mask`."
    return [Finding("MW018", "error", message, fix, sequence=sequence, step=step)]


def check_nonfinite(layout: Layout, paddings: list[Padding]) -> list[Finding]:
    """MW005 on the inputs: NaN/inf in padding (info) or in real steps (error)."""
    in_padding = 0
    real_hits = []
    for i, (seq, padding) in enumerate(zip(layout.sequences, paddings)):
        bad = ~np.isfinite(seq)
        if not bad.any():
            continue
        in_padding += int(bad[padding.pad].sum())
        steps = np.flatnonzero(bad.any(axis=-1) & ~padding.pad)
        real_hits += [(i, int(t), int(np.flatnonzero(bad[t])[0])) for t in steps]
    findings = []
    if real_hits:
        i, t, f = real_hits[0]
        findings.append(
            Finding(
                "MW005",
                "error",
                f"{layout.name}: {len(real_hits)} real steps hold NaN or inf (first: sequence "
                f"{i}, step {t}, feature {f}). Every output and the loss become NaN.",
                "clean or impute these values (e.g. `np.nan_to_num` or a forward fill) "
                "before training.",
                sequence=i,
                step=t,
            )
        )
    if in_padding:
        findings.append(
            Finding(
                "MW005",
                "info",
                f"{layout.name}: the padding holds {in_padding} NaN/inf values. maskwise never "
                "lets padding reach a real result (it selects with `torch.where`), but "
                "frameworks that multiply the loss by the mask get 0 * NaN = NaN.",
                "pad with 0 (or your mask value) if the data also goes to other frameworks.",
            )
        )
    return findings


def to_targets(
    y: Any, layout: Layout, name: str = "y"
) -> tuple[list[np.ndarray] | None, list[Finding]]:
    """Per-step targets (or sample weights, named `name`), one `(time,)` array per
    sequence; None when `y` holds one target per sequence or one-hot rows. MW011 when
    they do not line up with the inputs."""
    if isinstance(y, list | tuple):
        rows = [as_numpy(r) for r in y]
    else:
        array = as_numpy(y)
        if array.ndim == 1 and array.shape[0] == len(layout.sequences):
            return None, []
        if array.ndim == 1:
            array = array[None]
        rows = list(array)
    rows = [r[:, 0] if r.ndim == 2 and r.shape[1] == 1 else r for r in rows]
    if any(r.ndim != 1 for r in rows):
        return None, []
    n = len(layout.sequences)
    if len(rows) != n:
        return None, [_misaligned(layout, f"{len(rows)} rows for {n} sequences", name)]
    for i, (row, seq) in enumerate(zip(rows, layout.sequences)):
        if len(row) != len(seq):
            return None, [
                _misaligned(
                    layout, f"sequence {i} has {len(seq)} steps but {len(row)} values", name, i
                )
            ]
    return rows, []


def step_rows(values: Any, layout: Layout) -> list[np.ndarray] | None:
    """Per-step values with several units per step (`(time, units, ...)` per sequence,
    e.g. regression targets of two values per step) lined up with the sequences of
    `layout`; None for anything else (one value per step: see `to_targets`).

    Example:
        >>> layout = to_layout(np.ones((2, 5, 3)), "x")
        >>> [row.shape for row in step_rows(np.zeros((2, 5, 2)), layout)]
        [(5, 2), (5, 2)]
        >>> step_rows(np.zeros((2, 2)), layout) is None  # one row of 2 per sequence
        True
    """
    if isinstance(values, list | tuple):
        rows = [as_numpy(r) for r in values]
    else:
        array = as_numpy(values)
        if array.ndim < 3:
            return None
        rows = list(array)
    sequences = layout.sequences
    if len(rows) != len(sequences):
        return None
    if any(r.ndim < 2 or len(r) != len(s) for r, s in zip(rows, sequences, strict=True)):
        return None
    return rows


def _misaligned(layout: Layout, received: str, name: str, sequence: int | None = None) -> Finding:
    shape = layout.sequences[0].shape
    return Finding(
        "MW011",
        "error",
        f"{name} does not line up with {layout.name}: {received} (each sequence of "
        f"{layout.name} seen as (time, features) = {shape}).",
        f"give one {'weight' if name == 'sample_weight' else 'target'} per step, shaped "
        f"(batch, time) like the inputs' first two axes; if {layout.name} is features x "
        "time, transpose it.",
        sequence=sequence,
    )


PADDING_LABELS = (0.0, -1.0, float(IGNORE_INDEX))
"""Target values that mark padded steps (NaN too)."""


def check_target_side(targets: list[np.ndarray], paddings: list[Padding]) -> list[Finding]:
    """MW011: per-step targets padded at the other end than the inputs.

    `keras.utils.pad_sequences` pads at the front by default: inputs padded by it and
    targets padded at the end (or the reverse) put the labels on masked steps and the
    padding labels on real ones, and nothing fails. Found when, over the sequences
    padded at one end (at least two, four steps), the steps as many as the padding at
    the other end all hold one padding label (0, -1, `IGNORE_INDEX`, NaN), while the
    padded steps hold several values.

    Example:
        >>> x = np.zeros((2, 5, 1)); x[0, 3:] = 1; x[1, 2:] = 1  # pre-padded
        >>> y = np.array([[1, 2, -100, -100, -100], [2, 1, 2, -100, -100]])  # post-padded
        >>> [f.code for f in check_target_side(list(y), [find_padding(s, 0.0) for s in x])]
        ['MW011']
    """
    padded = [(row, p) for row, p in zip(targets, paddings, strict=True) if p.side and p.pad.any()]
    padded = [(row, p) for row, p in padded if not p.pad.all() and row.ndim == 1]
    if len(padded) < 2:
        return []
    at_pad = np.concatenate([row[p.pad] for row, p in padded]).astype(np.float64)
    # The padded steps mirrored: as many steps as the padding, at the other end.
    other = np.concatenate([row[::-1][p.pad] for row, p in padded]).astype(np.float64)
    label = other[0]
    one_label = bool(np.all(np.isnan(other))) or bool(np.all(other == label))
    is_padding = np.isnan(label) or label in PADDING_LABELS
    if len(other) < 4 or not one_label or not is_padding or len(np.unique(at_pad)) < 2:
        return []
    side = padded[0][1].side
    other_side = "post" if side == "pre" else "pre"
    return [
        Finding(
            "MW011",
            "error",
            f"y is padded at the other end than the inputs: the inputs are {side}-padded, "
            f"but y holds {_plain_label(label)} at the {other_side} end of every padded "
            "sequence and its labels on the padded steps, which the mask ignores: the loss "
            "reads padding labels at real steps and never sees the real labels.",
            f"pad y on the same side as the inputs (`pad_sequences(labels, padding='{side}')`), "
            "or pass lists of sequences and let `fit` pad both.",
        )
    ]


def _plain_label(value: float) -> str:
    return "NaN" if np.isnan(value) else str(int(value))


def check_padding_label(
    targets: list[np.ndarray],
    paddings: list[Padding],
    n_outputs: int | None,
    *,
    loader_fills: bool = False,
) -> list[Finding]:
    """MW004: the label at padded steps is also a class, or has an output unit of its own
    (`n_outputs`, the model's units per step, when known).

    `loader_fills`: the targets go through `make_loader`, which replaces them with
    `IGNORE_INDEX` at padded steps, so a padding label shared with a real class is
    harmless; a unit of its own is not (the model still has a "padding" class).
    """
    pad = np.concatenate([p.pad for p in paddings])
    values = np.concatenate(targets).astype(np.float64)
    finite = values[np.isfinite(values)]
    if pad.any() and (~pad).any() and np.array_equal(finite, np.round(finite)):
        return _padding_label(values, pad, targets, n_outputs, loader_fills)
    return []


def check_real_values(rows: list[np.ndarray], name: str, paddings: list[Padding]) -> list[Finding]:
    """MW005 on per-step targets or sample weights (one `(time, ...)` array per sequence,
    lined up with `paddings`): NaN or inf at a real step."""
    bad = [~_finite_steps(row) & ~padding.pad for row, padding in zip(rows, paddings, strict=True)]
    hits = [(i, int(np.flatnonzero(b)[0])) for i, b in enumerate(bad) if b.any()]
    if not hits:
        return []
    i, t = hits[0]
    count = sum(int(b.sum()) for b in bad)
    return [
        Finding(
            "MW005",
            "error",
            f"{name}: {count} real steps hold NaN or inf (first: sequence {i}, step {t}). "
            "The loss, and then every weight of the model, becomes NaN.",
            f"fix these values of {name}, or mark their steps as padding.",
            sequence=i,
            step=t,
        )
    ]


def _finite_steps(row: np.ndarray) -> np.ndarray:
    """Bool `(time,)`: True where every value of the step is finite."""
    finite = np.isfinite(row.astype(np.float64))
    per_step = int(np.prod(finite.shape[1:], dtype=np.int64))  # 1 for a (time,) row
    return np.asarray(finite.reshape(finite.shape[0], per_step).all(axis=1))


def check_sequence_values(values: Any, name: str) -> list[Finding]:
    """MW005 on per-sequence targets or sample weights `(N, ...)`: NaN or inf anywhere."""
    if isinstance(values, list | tuple):
        items = [as_numpy(v) for v in values]
        if len({item.shape for item in items}) != 1:
            return []  # ragged: not one value per sequence
        array = np.stack(items)
    else:
        array = as_numpy(values)
    if array.dtype.kind not in "fc" or array.ndim == 0 or len(array) == 0:
        return []
    bad = ~_finite_steps(array)
    if not bad.any():
        return []
    i = int(np.flatnonzero(bad)[0])
    return [
        Finding(
            "MW005",
            "error",
            f"{name}: {int(bad.sum())} of {len(array)} sequences have a NaN or inf value "
            f"(first: sequence {i}). The loss, and then every weight of the model, becomes NaN.",
            f"fix these values of {name}, or drop their sequences.",
            sequence=i,
        )
    ]


def _padding_label(
    values: np.ndarray,
    pad: np.ndarray,
    targets: list[np.ndarray],
    n_outputs: int | None,
    loader_fills: bool,
) -> list[Finding]:
    pad_labels = {int(v) for v in values[pad] if np.isfinite(v) and v != IGNORE_INDEX}
    if len(pad_labels) != 1:
        return []
    label = pad_labels.pop()
    classes = sorted({int(v) for v in values[~pad] if np.isfinite(v)})
    shared = int((values[~pad] == label).sum())
    relabel = ", ".join(f"{c}->{k}" for k, c in enumerate(classes))
    fix = (
        "with a mask, padded steps need no class: pad targets with "
        f"IGNORE_INDEX ({IGNORE_INDEX}; `make_loader` does this), relabel the real classes "
        f"{relabel} and use {len(classes)} output units."
    )
    if shared and loader_fills:
        return []
    if shared:
        where = _locate(int(np.flatnonzero((values == label) & ~pad)[0]), targets)
        return [
            Finding(
                "MW004",
                "error",
                f"y: label {label} marks the padded steps and is also a class at {shared} real "
                f"steps (first: sequence {where[0]}, step {where[1]}). Any loss or metric that "
                f"does not read the mask counts every padded step as class {label}.",
                f"pad targets with IGNORE_INDEX ({IGNORE_INDEX}) instead of {label}; "
                "`make_loader` does this.",
                sequence=where[0],
                step=where[1],
            )
        ]
    if label < 0 or not classes:  # no real class to compare the padding label with
        return []
    if n_outputs is not None and n_outputs > 1 and label < n_outputs:
        return [
            Finding(
                "MW004",
                "error",
                f"y: the padding label {label} is treated as a class: the model has "
                f"{n_outputs} outputs, one of them for {label}, although real steps only use "
                f"classes {classes}. The model learns to predict 'padding'.",
                fix,
            )
        ]
    if n_outputs is None and label < max(classes):
        return [
            Finding(
                "MW004",
                "warning",
                f"y: real steps use classes {classes} and padded steps label {label}; a model "
                f"with {max(classes) + 1} outputs would make {label} a class of its own and "
                "learn to predict 'padding'.",
                fix,
            )
        ]
    return []


def _locate(flat_index: int, targets: Sequence[np.ndarray]) -> tuple[int, int]:
    for i, row in enumerate(targets):
        if flat_index < len(row):
            return i, flat_index
        flat_index -= len(row)
    raise IndexError(flat_index)


def _short(items: list[int], limit: int = 8) -> str:
    return str(items) if len(items) <= limit else f"{items[:limit]}... ({len(items)} in all)"
