"""Save and load models and their training state: one safetensors file, no pickle.

`model.save(path)` writes a single `.safetensors` file holding
- the weights (`model.<name>` tensors),
- when the model was compiled, its `maskwise.training.TrainingState`: the optimizer
  state (`optimizer.<param index>.<name>` tensors, and JSON for the rest), the compile
  config (optimizer class and hyper-parameters, loss, metrics), the counters, the
  data loader's seed and the fp16 grad scaler's state (`trainer` JSON: epoch, step,
  batch, loader_seed, grad_scaler), and the state of the callbacks of the `fit` that
  saved it (`callbacks` JSON, keyed as `maskwise.callbacks.keyed` does, and
  `callback.<key>.<name>` tensors such as `EarlyStopping`'s best weights); with it,
  the random number generators' states (`rng.cpu`, `rng.cuda.<device>`).

`save` writes a `TrainingState` and `read_state` reads it back; this module knows
nothing of models' training API (`maskwise.load` and `fit(..., resume_from=...)` hand
the state to the model's `Trainer`).

Nothing is unpickled when loading, so a file from someone else cannot run code. A
`Sequential` (or any `Layer` whose arguments are JSON) is rebuilt from the file alone;
a `Module` subclass is your code, so `load(path, model=MyModel(...))` loads into an
instance you construct. Loading trusts nothing in the file: its metadata is checked
(JSON, types, known layer classes, nesting depth), and the model is first built on
PyTorch's meta device, where tensors take no memory, so that its weight shapes are
compared with the file's header before anything is allocated: a small file whose config
asks for huge layers fails at once. Every problem is a `ConfigError` naming the file.

Writes are atomic: the file is written next to the target under a temporary name,
flushed to disk (`fsync`), then renamed over the target (`os.replace`). A crash while
saving leaves the previous checkpoint intact, and an interrupted save (an exception,
Ctrl-C, SIGTERM) leaves no temporary file behind.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import ConfigError, MaskwiseError, format_error
from .layers.base import Layer, current_weight_names, layer_from_config, layer_spec
from .training.state import TrainingState

FORMAT = "maskwise-checkpoint"
VERSION = 1


# ---------------------------------------------------------------------- saving
def model_config(model: nn.Module) -> dict[str, Any]:
    """`{"class", "spec" (None if not rebuildable from JSON), "build_shapes"}`."""
    spec = None
    if isinstance(model, Layer):
        try:
            spec = layer_spec(model)
        except ConfigError:
            spec = None  # e.g. a Lambda holding a Python function: weights only
    build_shapes = {
        name: module.build_shape
        for name, module in model.named_modules()
        if isinstance(module, Layer) and module.build_shape is not None
    }
    return {"class": type(model).__name__, "spec": spec, "build_shapes": build_shapes}


def _json_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state dict split into tensors and JSON (no pickle needed)."""
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                extra.setdefault(str(index), {})[key] = _json_value(value)
    return tensors, {"param_groups": _json_value(state["param_groups"]), "extra": extra}


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{device}"] = state
    return tensors


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
"""Suffixes of Keras's formats, which a maskwise checkpoint is not."""


def check_suffix(path: Path, weights_only: bool = False) -> None:
    """Refuse a Keras file name: Keras (and the doctor) would read the file as their
    format and fail. `weights_only`: the name is for `save_weights` / `load_weights`."""
    if path.suffix.lower() not in KERAS_SUFFIXES:
        return
    held = "weights and config" if weights_only else "weights, config and training state"
    load = "`model.load_weights`" if weights_only else "`maskwise.models.load_model`"
    raise ConfigError(
        format_error(
            f"maskwise does not read or write Keras's {path.suffix} format.",
            expected=f"a .safetensors name: maskwise writes one safetensors file holding the "
            f"model's {held}",
            received=str(path),
            fix=f"save to {path.with_suffix('.safetensors').name!r} and load it with {load}; "
            "`maskwise.from_keras` converts a Keras model (load Keras's file into it first).",
        )
    )


def save(model: nn.Module, path: str | os.PathLike, state: TrainingState | None = None) -> Path:
    """Save `model`'s weights and config, and `state` (with the random number
    generators' states) when given, to `path`; see the module docstring for the
    contents. Returns the path written. A Keras file name (`.keras`, `.h5`, `.hdf5`)
    is a `ConfigError` (see `check_suffix`).
    """
    path = Path(path)
    check_suffix(path)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    metadata: dict[str, Any] = {"format": FORMAT, "version": VERSION, "model": model_config(model)}
    if state is not None:
        metadata["compile"] = state.compile
        metadata["trainer"] = state.position()
        if state.optimizer is not None:
            opt_tensors, opt_json = optimizer_tensors(state.optimizer)
            tensors.update(opt_tensors)
            metadata["optimizer"] = opt_json
        tensors.update(_rng_tensors())
        if state.callbacks:
            metadata["callbacks"] = state.callbacks
        for key, named in state.callback_tensors.items():
            for name, value in named.items():
                tensors[f"callback.{key}.{name}"] = value
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    text = {key: json.dumps(value) for key, value in metadata.items()}
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=text))
    return path


