"""Containers: `Sequential`, the functional `Model` (and `Graph`, a `Model` written as
named nodes) and `Module`. They route `Masked` values; no masking logic.

A plain `torch.nn.Module` cannot slip a mask away inside a container: the per-step
modules PyTorch users reach for (activations, `Linear`, `Dropout`, `Identity`) are
wrapped with the pass-through rule, because they act on each step alone. Modules that
are per step for some arguments only are wrapped when theirs are: `Softmax`,
`LogSoftmax`, `Softmin` and `GLU` with `dim=-1` (or another axis after time),
`LayerNorm`/`RMSNorm` over the last axis alone, `Flatten(start_dim=2)`,
`Unflatten(-1, ...)`, `PReLU()` with one slope; with arguments that read several steps
(`nn.Softmax()` with `dim=None`, `nn.LayerNorm([time, features])`) they are refused,
naming the argument, why it mixes steps and the fix. Any other plain module is refused
with a message that shows how to give it a mask rule (`Lambda(module, mask=...)`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, cast

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from .functional import Node as FunctionalNode
from .functional import (
    SymbolicTensor,
    graph_config,
    graph_from_config,
    run_nodes,
    symbols_in,
    topological_nodes,
)
from .layers._keras_args import keras_weights
from .layers.base import Layer, layer_from_config, layer_spec
from .layers.core import Lambda
from .layers.recurrent import RNN
from .masked import Masked, as_masked
from .summary import count_weights, print_summary
from .training import Trainable, load

__all__ = [
    "Graph",
    "Module",
    "Sequential",
]

ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Dropout,
    nn.AlphaDropout,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    nn.Softplus,
    nn.Softsign,
    nn.Threshold,
)
"""Plain modules that act on each value alone, whatever their arguments: per step."""

FEATURE_AXIS_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softmin,
    nn.GLU,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.Flatten,
    nn.Unflatten,
    nn.PReLU,
)
"""Plain modules that are per step for some arguments only (an axis, a shape): each is
checked by `steps_mixed_by`."""

PER_STEP_MODULES = ELEMENTWISE_MODULES + FEATURE_AXIS_MODULES

_LAYOUT = "in (batch, time, features) values"


def _axis_text(dim: int) -> str:
    """What axis `dim` (not a feature axis) is in (batch, time, features) values."""
    if dim in (0, -3):
        return "the batch axis"
    if dim in (1, -2):
        return "the time axis"
    return f"axis {dim}, which counts from the end and is the time axis for some input ranks,"


def _feature_axis(dim: int | None) -> bool:
    """Whether `dim` is a feature axis (after batch and time) for every input rank."""
    return dim is not None and (dim >= 2 or dim == -1)


def steps_mixed_by(module: nn.Module) -> tuple[str, str, str] | None:
    """`(argument, why it mixes steps, fix)` when a module of `FEATURE_AXIS_MODULES`
    reads more than one step with its arguments (or reads an axis that is the time axis
    for some input ranks); None when it acts on each step alone."""
    name = type(module).__name__
    if isinstance(module, nn.Softmax | nn.LogSoftmax | nn.Softmin | nn.GLU):
        dim = module.dim
        if _feature_axis(dim):
            return None
        act = "halves" if isinstance(module, nn.GLU) else "normalises"
        if dim is None:
            why = (
                "PyTorch then picks the axis from the input's rank: axis 0 (the batch) for "
                "3-D values, axis 1 (time) for 4-D ones, so it normalises across sequences "
                "or steps, padding included"
            )
        else:
            why = f"it {act} along {_axis_text(dim)} {_LAYOUT}, across steps, padding included"
        fix = f"`nn.{name}(dim=-1)` acts on the features of each step"
        if isinstance(module, nn.Softmax | nn.LogSoftmax):
            activation = "softmax" if isinstance(module, nn.Softmax) else "log_softmax"
            fix += f", as does `layers.Activation({activation!r})`"
        return f"dim={dim}", why, fix + "."
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        shape = tuple(module.normalized_shape)
        if len(shape) <= 1:
            return None
        why = (
            f"it normalises over the last {len(shape)} axes, which {_LAYOUT} include time: "
            "every step is normalised with the others, padding included"
        )
        fix = (
            f"`nn.{name}({shape[-1]})` or `layers.LayerNormalization()` normalise each step "
            "over its features; if your values have several feature axes (batch, time, "
            f"{', '.join(map(str, shape))}), wrap it yourself: `Lambda(nn.{name}(...))`."
        )
        return f"normalized_shape={list(shape)}", why, fix
    if isinstance(module, nn.Flatten):
        if _feature_axis(module.start_dim):
            return None
        why = (
            f"it merges {_axis_text(module.start_dim)} into the features {_LAYOUT}: "
            "the output has no time axis left for the mask"
        )
        fix = (
            "`nn.Flatten(start_dim=2)` flattens the feature axes of each step; if the output "
            "should have no time axis, say so: `Lambda(nn.Flatten(), mask='drop')`."
        )
        return f"start_dim={module.start_dim}", why, fix
    if isinstance(module, nn.Unflatten):
        if _feature_axis(module.dim):
            return None
        why = f"it splits an axis that {_LAYOUT} is (or may be) the batch or time axis"
        return f"dim={module.dim}", why, "`nn.Unflatten(-1, sizes)` splits the features."
    if isinstance(module, nn.PReLU) and module.num_parameters > 1:
        why = (
            "PReLU gives each index of axis 1 its own slope, and axis 1 is time "
            f"{_LAYOUT}: a step's output depends on its position, so the same sequence "
            "padded before or after gives other real outputs"
        )
        return f"num_parameters={module.num_parameters}", why, "`nn.PReLU()` (one slope)."
    return None


_CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_TIME_STATISTICS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.InstanceNorm1d,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)
_TWO_INPUTS = (nn.CosineSimilarity, nn.PairwiseDistance, nn.Bilinear)
_WINDOWS: dict[type[nn.Module], str] = {
    nn.Conv1d: "Conv1D",
    nn.ConvTranspose1d: "Conv1DTranspose",
    nn.MaxPool1d: "MaxPooling1D",
    nn.AvgPool1d: "AveragePooling1D",
}

_ATTENTION: dict[type[nn.Module], tuple[str, str]] = {
    nn.MultiheadAttention: ("MultiHeadAttention", "key_padding_mask"),
    nn.TransformerEncoderLayer: ("TransformerEncoder", "src_key_padding_mask"),
}
"""PyTorch's attention modules: the maskwise layer to use, and PyTorch's padding mask."""


def _is_keras(item: Any) -> bool:
    """A Keras object (with the torch backend, Keras layers are torch modules too)."""
    return type(item).__module__.split(".")[0] == "keras"


def _not_a_module(item: Any, where: str) -> str:
    """The message for a layer list item that is no module: Keras's `Input` first in a
    `Sequential`, a Keras layer, anything else."""
    kind = type(item)
    if isinstance(item, SymbolicTensor):
        problem = f"Sequential got a symbolic tensor{where} (`Input(...)` as in Keras)."
        fix = (
            "drop it: a Sequential reads the input shape at its first call, where the "
            "weights are built (call the model on one batch before making an optimizer "
            "on its parameters); or build `Model(inputs, outputs)` from the Input."
        )
    elif _is_keras(item):
        problem = f"a Keras layer{where}: maskwise runs its own layers."
        fix = (
            f"use `maskwise.layers.{kind.__name__}` with the same arguments, or convert a "
            "built Keras model with `maskwise.from_keras(keras_model)`."
        )
    else:
        problem = f"`{kind.__name__}`{where} is not a layer."
        fix = "pass maskwise layers or torch.nn modules."
    return format_error(
        problem,
        expected="a maskwise layer, or a per-step torch.nn module",
        received=f"{kind.__module__}.{kind.__qualname__}",
        fix=fix,
    )


def _refusal_hint(module: nn.Module) -> str:
    """Why a known plain module that is not per step is refused, and what to use."""
    name = type(module).__name__
    if isinstance(module, nn.RNNBase):
        return f" Use maskwise.layers.{name} instead: it reads the mask."
    if isinstance(module, _CHANNEL_DROPOUT):
        return (
            f" {name} drops whole channels of axis 1, which is time {_LAYOUT}: it would "
            "zero whole steps. Use layers.SpatialDropout1D(rate) to drop feature channels "
            "of whole sequences, or nn.Dropout(p)."
        )
    if isinstance(module, _TIME_STATISTICS):
        return (
            f" {name} normalises axis 1 (time {_LAYOUT}) with statistics across steps, "
            "padding included. Use layers.BatchNormalization() (statistics over the real "
            "steps) or layers.LayerNormalization() (each step over its features)."
        )
    twin = _WINDOWS.get(type(module))
    if twin is not None:
        return (
            f" {name} slides a window along axis 2, and its padded steps would leak into "
            f"the real ones near them. Use layers.{twin} (Keras's arguments, values "
            "(batch, time, channels)): padded steps are read as zeros and the output mask "
            "follows the window."
        )
    if isinstance(module, nn.Embedding):
        return (
            f" Use layers.Embedding({module.num_embeddings}, {module.embedding_dim}, "
            "mask_zero=True): token 0 is padding (PyTorch's padding_idx=0) and makes the mask."
        )
    if type(module) in _ATTENTION:
        twin, padding = _ATTENTION[type(module)]
        return (
            f" Use layers.{twin}: it reads the mask (True = real), which is PyTorch's "
            f"`~{padding}` (True = padded)."
        )
    if isinstance(module, _TWO_INPUTS):
        return (
            f" {name} takes two inputs (and its dim may be time); compute it in the "
            "forward of a maskwise Module on `x.values` and return "
            "`Masked(result, x.mask)`."
        )
    return ""


def as_layer(module: nn.Module, position: int | None = None) -> nn.Module:
    """The module itself if it is mask-aware, a per-step `Lambda` if it is a known
    per-step PyTorch module with per-step arguments, else a `MaskwiseTypeError` that
    names the module, the argument and the fix."""
    if isinstance(module, Layer | Module):
        return module
    _require_per_step(module, "" if position is None else f" at position {position}")
    return Lambda(module, name=type(module).__name__.lower())


def _require_per_step(module: nn.Module, where: str) -> None:
    """A `MaskwiseTypeError` naming the module, the argument and the fix unless the
    plain module is per step: a known per-step module with per-step arguments, or a
    `torch.nn.Sequential` of such modules."""
    name = type(module).__name__
    if not isinstance(module, nn.Module) or _is_keras(module):
        raise MaskwiseTypeError(_not_a_module(module, where))
    if type(module) is nn.Sequential:
        for child in module:
            if isinstance(child, Layer | Module):
                raise MaskwiseTypeError(
                    format_error(
                        f"A torch.nn.Sequential{where} holds the maskwise layer "
                        f"{type(child).__name__}: it would get the values without their mask.",
                        expected="plain per-step modules inside torch.nn.Sequential",
                        received=repr(module)[:100],
                        fix="list the layers in maskwise's Sequential: "
                        "`mw.Sequential([nn.Linear(...), layers.LSTM(...), ...])`.",
                    )
                )
            _require_per_step(child, where)
        return
    if isinstance(module, PER_STEP_MODULES):
        mixing = steps_mixed_by(module)
        if mixing is None:
            return
        argument, why, fix = mixing
        raise MaskwiseTypeError(
            format_error(
                f"A plain torch.nn.Module `{name}`{where} with {argument} is not per step: "
                f"{why}. maskwise wraps a plain module only when it acts on each step alone.",
                expected="a module that reads the feature axes of each step only",
                received=repr(module)[:100],
                fix=fix + " For any other rule: `Lambda(module, mask=lambda inputs, mask: ...)`.",
            )
        )
    raise MaskwiseTypeError(
        format_error(
            f"A plain torch.nn.Module `{name}`{where} cannot take a mask: "
            "maskwise does not know what it does to the time axis." + _refusal_hint(module),
            expected="a maskwise layer, or a per-step module (Linear, Dropout, activations)",
            received=repr(module)[:100],
            fix=f"wrap it with its mask rule: `Lambda({name}(...), "
            "mask=lambda inputs, mask: ...)`, or `mask='drop'` if its output has no time axis.",
        )
    )


class Module(Trainable):
    """Base for your own models: compose maskwise layers in `forward`, freely.

    Use it for several inputs and merges. It adds the training API
    (`compile`, `fit`, `evaluate`, `predict`, `save`) to a plain `nn.Module`.

    Example:
        >>> class Tagger(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embed = layers.Embedding(100, 8, mask_zero=True)
        ...         self.out = layers.Dense(3)
        ...     def forward(self, tokens):
        ...         return self.out(self.embed(tokens))
    """

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """`nn.Module.load_state_dict`, refusing weights of layers not built yet
        (`refuse_unbuilt_weights`)."""
        refuse_unbuilt_weights(self, type(self).__name__, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """`nn.Module.requires_grad_`, kept by the layers inside for the weights they
        make at their first call (`Layer.requires_grad_`)."""
        for module in self.modules():
            if isinstance(module, Layer):
                module.trainable = requires_grad
        return super().requires_grad_(requires_grad)


def refuse_unbuilt_weights(model: nn.Module, name: str, state_dict: Mapping[str, Any]) -> None:
    """A `ConfigError` naming the fix when `state_dict` holds weights of layers not
    built yet (they make their weights at their first call): PyTorch would report them
    as "Unexpected key(s)", or, under `strict=False`, load nothing and say nothing."""
    unbuilt = [
        f"{prefix}." if prefix else ""
        for prefix, module in model.named_modules()
        if isinstance(module, Layer) and not isinstance(module, Container) and not module.built
    ]
    unknown = sorted(set(state_dict) - set(model.state_dict()))
    waiting = [key for key in unknown if any(key.startswith(p) for p in unbuilt)]
    if waiting:
        raise ConfigError(
            format_error(
                f"{type(model).__name__} {name!r} cannot load these weights yet: "
                "its layers make their weights at their first call.",
                expected="a model called once on data, or loaded with maskwise.load",
                received=f"{len(waiting)} weights of layers not built yet (first: {waiting[0]!r})",
                fix="call the model on one batch first (`model(x)`), then "
                "load_state_dict; or save with `model.save(path)` and load with "
                "`maskwise.load(path)`, which builds the layers.",
            )
        )


class Container(Trainable, Layer):
    """Base of `Sequential` and `Graph`: a layer that only routes its layers' values.

    It has no weights of its own; its layers build themselves. It records the input
    dims (after the batch axis) of its first call as `build_shape`, as every layer does.
    It has Keras's model methods: `summary`, `count_params`, `get_weights`,
    `set_weights`, `get_layer` and `layers`.
    """

    layers: nn.ModuleList

    def record_input_shape(self, trailing: Any) -> None:
        if not self.built:
            self.build_shape = trailing
            self.built = True

    def build_from_config_shape(self, trailing: Any) -> None:
        self.build_shape = trailing
        self.built = trailing is not None

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """`nn.Module.load_state_dict`, refusing weights of layers not built yet
        (`refuse_unbuilt_weights`)."""
        refuse_unbuilt_weights(self, self.name, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ Keras's model methods
    def summary(
        self,
        line_length: int | None = None,
        *,
        print_fn: Callable[..., Any] | None = None,
    ) -> None:
        """Print the table of layers: name (type), output shape, parameters, what the
        layer does to the mask (creates / passes / transforms / consumes), and for a
        `Model` the tensors each layer reads; totals at the end (`maskwise.summary`).

        Args:
            line_length: the table's width (default 80 columns).
            print_fn: called with each line instead of `print` (e.g. a logger's).
        """
        print_summary(self, line_length, print_fn)

    def count_params(self) -> int:
        """The number of weights (parameters, and float state such as moving
        statistics), as Keras counts them."""
        return sum(count_weights(self))

    def get_weights(self) -> list[np.ndarray]:
        """Every weight as a numpy array, layer by layer in `layers` order, in Keras's
        order and layout: a recurrent kernel is Keras's `(in, gates*units)` in Keras's
        gate order (stored transposed, as PyTorch's), GRU's biases one `(2, 3*units)`
        array; so a Keras model's `get_weights()` fits `set_weights` of the same layers
        (`maskwise.layers._keras_args.keras_weights`)."""
        state = self.state_dict()
        weights = keras_weights(self)
        return [w.value(state).detach().cpu().numpy().copy() for w in weights]

    @torch.no_grad()
    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from arrays in `get_weights`'s order and shapes (Keras's: a
        Keras model's `get_weights()` of the same layers)."""
        state = self.state_dict()
        slots = keras_weights(self)
        if len(weights) != len(slots):
            raise ConfigError(
                format_error(
                    f"{type(self).__name__} {self.name!r} holds {len(slots)} weights.",
                    expected=f"{len(slots)} arrays, in get_weights() order",
                    received=f"{len(weights)} arrays",
                    fix="pass what get_weights() returns from a model of the same layers "
                    "(maskwise's or Keras's), or convert a Keras model: "
                    "`maskwise.from_keras(keras_model)`.",
                )
            )
        loaded: dict[str, torch.Tensor] = {}
        for slot, given in zip(slots, weights, strict=True):
            current = slot.value(state)
            tensor = torch.as_tensor(np.asarray(given))
            if tuple(tensor.shape) != tuple(current.shape):
                raise ConfigError(
                    format_error(
                        f"{type(self).__name__} {self.name!r}: weight {slot.name!r} has "
                        "another shape.",
                        expected=f"shape {tuple(current.shape)}",
                        received=f"shape {tuple(tensor.shape)}",
                    )
                )
            loaded.update(slot.entries(tensor.to(dtype=current.dtype, device=current.device)))
        self.load_state_dict(loaded)

    def get_layer(self, name: str | None = None, index: int | None = None) -> nn.Module:
        """The layer called `name`, or at position `index` of `layers`."""
        if (name is None) == (index is None):
            raise ConfigError(
                format_error(
                    "get_layer takes a name or an index.",
                    received=f"name={name!r}, index={index!r}",
                )
            )
        layers_ = list(self.layers)
        if index is not None:
            if not -len(layers_) <= index < len(layers_):
                raise ConfigError(
                    format_error(
                        f"{type(self).__name__} {self.name!r} has {len(layers_)} layers.",
                        expected=f"an index in [0, {len(layers_)})",
                        received=str(index),
                    )
                )
            return layers_[index]
        for layer in layers_:
            if getattr(layer, "name", None) == name:
                return layer
        raise ConfigError(
            format_error(
                f"{type(self).__name__} {self.name!r} has no layer {name!r}.",
                expected=f"one of {[getattr(m, 'name', '?') for m in layers_]}",
            )
        )


class Sequential(Container):
    """A stack of layers, each fed the previous one's `Masked` output.

    Calling it on a padded tensor (no mask), an array, or a `Masked` returns a `Masked`.
    When the input shape is known, every layer's weights exist at construction (as in
    Keras): the first layer got `input_shape=` (or `input_dim=`, `batch_input_shape=`),
    or call `model.build((None, None, features))`.

    Example:
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(2)])
        >>> model(torch.zeros(2, 4, 3)).mask.any().item()
        False

    Args:
        layers: maskwise layers (or per-step PyTorch modules, wrapped automatically).
        name: model name.
    """

    def __init__(self, layers: Iterable[nn.Module] = (), *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = nn.ModuleList(as_layer(m, i) for i, m in enumerate(layers))
        self._config["layers"] = list(self.layers)
        self._build_if_shape_known()

    def add(self, layer: nn.Module) -> None:
        """Append a layer (Keras's `Sequential.add`); built at once when the model's
        input shape is known."""
        self.layers.append(as_layer(layer, len(self.layers)))
        self._config["layers"] = list(self.layers)
        self._build_if_shape_known()

    def _build_if_shape_known(self) -> None:
        known = self.build_shape
        if known is None and len(self.layers):
            known = getattr(self.layers[0], "keras_input_shape", None)
        if known is not None:
            self.build([None, *known])

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Keras's `model.build(input_shape)`: create every layer's weights now, from
        the shape of the inputs `(batch, time, features...)`, so that an optimizer made
        next gets them all and `load_state_dict` finds them. The layers are run once on
        zeros, in evaluation mode and without gradients (stateful layers forget that
        run's states); an unknown (None) batch counts
        one sequence, an unknown time axis the first of 1, 16 or 256 steps the layers
        accept (a convolution without padding needs several)."""
        dims = list(input_shape)
        failure: ShapeError | None = None
        for steps in (1, 16, 256):
            shape = [1 if dims[0] is None else dims[0]]
            shape += [steps if d is None else d for d in dims[1:]]
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    self(torch.zeros(shape))
            except ShapeError as error:
                failure = error
                continue
            finally:
                self.train(was_training)
            self.build_shape = dims[1:]
            for layer in self.modules():  # a stateful layer starts from its initial states
                if isinstance(layer, RNN) and layer.stateful:
                    layer.reset_states()
            return
        raise cast(ShapeError, failure)

    def forward(self, inputs: Any, mask: torch.Tensor | None = None) -> Masked:
        x = as_masked(inputs, mask)
        self.record_input_shape(list(x.values.shape[1:]))
        for layer in self.layers:
            x = _checked_output(layer, layer(x), "Sequential")
        return x


def _checked_output(layer: nn.Module, output: Any, container: str) -> Masked:
    """`output` if it is a `Masked`, else a `MaskwiseTypeError` naming the layer."""
    if isinstance(output, Masked):
        return output
    raise MaskwiseTypeError(
        format_error(
            f"Layer {getattr(layer, 'name', type(layer).__name__)!r} returned a "
            f"{type(output).__name__}, not a Masked; {container} passes one value with its "
            "mask from layer to layer.",
            fix="return a Masked from custom layers (return_state=True belongs in a Module, "
            f"not a {container}).",
        )
    )


Node = tuple[str, nn.Module, list[str]]


class Model(Container):
    """A functional model (Keras's `keras.Model(inputs, outputs)`): the layers called
    from `Input`s to the `outputs`, run in that order on real values.

    Build it by calling layers on symbolic tensors (`maskwise.Input`, see
    `maskwise.functional`): several inputs and outputs (lists or dicts), a layer
    called twice (shared weights), layers with several outputs (`return_state=True`),
    tensors in other arguments (`initial_state=`, attention's `value=`, `mask=`), and
    models used as layers. Each mask travels with its values from layer to layer, so
    the model holds no masking logic.

    Example:
        >>> tokens = Input(shape=(None,), dtype="int64")
        >>> x = layers.Embedding(20, 8, mask_zero=True)(tokens)
        >>> out = layers.Dense(3)(layers.LSTM(4, return_sequences=True)(x))
        >>> model = Model(tokens, out)
        >>> model(torch.tensor([[3, 4, 0]])).mask.tolist()
        [[True, True, False]]

    Args:
        inputs: an `Input`, or a list or dict of them (the model is then called with
            values in that order, or a dict keyed by the inputs' names).
        outputs: a symbolic tensor, or a list, tuple or dict of them: the model
            returns its values in that structure.
        name: model name.
    Call: `model(x)`, `model(x1, x2)`, `model([x1, x2])` or `model({"name": x})`; each
    a tensor, array or `Masked`; `mask=` with one input replaces its mask.
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None) -> None:
        super().__init__(name=name)
        self.input_structure = _symbolic("inputs", inputs)
        self.output_structure = _symbolic("outputs", outputs)
        self.inputs: list[SymbolicTensor] = symbols_in(inputs)
        self.outputs: list[SymbolicTensor] = symbols_in(outputs)
        names = list(inputs) if isinstance(inputs, dict) else [x.name for x in self.inputs]
        if len(set(names)) != len(names):
            raise ConfigError(
                format_error(
                    f"Model inputs repeat a name: {names}.",
                    fix="give each Input its own name (Input(..., name=...)).",
                )
            )
        self.input_names = names
        self.nodes: list[FunctionalNode] = topological_nodes(self.outputs, self.inputs)
        unique = {id(node.layer): node.layer for node in self.nodes}
        self.layers = nn.ModuleList(unique.values())
        self.built = True

    @property
    def output_names(self) -> list[str]:
        """Keras's `model.output_names`: the keys of a dict of outputs, else each
        output's name (its layer's); `compile` gives each output's loss and metrics by
        them, and the logs use them (`<output>_loss`)."""
        if isinstance(self.output_structure, dict):
            return list(self.output_structure)
        return [tensor.name for tensor in self.outputs]

    def forward(self, *inputs: Any, mask: Any = None) -> Any:  # type: ignore[override]
        values = self._given_inputs(inputs)
        if mask is not None:
            if len(values) != 1:
                raise ConfigError(
                    format_error(
                        f"{type(self).__name__} {self.name!r}: `mask=` is for a model with "
                        "one input.",
                        fix="pass each input as a Masked with its own mask.",
                    )
                )
            values = [as_masked(values[0], mask)]
        return run_nodes(self.nodes, self.inputs, values, self.output_structure, self.checked)

    def checked(self, layer: nn.Module, output: Any) -> Any:
        """A layer's output as the model passes it on (any tensors, for a `Model`)."""
        return output

    def _given_inputs(self, inputs: tuple[Any, ...]) -> list[Any]:
        """The values for `self.inputs`, in order, from how the model was called."""
        kind, expected = type(self).__name__, len(self.input_names)
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            missing = sorted(set(self.input_names) - set(inputs[0]))
            if missing:
                raise ConfigError(
                    format_error(
                        f"{kind} {self.name!r} is missing inputs {missing}.",
                        expected=f"a dict with keys {self.input_names}",
                        received=f"keys {sorted(inputs[0])}",
                    )
                )
            inputs = tuple(inputs[0][n] for n in self.input_names)
        if len(inputs) == 1 and isinstance(inputs[0], list | tuple) and expected > 1:
            inputs = tuple(inputs[0])
        if len(inputs) != expected:
            raise ConfigError(
                format_error(
                    f"{kind} {self.name!r} takes {expected} input(s): {self.input_names}.",
                    expected=f"{expected} values (or one list or dict of them)",
                    received=f"{len(inputs)} values",
                )
            )
        return [torch.as_tensor(x) if isinstance(x, np.ndarray) else x for x in inputs]

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The graph as JSON: the layers' configs, the calls, the inputs and outputs."""
        layers_ = [cast(Layer, x) for x in self.layers]
        graph = graph_config(self.input_structure, self.nodes, self.output_structure, layers_)
        return {
            "name": self.name,
            "layers": [layer_spec(x) for x in layers_],
            **graph,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        layers_ = [layer_from_config(spec) for spec in config["layers"]]
        inputs, outputs = graph_from_config(config, layers_)
        return Model(inputs, outputs, name=config["name"])


def _symbolic(what: str, struct: Any) -> Any:
    """`struct` if it is a symbolic tensor or a list, tuple or dict of them."""
    leaves: list[Any] = []
    if isinstance(struct, dict):
        leaves = list(struct.values())
    elif isinstance(struct, list | tuple):
        leaves = list(struct)
    else:
        leaves = [struct]
    if leaves and all(isinstance(x, SymbolicTensor) for x in leaves):
        return struct
    raise ConfigError(
        format_error(
            f"Model {what} must be symbolic tensors: maskwise.Input(...) and the results "
            "of layers called on them.",
            expected="a symbolic tensor, or a list, tuple or dict of them",
            received=repr(struct)[:100],
            fix="x = maskwise.Input(shape=(None, 5)); y = layers.Dense(2)(x); "
            "model = maskwise.Model(x, y)",
        )
    )


class Graph(Model):
    """A functional model written as named nodes (what `Model` builds from calls).

    Each node `(name, layer, input_names)` calls `layer` on the `Masked` values named
    (one value, or a list of them for a merge) and names its output `name`. Calling
    the graph routes the values in topological order; each mask travels with its
    values, so the graph holds no masking logic. The graph is checked when built:
    unknown names, cycles, and nodes or inputs that reach no output are errors.

    Example:
        >>> g = Graph(
        ...     inputs=["a", "b"],
        ...     nodes=[
        ...         ("cat", layers.Concatenate(), ["a", "b"]),
        ...         ("out", layers.Dense(2), ["cat"]),
        ...     ],
        ...     outputs="out",
        ... )
        >>> g(torch.ones(2, 3, 4), torch.ones(2, 3, 1)).values.shape
        torch.Size([2, 3, 2])

    Args:
        inputs: the names of the inputs, in the order the graph is called with.
        nodes: `(name, layer, input_names)` triples, in any order; a layer may appear
            in one node only (a `Model` calls a layer twice with shared weights).
        outputs: an output name (the graph returns a `Masked`) or a list of names (it
            returns a tuple of `Masked`, in that order).
        name: model name.
    Inputs `(batch, time, ...)` each, as tensors, arrays or `Masked`.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        nodes: Sequence[Sequence[Any]],
        outputs: str | Sequence[str],
        name: str | None = None,
    ) -> None:
        input_names = _names("inputs", inputs)
        output_names = _names("outputs", [outputs] if isinstance(outputs, str) else outputs)
        parsed = [_parse_node(i, node) for i, node in enumerate(nodes)]
        order = _validate_graph(input_names, parsed, output_names)
        tensors = {n: SymbolicTensor(None, None, None, n) for n in input_names}
        for i in order:
            node_name, layer, node_inputs = parsed[i]
            args = [tensors[n] for n in node_inputs]
            node = FunctionalNode(layer, (args[0] if len(args) == 1 else args,), {}, inputs=args)
            node.outputs = tensors[node_name] = SymbolicTensor(None, None, None, node_name, node)
        result = (
            tensors[outputs]
            if isinstance(outputs, str)
            else tuple(tensors[n] for n in output_names)
        )
        super().__init__([tensors[n] for n in input_names], result, name=name)
        self.layers = nn.ModuleList(layer for _, layer, _ in parsed)
        self.node_names = [n for n, _, _ in parsed]
        self._config["nodes"] = [list(node) for node in parsed]

    def _given_inputs(self, inputs: tuple[Any, ...]) -> list[Any]:
        return [as_masked(x) for x in super()._given_inputs(inputs)]

    def checked(self, layer: nn.Module, output: Any) -> Any:
        """A node's output: a `Masked`, else a `MaskwiseTypeError` naming the layer."""
        return _checked_output(layer, output, "Graph")

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (the named nodes), as every layer's."""
        return super(Model, self).get_config()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return super(Model, cls).from_config(config)


def _names(what: str, names: Any) -> list[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            format_error(
                f"Graph {what} must be a list of names.",
                expected='e.g. ["features", "tokens"]',
                received=repr(names)[:80],
            )
        )
    if len(set(names)) != len(names):
        raise ConfigError(
            format_error(f"Graph {what} repeat a name.", received=repr(list(names))[:120])
        )
    return list(names)


def _parse_node(position: int, node: Any) -> Node:
    if (
        not isinstance(node, list | tuple)
        or len(node) != 3
        or not isinstance(node[0], str)
        or not isinstance(node[1], nn.Module)
    ):
        raise ConfigError(
            format_error(
                f"Graph node {position} is not a (name, layer, input_names) triple.",
                expected='e.g. ("dense", layers.Dense(4), ["features"])',
                received=repr(node)[:100],
            )
        )
    name, layer, inputs = node
    inputs = [inputs] if isinstance(inputs, str) else inputs
    return name, as_layer(layer, position), _names(f"node {name!r} inputs", inputs)


def _validate_graph(inputs: list[str], nodes: list[Node], outputs: list[str]) -> list[int]:
    """The nodes' indices in topological order, or a `ConfigError` naming the problem."""
    names = [n for n, _, _ in nodes]
    duplicates = sorted({n for n in inputs + names if (inputs + names).count(n) > 1})
    if duplicates:
        raise ConfigError(
            format_error(
                f"Graph names {duplicates} are used more than once.",
                fix="give every input and every node its own name.",
            )
        )
    layer_ids = [id(layer) for _, layer, _ in nodes]
    shared = sorted({n for n, layer, _ in nodes if layer_ids.count(id(layer)) > 1})
    if shared:
        raise ConfigError(
            format_error(
                f"Graph nodes {shared} share one layer object.",
                expected="one layer per node",
                fix="build the model with maskwise.Model, where a layer called twice shares "
                "its weights.",
            )
        )
    known = set(inputs) | set(names)
    for node_name, _, node_inputs in nodes:
        unknown = [n for n in node_inputs if n not in known]
        if unknown:
            raise ConfigError(
                format_error(
                    f"Graph node {node_name!r} reads unknown names {unknown}.",
                    expected=f"names of inputs or nodes: {sorted(known)}",
                )
            )
    unknown_outputs = [n for n in outputs if n not in known]
    if unknown_outputs:
        raise ConfigError(
            format_error(
                f"Graph outputs {unknown_outputs} are not inputs or nodes.",
                expected=f"names among {sorted(known)}",
            )
        )
    index = {n: i for i, n in enumerate(names)}
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(nodes[index[n]][2] if n in index else [])
    unused = [n for n in inputs + names if n not in needed]
    if unused:
        raise ConfigError(
            format_error(
                f"Graph inputs or nodes {unused} reach no output.",
                fix="remove them, or add them to the graph's outputs.",
            )
        )
    order: list[int] = []
    ready = set(inputs)
    pending = list(range(len(nodes)))
    while pending:
        runnable = [i for i in pending if all(n in ready for n in nodes[i][2])]
        if not runnable:
            raise ConfigError(
                format_error(
                    f"Graph nodes {[names[i] for i in pending]} form or follow a cycle.",
                    fix="a node may only read inputs or nodes computed before it.",
                )
            )
        order.extend(runnable)
        ready.update(names[i] for i in runnable)
        pending = [i for i in pending if i not in runnable]
    return order


def load_model(path: str | os.PathLike, device: torch.device | str | None = None) -> nn.Module:
    """Keras's `load_model`: the model saved with `model.save(path)` (a `Sequential` or
    any `Layer` rebuilt from the file's config), compiled if it was; the same as
    `maskwise.load(path, device=device)`, which also loads into a `Module` you
    construct."""
    return load(path, device=device)
