"""Static checks of a saved Keras model (`.keras` zip): MW006 and MW007.

Reads the archive's `config.json` only (no Keras needed, no `Lambda` code deserialised)
and follows which layers' outputs carry a mask, with Keras 3's rules: `Masking` and
`Embedding(mask_zero=True)` create one, a `Lambda` without `mask=` drops it (silently
for the loss), so do the layers that do not support masking (convolutions,
pooling, `Reshape`, `Flatten`, ...: Keras only warns once, at the first call),
recurrent layers without `return_sequences` and global average pooling consume it,
other layers pass it on. Models nested as layers (a `Sequential` inside a `Sequential`
or a functional model) are followed inside.

The archive comes from anywhere: only `config.json` is read, and only when it declares
at most `MAX_CONFIG_BYTES` and a compression ratio of at most `MAX_RATIO` (else it is a
zip bomb, refused before it is decompressed).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError, format_error
from .files import require_regular_file
from .findings import Finding, sort_findings

MAX_CONFIG_BYTES = 16 << 20
MAX_RATIO = 200  # uncompressed / compressed size; text configs compress ~10-50x
RATIO_FLOOR = 1 << 20  # members smaller than this cannot hurt, whatever their ratio

RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D"}
CONSUMERS = {
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
}
# Layers whose `supports_masking` is False in Keras 3 and that take a (batch, time, ...)
# input: their output carries no mask, and the padded steps' values flow on.
MASK_DROPPERS = {
    "Conv1D", "SeparableConv1D", "DepthwiseConv1D", "Conv1DTranspose", "MaxPooling1D",
    "AveragePooling1D", "UpSampling1D", "ZeroPadding1D", "Cropping1D", "Reshape",
    "Flatten", "Permute",
}  # fmt: skip
RESHAPERS = {"Reshape", "Flatten", "Permute"}
MODELS = {"Sequential", "Functional", "Model"}
NOT_A_MODEL = (AttributeError, TypeError, KeyError, IndexError, RecursionError)


def check_keras_file(path: str | Path) -> list[Finding]:
    """Findings for the model saved in a `.keras` file.

    Example:
        >>> import os, tempfile
        >>> import keras
        >>> model = keras.Sequential([keras.Input((None,)),
        ...                           keras.layers.Embedding(10, 4, mask_zero=True),
        ...                           keras.layers.Masking(), keras.layers.Dense(2)])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     model.save(os.path.join(folder, "tagger.keras"))
        ...     findings = check_keras_file(os.path.join(folder, "tagger.keras"))
        >>> [(f.code, f.severity) for f in findings]  # Masking after an Embedding
        [('MW007', 'error')]
    """
    path = Path(path)
    require_regular_file(path)
    config = read_config(path)
    findings: list[Finding] = []
    try:
        _walk(config, False, findings, scope="")
    except NOT_A_MODEL as error:
        raise _unreadable(path, "its config.json is not a Keras model config", error) from error
    return sort_findings(findings)


def read_config(path: Path) -> Any:
    """The parsed `config.json` of a `.keras` archive, read within the size caps."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MAX_CONFIG_BYTES or (
                info.file_size > RATIO_FLOOR and ratio > MAX_RATIO
            ):
                raise _too_large(path, f"{info.file_size} bytes ({ratio:.0f}x compressed)")
            # read(n) decompresses about n bytes at most (read() would decompress the
            # whole stream, past the declared size); a member that lies about its
            # size then fails the CRC check (BadZipFile)
            with archive.open(info) as member:
                data = member.read(info.file_size)
        return json.loads(data)
    except ConfigError:
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError, ValueError,
            RecursionError, NotImplementedError) as error:  # fmt: skip
        raise _unreadable(path, "it is not a readable .keras archive", error) from error


def _unreadable(path: Path, problem: str, error: BaseException) -> ConfigError:
    return ConfigError(
        format_error(
            f"{path.name}: {problem}.",
            expected="a zip with config.json, as written by `model.save('m.keras')`",
            received=f"{type(error).__name__}: {' '.join(str(error).split())[:200]}",
        )
    )


