"""`model.summary()`: Keras's table of layers, output shapes and parameter counts,
with a column Keras does not have: what each layer does to the mask.

The mask column comes from the layer's contract, not from a run:
- *creates*: `Masking`, or a layer with `mask_zero=True` (it makes a mask from the
  values);
- *consumes*: the output has no time axis and no mask, on purpose (`consumes_mask`:
  an RNN without `return_sequences`, global pooling);
- *passes*: the output mask is the input mask (the default `compute_mask`, or one that
  returns the mask it is given);
- *transforms*: any other rule (a merge combines masks, a strided window shortens it,
  `go_backwards` reverses it).
A nested model shows the strongest effect of its layers (consumes, creates,
transforms, passes).

Example:
    >>> model = Sequential([layers.Embedding(20, 8, mask_zero=True, name="embedding"),
    ...                     layers.LSTM(4, name="lstm")], name="tagger")
    >>> _ = model(torch.tensor([[3, 4, 0]]))
    >>> model.summary()  # LSTM: 4 gates x (8 inputs + 4 states + 1 bias) x 4 units
    Model: "tagger"
    ________________________________________________________________________________
    Layer (type)                Output Shape          Param #    Mask
    ================================================================================
    embedding (Embedding)       (None, None, 8)       160        creates
    ________________________________________________________________________________
    lstm (LSTM)                 (None, 4)             208        consumes
    ================================================================================
    Total params: 368 (1.44 KB)
    Trainable params: 368 (1.44 KB)
    Non-trainable params: 0 (0.00 B)
    Mask: what each layer's mask rule does: creates, passes, transforms or consumes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .functional import Input, SymbolicTensor, symbols_in
from .layers.base import Layer
from .layers.core import Masking
from .layers.embedding import Embedding
from .layers.transformer import TokenAndPositionEmbedding

if TYPE_CHECKING:
    from .models import Container

EFFECTS = ("consumes", "creates", "transforms", "passes")
"""The mask column's words, strongest first (a nested model shows its strongest)."""

_PROBE_MASK = torch.tensor([[True, False, True, True]])


def mask_effect(layer: nn.Module) -> str:
    """What `layer` does to the mask: creates, consumes, transforms or passes."""
    inner = getattr(layer, "layers", None)
    if isinstance(inner, nn.ModuleList):  # a container: its layers' strongest effect
        effects = {mask_effect(m) for m in inner}
        return next((e for e in EFFECTS if e in effects), "passes")
    if isinstance(layer, Masking) or getattr(layer, "mask_zero", False):
        return "creates"
    if not isinstance(layer, Layer):
        return "passes"
    if layer.consumes_mask:
        return "consumes"
    if type(layer).compute_mask is Layer.compute_mask:
        return "passes"
    if layer.takes_list:
        return "transforms"
    values = torch.zeros(1, _PROBE_MASK.shape[1], 1)
    try:
        out = layer.compute_mask(values, _PROBE_MASK)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return "transforms"
    if out is None:
        return "consumes"
    return "passes" if torch.equal(out, _PROBE_MASK) else "transforms"


