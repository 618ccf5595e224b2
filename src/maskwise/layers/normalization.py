"""Normalization layers: per step (`LayerNormalization`, `UnitNormalization`), over
the real steps of the batch (`BatchNormalization`) or of each sequence
(`GroupNormalization`), or by statistics of the data's real steps (`Normalization`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ShapeError, format_error
from ..masked import Masked, fill_padding
from ._axes import check_axes, resolve_axes
from .base import Layer


def _check_last_axis(layer: str, axis: Any) -> int:
    if axis != -1:
        raise ConfigError(
            format_error(
                f"{layer} normalizes the feature axis only.",
                expected="axis=-1",
                received=f"axis={axis!r}",
                fix="put the features last, (batch, time, features), and use axis=-1.",
            )
        )
    return -1


def _real_positions(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mask expanded to `values.shape[:-1]` (every position of a real step, over the
    axes between time and features too); all True without a mask."""
    if mask is None:
        return torch.ones(values.shape[:-1], dtype=torch.bool, device=values.device)
    return mask.reshape(mask.shape + (1,) * (values.dim() - 3)).expand(values.shape[:-1])


def moments_over_real(
    values: torch.Tensor, real: torch.Tensor, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and biased variance along `dims` (kept, of size 1) over the positions
    where `real` (broadcastable to `values`) is True; 0 and 0 where there is none.
    Padded positions must hold zeros (`Layer.prepare_values`)."""
    count = torch.broadcast_to(real, values.shape).sum(dim=dims, keepdim=True)
    safe_count = count.clamp(min=1).to(values.dtype)
    mean = values.sum(dim=dims, keepdim=True) / safe_count
    centered = torch.where(real, values - mean, torch.zeros_like(values))
    return mean, centered.square().sum(dim=dims, keepdim=True) / safe_count


def _add_affine_weights(layer: Any, features: int) -> None:
    """Keras's `gamma` (ones, if `scale`) and `beta` (zeros, if `center`)."""
    if layer.scale:
        layer.add_weight("gamma", (features,), "ones")
    if layer.center:
        layer.add_weight("beta", (features,), "zeros")


class LayerNormalization(Layer):
    """Normalize every step over its features: `(x - mean) / sqrt(var + epsilon) * gamma
    + beta`, with the mean and (biased) variance of that step alone.

    Value rule: per step, so padding cannot reach real steps (padded steps are read as
    zeros, so NaN padding reaches no gradient); integer features are cast to the
    weights' dtype. Mask rule: the mask passes on unchanged.

    Example:
        >>> y = LayerNormalization()(torch.tensor([[[1.0, 3.0]]]))
        >>> [round(v, 4) for v in y.values[0, 0].tolist()]
        [-0.9995, 0.9995]

    Args:
        axis: the feature axis; only -1 (the last axis) is supported.
        epsilon: added to the variance.
        center: learn an offset `beta` (zeros at start).
        scale: learn a scale `gamma` (ones at start).
        name: layer name.
        **keras_args: `gamma_*` and `beta_*` (`_initializer`, Keras's defaults
            `"ones"` and `"zeros"`; `_regularizer`; `_constraint`), and the arguments
            of every layer (`maskwise.layers.Layer`).
    Input `(batch, time, ..., features)`; output the same shape.
    """

    float_inputs = True
    weight_names = ("gamma", "beta")

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self.axis = _check_last_axis("LayerNormalization", axis)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.gamma: nn.Parameter | None = None
        self.beta: nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[-1])
        _add_affine_weights(self, features)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if values.numel() == 0:  # no step at all (a time axis of length 0)
            return _affine(values, self)
        variance, mean = torch.var_mean(values, dim=-1, keepdim=True, correction=0)
        return _affine((values - mean) * torch.rsqrt(variance + self.epsilon), self)


def _affine(
    normalized: torch.Tensor,
    layer: LayerNormalization | BatchNormalization | GroupNormalization,
) -> torch.Tensor:
    if layer.gamma is not None:
        normalized = normalized * layer.gamma
    if layer.beta is not None:
        normalized = normalized + layer.beta
    return normalized


