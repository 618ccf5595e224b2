"""Normalization layers: `LayerNormalization` (per step) and `BatchNormalization`
(statistics over the real steps of the batch only)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, format_error
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


def _affine_weights(
    features: int, scale: bool, center: bool
) -> tuple[nn.Parameter | None, nn.Parameter | None]:
    """Keras's `gamma` (ones, if `scale`) and `beta` (zeros, if `center`)."""
    gamma = nn.Parameter(torch.ones(features)) if scale else None
    beta = nn.Parameter(torch.zeros(features)) if center else None
    return gamma, beta


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
    Input `(batch, time, ..., features)`; output the same shape.
    """

    float_inputs = True

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: str | None = None,
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
        self.gamma, self.beta = _affine_weights(features, self.scale, self.center)

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if values.numel() == 0:  # no step at all (a time axis of length 0)
            return _affine(values, self)
        variance, mean = torch.var_mean(values, dim=-1, keepdim=True, correction=0)
        return _affine((values - mean) * torch.rsqrt(variance + self.epsilon), self)


def _affine(
    normalized: torch.Tensor, layer: LayerNormalization | BatchNormalization
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
    Input `(batch, time, ..., features)`; output the same shape.
    """

    float_inputs = True
    moving_mean: torch.Tensor
    moving_variance: torch.Tensor

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: str | None = None,
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
        self.gamma, self.beta = _affine_weights(features, self.scale, self.center)
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
        if mask is None:
            real = torch.ones(flat.shape[0], 1, dtype=torch.bool, device=values.device)
        else:
            steps = mask.reshape(mask.shape + (1,) * (values.dim() - 3))
            real = steps.expand(values.shape[:-1]).reshape(-1, 1)
        count = real.sum()
        safe_count = count.clamp(min=1).to(values.dtype)
        mean = flat.sum(dim=0) / safe_count  # padded steps hold zeros (`prepare_values`)
        centered = torch.where(real, flat - mean, torch.zeros_like(flat))
        variance = centered.square().sum(dim=0) / safe_count
        with torch.no_grad():
            update = count > 0
            new_mean = self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            new_var = self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            self.moving_mean.copy_(torch.where(update, new_mean, self.moving_mean))
            self.moving_variance.copy_(torch.where(update, new_var, self.moving_variance))
        return mean, variance
