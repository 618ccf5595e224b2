"""Save and load models and their training state: one safetensors file, no pickle.

`model.save(path)` writes a single `.safetensors` file holding
- the weights (`model.<name>` tensors),
- when the model was compiled, its `maskwise.training.TrainingState`: the optimizer
  state (`optimizer.<param index>.<name>` tensors, and JSON for the rest), the compile
  config (optimizer class and hyper-parameters, loss, metrics), the counters and the
  data loader's seed (`trainer` JSON: epoch, step, batch, loader_seed), and the state of
  the callbacks of the `fit` that saved it (`callbacks` JSON, keyed as
  `maskwise.callbacks.keyed` does, and `callback.<key>.<name>` tensors such as
  `EarlyStopping`'s best weights); with it, the random number generators' states
  (`rng.cpu`, `rng.cuda.<device>`).

`save` writes a `TrainingState` and `read_state` reads it back; this module knows
nothing of models' training API (`maskwise.load` and `fit(..., resume_from=...)` hand
the state to the model's `Trainer`).

Nothing is unpickled when loading, so a file from someone else cannot run code. A
`Sequential` (or any `Layer` whose arguments are JSON) is rebuilt from the file alone;
a `Module` subclass is your code, so `load(path, model=MyModel(...))` loads into an
instance you construct.

Writes are atomic: the file is written next to the target under a temporary name,
flushed to disk (`fsync`), then renamed over the target (`os.replace`). A crash while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import ConfigError, format_error
from .layers.base import Layer, layer_from_config, layer_spec
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


def save(model: nn.Module, path: str | os.PathLike, state: TrainingState | None = None) -> Path:
    """Save `model`'s weights and config, and `state` (with the random number
    generators' states) when given, to `path`; see the module docstring for the
    contents. Returns the path written.
    """
    path = Path(path)
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
    """Run `write(tmp_path)`, fsync, and rename over `path`; on failure `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# ---------------------------------------------------------------------- loading
class Checkpoint:
    """A checkpoint file opened for reading: `metadata` (parsed JSON) and `tensors(prefix)`."""

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
                self._tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        except Exception as error:  # safetensors raises its own error types
            raise ConfigError(
                format_error(
                    "This file is not a readable safetensors checkpoint.",
                    received=f"{self.path}: {error}",
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
        self.metadata = {key: json.loads(value) for key, value in raw.items()}

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            key[len(prefix) :]: value
            for key, value in self._tensors.items()
            if key.startswith(prefix)
        }


def build_from_shapes(model: nn.Module, build_shapes: dict[str, Any]) -> None:
    """Build the still-lazy layers of `model` from the shapes recorded at save time."""
    modules = dict(model.named_modules())
    for name, shape in build_shapes.items():
        module = modules.get(name)
        if isinstance(module, Layer) and not module.built:
            module.build_from_config_shape(shape)


def load_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Build `model`'s lazy layers and load the checkpoint's weights into it (strict)."""
    saved_class = checkpoint.metadata["model"]["class"]
    build_from_shapes(model, checkpoint.metadata["model"]["build_shapes"])
    weights = checkpoint.tensors("model.")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    mismatched = [
        f"{k}: saved {tuple(weights[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in weights and own[k].shape != weights[k].shape
    ]
    if missing or unexpected or mismatched:
        raise ConfigError(
            format_error(
                f"The checkpoint's weights do not fit this {type(model).__name__} "
                f"(saved from a {saved_class}).",
                expected="the same layers with the same sizes as the saved model",
                received=f"missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"shape mismatches {mismatched[:3]}",
                fix="construct the model with the same arguments as the one saved.",
            )
        )
    model.load_state_dict(weights)


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
    )


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
    whose arguments are JSON), its weights not loaded yet."""
    saved = checkpoint.metadata["model"]
    if saved["spec"] is None:
        raise ConfigError(
            format_error(
                f"The checkpoint holds a {saved['class']}, which cannot be rebuilt "
                "from its saved config (a Module subclass is your code; a Lambda "
                "holds a Python function).",
                fix=f"construct it yourself and load into it: "
                f"`maskwise.load(path, model={saved['class']}(...))`.",
            )
        )
    return layer_from_config(saved["spec"])