class BatchNormalization(Layer):
    """Normalize each feature with statistics over the REAL steps of the batch.

    Value rule: in training (`model.train()`), the mean and biased variance of each
    feature are taken over every real step of every sequence (padding does not shift
    them, and may hold anything, NaN included: padded steps are read as zeros;
    integer features are cast to the weights' dtype), the
    output is `(x - mean) / sqrt(var + epsilon) * gamma + beta`, and the moving
    statistics are updated as
    `moving = moving * momentum + batch * (1 - momentum)`. A batch without any real
    step leaves them unchanged. In evaluation the moving statistics are used. This is
    Keras 3's masked rule (`_moments` with a mask). Mask rule: the mask passes on.

    Example:
        >>> x = Masked.pad([torch.ones(3, 2), 3 * torch.ones(1, 2)])
        >>> BatchNormalization().train()(x).values[:, 0, 0].tolist()  # mean 1.5 over 4 steps
        [-0.57..., 1.73...]

    Args:
        axis: the feature axis; only -1 (the last axis) is supported.
        momentum: weight of the old moving statistics.
        epsilon: added to the variance.
        center: learn an offset `beta` (zeros at start).
        scale: learn a scale `gamma` (ones at start).
        name: layer name.
        **keras_args: `gamma_*` and `beta_*` (`_initializer`, Keras's defaults
            `"ones"` and `"zeros"`; `_regularizer`; `_constraint`), and the arguments
            of every layer (`maskwise.layers.Layer`).
    Input `(batch, time, ..., features)`; output the same shape.
    """

    float_inputs = True
    weight_names = ("gamma", "beta")
    moving_mean: torch.Tensor
    moving_variance: torch.Tensor

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        self.axis = _check_last_axis("BatchNormalization", axis)
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, int | float)
            or not (0.0 <= momentum <= 1.0)
        ):
            raise ConfigError(
                format_error(
                    "BatchNormalization momentum must be in [0, 1].",
                    received=repr(momentum),
                    fix="Keras's convention: moving = moving * momentum + batch * (1 - "
                    "momentum); PyTorch's `momentum=0.1` is Keras's 0.9.",
                )
            )
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.gamma: nn.Parameter | None = None
        self.beta: nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[-1])
        _add_affine_weights(self, features)
        self.register_buffer("moving_mean", torch.zeros(features))
        self.register_buffer("moving_variance", torch.ones(features))

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.training:
            mean, variance = self._moments(values, mask)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return _affine((values - mean) * torch.rsqrt(variance + self.epsilon), self)

    def _moments(
        self, values: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flat = values.reshape(-1, values.shape[-1])
        real = _real_positions(values, mask).reshape(-1, 1)
        mean, variance = moments_over_real(flat, real, (0,))
        mean, variance = mean.squeeze(0), variance.squeeze(0)
        with torch.no_grad():
            update = real.any()
            new_mean = self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            new_var = self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            self.moving_mean.copy_(torch.where(update, new_mean, self.moving_mean))
            self.moving_variance.copy_(torch.where(update, new_var, self.moving_variance))
        return mean, variance


class UnitNormalization(Layer):
    """Scale to unit L2 norm over `axis`: `x / max(sqrt(sum(x ** 2)), 1e-12)`.

    Value rule: as Keras. Over feature axes, each step on its own; over the time axis
    (`axis=1`), the padded steps are read as zeros and so add nothing to the norm: the
    norm is over the real steps. Mask rule: the mask passes on unchanged.

    Example:
        >>> y = UnitNormalization()(torch.tensor([[[3.0, 4.0]]]))
        >>> [round(v, 4) for v in y.values[0, 0].tolist()]
        [0.6, 0.8]

    Args:
        axis: an axis after the batch axis (default -1), or a list of them.
        name: layer name.
    """

    float_inputs = True

    def __init__(
        self,
        axis: int | list[int] | tuple[int, ...] = -1,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        axes = check_axes("UnitNormalization", axis)
        self.axis = axis
        self.axes = axes

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        dims = resolve_axes(f"UnitNormalization {self.name!r}", self.axes, values)
        return l2_normalize(values, dims, epsilon=1e-12)


def l2_normalize(values: torch.Tensor, dims: tuple[int, ...], epsilon: float) -> torch.Tensor:
    """Keras's `ops.normalize` (order 2): `x / max(norm(x), epsilon)` along `dims`."""
    square_sum = values.square().sum(dim=dims, keepdim=True)
    return values * torch.rsqrt(square_sum.clamp(min=epsilon**2))


class GroupNormalization(Layer):
    """Normalize each sequence's channels in `groups` groups, with the mean and biased
    variance of each group over the REAL steps of that sequence.

    Value rule: the channels (last axis) are split into `groups` groups of equal size;
    for each sequence and group, the statistics are taken over its real steps and the
    group's channels, then `(x - mean) / sqrt(var + epsilon) * gamma + beta`. Padded
    steps (read as zeros, NaN included) do not shift the statistics, so a sequence
    gives the same real outputs alone or padded in a batch; Keras 3 ignores the mask
    and counts the padding. A sequence without a real step is normalized with mean 0
    and variance 0. Mask rule: the mask passes on unchanged.

    Example:
        >>> x = Masked.pad([torch.tensor([[1.0, 3.0], [3.0, 1.0]]), torch.ones(1, 2)])
        >>> GroupNormalization(groups=1)(x).values[0, 0].tolist()
        [-0.999..., 0.999...]

    Args:
        groups: the number of groups; it divides the channels; -1 means one group per
            channel (instance normalization).
        axis: the channel axis; only -1 (the last axis) is supported.
        epsilon: added to the variance.
        center: learn an offset `beta` (zeros at start).
        scale: learn a scale `gamma` (ones at start).
        name: layer name.
        **keras_args: `gamma_*` and `beta_*` (`_initializer`, Keras's defaults
            `"ones"` and `"zeros"`; `_regularizer`; `_constraint`), and the arguments
            of every layer (`maskwise.layers.Layer`).
    Input `(batch, time, ..., channels)`; output the same shape.
    """

    float_inputs = True
    weight_names = ("gamma", "beta")

    def __init__(
        self,
        groups: int = 32,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < -1 or groups == 0:
            raise ConfigError(
                format_error(
                    "GroupNormalization groups must be a positive integer, or -1.",
                    expected="an int >= 1, or -1 for one group per channel",
                    received=repr(groups),
                )
            )
        self.groups = groups
        self.axis = _check_last_axis("GroupNormalization", axis)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.gamma: nn.Parameter | None = None
        self.beta: nn.Parameter | None = None

    def _group_count(self, channels: int) -> int:
        groups = channels if self.groups == -1 else self.groups
        if channels % groups != 0:
            raise ShapeError(
                format_error(
                    f"GroupNormalization {self.name!r}: {groups} groups do not divide "
                    f"{channels} channels.",
                    expected="a number of groups that divides the channels (last axis)",
                    received=f"groups={self.groups}, channels={channels}",
                    fix="choose groups among the divisors of the channel count.",
                )
            )
        return groups

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        self._group_count(channels)
        _add_affine_weights(self, channels)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        channels = values.shape[-1]
        groups = self._group_count(channels)
        grouped = values.reshape(values.shape[0], -1, groups, channels // groups)
        real = _real_positions(values, mask).reshape(values.shape[0], -1, 1, 1)
        mean, variance = moments_over_real(grouped, real, (1, 3))
        normalized = (grouped - mean) * torch.rsqrt(variance + self.epsilon)
        return _affine(normalized.reshape(values.shape), self)


EPSILON = 1e-7
"""Keras's `backend.epsilon()`: the standard deviation divided by is at least this."""


class Normalization(Layer):
    """Shift and scale each feature by a mean and variance computed beforehand, from the
    REAL steps of the data (`adapt`), or given: `(x - mean) / sqrt(variance)`.

    Value rule: at real steps, `(x - mean) / max(sqrt(variance), 1e-7)` (Keras's), or
    with `invert=True` the inverse `mean + x * max(sqrt(variance), 1e-7)`; the steps
    its input's mask pads are 0 in the output, as they came in (Keras's `Normalization`
    makes them `-mean / std`). A padded array has no mask before its `Masking`, so put
    the `Masking` first (after it, it would find no padding: MW017). Integer features
    are cast to the layer's dtype. Mask rule: the mask passes on unchanged.

    `adapt(data)` sets the mean and the population variance of each feature over every
    real step of the data (see `adapt`), never over padding: Keras's `adapt` on a padded
    array counts the padded zeros. Before `adapt` (and without `mean`/`variance`) the
    layer holds mean 0 and variance 1, as Keras's: it passes the values on unchanged.

    Example:
        >>> x = [torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])]  # ragged: 3 steps
        >>> norm = Normalization()
        >>> norm.adapt(x)
        >>> norm.mean.tolist(), norm.variance.tolist(), int(norm.count)
        ([3.0], [2.66...], 3)
        >>> y = norm(Masked.pad(x))
        >>> [round(v, 3) for v in y.values[..., 0].flatten().tolist()], y.lengths.tolist()
        ([-1.225, 0.0, 1.225, 0.0], [2, 1])

    Args:
        axis: -1: a mean and variance per feature (the last axis); None: one mean and
            variance over every value.
        mean: the mean(s) to use instead of `adapt`: a number, or one per feature
            (given with `variance`).
        variance: the variance(s) to use, with `mean`.
        invert: apply the inverse: turn normalized values back into the data's scale.
        name: layer name.
        **keras_args: the arguments of every layer (`maskwise.layers.Layer`).
    Input `(batch, time, ..., features)` or `(batch, features)`; output the same shape.
    Buffers (in `state_dict` and `get_weights`, Keras's layout): `mean` and `variance`
    `(features,)` (`()` for `axis=None`), and `count`, the number of steps `adapt`
    read (Keras keeps it at 0); with `mean`/`variance` given, none (they are in the
    config, as Keras's).
    """

    float_inputs = True
    mean: torch.Tensor
    variance: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        axis: int | None = -1,
        mean: Any = None,
        variance: Any = None,
        invert: bool = False,
        *,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        if axis is not None and axis != -1:
            raise ConfigError(
                format_error(
                    "Normalization keeps a mean and variance per feature (axis=-1) or one "
                    "for all values (axis=None).",
                    expected="axis=-1 or axis=None",
                    received=f"axis={axis!r}",
                    fix="put the features last, (batch, time, features), and use axis=-1.",
                )
            )
        self.axis = axis
        self.given = _given_statistics(mean, variance, axis)
        self.invert = bool(invert)
        if self.given is not None:  # JSON-ready, as Keras's config holds them
            self._config.update(mean=self.given[0].tolist(), variance=self.given[1].tolist())

    def _statistics_shape(self, input_shape: Any) -> tuple[int, ...]:
        return () if self.axis is None else (int(input_shape[-1]),)

    def build(self, input_shape: Any) -> None:
        shape = self._statistics_shape(input_shape)
        dtype = torch.get_default_dtype()
        if self.given is None:
            self.register_buffer("mean", torch.zeros(shape, dtype=dtype))
            self.register_buffer("variance", torch.ones(shape, dtype=dtype))
            self.register_buffer("count", torch.zeros((), dtype=torch.long))
            return
        given = []
        for label, value in zip(("mean", "variance"), self.given, strict=True):
            if value.dim() > len(shape) or (value.dim() == 1 and value.shape != shape):
                raise ShapeError(
                    format_error(
                        f"Normalization {self.name!r}: the {label} given has another size "
                        "than the features.",
                        expected=f"a number, or {shape[0] if shape else 1} values",
                        received=f"{label} of shape {tuple(value.shape)}",
                    )
                )
            given.append(value.to(dtype).expand(shape).clone())
        self.register_buffer("mean", given[0], persistent=False)  # in the config
        self.register_buffer("variance", given[1], persistent=False)

    @torch.no_grad()
    def adapt(
        self,
        data: Any,
        batch_size: int | None = None,
        steps: int | None = None,
        *,
        mask_value: float | None = 0.0,
    ) -> None:
        """Set `mean` and `variance` to each feature's mean and population variance over
        the REAL steps of `data` (computed in float64), and `count` to their number.

        Which steps are real, by the form of `data`:
        - a list of `(time_i, features)` arrays, one per sequence: every step given;
        - a padded array or tensor `(batch, time, features)`: every step but those
          whose features all equal `mask_value` (what `Masking(mask_value)` masks);
        - a `(samples, features)` array: every row;
        - a `Masked`: the steps of its mask; a `SequenceDataset` or a `Loader`: the
          steps its batches hold (each sequence's, up to its length).
        A padded step never counts, so neither how much padding there is nor what it
        holds changes the statistics. As Keras's, `adapt` replaces the statistics.

        Example:
            >>> x = np.zeros((2, 3, 1), "float32"); x[0, :3, 0] = [1, 2, 3]; x[1, 0] = 6
            >>> norm = Normalization()
            >>> norm.adapt(x)  # the 2 padded zeros do not count
            >>> norm.mean.tolist(), int(norm.count)
            ([3.0], 4)

        Args:
            data: the data, in one of the forms above.
            batch_size: sequences (or rows) read at a time (None: 1024); the statistics
                do not depend on it.
            steps: read only the first `steps` batches (None: all).
            mask_value: the padding value of a padded array (None: every step is real),
                as `make_loader`'s and `Masking`'s (NaN matches NaN).
        """
        from ._adapt import Moments, real_rows

        if self.given is not None:
            raise ConfigError(
                format_error(
                    f"Normalization {self.name!r} was given its mean and variance; it "
                    "cannot adapt.",
                    fix="make it without `mean=` and `variance=` to adapt it.",
                )
            )
        moments = Moments()
        for rows in real_rows(data, mask_value, batch_size, steps):
            if not self.built:
                self.maybe_build(Masked(rows.new_zeros((1, 1, *rows.shape[1:]))))
            moments.add(self._columns(rows))
        if moments.count == 0:
            raise ShapeError(
                format_error(
                    f"Normalization {self.name!r}: the data has no real step to adapt on.",
                    received=f"every step padded (all {mask_value})",
                    fix="pass the data with its real steps; `mask_value=None` if the "
                    "padding value is data.",
                )
            )
        if not bool(torch.isfinite(moments.mean).all() & torch.isfinite(moments.variance).all()):
            raise ShapeError(
                format_error(
                    f"Normalization {self.name!r}: the real steps hold NaN or inf.",
                    fix="clean the data; if NaN is the padding, pass `mask_value=np.nan`.",
                )
            )
        self.mean.copy_(moments.mean.reshape(self.mean.shape))
        self.variance.copy_(moments.variance.reshape(self.variance.shape))
        self.count.fill_(moments.count)

    def _columns(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows `(n, ..., features)` as `(m, k)`: m observations of the k statistics."""
        if self.axis is None:
            return rows.reshape(-1, 1)
        features = self.mean.shape[0]
        if rows.dim() < 2 or rows.shape[-1] != features:
            raise ShapeError(
                format_error(
                    f"Normalization {self.name!r} has {features} features.",
                    expected=f"steps of {features} features",
                    received=f"steps shaped {tuple(rows.shape[1:])}",
                )
            )
        return rows.reshape(-1, features)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.axis is not None and values.shape[-1] != self.mean.shape[0]:
            self._columns(values.reshape(-1, values.shape[-1]))  # raises, naming the sizes
        std = torch.sqrt(self.variance).clamp(min=EPSILON)
        out = self.mean + values * std if self.invert else (values - self.mean) / std
        return out if mask is None else fill_padding(out, mask)


def _given_statistics(
    mean: Any, variance: Any, axis: int | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`mean` and `variance` given to `Normalization`, as float64 tensors; both or none."""
    if mean is None and variance is None:
        return None
    if mean is None or variance is None:
        raise ConfigError(
            format_error(
                "Normalization takes `mean` and `variance` together.",
                received=f"mean={mean!r}, variance={variance!r}",
                fix="pass both, or neither and call `adapt(data)`.",
            )
        )
    given = torch.as_tensor(np.asarray(mean, dtype=np.float64))
    spread = torch.as_tensor(np.asarray(variance, dtype=np.float64))
    rank = 0 if axis is None else 1
    if given.shape != spread.shape or given.dim() > rank:
        raise ConfigError(
            format_error(
                "Normalization's `mean` and `variance` must have one shape, with one "
                "value per feature at most.",
                expected="two numbers"
                + ("" if axis is None else ", or two lists of one value per feature"),
                received=f"shapes {tuple(given.shape)} and {tuple(spread.shape)}",
            )
        )
    return given, spread
