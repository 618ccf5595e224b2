"""`Layer`: the base of every mask-aware layer, and the contract every layer keeps.

A layer does two things, kept side by side as two small methods:
- `call(values, mask, **options)` computes the output values;
- `compute_mask(values, mask)` states the mask rule: pass it on (the default),
  consume it, transform it, or create one. It depends on the inputs only, never on
  the call options.

`forward` ties them together, and no layer but a container overrides it:
1. `read_inputs` sorts the call's arguments into the inputs, each a `Masked` (a
   tensor or an array means "no mask"), and the call options (`initial_state=`,
   `return_attention_scores=`, ...): its signature is the layer's call signature,
   `layer(x, mask=None, **options)` by default. The options a layer takes are the
   keyword arguments of its `call` (`call_options`, read from the signature as Keras
   reads `call`'s); any other is refused.
2. `check_inputs` refuses inputs the layer cannot take, before building, so that a
   wrong first call builds nothing.
3. The layer builds its weights at the first call from the input shape (like Keras,
   unless the sizes were given).
4. Every padded step is set to 0 (`fill_padding`, a select): a layer's value rule
   never sees what the padding held (NaN, inf, anything), and no function's
   derivative at a padded step (`sqrt` or `log` at 0 give inf, times a zero gradient
   NaN) can reach a weight, since the select drops it in the backward pass. `Masking`,
   which creates the mask from what the padding holds, opts out with
   `fills_padding = False`, and so do the recurrent layers, which never read a
   padded step.
5. `call` and `compute_mask` run. `call` returns the output values (a tensor), or a
   tuple `(values, *extras)`: `values` a tensor, or a tuple of tensors for several
   outputs under one mask (`Bidirectional` without `merge_mode`), and extras without
   a mask (final states, attention scores). The layer returns `Masked(values, mask)`,
   or the `Masked` outputs followed by the extras: `(Masked, h, c)`, `(Masked,
   Masked)`, `(Masked, scores)`.

A layer that `takes_list` (the merges, attention) is called with a list of inputs:
`call` and `compute_mask` get one list of values and one list of masks (an input
given twice, as in self-attention, is filled once).

Layers doing float math set `float_inputs = True`: integer or bool features, and
floats of another precision (float32 data into a float64 model), are cast to the
weights' dtype first, as Keras casts inputs to a layer's dtype; the model's precision
decides, never the data's.

Called on symbolic tensors (`maskwise.Input`), a layer records the call in a
functional model instead (`maskwise/functional.py`).

Every layer also records its constructor arguments, so `get_config()` /
`Layer.from_config()` rebuild it from JSON (used by `save`/`load`) without pickle.
Every layer takes Keras's common arguments too (`input_shape`, `dtype`, `trainable`,
the initializer, regularizer and constraint of each weight, ...: `_keras_args.py`).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NoReturn, Self

import torch
from torch import nn

from .._keras_objects import JSON_KEY, KerasObject, from_json, to_json
from ..errors import ConfigError, MaskError, MaskwiseTypeError, format_error
from ..functional import has_symbols, record_call
from ..masked import Masked, as_masked, fill_padding
from ._keras_args import (
    apply_keras_args,
    collect_losses,
    make_weight,
    refuse_extra_positional,
    refuse_unknown,
    rule_initializer,
    split_keras_args,
)

CallOutput = torch.Tensor | tuple[Any, ...]
"""What `call` returns: the output values, or `(values, *extras)`."""

_name_counters: defaultdict[str, itertools.count] = defaultdict(lambda: itertools.count())


def _snake_case(name: str) -> str:
    """Keras's rule: `GlobalAveragePooling1D` -> `global_average_pooling1d`."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_layer_name(class_name: str) -> str:
    """Keras-style default names: `dense`, `dense_1`, `dense_2`, ..."""
    base = _snake_case(class_name)
    n = next(_name_counters[base])
    return base if n == 0 else f"{base}_{n}"