def write_atomic(path: Path, write: Any) -> None:
    """Run `write(tmp_path)`, fsync, and rename over `path`; on failure `path` is untouched.

    The temporary file is removed whatever stops the write: an exception, Ctrl-C, or
    SIGTERM (see `_sigterm_deferred`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"  # named before it exists
    with _sigterm_deferred() as terminated:
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            write(str(tmp))
            if not terminated():
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            if not terminated():
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # no-op once renamed
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _sigterm_deferred() -> Iterator[Callable[[], bool]]:
    """Record SIGTERM during a write instead of ending the process in the middle of it.

    With SIGTERM's default action the process would end at once and leave the
    temporary file behind. Here a handler only records the signal; the write checks
    `terminated()`, abandons the file (the previous checkpoint stays), and on the way
    out the default action is put back and the signal raised again, so the process
    still ends as SIGTERM intends. A handler the program installed itself is left
    alone (it runs as Python code: whatever it raises passes through the cleanup), and
    so is any thread but the main one (only it may set handlers).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield lambda: False
        return
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # runs pending handlers first
        if received:
            signal.raise_signal(signal.SIGTERM)
            raise SystemExit(128 + signal.SIGTERM)  # reached only if SIGTERM is blocked


# ---------------------------------------------------------------------- loading
# Layer configs nested deeper than this are refused (a real model nests a few levels).
MAX_NESTING = 64