def _too_large(path: Path, received: str) -> ConfigError:
    return ConfigError(
        format_error(
            f"{path.name}: its config.json is too large to be a model config "
            "(a zip bomb?); it was not read.",
            expected=f"at most {MAX_CONFIG_BYTES} bytes, compressed at most {MAX_RATIO}x",
            received=received,
        )
    )


def _walk(model: dict[str, Any], inputs_masked: bool, findings: list[Finding], scope: str) -> bool:
    """Follow the mask through the layers of a Sequential or Functional config, whose
    inputs carry a mask when `inputs_masked`; return whether its output carries one."""
    config = model.get("config", {})
    sequential = model.get("class_name") == "Sequential"
    masked: dict[str, bool] = {}
    kinds: dict[str, str] = {}
    previous: str | None = None
    for layer in config.get("layers", []):
        if str(layer.get("module", "")).startswith("keras.src.ops"):
            continue  # mask computations written out as ops, not layers
        name = layer.get("name") or layer["config"].get("name")
        kind = layer.get("class_name", "")
        if sequential:
            inbound = [previous] if previous is not None else []
        else:
            inbound = _inbound(layer.get("inbound_nodes", []))
        # a layer fed by nothing is a model input: it gets the model's input mask
        in_masked = any(masked.get(n, False) for n in inbound) if inbound else inputs_masked
        if kind in MODELS and isinstance(layer.get("config", {}).get("layers"), list):
            masked[name] = _walk(layer, in_masked, findings, f"{scope} inside {name!r}")
        else:
            after = [kinds[n] for n in inbound if n in kinds]
            masked[name] = _output_masked(layer, in_masked, after, findings, scope)
        kinds[name] = kind
        previous = name
    if sequential:
        return masked[previous] if previous is not None else inputs_masked
    return any(masked.get(n, False) for n in _layer_names(config.get("output_layers", [])))


def _layer_names(value: Any) -> list[str]:
    """The layer names in a functional config's `output_layers` (`[name, 0, 0]` entries)."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value[0]]
    if isinstance(value, list):
        return [n for item in value for n in _layer_names(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _layer_names(item)]
    return []


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
    layer: dict[str, Any],
    in_masked: bool,
    after: list[str],
    findings: list[Finding],
    scope: str,
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
                    f"Keras model: Masking layer {name!r}{scope} is applied to {source}. "
                    "Embedded or masked steps are no longer equal to mask_value, so this "
                    "Masking redefines the mask and the padded steps count as real.",
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
                    f"Keras model: Lambda layer {name!r}{scope} receives a mask but has no "
                    "`mask=` argument, so Keras drops the mask there: the layers after it and "
                    "the loss count the padded steps.",
                    "pass the mask rule: `Lambda(fn, mask=lambda inputs, mask: mask)` "
                    "(or `mask[:, N:]` when fn crops `x[:, N:]`).",
                )
            )
        return False
    if kind in MASK_DROPPERS:
        if in_masked:
            findings.append(_dropped_by(kind, name, scope))
        return False
    if kind in RECURRENT or kind == "Bidirectional":
        inner = config.get("layer", {}).get("config", {}) if kind == "Bidirectional" else config
        return in_masked and bool(inner.get("return_sequences"))
    if kind in CONSUMERS:
        return False
    return in_masked


def _dropped_by(kind: str, name: str, scope: str) -> Finding:
    """MW006 for a layer that does not support masking and receives a mask."""
    if kind in RESHAPERS:
        effect = "its output mixes the padded steps' values into the real ones"
        fix = (
            "reduce the time axis with a mask-aware layer instead: an RNN without "
            "return_sequences, or GlobalAveragePooling1D."
        )
    else:
        effect = "the padded steps are read as real ones from here on"
        fix = (
            "keep the masked part of the model to mask-aware layers (Dense, RNNs, "
            "GlobalAveragePooling1D), or restore the mask after it with "
            "`Lambda(lambda x: x, mask=...)` computing the mask for its output."
        )
    return Finding(
        "MW006",
        "error",
        f"Keras model: {kind} layer {name!r}{scope} receives a mask but does not support "
        f"masking, so Keras drops the mask there (with only a warning at the first call): "
        f"{effect}, and the layers after it and the loss count the padded steps.",
        fix,
    )
