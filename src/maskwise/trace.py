"""`trace(model, *inputs)`: every layer's shapes and masks, in and out, for one batch.

This is the check "print every layer's input and output mask" as a tool: run
the model once and read, layer by layer, which fraction of the steps is real, and
where a mask stops. A mask that stops on purpose is *consumed*: the layer's mask rule
uses it up (`Layer.consumes_mask`: an RNN without `return_sequences`, global pooling,
`Lambda(mask="drop")`), and the output has no time axis left to mask. Any other layer
whose input had a mask and whose output has none has *dropped* it: that is the
mistake to look for.

Example:
    >>> model = Sequential([layers.Masking(0.0, name="masking"), layers.Dense(2, name="out")])
    >>> print(trace(model, Masked.pad([torch.ones(3, 4), torch.ones(1, 4)]).values))
    layer    type     input shape  input mask  output shape  output mask  note
    masking  Masking  (2, 3, 4)    none        (2, 3, 4)     66.7%
    out      Dense    (2, 3, 4)    66.7%       (2, 3, 2)     66.7%
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .layers.base import Layer
from .models import Container

__all__ = [
    "Trace",
    "TraceRow",
    "trace",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TraceRow:
    """One layer call.

    Example:
        >>> model = Sequential([layers.Masking(0.0, name="masking"), layers.LSTM(2, name="lstm")])
        >>> row = trace(model, Masked.pad([torch.ones(3, 4), torch.ones(1, 4)]).values).rows[0]
        >>> row.name, row.input_coverage, round(row.output_coverage, 3)  # 4 of 6 steps real
        ('masking', (None,), 0.667)
        >>> row.output_mask
        tensor([[ True,  True,  True],
                [ True, False, False]])

    Attributes:
        name: the layer's name.
        type: the layer's class name.
        input_shapes: the shape of each input's values, as the layer read them
            (`Layer.read_inputs`): one entry, one per merged input, or the query, value
            and key of an attention layer.
        input_coverage: per input, the fraction of real steps, or None without a mask.
        output_shape: the shape of the output values (of the first `Masked` output; the
            final states or attention scores a layer may return after it are not shown).
        output_coverage: the fraction of real output steps, or None without a mask.
        consumed: an input had a mask and the layer used it up on purpose (its mask
            rule consumes it: `Layer.consumes_mask`); the output has none.
        dropped: an input had a mask and the output has none, although the layer does
            not consume it: the mask was lost.
        input_masks: the input masks `(batch, time)` (None without a mask), on the CPU.
        output_mask: the output mask `(batch, time)` or None, on the CPU.
    """

    name: str
    type: str
    input_shapes: tuple[Shape, ...]
    input_coverage: tuple[float | None, ...]
    output_shape: Shape
    output_coverage: float | None
    consumed: bool
    dropped: bool
    input_masks: tuple[torch.Tensor | None, ...] = field(repr=False)
    output_mask: torch.Tensor | None = field(repr=False)


@dataclass(frozen=True)
class Trace:
    """The rows of one traced call (in call order) and the model's output.

    `str(trace)` is an aligned table; `trace.plot(path)` draws every layer's output mask.

    Example:
        >>> model = Sequential([layers.Masking(0.0, name="masking"), layers.LSTM(2, name="lstm")])
        >>> result = trace(model, Masked.pad([torch.ones(3, 4), torch.ones(1, 4)]).values)
        >>> [(row.name, row.consumed, row.dropped) for row in result.rows]
        [('masking', False, False), ('lstm', True, False)]
        >>> result.output.values.shape  # the model's own output, one vector per sequence
        torch.Size([2, 2])
    """

    rows: list[TraceRow]
    output: Any = field(repr=False)

    def __str__(self) -> str:
        header = (
            "layer",
            "type",
            "input shape",
            "input mask",
            "output shape",
            "output mask",
            "note",
        )
        table = [header] + [
            (
                r.name,
                r.type,
                ", ".join(_shape_text(s) for s in r.input_shapes),
                ", ".join(_coverage_text(c) for c in r.input_coverage),
                _shape_text(r.output_shape),
                _coverage_text(r.output_coverage),
                _state(r),
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in table
        )

    def plot(self, path: str | Path) -> Path:
        """Draw each layer's output mask as a heat map (rows = sequences, columns = steps;
        light = real, dark = padded) into an image file; returns its path.

        A layer without an output mask gets an empty panel: "mask consumed" in blue when
        its mask rule used the mask up on purpose, "mask DROPPED" in red when the mask was
        lost, "no mask" in gray when its input had none. A legend explains the colours.
        Needs matplotlib.
        """
        import matplotlib.pyplot as plt

        figure = self.figure()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path

    def figure(self) -> Any:
        """The matplotlib `Figure` that `plot` saves (one panel per row, and a legend)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator

        colors = ListedColormap([_PADDED, _REAL])
        count = max(len(self.rows), 1)
        fig, axes = plt.subplots(count, 1, figsize=(8, 1.2 + 1.1 * count), squeeze=False)
        for ax, row in zip(axes[:, 0], self.rows, strict=False):
            title = f"{row.name} ({row.type})"
            if row.output_mask is not None:
                ax.imshow(
                    row.output_mask.float().numpy(),
                    aspect="auto",
                    cmap=colors,
                    vmin=0.0,
                    vmax=1.0,
                    interpolation="nearest",
                )
                text = f"{_coverage_text(row.output_coverage)} real (green), padded dark"
                ax.set_title(f"{title}: {text}", fontsize=9, loc="left")
                ax.set_ylabel("sequence", fontsize=8)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            else:
                text, color = _PANELS[_state(row) or "none"]
                ax.text(
                    0.5,
                    0.5,
                    text,
                    ha="center",
                    va="center",
                    color=color,
                    fontsize=11,
                    transform=ax.transAxes,
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{title}: {text}", fontsize=9, loc="left", color=color)
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel("step", fontsize=8)
        legend = [
            Patch(color=_REAL, label="real step"),
            Patch(color=_PADDED, label="padded step"),
            Patch(color=_PANELS["consumed"][1], label="mask consumed on purpose"),
            Patch(color=_PANELS["dropped"][1], label="mask DROPPED (lost)"),
        ]
        fig.legend(handles=legend, loc="upper right", ncol=2, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / (1.2 + 1.1 * count)))
        return fig


