"""Core layers: a mask is created (`Masking`), passed on by per-step
transforms (`Dense`, `TimeDistributed`, `Activation`, and the noise layers `Dropout`,
`SpatialDropout1D`, `GaussianNoise`, `GaussianDropout`, `AlphaDropout`), or transformed
by a rule you state (`Lambda`)."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import (
    ConfigError,
    MaskError,
    MaskWarning,
    MaskwiseTypeError,
    ShapeError,
    format_error,
)
from ..masked import Masked, per_step
from ._random import SeededGenerator
from .base import Layer

MaskRule = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor | None]


class Masking(Layer):
    """Create a mask from a padding value: a step is masked iff ALL its features equal it.

    Value rule: the values at masked steps are set to 0 (as Keras does); real steps are
    unchanged. Mask rule: the output mask is computed from the values, True where any
    feature differs from `mask_value`. A NaN `mask_value` masks the steps whose
    features are all NaN. An input that already carries a mask has it replaced, as in
    Keras; where the two masks disagree, a `MaskWarning` names the steps: padded steps
    that no longer hold `mask_value` would count as real (after an
    `Embedding`, a second `Masking` unmasks the padding), and real steps holding only
    `mask_value` would be ignored. Where they agree (padded data fed with its lengths,
    then `Masking`, the Keras habit) there is nothing to say and no warning.

    Example:
        >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [0.0, 3.0]]])
        >>> Masking(0.0)(x).mask.tolist()
        [[True, False, True]]

    Args:
        mask_value: the padding value (a float, NaN allowed).
        name: layer name.
    Input `(batch, time, ...)`; output the same shape, mask `(batch, time)`.
    """

    fills_padding = False  # the mask is made from what the padded steps hold

    def __init__(
        self, mask_value: float = 0.0, *, name: str | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        if not isinstance(mask_value, int | float) or isinstance(mask_value, bool):
            raise ConfigError(
                format_error("Masking mask_value must be a number.", received=repr(mask_value))
            )
        self.mask_value = float(mask_value)

    def _real_steps(self, values: torch.Tensor) -> torch.Tensor:
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        if math.isnan(self.mask_value):
            return ~torch.isnan(flat).all(dim=-1)
        return (flat != self.mask_value).any(dim=-1)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        real = self._real_steps(values)
        if mask is not None:
            self._warn_if_masks_differ(mask, real)
        keep = per_step(real, values)
        return torch.where(keep, values, torch.zeros_like(values))

    def _warn_if_masks_differ(self, incoming: torch.Tensor, computed: torch.Tensor) -> None:
        """A `MaskWarning` naming the steps where the mask computed from the values
        disagrees with the one the input carries; nothing when they agree."""
        unmasked = ~incoming & computed  # padded, but not holding the padding value
        masked = incoming & ~computed  # real, but holding only the padding value
        if not bool((unmasked | masked).any()):
            return
        parts = []
        if bool(unmasked.any()):
            parts.append(
                f"{int(unmasked.sum())} padded step(s) ({_first_steps(unmasked)}) do not "
                f"hold {self.mask_value} and would count as REAL (after an Embedding or "
                "another layer the padded steps no longer hold the padding value)"
            )
        if bool(masked.any()):
            parts.append(
                f"{int(masked.sum())} real step(s) ({_first_steps(masked)}) hold only "
                f"{self.mask_value} and would be IGNORED as padding"
            )
        warnings.warn(
            f"Masking layer {self.name!r} got an input that already has a mask, and "
            "replaces it with the mask computed from the values, which differs: "
            + "; ".join(parts)
            + ". Fix: remove this Masking (the mask already travels with the values), "
            "choose a mask_value the real data never takes, or drop the old mask on "
            "purpose with `x.with_mask(None)`.",
            MaskWarning,
            stacklevel=3,
        )

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        return self._real_steps(values)


def _first_steps(where: torch.Tensor, count: int = 3) -> str:
    """`where (batch, time)`'s first True positions, as `sequence i step t, ...`."""
    found = torch.nonzero(where)[:count].tolist()
    text = ", ".join(f"sequence {i} step {t}" for i, t in found)
    return text + (", ..." if int(where.sum()) > count else "")


