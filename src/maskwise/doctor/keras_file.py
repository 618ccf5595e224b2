"""Static checks of a saved Keras model (`.keras` zip): MW006 and MW007.

Reads the archive's `config.json` only (no Keras needed, no `Lambda` code deserialised)
and follows which layers' outputs carry a mask, with Keras 3's rules: `Masking` and
`Embedding(mask_zero=True)` create one, a `Lambda` without `mask=` drops it (silently
for the loss, seed 001), recurrent layers without `return_sequences` and global
poolings consume it, other layers pass it on.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError, format_error
from .findings import Finding, sort_findings

RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D"}
CONSUMERS = {
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Flatten",
}


def check_keras_file(path: str | Path) -> list[Finding]:
    """Findings for the model saved in a `.keras` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ConfigError(
            format_error(
                f"{path} is not a readable .keras archive.",
                expected="a zip with config.json, as written by `model.save('m.keras')`",
                received=f"{type(error).__name__}: {error}",
            )
        ) from error
    masked: dict[str, bool] = {}
    kinds: dict[str, str] = {}
    findings: list[Finding] = []
    _walk(config, masked, kinds, findings, previous=None)
    return sort_findings(findings)


def _walk(
    model: dict[str, Any],
    masked: dict[str, bool],
    kinds: dict[str, str],
    findings: list[Finding],
    previous: str | None,
) -> str | None:
    """Visit the layers of a Sequential or Functional config in order; return the last."""
    sequential = model.get("class_name") == "Sequential"
    for layer in model.get("config", {}).get("layers", []):
        if str(layer.get("module", "")).startswith("keras.src.ops"):
            continue  # mask computations written out as ops, not layers
        name = layer.get("name") or layer["config"].get("name")
        if sequential:
            inbound = [previous] if previous is not None else []
        else:
            inbound = _inbound(layer.get("inbound_nodes", []))
        in_masked = any(masked.get(n, False) for n in inbound)
        after = [kinds[n] for n in inbound if n in kinds]
        masked[name] = _output_masked(layer, in_masked, after, findings)
        kinds[name] = layer.get("class_name", "")
        previous = name
    return previous


def _inbound(nodes: Any) -> list[str]:
    """Names of the layers feeding a functional node (positional args only)."""
    names: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            history = (
                value.get("config", {}).get("keras_history")
                if value.get("class_name") == "__keras_tensor__"
                else None
            )
            if history:
                names.append(history[0])
                return
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for node in nodes:
        visit(node.get("args", []) if isinstance(node, dict) else node)
    return names


def _output_masked(
    layer: dict[str, Any], in_masked: bool, after: list[str], findings: list[Finding]
) -> bool:
    kind = layer.get("class_name", "")
    config = layer.get("config", {})
    name = config.get("name", kind)
    if kind == "Masking":
        if in_masked or "Embedding" in after:
            source = "the output of an Embedding" if "Embedding" in after else "a masked input"
            findings.append(
                Finding(
                    "MW007",
                    "error",
                    f"Keras model: Masking layer {name!r} is applied to {source}. Embedded "
                    "or masked steps are no longer equal to mask_value, so this Masking "
                    "redefines the mask and the padded steps count as real (seed 003).",
                    "remove this Masking; use `Embedding(..., mask_zero=True)` to mask "
                    "padded tokens.",
                )
            )
        return True
    if kind == "Embedding":
        return bool(config.get("mask_zero"))
    if kind == "Lambda":
        if config.get("mask") is not None:
            return in_masked
        if in_masked:
            findings.append(
                Finding(
                    "MW006",
                    "error",
                    f"Keras model: Lambda layer {name!r} receives a mask but has no `mask=` "
                    "argument, so Keras drops the mask there: the layers after it and the "
                    "loss count the padded steps (seed 001).",
                    "pass the mask rule: `Lambda(fn, mask=lambda inputs, mask: mask)` "
                    "(or `mask[:, N:]` when fn crops `x[:, N:]`).",
                )
            )
        return False
    if kind in RECURRENT or kind == "Bidirectional":
        inner = config.get("layer", {}).get("config", {}) if kind == "Bidirectional" else config
        return in_masked and bool(inner.get("return_sequences"))
    if kind in CONSUMERS:
        return False
    return in_masked