class Layer(nn.Module):
    """Base class: a module that maps a `Masked` to a `Masked`.

    Subclasses implement `build(input_shape)` (create weights from the input's shape,
    if they have any), `call(values, mask, **options)` and, when the mask changes,
    `compute_mask(values, mask)`. The default mask rule passes the mask on unchanged.
    A layer whose call reads its inputs another way (attention's query, value and key)
    overrides `read_inputs`; none overrides `forward` (see the module's docstring).

    Example:
        A layer with a call option and an extra output:

        >>> class Scale(Layer):
        ...     def call(self, values, mask, *, factor=2.0, return_total=False):
        ...         out = values * factor
        ...         return (out, out.sum()) if return_total else out
        >>> x = Masked.pad([torch.ones(2, 1), torch.ones(1, 1)])
        >>> y, total = Scale()(x, factor=3.0, return_total=True)
        >>> y.values.tolist(), y.lengths.tolist(), total.item()
        ([[[3.0], [3.0]], [[3.0], [0.0]]], [2, 1], 9.0)

    Args:
        name: a name shown by `trace`, in errors and in saved configs; defaults to the
            snake-cased class name with a counter (`dense`, `dense_1`, ...).
        **keras_args: Keras's arguments of every layer (`input_shape`, `input_dim`,
            `batch_input_shape`, `input_length`, `dtype`, `trainable`,
            `activity_regularizer`) and, for each weight of `weight_names`, its
            `<weight>_initializer`, `<weight>_regularizer` and `<weight>_constraint`
            (see `maskwise.layers._keras_args`); any other is a `ConfigError`.
    """

    registry: ClassVar[dict[str, type[Layer]]] = {}
    fills_padding: ClassVar[bool] = True
    """`call` sees the padded steps as zeros, detached from everything before."""
    float_inputs: ClassVar[bool] = False
    """`call` gets floats of the weights' dtype (integer or bool features are cast)."""
    takes_list: ClassVar[bool] = False
    """The layer is called with a list of inputs (the merges, attention): `call` and
    `compute_mask` get a list of values and a list of masks, one per input."""
    call_options: ClassVar[tuple[str, ...]] = ()
    """The call options the layer takes: the keyword arguments of its `call` after
    `values` and `mask` (`initial_state`, `return_attention_scores`, ...)."""
    renamed_weights: ClassVar[dict[str, str]] = {}
    """Old weight names -> current ones (relative to the layer), for a layer whose
    weights moved: state dicts and checkpoints saved under the old names still load."""
    weight_names: ClassVar[tuple[str, ...]] = ()
    """The weights whose `<name>_initializer`, `<name>_regularizer` and
    `<name>_constraint` the constructor takes (`add_weight(..., rule=name)`)."""
    activity_regularizer: Any = None
    """The penalty on the outputs given as `activity_regularizer=` (see `losses`)."""
    keras_input_shape: list[int | None] | None = None
    """The input dims after the batch axis given as `input_shape=` (or `input_dim=`,
    `batch_input_shape=`): a `Sequential` starting with this layer builds from them."""
    built: bool
    name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Layer.registry[cls.__name__] = cls
        cls.call_options = _options_of(cls.call)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__init__)  # type: ignore[method-assign]
        if "build" in cls.__dict__:
            cls.build = _marking_built(cls.build)  # type: ignore[method-assign]

    def __init__(self, *, name: str | None = None, **keras_args: Any) -> None:
        if keras_args:  # what a subclass's `**kwargs` passed on, the Keras ones taken out
            signature = inspect.signature(type(self).__init__)
            refuse_unknown(type(self), signature.parameters, keras_args)
        super().__init__()
        self.name = name or unique_layer_name(type(self).__name__)
        self.built = False
        self.build_shape: Any = None
        self.requested_dtype: torch.dtype | None = None
        if not hasattr(self, "_config"):
            self._config: dict[str, Any] = {}
        if self.renamed_weights:
            self._register_load_state_dict_pre_hook(_rename_weights, with_module=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`forward`, or, on symbolic tensors (`maskwise.Input`), the recording of
        this call in a functional model (`maskwise.functional`)."""
        if has_symbols(args, kwargs):
            return record_call(self, args, kwargs)
        return super().__call__(*args, **kwargs)

    # ------------------------------------------------------------------ contract
    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of `input_shape` (a `torch.Size`). Default: none."""

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> CallOutput:
        """The value rule: output values from input values (and the mask, if needed).

        A layer with call options takes them as keyword-only arguments with defaults
        (`call(self, values, mask, *, initial_state=None)`), and may return a tuple
        `(values, *extras)` (see the module's docstring)."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(values, mask)")

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The mask rule. Default: the output mask is the input mask."""
        return mask

    @property
    def consumes_mask(self) -> bool:
        """Whether the mask rule uses the mask up on purpose: the output has no time axis
        and no mask (an RNN without `return_sequences`, global pooling). `trace` shows
        such a layer's missing output mask as *consumed*, any other as *dropped*."""
        return False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Read the inputs, check them, build, fill the padding, then `call` and
        `compute_mask`: returns a `Masked`, or the `Masked` outputs and the extras."""
        inputs, options = self.read_inputs(*args, **kwargs)
        if options:
            self._check_options(options)
        self.check_inputs(inputs)
        self.maybe_build(inputs)
        if isinstance(inputs, Masked):
            values: Any = self.prepare_values(inputs.values, inputs.mask)
            mask: Any = inputs.mask
        else:
            filled: dict[int, torch.Tensor] = {}
            for x in inputs:  # an input given twice (self-attention) is filled once
                if id(x) not in filled:
                    filled[id(x)] = self.prepare_values(x.values, x.mask)
            values, mask = [filled[id(x)] for x in inputs], [x.mask for x in inputs]
        return _outputs(self.call(values, mask, **options), self.compute_mask(values, mask))

    def read_inputs(
        self, inputs: Any, mask: Any = None, **options: Any
    ) -> tuple[Masked | list[Masked], dict[str, Any]]:
        """Sort a call's arguments into the inputs, each a `Masked` with its mask, and
        the call options; its signature is the layer's call signature.

        Default: `layer(x, mask=None, **options)`, `x` a `Masked`, a tensor or an array,
        and `mask` replacing its mask; for a layer that `takes_list`, `x` a list of
        inputs and `mask` None or one mask per input. `trace` reads a call's inputs here.
        """
        if self.takes_list:
            return self.input_list(inputs, mask), options
        return as_masked(inputs, mask), options

    def check_inputs(self, inputs: Masked | list[Masked]) -> None:
        """Refuse inputs the layer cannot take (with a `ShapeError` saying why), before
        it builds, so that a wrong first call builds nothing. Default: any."""

    def _check_options(self, options: dict[str, Any]) -> None:
        """Refuse the call options that `call` does not take, naming those it does."""
        unknown = [name for name in options if name not in self.call_options]
        if not unknown:
            return
        kind = type(self).__name__
        fix = f"pass only options that {kind} takes, spelt as above."
        if "training" in unknown:
            fix = "maskwise layers follow their module's mode: `model.train()`, `model.eval()`."
        pytorch = [PYTORCH_OPTIONS[name] for name in unknown if name in PYTORCH_OPTIONS]
        if pytorch:
            fix = " ".join(pytorch)
        raise MaskwiseTypeError(
            format_error(
                f"{kind} layer {self.name!r} got call arguments it does not take: "
                f"{', '.join(f'`{name}`' for name in unknown)}.",
                expected="keyword arguments among "
                + (", ".join(f"`{name}`" for name in self.call_options) or "none"),
                received=", ".join(f"{name}={options[name]!r}"[:60] for name in unknown),
                fix=fix,
            )
        )

    def input_list(self, inputs: Any, mask: Any) -> list[Masked]:
        """The inputs of a layer that `takes_list`, each a `Masked` with its mask."""
        kind = type(self).__name__
        if not isinstance(inputs, list | tuple):
            raise MaskwiseTypeError(
                format_error(
                    f"{kind} layer {self.name!r} takes a list of inputs.",
                    received=type(inputs).__name__,
                    fix=f"call it as `{kind}()([x1, x2])`.",
                )
            )
        if mask is None:
            return [as_masked(x) for x in inputs]
        if not isinstance(mask, list | tuple) or len(mask) != len(inputs):
            raise MaskError(
                format_error(
                    f"{kind} layer {self.name!r}: `mask` must hold one mask per input.",
                    expected=f"a list of {len(inputs)} masks (or None entries)",
                    received=repr(mask)[:80],
                )
            )
        return [as_masked(x, m) for x, m in zip(inputs, mask, strict=True)]

    def prepare_values(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The values `call` receives: padded steps set to 0 (unless `fills_padding` is
        False), cast to the weights' dtype when `float_inputs` is True."""
        if self.fills_padding and mask is not None:
            values = fill_padding(values, mask)
        if self.float_inputs:
            values = values.to(self.compute_dtype(values))
        return values

    def compute_dtype(self, values: torch.Tensor) -> torch.dtype:
        """The dtype this layer computes in: its first float weight's (or buffer's);
        without any, the values' own if they are floats, else the default float dtype."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return values.dtype if values.is_floating_point() else torch.get_default_dtype()

    # ------------------------------------------------------------------ building
    def maybe_build(self, inputs: Masked | list[Masked]) -> None:
        """Build once, from the first inputs' shapes; put new weights on their device.

        Outside inference mode even in a first call under `torch.inference_mode()`:
        weights made there would be inference tensors, which no later backward pass or
        in-place update (an optimizer step, running statistics) may use."""
        if self.built:
            return
        if isinstance(inputs, Masked):
            shape: Any = inputs.values.shape
            reference = inputs.values
        else:
            shape = [x.values.shape for x in inputs]
            reference = inputs[0].values
        move: dict[str, Any] = {"device": reference.device}
        if self.requested_dtype is not None:  # `model.double()` before the first call
            move["dtype"] = self.requested_dtype
        elif reference.is_floating_point():
            move["dtype"] = _build_dtype(reference)
        with torch.inference_mode(False):
            self.build(shape)
            self.build_shape = _trailing_dims(shape)
            self.built = True
            self.trainable = self.trainable  # freeze the new weights of a frozen layer
            self.to(**move)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        """`nn.Module`'s hook under `.to()`, `.double()`, `.half()`: a layer not built
        yet has no weights to convert, so it remembers the float dtype asked for and
        builds in it (float32 data then goes into the float64 model asked for). A move
        to a device alone (`.to("cuda")`) asks for no dtype."""
        if not self.built:
            single, double = (fn(torch.empty(0, dtype=d)).dtype for d in _PROBES)
            if single == double:
                self.requested_dtype = single
        return super()._apply(fn, recurse)

    def build_from_config_shape(self, trailing: Any) -> None:
        """Build from the input dims (after the batch axis) recorded in a config, in the
        dtype asked for (`dtype=`) if any."""
        if trailing is None or self.built:
            return
        if trailing and isinstance(trailing[0], list):
            shape: Any = [_batch_of_one(dims) for dims in trailing]
        else:
            shape = _batch_of_one(trailing)
        self.build(shape)
        self._mark_built(trailing)

    def _mark_built(self, trailing: Any) -> None:
        """What building leaves besides the weights: the input dims it was built for,
        `built`, a frozen layer's new weights frozen, the dtype asked for."""
        self.build_shape = trailing
        self.built = True
        self.trainable = self.trainable
        if self.requested_dtype is not None:
            self.to(self.requested_dtype)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready (nested layers become nested configs), and
        Keras's `trainable` and `dtype` as they are now, not as they were given: a layer
        frozen since (`trainable = False`, `requires_grad_(False)`) or whose weights
        are in another float dtype (`model.double()`, float64 data at the first call)
        is rebuilt so by `load`, which would otherwise train it or round its weights."""
        config = {key: _to_config_value(self, key, value) for key, value in self._config.items()}
        if not self.trainable or "trainable" in config:
            config["trainable"] = self.trainable
        dtype = _weights_dtype(self)
        if dtype is not None and (dtype != torch.float32 or "dtype" in config):
            config["dtype"] = str(dtype).removeprefix("torch.")
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        kwargs = {key: _from_config_value(value) for key, value in config.items()}
        return cls(**kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"

    # ------------------------------------------------------------------ Keras arguments
    def add_weight(
        self,
        attr: str | tuple[str, ...],
        shape: Sequence[int],
        initializer: Any,
        *,
        rule: str | None = None,
        transpose: bool = False,
        gates: tuple[int, ...] | None = None,
        wrap: Callable[[Any], Any] | None = None,
    ) -> list[nn.Parameter]:
        """Create the weight `self.<attr>` of `shape` (Keras's layout), drawn by the
        `<rule>_initializer` the constructor got, else by `initializer` (the layer's
        Keras default); `<rule>_regularizer` and `<rule>_constraint` then apply to it.
        `rule` defaults to `attr`.

        The weight may be stored in another layout, which the rules never see (they
        see Keras's): `transpose` stores it transposed (PyTorch's `(out, in)`), `gates`
        reorders the gates of its last axis (see `Layout`), and several attrs split
        its first axis into parameters of their own (GRU's bias `(2, 3*units)`).
        `wrap(initializer)` replaces the chosen initializer (LSTM's
        `unit_forget_bias` sets the forget gate's slice to ones around it)."""
        names = (attr,) if isinstance(attr, str) else attr
        chosen = rule_initializer(self, rule or names[0], initializer)
        return make_weight(
            self,
            names,
            shape,
            initializer,
            rule or names[0],
            transpose,
            gates,
            None if wrap is None else wrap(chosen),
        )

    @property
    def trainable(self) -> bool:
        """Keras's `trainable`: False freezes every weight of the layer (and of the
        layers inside it), now and when it builds."""
        return bool(self.__dict__.get("_trainable", True))

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for module in self.modules():  # layers inside, built or not, follow
            if isinstance(module, Layer):
                module.__dict__["_trainable"] = value
        for param in self.parameters():
            param.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """PyTorch's freezing, kept for the weights not made yet: `trainable =
        requires_grad`. A layer makes its weights at its first call; `nn.Module`'s
        `requires_grad_` would set only the weights made before it, and a model frozen
        before its first call would then train."""
        self.trainable = requires_grad
        return self

    def register_full_backward_hook(self, hook: Any, prepend: bool = False) -> NoReturn:
        """Refused: PyTorch calls a module's backward hooks only when it returns tensors,
        and a layer returns a `Masked`; the hook would never be called
        (`backward_hook_refused` names the fix)."""
        raise backward_hook_refused(self, "register_full_backward_hook")

    def register_full_backward_pre_hook(self, hook: Any, prepend: bool = False) -> NoReturn:
        """Refused, as `register_full_backward_hook`."""
        raise backward_hook_refused(self, "register_full_backward_pre_hook")

    def register_backward_hook(self, hook: Any) -> NoReturn:
        """Refused, as `register_full_backward_hook`."""
        raise backward_hook_refused(self, "register_backward_hook")

    @property
    def losses(self) -> list[torch.Tensor]:
        """Keras's `losses`: the weight penalties (`*_regularizer`) of this layer and
        the layers inside it, computed from the weights now, then the activity penalties
        (`activity_regularizer`) of each layer's last call (in `fit` and `evaluate`: of
        every call in the batch's forward pass). `fit` and `evaluate` add their sum to
        the loss."""
        return collect_losses(self)


def backward_hook_refused(layer: Layer, method: str) -> MaskwiseTypeError:
    """The error for a module backward hook on a layer, which PyTorch would never call."""
    return MaskwiseTypeError(
        format_error(
            f"{type(layer).__name__} layer {layer.name!r}: a hook from `{method}` would never "
            "be called: PyTorch calls a module's backward hooks only when it returns "
            "tensors, and a maskwise layer returns a Masked.",
            expected="a hook on a tensor's gradient",
            received=f"`{method}`",
            fix="hook the gradient of the output values in a forward hook that returns "
            "None: `def hook(module, args, out): out.values.register_hook(fn)`, then "
            "`layer.register_forward_hook(hook)`; or of a weight: `weight.register_hook(fn)`.",
        )
    )


def _rename_weights(module: Layer, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """A load pre-hook: the layer's weights saved under old names get their new ones."""
    for old, new in module.renamed_weights.items():
        if prefix + old in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)


def current_weight_names(model: nn.Module, names: Any) -> dict[str, str]:
    """Each of the weight `names` of a state dict of `model` -> its current name (see
    `Layer.renamed_weights`)."""
    renames = {}
    for prefix, module in model.named_modules():
        for old, new in getattr(module, "renamed_weights", {}).items():
            start = f"{prefix}." if prefix else ""
            renames[start + old] = start + new
    return {name: renames.get(name, name) for name in names}


_PADDED = (
    "PyTorch's `{0}` (True = padded) is the mask of the input it pads (the value's, in "
    "attention), inverted (True = real): pass `Masked(values, ~{0})`."
)
_FORBIDDEN = (
    "PyTorch's boolean `{0}` (True = may not attend) is `attention_mask=~{0}` here "
    "(True = may attend)."
)
PYTORCH_OPTIONS: dict[str, str] = {
    "key_padding_mask": _PADDED.format("key_padding_mask"),
    "src_key_padding_mask": _PADDED.format("src_key_padding_mask"),
    "attn_mask": _FORBIDDEN.format("attn_mask"),
    "src_mask": _FORBIDDEN.format("src_mask"),
    "need_weights": "PyTorch's `need_weights=True` is `return_attention_scores=True`.",
    "is_causal": "PyTorch's `is_causal=True` is `use_causal_mask=True`.",
}
"""PyTorch's attention arguments (`nn.MultiheadAttention`, `nn.TransformerEncoderLayer`),
each with how a maskwise layer takes it: the error refusing one says so. Both of
PyTorch's boolean masks mean the opposite of maskwise's."""

_PROBES = (torch.float32, torch.float64)
"""Two empty tensors show whether a conversion function sets one float dtype."""


def _build_dtype(reference: torch.Tensor) -> torch.dtype:
    """The dtype of the weights a layer builds from its first float input: the input's,
    except the lower precision of an autocast region's output, since autocast keeps the
    weights in full precision (the default float dtype); a model first called under
    `torch.autocast` would otherwise keep bfloat16 or float16 weights after it."""
    device = reference.device.type
    if not torch.amp.is_autocast_available(device):  # e.g. "meta"
        return reference.dtype
    if torch.is_autocast_enabled(device) and reference.dtype == torch.get_autocast_dtype(device):
        return torch.get_default_dtype()
    return reference.dtype


def _weights_dtype(layer: Layer) -> torch.dtype | None:
    """The one float dtype of the layer's weights and float buffers (the dtype asked for
    by `.to()` when it has none yet); None when they mix several."""
    tensors = itertools.chain(layer.parameters(), layer.buffers())
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    if not dtypes:
        return layer.requested_dtype
    return dtypes.pop() if len(dtypes) == 1 else None


def _options_of(call: Any) -> tuple[str, ...]:
    """The keyword arguments of a `call(self, values, mask, ...)`: its call options."""
    parameters = list(inspect.signature(call).parameters.values())[3:]
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in keyword)


def _outputs(result: CallOutput, mask: torch.Tensor | None) -> Any:
    """What a layer returns for what its `call` returned (see the module's docstring):
    a `Masked`, or the `Masked` outputs followed by the extras."""
    if not isinstance(result, tuple):
        return Masked(result, mask)
    values, *extras = result
    several = values if isinstance(values, tuple) else (values,)
    outputs = [Masked(v, mask) for v in several]
    return outputs[0] if len(outputs) == 1 and not extras else (*outputs, *extras)


def _batch_of_one(dims: Sequence[int | None]) -> torch.Size:
    """The shape of one input with these dims after the batch axis; an unknown dim
    (None, Keras's variable time axis) counts 1."""
    return torch.Size((1, *(1 if d is None else d for d in dims)))


def _trailing_dims(shape: Any) -> Any:
    """The input dims after the batch axis: enough to rebuild the weights.

    Not only after the time axis: a layer may come after one that consumed the time
    axis (a `Dense` after `LSTM(return_sequences=False)` sees `(batch, units)`).
    """
    if isinstance(shape, list):
        return [list(s[1:]) for s in shape]
    return list(shape[1:])


def _marking_built(build: Any) -> Any:
    """Wrap a subclass `build` so that a call by hand (`layer.build(shape)`, as in
    Keras) leaves the layer built, as the first call would: otherwise that call would
    build it again, drawing new weights over any loaded since."""

    @functools.wraps(build)
    def wrapper(self: Layer, input_shape: Any) -> None:
        if self.built or self.__dict__.get("_building"):
            build(self, input_shape)
            return
        self.__dict__["_building"] = True
        try:
            build(self, input_shape)
        finally:
            del self.__dict__["_building"]
        if not self.built:
            self._mark_built(_trailing_dims(input_shape))

    return wrapper


def _recording_init(init: Any) -> Any:
    """Wrap a subclass `__init__` so the outermost call records its arguments."""
    signature = inspect.signature(init)

    def __init__(self: Layer, *args: Any, **kwargs: Any) -> None:
        outermost = not hasattr(self, "_config")
        if outermost:
            refuse_extra_positional(type(self), signature.parameters, args)
            keras = split_keras_args(type(self), signature.parameters, kwargs)
            object.__setattr__(self, "_weight_rules", keras.rules)  # for `build` in `init`
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config = dict(bound.arguments)
            config.pop("self")
            for key, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and key in config:
                    config.update(config.pop(key))
            object.__setattr__(self, "_config", {**config, **keras.given})
        init(self, *args, **kwargs)
        if outermost:
            apply_keras_args(self, keras)
            if "name" in self._config:
                self._config["name"] = self.name

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__doc__ = init.__doc__
    return __init__


Layer.__init__ = _recording_init(Layer.__init__)  # type: ignore[method-assign]
"""Layers without an `__init__` of their own (`Add`, ...) take the Keras arguments too."""


_JSON_SCALARS = (str, int, float, bool, type(None))


def _to_config_value(layer: Layer, key: str, value: Any) -> Any:
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Layer):
        return layer_spec(value)
    if isinstance(value, KerasObject):
        return to_json(value)
    if isinstance(value, list | tuple):
        return [_to_config_value(layer, key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_config_value(layer, key, v) for k, v in value.items()}
    raise ConfigError(
        format_error(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be saved as JSON: "
            f"its argument `{key}` is a {type(value).__name__}.",
            expected="arguments that are numbers, strings, lists or maskwise layers",
            received=repr(value)[:80],
            fix="save the weights only (`torch.save(model.state_dict(), path)`) and "
            "rebuild the model in code, or replace the argument with a named option.",
        )
    )


def _from_config_value(value: Any) -> Any:
    if isinstance(value, dict) and "__layer__" in value:
        return layer_from_config(value)
    if isinstance(value, dict) and JSON_KEY in value:
        return from_json(value)
    if isinstance(value, list):
        return [_from_config_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_config_value(v) for k, v in value.items()}
    return value


def layer_from_config(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from `{"__layer__": class name, "config": ..., "build_shape": ...}`."""
    class_name = spec["__layer__"]
    if class_name not in Layer.registry:
        raise ConfigError(
            format_error(
                f"Unknown layer class {class_name!r} in a saved config.",
                expected=f"one of {sorted(Layer.registry)[:12]} ...",
                fix="import the module that defines it before loading.",
            )
        )
    layer = Layer.registry[class_name].from_config(spec["config"])
    layer.build_from_config_shape(spec.get("build_shape"))
    return layer


def layer_spec(layer: Layer) -> dict[str, Any]:
    """The JSON description of a layer that `layer_from_config` reads back."""
    return {
        "__layer__": type(layer).__name__,
        "config": layer.get_config(),
        "build_shape": layer.build_shape,
    }