def count_weights(module: nn.Module) -> tuple[int, int]:
    """`(trainable, non-trainable)` numbers of weights: parameters, and the float
    buffers a layer keeps as state (BatchNormalization's moving statistics), as
    Keras counts them."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    frozen += sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return trainable, frozen


def _shape_text(shapes: Sequence[tuple[int | None, ...] | None]) -> str:
    """`(None, 5)` for one output, `[(None, 5), (None, 3)]` for several."""
    texts = ["?" if s is None else "(" + ", ".join(str(d) for d in s) + ")" for s in shapes]
    if len(texts) == 1:
        return texts[0]
    return "[" + ", ".join(texts) + "]" if texts else "?"


def _sequential_shapes(model: Container) -> list[str]:
    """Each layer's output shape of a `Sequential`, found by calling its layers on an
    `Input` of the shape it was first called with ("?" before that)."""
    layers_ = list(model.layers)
    if model.build_shape is None:
        return ["?"] * len(layers_)
    dims: list[int | None] = list(model.build_shape)
    if dims:
        dims[0] = None  # the time axis
    embeds = isinstance(layers_[0], Embedding | TokenAndPositionEmbedding) if layers_ else False
    x: Any = Input(shape=dims, dtype=torch.int64 if embeds else None)
    shapes = []
    for layer in layers_:
        x = layer(x)
        shapes.append(_shape_text([s.shape for s in symbols_in(x)]))
    return shapes


def _rows(model: Container) -> tuple[list[list[str]], bool]:
    """The table's rows and whether it has a "Connected to" column (functional)."""
    nodes = getattr(model, "nodes", None)
    if nodes is None:
        shapes = _sequential_shapes(model)
        return [
            [_title(layer), shape, f"{sum(count_weights(layer)):,}", mask_effect(layer)]
            for layer, shape in zip(model.layers, shapes, strict=True)
        ], False
    inputs: list[SymbolicTensor] = list(getattr(model, "inputs", []))
    rows = [[f"{x.name} (Input)", _shape_text([x.shape]), "0", "-", ""] for x in inputs]
    for layer in model.layers:
        calls = [n for n in nodes if n.layer is layer]
        outputs = symbols_in(calls[0].outputs) if calls else []
        sources = [x.name for node in calls for x in node.inputs]
        rows.append(
            [
                _title(layer),
                _shape_text([x.shape for x in outputs]),
                f"{sum(count_weights(layer)):,}",
                mask_effect(layer),
                ", ".join(dict.fromkeys(sources)),
            ]
        )
    return rows, True


def _title(layer: nn.Module) -> str:
    kind = "Functional" if type(layer).__name__ == "Model" else type(layer).__name__
    return f"{getattr(layer, 'name', '')} ({kind})"


def _size(count: int) -> str:
    size = float(count * 4)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return ""


def summary_lines(model: Container, line_length: int = 80) -> list[str]:
    """The lines of `model.summary()`, each at most `line_length` characters."""
    rows, connected = _rows(model)
    headers = ["Layer (type)", "Output Shape", "Param #", "Mask"]
    fractions = [0.36, 0.28, 0.14, 0.22]
    if connected:
        headers.append("Connected to")
        fractions = [0.2625, 0.225, 0.1125, 0.1375, 0.2625]
    widths = [max(int(f * line_length), 6) for f in fractions]
    widths[-1] = line_length - sum(widths[:-1])

    def table_row(cells: Sequence[str]) -> list[str]:
        wrapped = [textwrap.wrap(c, w - 1) or [""] for c, w in zip(cells, widths, strict=True)]
        height = max(len(w) for w in wrapped)
        return [
            "".join(
                (w[i] if i < len(w) else "").ljust(width)
                for w, width in zip(wrapped, widths, strict=True)
            ).rstrip()
            for i in range(height)
        ]

    trainable, frozen = count_weights(model)
    total = trainable + frozen
    lines = [f'Model: "{model.name}"', "_" * line_length, *table_row(headers), "=" * line_length]
    for i, row in enumerate(rows):
        lines += table_row(row)
        lines.append("=" * line_length if i == len(rows) - 1 else "_" * line_length)
    if not rows:
        lines.append("=" * line_length)
    lines += [
        f"Total params: {total:,} ({_size(total)})",
        f"Trainable params: {trainable:,} ({_size(trainable)})",
        f"Non-trainable params: {frozen:,} ({_size(frozen)})",
    ]
    legend = "Mask: what each layer's mask rule does: creates, passes, transforms or consumes."
    return lines + textwrap.wrap(legend, line_length)


def print_summary(
    model: Container, line_length: int | None = None, print_fn: Callable[..., Any] | None = None
) -> None:
    """Print `summary_lines`, one `print_fn(line)` call per line (Keras's
    `print_fn`; default `print`)."""
    emit = print_fn or print
    for line in summary_lines(model, line_length or 80):
        emit(line)