def trace(model: nn.Module, *inputs: Any) -> Trace:
    """Run `model(*inputs)` once (eval mode, no gradients) and record every maskwise layer
    call: its shapes and mask coverage in and out.

    Containers (`Sequential`, `Model`, your `Module`s) are looked into, not recorded;
    layers inside a layer (the `Dense` in a `TimeDistributed`) are part of their
    wrapper's row. The model's training mode is restored afterwards.

    Example:
        >>> model = Sequential([layers.Masking(0.0, name="masking"), layers.LSTM(2, name="lstm")])
        >>> x = Masked.pad([torch.ones(3, 4), torch.ones(1, 4)]).values  # zero-padded
        >>> print(trace(model, x))  # the LSTM uses the mask up: its output has no time axis
        layer    type     input shape  input mask  output shape  output mask  note
        masking  Masking  (2, 3, 4)    none        (2, 3, 4)     66.7%
        lstm     LSTM     (2, 3, 4)    66.7%       (2, 2)        none         consumed

    Args:
        model: a maskwise model or layer.
        inputs: what the model is called with (tensors, arrays or `Masked`).
    """
    rows: list[TraceRow] = []
    handles = [
        layer.register_forward_hook(_recorder(rows), with_kwargs=True)
        for layer in _traced_layers(model)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return Trace(rows, output)


def _traced_layers(module: nn.Module) -> list[Layer]:
    """The outermost non-container maskwise layers under `module` (itself included)."""
    if isinstance(module, Layer) and not isinstance(module, Container):
        return [module]
    return [layer for child in module.children() for layer in _traced_layers(child)]


def _recorder(rows: list[TraceRow]) -> Any:
    def hook(layer: Layer, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        inputs, _ = layer.read_inputs(*args, **kwargs)  # as the layer read them
        ins = inputs if isinstance(inputs, list) else [inputs]
        out = output[0] if isinstance(output, tuple) else output  # extras come after it
        input_masks = tuple(_cpu(x.mask) for x in ins)
        lost = out.mask is None and any(m is not None for m in input_masks)
        rows.append(
            TraceRow(
                name=layer.name,
                type=type(layer).__name__,
                input_shapes=tuple(tuple(x.values.shape) for x in ins),
                input_coverage=tuple(_coverage(m) for m in input_masks),
                output_shape=tuple(out.values.shape),
                output_coverage=_coverage(out.mask),
                consumed=lost and layer.consumes_mask,
                dropped=lost and not layer.consumes_mask,
                input_masks=input_masks,
                output_mask=_cpu(out.mask),
            )
        )

    return hook


_REAL, _PADDED = "#8fd694", "#3b3b3b"
_PANELS = {
    "consumed": ("mask consumed", "#1f5fa8"),
    "dropped": ("mask DROPPED", "red"),
    "none": ("no mask", "gray"),
}
"""The text and colour of a panel without an output mask, by the row's state."""


def _state(row: TraceRow) -> str:
    """The note of a row: "consumed", "dropped", or "" (the mask goes on, or none came)."""
    if row.consumed:
        return "consumed"
    return "dropped" if row.dropped else ""


def _cpu(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else mask.detach().cpu()


def _coverage(mask: torch.Tensor | None) -> float | None:
    if mask is None:
        return None
    return float(mask.float().mean()) if mask.numel() else 1.0


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _coverage_text(coverage: float | None) -> str:
    return "none" if coverage is None else f"{coverage:.1%}"