class Dense(Layer):
    """A linear map on the last axis, applied to every step: `activation(x @ W + b)`.

    Value rule: each step is transformed on its own, so padding cannot leak into real
    steps; padded steps are read as zeros (their output is `activation(b)`), so NaN
    padding cannot reach the gradients. Integer features and floats of another
    precision are cast to the kernel's dtype. Mask rule: the mask is passed on unchanged.

    Example:
        >>> y = Dense(3)(Masked.pad([torch.ones(4, 5), torch.ones(2, 5)]))
        >>> y.values.shape, y.lengths.tolist()
        (torch.Size([2, 4, 3]), [4, 2])

    Args:
        units: output features.
        activation: name of the activation (`"relu"`, `"softmax"`, ...) or None.
        use_bias: add a bias vector.
        name: layer name.
        **keras_args: `kernel_initializer` (`"glorot_uniform"`), `bias_initializer`
            (`"zeros"`), `kernel_regularizer`, `bias_regularizer`, `kernel_constraint`,
            `bias_constraint`, and the arguments every layer takes (`input_dim`,
            `input_shape`: build now; `dtype`, `trainable`, `activity_regularizer`).
    Weights: `kernel (in, units)`, `bias (units,)`, Keras's layout.
    """

    float_inputs = True
    weight_names = ("kernel", "bias")
    kernel: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(
                format_error("Dense units must be a positive integer.", received=repr(units))
            )
        self.units = units
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.bias = None

    def build(self, input_shape: Any) -> None:
        fan_in = int(input_shape[-1])
        self.add_weight("kernel", (fan_in, self.units), "glorot_uniform")
        if self.use_bias:
            self.add_weight("bias", (self.units,), "zeros")

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if values.shape[-1] != self.kernel.shape[0]:
            raise ShapeError(
                format_error(
                    f"Dense layer {self.name!r} was built for {self.kernel.shape[0]} input "
                    "features.",
                    expected=f"values (batch, time, {self.kernel.shape[0]})",
                    received=f"values {tuple(values.shape)}",
                    fix="use one Dense per input size; features are the last axis.",
                )
            )
        out = values @ self.kernel  # padded steps hold zeros (`Layer.prepare_values`)
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)