class Checkpoint:
    """A checkpoint file opened for reading: `metadata` (parsed, checked JSON), `shapes`
    (every tensor's shape, from the file's header) and `tensors(prefix)` (read on demand).

    Opening reads the header only: no tensor is loaded until `tensors` is called, so a
    file's config can be checked against its shapes before anything is allocated.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(
                format_error(
                    "No checkpoint file at this path.",
                    received=str(self.path),
                    fix="pass the file written by `model.save(path)` or ModelCheckpoint.",
                )
            )
        try:
            with safe_open(str(self.path), framework="pt") as f:
                raw = f.metadata() or {}
                self.shapes = {
                    key: tuple(f.get_slice(key).get_shape())
                    for key in f.keys()  # noqa: SIM118
                }
        except Exception as error:  # safetensors raises its own error types
            keras = self.path.suffix.lower() in KERAS_SUFFIXES
            raise ConfigError(
                format_error(
                    "This file is not a readable safetensors checkpoint.",
                    received=f"{self.path}: {error}",
                    fix="a Keras model file: convert it with "
                    "`maskwise.from_keras(keras.models.load_model(path))`."
                    if keras
                    else None,
                )
            ) from error
        if raw.get("format") != json.dumps(FORMAT):
            raise ConfigError(
                format_error(
                    "This safetensors file was not written by maskwise's `save`.",
                    received=str(self.path),
                    fix="load plain weights with `safetensors.torch.load_file` and "
                    "`model.load_state_dict`.",
                )
            )
        self.metadata = {key: self._parse(key, value) for key, value in raw.items()}
        self._check_metadata()
        self._tensors: dict[str, torch.Tensor] | None = None

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            with (
                reading(self, "reading the tensors"),
                safe_open(str(self.path), framework="pt") as f,
            ):
                self._tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        return {
            key[len(prefix) :]: value
            for key, value in self._tensors.items()
            if key.startswith(prefix)
        }

    # ------------------------------------------------------------------ checks
    def invalid(self, problem: str, expected: str, received: Any) -> ConfigError:
        """A `ConfigError` naming this file and what is wrong in its metadata."""
        return ConfigError(
            format_error(
                f"The checkpoint {self.path} cannot be loaded: {problem}.",
                expected=expected,
                received=_short(received),
                fix="the file is damaged or was not written by `model.save`; save it again.",
            )
        )

    def _parse(self, key: str, text: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, too deep, int limit
            raise self.invalid(
                f"its metadata entry {key!r} is not valid JSON",
                "JSON text",
                f"{type(error).__name__}: {error}",
            ) from error

    def _check_metadata(self) -> None:
        """The parts `load` relies on have the types it expects."""
        model = self.metadata.get("model")
        if "model" not in self.metadata:
            raise self.invalid("its metadata has no 'model' entry", "a JSON object", None)
        if not isinstance(model, dict):
            raise self.invalid("its 'model' entry is not a mapping", "a JSON object", model)
        if not isinstance(model.get("class"), str):
            raise self.invalid("'model.class' is not a class name", "a string", model.get("class"))
        if "spec" not in model:
            raise self.invalid("'model.spec' is missing", "a layer config, or null", None)
        spec = model["spec"]
        if spec is not None:
            self._check_spec(spec, "model.spec", 0)
        shapes = model.get("build_shapes")
        if not isinstance(shapes, dict):
            raise self.invalid("'model.build_shapes' is not a mapping", "a JSON object", shapes)
        for name, shape in shapes.items():
            if not _is_shape(shape):
                raise self.invalid(
                    f"the saved input shape of layer {name!r} is not a shape",
                    "a list of non-negative integers or nulls (or a list of such lists), or null",
                    shape,
                )
        for section in ("compile", "trainer", "optimizer"):
            value = self.metadata.get(section, {})
            if not isinstance(value, dict):
                raise self.invalid(
                    f"its {section!r} entry is not a mapping", "a JSON object", value
                )

    def _check_spec(self, value: Any, where: str, depth: int) -> None:
        """Every layer config nested in `value` names a known class and holds a mapping."""
        if depth > MAX_NESTING:
            raise self.invalid(
                f"{where} is nested more than {MAX_NESTING} levels deep",
                f"at most {MAX_NESTING} levels",
                f"{where} ...",
            )
        if isinstance(value, dict) and "__layer__" in value:
            kind = value["__layer__"]
            if not isinstance(kind, str) or kind not in Layer.registry:
                raise self.invalid(
                    f"{where} names an unknown layer class",
                    "a maskwise layer class (import the module defining a custom one first)",
                    kind,
                )
            if not isinstance(value.get("config"), dict):
                raise self.invalid(
                    f"{where} ({kind}) has no config mapping", "a JSON object", value.get("config")
                )
            if not _is_shape(value.get("build_shape")):
                raise self.invalid(
                    f"{where} ({kind}) has an invalid build shape",
                    "a list of non-negative integers or nulls (or a list of such lists), or null",
                    value.get("build_shape"),
                )
            value = value["config"]
        if isinstance(value, dict):
            for key, item in value.items():
                self._check_spec(item, f"{where}.{key}", depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._check_spec(item, f"{where}[{index}]", depth + 1)


def _is_shape(shape: Any) -> bool:
    """None, a list of non-negative ints (or None for a dim given as unknown, Keras's
    `input_shape=(None, 5)`), or a list of such lists (several inputs)."""

    def dims(value: Any) -> bool:
        return isinstance(value, list) and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in value
        )

    if shape is None or dims(shape):
        return True
    return isinstance(shape, list) and bool(shape) and all(dims(s) for s in shape)


def _short(value: Any, limit: int = 200) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit] + " ..."


@contextmanager
def reading(checkpoint: Checkpoint, what: str) -> Iterator[None]:
    """Turn any error raised while applying the file's contents into a `ConfigError`
    naming the file: its metadata came from outside, so every failure is the file's."""
    try:
        yield
    except MaskwiseError as error:  # already says what is wrong: add which file
        raise ConfigError(
            f"The checkpoint {checkpoint.path} cannot be loaded: {what} failed.\n{error}"
        ) from error
    except Exception as error:
        raise checkpoint.invalid(
            f"{what} failed",
            "a config that rebuilds the saved model",
            f"{type(error).__name__}: {error}",
        ) from error


def build_from_shapes(model: nn.Module, build_shapes: dict[str, Any]) -> None:
    """Build the still-lazy layers of `model` from the shapes recorded at save time."""
    modules = dict(model.named_modules())
    for name, shape in build_shapes.items():
        module = modules.get(name)
        if isinstance(module, Layer) and not module.built:
            module.build_from_config_shape(shape)


def _meta_copy(model: nn.Module) -> nn.Module | None:
    """A copy of `model` whose tensors live on the meta device (no memory), or None when
    the model cannot be copied (it holds something `deepcopy` refuses)."""
    memo: dict[int, Any] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = (
            nn.Parameter(meta, requires_grad=tensor.requires_grad)
            if isinstance(tensor, nn.Parameter)
            else meta
        )
    try:
        return copy.deepcopy(model, memo)
    except Exception:  # e.g. a lock or an open file: check after building, as before
        return None


def check_fits(model: nn.Module, checkpoint: Checkpoint) -> None:
    """A `ConfigError` unless `model`'s weights have the names and shapes in the file."""
    saved = {k[len("model.") :]: v for k, v in checkpoint.shapes.items() if k.startswith("model.")}
    saved = {new: saved[old] for old, new in current_weight_names(model, saved).items()}
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    mismatched = [
        f"{k}: saved {saved[k]}, model {own[k]}" for k in own if k in saved and own[k] != saved[k]
    ]
    if missing or unexpected or mismatched:
        raise ConfigError(
            format_error(
                f"The checkpoint's weights do not fit this {type(model).__name__} (saved "
                f"from a {checkpoint.metadata['model']['class']} in {checkpoint.path}).",
                expected="the same layers with the same sizes as the saved model",
                received=f"missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"shape mismatches {mismatched[:3]}",
                fix="construct the model with the same arguments as the one saved.",
            )
        )


