"""LayerNormalization and BatchNormalization: contract, Keras parity (BatchNormalization
in training uses the mask for its moments in Keras 3 too), real-step statistics."""

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, build_keras, convert_layer

from maskwise import ConfigError, Masked
from maskwise.layers import BatchNormalization, LayerNormalization

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
)

LAYERS = {
    "layer_norm": lambda: LayerNormalization(),
    "layer_norm_plain": lambda: LayerNormalization(center=False, scale=False, epsilon=1e-5),
    "batch_norm": lambda: BatchNormalization(momentum=0.9),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_normalization_keeps_the_contract(name, kind):
    check_layer_contract(LAYERS[name], example_input(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    "make_keras",
    [
        lambda: keras.layers.LayerNormalization(),
        lambda: keras.layers.LayerNormalization(center=False, epsilon=1e-5),
        lambda: keras.layers.BatchNormalization(momentum=0.9),
        lambda: keras.layers.BatchNormalization(scale=False, epsilon=1e-2),
    ],
    ids=["ln", "ln_nocenter", "bn", "bn_noscale"],
)
def test_normalization_matches_keras(make_keras, training, kind):
    x = example_input(kind).with_values(3 * example_input(kind).values + 1)
    keras_layer = build_keras(make_keras(), x)
    ours = convert_layer(keras_layer)
    assert_parity(keras_layer, ours, x, training=training)
    if isinstance(ours, BatchNormalization):  # moving statistics updated alike
        for name in ("moving_mean", "moving_variance"):
            expected = torch.as_tensor(getattr(keras_layer, name).numpy())
            torch.testing.assert_close(getattr(ours, name), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_batch_norm_statistics_are_those_of_the_real_steps(kind):
    x = example_input(kind, features=3)
    x = x.with_values(5 * x.values + 2)
    layer = BatchNormalization(momentum=0.75, epsilon=1e-3).train()
    out = layer(refill := x.with_values(torch.where(x.mask[..., None], x.values, 1e4)))
    real = refill.values[refill.mask]  # (real steps, features), padding left out by hand
    variance, mean = torch.var_mean(real, dim=0, correction=0)
    expected = (real - mean) / torch.sqrt(variance + 1e-3)
    torch.testing.assert_close(out.values[out.mask], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.moving_mean, 0.25 * mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layer.moving_variance, 0.75 + 0.25 * variance, atol=1e-6, rtol=1e-5)


def test_batch_norm_on_four_axes_uses_every_real_position():
    x = Masked.from_lengths(torch.randn(2, 4, 3, 2), [4, 1])
    out = BatchNormalization().train()(x)
    real = x.values[x.mask].reshape(-1, 2)
    variance, mean = torch.var_mean(real, dim=0, correction=0)
    expected = (real - mean) / torch.sqrt(variance + 1e-3)
    torch.testing.assert_close(out.values[x.mask].reshape(-1, 2), expected, atol=1e-5, rtol=1e-5)


def test_batch_norm_without_real_steps_keeps_moving_statistics_and_stays_finite():
    layer = BatchNormalization(momentum=0.5)
    layer(example_input("post"))  # build
    layer.moving_mean.fill_(0.3)
    layer.moving_variance.fill_(1.0)
    out = layer.train()(Masked(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)))
    assert torch.isfinite(out.values).all()
    assert layer.moving_mean.eq(0.3).all() and layer.moving_variance.eq(1.0).all()


def test_batch_norm_in_evaluation_uses_moving_statistics():
    layer = BatchNormalization()
    x = example_input("pre")
    layer(x)
    layer.moving_mean.fill_(1.0)
    layer.moving_variance.fill_(4.0)
    out = layer.eval()(x)
    expected = (x.values - 1.0) / torch.sqrt(torch.tensor(4.0 + 1e-3))
    torch.testing.assert_close(out.values[x.mask], expected[x.mask], atol=1e-6, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(LAYERS)),
    steps=st.integers(1, 6),
    fill=st.sampled_from(["zeros", "random", "nan"]),
    training=st.booleans(),
)
def test_real_outputs_do_not_depend_on_padding_length_or_content(name, steps, fill, training):
    check_padding_length_invariance(LAYERS[name](), example_input("post"), steps, fill, training)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LayerNormalization(axis=1), r"feature axis only.*\n.*axis=-1"),
        (lambda: BatchNormalization(axis=2), "feature axis only"),
        (lambda: BatchNormalization(momentum=1.5), r"momentum must be in \[0, 1\].*\n.*\n.*0\.9"),
    ],
)
def test_bad_arguments_are_explained(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_keras_options_maskwise_lacks_are_refused():
    rms = build_keras(keras.layers.LayerNormalization(rms_scaling=True), example_input("post"))
    with pytest.raises(ConfigError, match="rms_scaling"):
        convert_layer(rms)
    renorm = build_keras(keras.layers.BatchNormalization(renorm=True), example_input("post"))
    with pytest.raises(ConfigError, match="renorm"):
        convert_layer(renorm)
    first_axis = build_keras(keras.layers.BatchNormalization(axis=1), example_input("post"))
    with pytest.raises(ConfigError, match=r"axis=1"):
        convert_layer(first_axis)
