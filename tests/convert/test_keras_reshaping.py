"""`from_keras` with the reshaping, activation, noise, normalization and merge layers:
the same values as Keras 3 where Keras keeps the mask or there is none, the mask kept
where Keras drops it, and a masked input refused where a layer mixes the time axis."""

import keras
import pytest
import torch
from keras_oracle import assert_same_mask, assert_same_values, keras_call, randomize_weights
from layers.contract import MASK_KINDS, example_mask

from maskwise import Masked, MaskError, from_keras

from .test_keras_model import features

L = keras.layers


def convert(keras_model, seed: int = 0):
    randomize_weights(keras_model, seed)
    return from_keras(keras_model).eval()


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_per_step_layers_convert_with_the_mask_keras_keeps(kind):
    keras_model = keras.Sequential(
        [
            keras.Input((None, 5)),
            L.Masking(0.0),
            L.Dense(6),
            L.LeakyReLU(0.2),
            L.PReLU(shared_axes=[1]),
            L.ELU(0.5),
            L.ReLU(max_value=2.0, negative_slope=0.1),
            L.GaussianNoise(0.3),
            L.GaussianDropout(0.2),
            L.AlphaDropout(0.2),
            L.UnitNormalization(),
        ]
    )
    model = convert(keras_model)
    x = features(kind)
    ours, theirs = model(x), keras_call(keras_model, x)
    assert_same_values(ours, theirs)
    assert_same_mask(ours, theirs)


def test_reshaping_layers_convert_and_match_keras_without_a_mask():
    keras_model = keras.Sequential(
        [
            keras.Input((5, 4)),
            L.UpSampling1D(2),
            L.ZeroPadding1D((1, 1)),
            L.Cropping1D((0, 2)),
            L.Reshape((-1, 2, 2)),
            L.Permute((1, 3, 2)),
            L.Flatten(),
            L.Dense(3),
            L.RepeatVector(4),
            L.GroupNormalization(groups=3),
            L.Softmax(axis=1),
        ]
    )
    model = convert(keras_model)
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    ours, theirs = model(x), keras_call(keras_model, x)
    assert ours.mask is None and theirs.mask is None
    assert_same_values(ours, theirs)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_time_axis_layers_keep_the_mask_keras_drops(kind):
    keras_model = keras.Sequential(
        [keras.Input((None, 5)), L.Masking(0.0), L.UpSampling1D(2), L.ZeroPadding1D((1, 0))]
    )
    model = convert(keras_model)
    x = features(kind)
    ours, theirs = model(x), keras_call(keras_model, x)
    assert theirs.mask is None
    assert_same_values(ours, theirs)
    expected = example_mask(kind).repeat_interleave(2, dim=1)
    assert torch.equal(ours.mask, torch.nn.functional.pad(expected, (1, 0), value=False))


def test_dot_and_minimum_in_a_functional_model():
    queries, keys = keras.Input((None, 4)), keras.Input((6, 4))
    masked = L.Masking(0.0)(queries)
    scores = L.Dot(axes=-1, normalize=True)([masked, keys])
    low = L.Minimum()([scores, L.Dense(6)(masked)])
    keras_model = keras.Model([queries, keys], L.Softmax()(low))
    model = convert(keras_model)
    generator = torch.Generator().manual_seed(1)
    x = [features("pre", count=4), torch.randn(3, 6, 4, generator=generator)]
    ours = model([Masked(v) for v in x])
    theirs = keras_call(keras_model, [Masked(v) for v in x])
    assert theirs.mask is None  # Keras's Dot drops the queries' mask
    assert torch.equal(ours.mask, example_mask("pre"))
    assert_same_values(ours, theirs)


def test_a_converted_flatten_refuses_a_masked_input_keras_would_flatten_silently():
    keras_model = keras.Sequential(
        [keras.Input((5, 5)), L.Masking(0.0), L.Flatten(name="flat"), L.Dense(2)]
    )
    model = convert(keras_model)
    x = features("post")
    assert keras_call(keras_model, x).mask is None  # Keras: the padding counts as data
    with pytest.raises(
        MaskError, match=r"(?s)Flatten layer 'flat' mixes the time axis.*GlobalAveragePooling1D"
    ):
        model(x)


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: keras.layers.Dropout(0.3, seed=seed),
        lambda seed: keras.layers.SpatialDropout1D(0.3, seed=seed),
        lambda seed: keras.layers.GaussianNoise(0.5, seed=seed),
        lambda seed: keras.layers.GaussianDropout(0.3, seed=seed),
        lambda seed: keras.layers.AlphaDropout(0.3, seed=seed),
    ],
    ids=["Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout"],
)
def test_noise_layers_carry_their_seed(make):
    for seed in (5, None):
        model = from_keras(keras.Sequential([keras.Input((None, 3)), make(seed)]))
        assert model.layers[0].get_config()["seed"] == seed