def load_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Build `model`'s lazy layers and load the checkpoint's weights into it (strict).

    The layers are first built on a copy on the meta device and checked against the
    file's header, so a config asking for layers far larger than the file's tensors is
    refused before any memory is allocated for them.
    """
    build_shapes = checkpoint.metadata["model"]["build_shapes"]
    modules = dict(model.named_modules())
    lazy = any(
        isinstance(modules.get(name), Layer) and not modules[name].built for name in build_shapes
    )
    if lazy:  # building allocates: try it on a meta copy first
        with reading(checkpoint, "building the layers from their saved input shapes"):
            probe = _meta_copy(model)
            if probe is not None:
                with torch.device("meta"):
                    build_from_shapes(probe, build_shapes)
        if probe is not None:
            check_fits(probe, checkpoint)
    with reading(checkpoint, "building the layers from their saved input shapes"):
        build_from_shapes(model, build_shapes)
    check_fits(model, checkpoint)
    with reading(checkpoint, "loading the weights"):
        tensors = checkpoint.tensors("model.")
        names = current_weight_names(model, tensors)
        model.load_state_dict({names[name]: value for name, value in tensors.items()})


def optimizer_state(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """The optimizer state dict rebuilt from tensors and JSON, or None if not saved."""
    saved = checkpoint.metadata.get("optimizer")
    if saved is None:
        return None
    state: dict[int, dict[str, Any]] = {}
    for key, value in checkpoint.tensors("optimizer.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in saved["extra"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": saved["param_groups"]}


def read_state(checkpoint: Checkpoint) -> TrainingState | None:
    """The `TrainingState` saved in `checkpoint`; None when the model was not compiled."""
    config = checkpoint.metadata.get("compile")
    if config is None:
        return None
    with reading(checkpoint, "reading the training state"):
        position = checkpoint.metadata.get("trainer", {})
        saved = checkpoint.metadata.get("callbacks", {})
        seed = position.get("loader_seed")
        return TrainingState(
            epoch=int(position.get("epoch", 0)),
            step=int(position.get("step", 0)),
            batch=int(position.get("batch", 0)),
            loader_seed=None if seed is None else int(seed),
            compile=config,
            optimizer=optimizer_state(checkpoint),
            callbacks=saved,
            callback_tensors={key: checkpoint.tensors(f"callback.{key}.") for key in saved},
            grad_scaler=_scaler_state(checkpoint, position.get("grad_scaler")),
        )


SCALER_KEYS = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
"""The entries of `torch.amp.GradScaler.state_dict()`."""


def _scaler_state(checkpoint: Checkpoint, value: Any) -> dict[str, float] | None:
    """The grad scaler's state in the `trainer` JSON (numbers under `SCALER_KEYS`)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != set(SCALER_KEYS)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
    ):
        raise checkpoint.invalid(
            "its 'trainer.grad_scaler' entry is not a grad scaler's state",
            f"null, or a number under each of {', '.join(SCALER_KEYS)}",
            value,
        )
    return value


def restore_rng(checkpoint: Checkpoint) -> None:
    """Put back the random number generators' states saved with the checkpoint."""
    rng = checkpoint.tensors("rng.")
    if "cpu" in rng:
        torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        for key, state in rng.items():
            if key.startswith("cuda.") and int(key[5:]) < torch.cuda.device_count():
                torch.cuda.set_rng_state(state, int(key[5:]))


def rebuild_model(checkpoint: Checkpoint) -> nn.Module:
    """A new model built from the checkpoint's config (a `Sequential`, or any `Layer`
    whose arguments are JSON), its weights not loaded yet.

    The config is first built on the meta device and its weight shapes checked against
    the file's header, so a config asking for more than the file holds is a
    `ConfigError` before anything is allocated."""
    saved = checkpoint.metadata["model"]
    if saved["spec"] is None:
        raise ConfigError(
            format_error(
                f"The checkpoint {checkpoint.path} holds a {saved['class']}, which cannot "
                "be rebuilt from its saved config (a Module subclass is your code; a Lambda "
                "holds a Python function).",
                fix=f"construct it yourself and load into it: "
                f"`maskwise.load(path, model={saved['class']}(...))`.",
            )
        )
    with (
        reading(checkpoint, "rebuilding the saved model from its config"),
        torch.device("meta"),  # sizes first, checked against the file's header
    ):
        probe = layer_from_config(saved["spec"])
        build_from_shapes(probe, saved["build_shapes"])
    check_fits(probe, checkpoint)
    with reading(checkpoint, "rebuilding the saved model from its config"):
        return layer_from_config(saved["spec"])
