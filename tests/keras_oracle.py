"""Keras 3 as the test oracle: run Keras layers on the same values and masks as
maskwise, randomize their weights, convert them, and compare.

Keras runs on the torch backend (set in `tests/conftest.py`), so a Keras tensor is a
torch tensor and a Keras mask is its `_keras_mask` attribute. Usage:

    keras_layer = build_keras(keras.layers.Dense(3), x)       # built, random weights
    ours = convert_layer(keras_layer)                        # maskwise, same weights
    assert_parity(keras_layer, ours, x)                      # values and mask agree
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from typing import Any

import keras
import numpy as np
import torch
from keras.src import backend as keras_backend

import maskwise.convert.core  # noqa: F401  (registers the converters)
from maskwise import Masked
from maskwise.convert.registry import convert_layer  # noqa: F401
from maskwise.masked import as_masked

Inputs = Masked | torch.Tensor | list[Masked]
ATOL = 1e-5


def to_keras(x: Masked | torch.Tensor) -> torch.Tensor:
    """A fresh tensor with `x`'s values and, as Keras expects, its mask attached."""
    x = as_masked(x)
    values = x.values.detach().clone()
    if x.mask is not None:
        keras_backend.set_keras_mask(values, x.mask.clone())
    return values


def keras_call(keras_layer: Any, inputs: Inputs, training: bool = False) -> Masked:
    """Run a Keras layer (or model) on maskwise inputs; its output and output mask."""
    args: Any = [to_keras(x) for x in inputs] if isinstance(inputs, list) else to_keras(inputs)
    out = keras_layer(args, training=training)
    values = torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(out)))
    mask = keras_backend.get_keras_mask(out)
    return Masked(values, None if mask is None else torch.as_tensor(mask).bool())


def randomize_weights(keras_layer: Any, seed: int = 0) -> None:
    """Give every Keras weight random values (positive for variances), so that a copy
    that mixes two of them, or forgets one, shows."""
    rng = np.random.default_rng(seed)
    for weight in keras_layer.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            weight.assign(rng.normal(0.0, 0.5, shape).astype("float32"))


def build_keras(keras_layer: Any, inputs: Inputs, seed: int = 0) -> Any:
    """Build `keras_layer` by calling it once on `inputs`, then randomize its weights."""
    keras_call(keras_layer, inputs)
    randomize_weights(keras_layer, seed)
    return keras_layer


def real_values(out: Masked) -> torch.Tensor:
    """The values at real steps (all values when there is no mask), for comparisons."""
    return out.values if out.mask is None else out.values[out.mask]


def assert_same_values(ours: Masked, theirs: Masked, atol: float = ATOL) -> None:
    """Equal shapes, and equal values at the real steps of `ours`."""
    assert ours.values.shape == theirs.values.shape
    mask = ours.mask
    expected = theirs.values if mask is None else theirs.values[mask]
    torch.testing.assert_close(real_values(ours), expected, atol=atol, rtol=1e-5)


def assert_same_mask(ours: Masked, theirs: Masked) -> None:
    if theirs.mask is None:
        assert ours.mask is None, "Keras gives no mask here, maskwise does"
    else:
        assert ours.mask is not None, "Keras gives a mask here, maskwise does not"
        assert torch.equal(ours.mask, theirs.mask)


def assert_parity(
    keras_layer: Any,
    layer: torch.nn.Module,
    inputs: Inputs,
    training: bool = False,
    check_mask: bool = True,
    atol: float = ATOL,
) -> Masked:
    """Run both on the same inputs; assert same values (at real steps) and same mask.

    Returns maskwise's output for further checks.
    """
    theirs = keras_call(keras_layer, inputs, training=training)
    layer.train(training)
    ours = layer(inputs)
    assert_same_values(ours, theirs, atol=atol)
    if check_mask:
        assert_same_mask(ours, theirs)
    return ours