class TimeDistributed(Layer):
    """Apply `layer` to every step on its own, as a batch of `batch * time` items.

    Value rule: the values `(batch, time, ...)` are reshaped to `(batch * time, ...)`,
    passed through `layer` (without a mask: each item is one step; padded steps are
    read as zeros), and reshaped back to `(batch, time, ...)`. Mask rule: the mask
    passes on unchanged.

    Example:
        >>> td = TimeDistributed(Dense(3, activation="sigmoid"))
        >>> td(Masked.pad([torch.ones(4, 5), torch.ones(2, 5)])).lengths.tolist()
        [4, 2]

    Args:
        layer: a maskwise layer for one step's values `(...)`, e.g. `Dense`.
        name: layer name.
    Input `(batch, time, features, ...)` (at least 3 axes).
    """

    def __init__(self, layer: Layer, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        if not isinstance(layer, Layer):
            raise MaskwiseTypeError(
                format_error(
                    "TimeDistributed wraps a maskwise layer.",
                    received=type(layer).__name__,
                    fix="wrap a plain function or module first: `TimeDistributed(Lambda(fn))`.",
                )
            )
        self.layer = layer

    def build(self, input_shape: Any) -> None:
        if len(input_shape) < 3:
            raise ShapeError(
                format_error(
                    f"TimeDistributed {self.name!r} needs a feature axis after time.",
                    expected="values (batch, time, features, ...)",
                    received=f"shape {tuple(input_shape)}",
                )
            )
        self.layer.maybe_build(Masked(torch.zeros(1, *input_shape[2:])))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, time = values.shape[:2]  # padded steps hold zeros (`Layer.prepare_values`)
        out = self.layer(Masked(values.reshape(batch * time, *values.shape[2:])))
        return out.values.reshape(batch, time, *out.values.shape[1:])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["layer"]["build_shape"] = None  # the wrapper builds it from its own shape
        return config


class Dropout(Layer):
    """Randomly zero features of real steps in training, scaling the rest by
    `1 / (1 - rate)`; the identity in evaluation (`model.eval()`).

    Value rule: each feature of each real step is dropped with probability `rate`;
    padded steps are zeros and stay zeros. Mask rule: the mask passes on unchanged.

    Example:
        >>> Dropout(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0
        >>> a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)  # seeded: the same masks
        >>> torch.equal(a(torch.ones(1, 4, 8)).values, b(torch.ones(1, 4, 8)).values)
        True

    Args:
        rate: drop probability in `[0, 1)`.
        name: layer name.
        seed: an int gives the layer its own generator (the masks repeat from run to
            run, each call drawing new ones, as Keras's `seed`); None draws from
            PyTorch's global generator.
    """

    def __init__(
        self, rate: float, *, name: str | None = None, seed: int | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        self.rate = _check_rate(type(self).__name__, rate)
        self.draws = SeededGenerator(type(self).__name__, seed)

    def noise_shape(self, values: torch.Tensor) -> tuple[int, ...]:
        return tuple(values.shape)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return values
        shape, device = self.noise_shape(values), values.device
        keep = torch.rand(shape, device=device, generator=self.draws(device)) >= self.rate
        return torch.where(keep, values / (1.0 - self.rate), torch.zeros_like(values))


class SpatialDropout1D(Dropout):
    """Dropout of whole feature channels: a dropped feature is zero at every real step
    of that sequence (scaled by `1 / (1 - rate)` otherwise); the identity in evaluation.

    Mask rule: the mask passes on unchanged; padded steps are zeros and stay zeros.

    Example:
        >>> SpatialDropout1D(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        rate: drop probability in `[0, 1)`.
        name: layer name.
        seed: as `Dropout`'s.
    Input `(batch, time, features)`.
    """

    def noise_shape(self, values: torch.Tensor) -> tuple[int, ...]:
        if values.dim() != 3:
            raise ShapeError(
                format_error(
                    f"SpatialDropout1D {self.name!r} needs 3-D values.",
                    expected="(batch, time, features)",
                    received=f"shape {tuple(values.shape)}",
                )
            )
        return (values.shape[0], 1, values.shape[2])


class _RealStepNoise(Layer):
    """Noise drawn for every value in training and kept at the real steps only, so
    padded steps stay zeros; the identity in evaluation."""

    draws: SeededGenerator

    def noisy(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def is_identity(self) -> bool:
        raise NotImplementedError

    def uniform(self, values: torch.Tensor) -> torch.Tensor:
        """Uniform draws in [0, 1) shaped like `values`, from the layer's generator."""
        generator = self.draws(values.device)
        return torch.rand(
            values.shape, dtype=values.dtype, device=values.device, generator=generator
        )

    def normal(self, values: torch.Tensor) -> torch.Tensor:
        """Standard normal draws shaped like `values`, from the layer's generator."""
        generator = self.draws(values.device)
        return torch.randn(
            values.shape, dtype=values.dtype, device=values.device, generator=generator
        )

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training or self.is_identity():
            return values
        out = self.noisy(values)
        if mask is None:
            return out
        real = per_step(mask, values)
        return torch.where(real, out, torch.zeros_like(out))


class GaussianNoise(_RealStepNoise):
    """Add zero-centred Gaussian noise of standard deviation `stddev` in training; the
    identity in evaluation.

    Value rule: `x + N(0, stddev)` at every feature of every real step; padded steps
    stay zeros (Keras adds noise to the padding too). Mask rule: the mask passes on.

    Example:
        >>> GaussianNoise(1.0).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        stddev: the noise's standard deviation, >= 0.
        name: layer name.
        seed: as `Dropout`'s.
    """

    float_inputs = True

    def __init__(
        self, stddev: float, seed: int | None = None, *, name: str | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        self.draws = SeededGenerator("GaussianNoise", seed)
        if isinstance(stddev, bool) or not isinstance(stddev, int | float) or not stddev >= 0:
            raise ConfigError(
                format_error(
                    "GaussianNoise stddev must be a non-negative number.",
                    received=repr(stddev),
                )
            )
        self.stddev = float(stddev)

    def is_identity(self) -> bool:
        return self.stddev == 0.0

    def noisy(self, values: torch.Tensor) -> torch.Tensor:
        return values + self.stddev * self.normal(values)


class GaussianDropout(_RealStepNoise):
    """Multiply by Gaussian noise of mean 1 and standard deviation
    `sqrt(rate / (1 - rate))` in training; the identity in evaluation.

    Value rule: `x * N(1, sqrt(rate / (1 - rate)))` at every feature of every real
    step; padded steps stay zeros. Mask rule: the mask passes on unchanged.

    Example:
        >>> GaussianDropout(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        rate: the equivalent drop probability, in `[0, 1)`.
        name: layer name.
        seed: as `Dropout`'s.
    """

    float_inputs = True

    def __init__(
        self, rate: float, seed: int | None = None, *, name: str | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        self.rate = _check_rate("GaussianDropout", rate)
        self.draws = SeededGenerator("GaussianDropout", seed)

    def is_identity(self) -> bool:
        return self.rate == 0.0

    def noisy(self, values: torch.Tensor) -> torch.Tensor:
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return values * (1.0 + stddev * self.normal(values))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropout(_RealStepNoise):
    """Dropout that keeps the mean and variance of SELU activations: in training each
    feature of each real step is set to SELU's negative saturation value with
    probability `rate`, then `a * x + b` restores the mean and variance (Keras's
    formula); the identity in evaluation.

    Value rule: as Keras at real steps; padded steps stay zeros (the affine map would
    move them to `b`). Mask rule: the mask passes on unchanged.

    Example:
        >>> AlphaDropout(0.5).eval()(torch.ones(1, 2, 3)).values.sum().item()
        6.0

    Args:
        rate: drop probability in `[0, 1)`.
        name: layer name.
        seed: as `Dropout`'s.
    """

    float_inputs = True

    def __init__(
        self, rate: float, *, name: str | None = None, seed: int | None = None, **keras_args: Any
    ) -> None:
        super().__init__(name=name)
        self.rate = _check_rate("AlphaDropout", rate)
        self.draws = SeededGenerator("AlphaDropout", seed)

    def is_identity(self) -> bool:
        return self.rate == 0.0

    def noisy(self, values: torch.Tensor) -> torch.Tensor:
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        keep = self.uniform(values) >= self.rate
        a = ((1.0 - self.rate) * (1.0 + self.rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * self.rate
        return a * torch.where(keep, values, values.new_full((), alpha_p)) + b


def _check_rate(layer: str, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
        raise ConfigError(
            format_error(
                f"{layer} rate must be a probability.",
                expected="a number in [0, 1)",
                received=repr(rate),
            )
        )
    return float(rate)


class Activation(Layer):
    """Apply an activation function to every step: `activation(x)`.

    Value rule: per step (softmax-like activations act on the last axis); padded steps
    are read as zeros, so `log` or `sqrt`-like functions of the padding reach no
    gradient; integer features are cast to the default float dtype. Mask rule: the
    mask passes on unchanged.

    Example:
        >>> Activation("relu")(torch.tensor([[[-1.0, 2.0]]])).values.tolist()
        [[[0.0, 2.0]]]

    Args:
        activation: a Keras activation name (`"relu"`, `"tanh"`, `"softmax"`, ...).
        name: layer name.
    """

    float_inputs = True

    def __init__(self, activation: str, *, name: str | None = None, **keras_args: Any) -> None:
        super().__init__(name=name)
        self.activation = get_activation(activation)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activation(values)


class Lambda(Layer):
    """Wrap a function or plain `nn.Module` so it can sit between maskwise layers.

    Value rule: `fn(values)`, with the padded steps of `values` set to 0 (so `fn`
    never sees what the padding held, and `torch.log` or `torch.sqrt` of the padding
    reach no gradient); `fn` returns one tensor (a tuple or any other value is a
    `MaskwiseTypeError`: there would be no rule for which output the mask belongs to).
    As in Keras, a function whose signature names `mask` gets the input's mask
    (`(batch, time)` bool, True = real step, or None), and one naming `training` gets
    the layer's mode (`self.training`: True under `model.train()` and in `fit`, False
    under `model.eval()`, `evaluate` and `predict`), both by keyword:
    `Lambda(lambda x, mask: ...)`; a wrapped `nn.Module` gets neither. What `fn` gets
    says nothing about the output's mask, which only the mask rule decides.
    Mask rule, chosen by `mask`:
    - `None` (default): the mask passes on unchanged when the output keeps the input's
      batch and time axes. If `fn` changes the time axis, the first call raises a
      `MaskError` naming the layer: Keras would drop the mask silently here,
      and the loss would then count the padding.
    - a callable `mask(inputs, mask) -> new_mask` (Keras's signature), e.g.
      `Lambda(lambda x: x[:, 5:], mask=lambda inputs, mask: mask[:, 5:])`.
    - the string `"drop"`: the output has no mask, on purpose (e.g. a pooling `fn`).

    Example:
        >>> crop = Lambda(lambda x: x[:, 2:], mask=lambda inputs, mask: mask[:, 2:])
        >>> crop(Masked.pad([torch.ones(5, 1), torch.ones(3, 1)])).lengths.tolist()
        [3, 1]
        >>> steps = Lambda(lambda x, mask: mask[..., None].to(x.dtype))  # reads the mask
        >>> steps(Masked.pad([torch.ones(2, 1), torch.ones(1, 1)])).values.squeeze(-1).tolist()
        [[1.0, 1.0], [1.0, 0.0]]

    Args:
        function: a callable or `nn.Module` taking values `(batch, time, ...)`, and the
            keyword arguments `mask` and `training` if its signature names them.
        mask: the mask rule, as above.
        name: layer name.
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor], torch.Tensor],
        *,
        mask: MaskRule | str | None = None,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        if not callable(function):
            raise ConfigError(
                format_error("Lambda needs a callable.", received=type(function).__name__)
            )
        self.function = function
        self.mask_rule = check_mask_rule("Lambda", mask)
        self.function_takes = _named_arguments(function, ("mask", "training"))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        options = {"mask": mask, "training": self.training}
        kwargs = {name: options[name] for name in self.function_takes}
        try:
            out = self.function(values, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:  # e.g. a wrapped nn.Linear built for other features
            raise ShapeError(
                format_error(
                    f"Lambda layer {self.name!r}: its function failed on values of shape "
                    f"{tuple(values.shape)} (batch, time, ...).",
                    received=str(error).splitlines()[0],
                    fix="check the function's expected input (features are the last axis), "
                    "e.g. `nn.Linear(in_features=...)` against the data's feature count.",
                )
            ) from error
        if not isinstance(out, torch.Tensor):
            raise MaskwiseTypeError(
                format_error(
                    f"Lambda layer {self.name!r} returned a {type(out).__name__}, not one "
                    "tensor; a Lambda's output is one tensor that carries the mask on.",
                    expected="a torch.Tensor (batch, time, ...)",
                    received=_describe(out),
                    fix="return one tensor (e.g. `lambda x: fn(x)[0]`, or `torch.cat` "
                    "the parts), or call the function in the forward of a maskwise Module "
                    "and wrap each output in a Masked with its own mask.",
                )
            )
        if mask is not None and self.mask_rule is None and not _keeps_steps(values, out):
            raise MaskError(
                format_error(
                    f"Lambda layer {self.name!r} changed the time axis but has no mask rule, "
                    "so the mask would be lost and padding would count in the loss.",
                    expected=f"an output shaped (batch, time) = {tuple(values.shape[:2])}, ...",
                    received=f"output shape {tuple(out.shape)}",
                    fix="say what happens to the mask, e.g. "
                    "`Lambda(fn, mask=lambda inputs, mask: mask[:, N:])` for `x[:, N:]`, "
                    "or `mask='drop'` if the output really has no time axis.",
                )
            )
        return out

    @property
    def consumes_mask(self) -> bool:
        return self.mask_rule == "drop"

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None or self.mask_rule == "drop":
            return None
        if callable(self.mask_rule):
            return self.mask_rule(values, mask)
        return mask


def check_mask_rule(layer: str, mask: Any) -> MaskRule | str | None:
    """A mask rule a user states (`Lambda`, the reshaping layers): None, `"drop"`, or a
    callable `(inputs, mask) -> mask`; anything else is a `ConfigError`."""
    if mask is None or mask == "drop" or (callable(mask) and not isinstance(mask, str)):
        return mask  # type: ignore[no-any-return]
    raise ConfigError(
        format_error(
            f"Unknown {layer} mask rule.",
            expected="None, 'drop', or a callable (inputs, mask) -> mask",
            received=repr(mask),
        )
    )


def _named_arguments(function: Callable[..., Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `names` that `function` takes by keyword, as Keras's `Lambda` reads its
    function's arguments; a `**kwargs` names none. A module takes none, as a Keras
    layer called by a `Lambda` gets none: the `mask` of PyTorch's modules
    (`nn.TransformerEncoder`) is another mask (an attention mask, True = blocked)."""
    if isinstance(function, nn.Module):
        return ()
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin without a signature takes neither
        return ()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(name for name in names if name in parameters and parameters[name].kind in keyword)


def _keeps_steps(values: torch.Tensor, out: torch.Tensor) -> bool:
    return out.dim() >= 2 and out.shape[:2] == values.shape[:2]


def _describe(value: Any) -> str:
    """A short description of a value: shapes for tensors, in tuples and lists too."""
    if isinstance(value, torch.Tensor):
        return f"Tensor {tuple(value.shape)}"
    if isinstance(value, list | tuple):
        return f"{type(value).__name__} of " + ", ".join(_describe(v) for v in value[:4])
    return type(value).__name__


# Named functions, not lambdas: a layer holding one can be pickled (`torch.save(model)`,
# `copy.deepcopy`, multiprocessing).
def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": _linear,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "gelu": nn.functional.gelu,
    "elu": nn.functional.elu,
    "selu": nn.functional.selu,
    "softplus": nn.functional.softplus,
    "softsign": nn.functional.softsign,
    "swish": nn.functional.silu,
    "silu": nn.functional.silu,
    "hard_sigmoid": _hard_sigmoid,
    "exponential": torch.exp,
}


def get_activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function for a Keras activation name (None = linear)."""
    if name is None:
        return _ACTIVATIONS["linear"]
    if name not in _ACTIVATIONS:
        raise ConfigError(
            format_error(
                "Unknown activation.",
                expected=f"one of {sorted(_ACTIVATIONS)}",
                received=repr(name),
            )
        )
    return _ACTIVATIONS[name]
