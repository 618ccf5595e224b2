"""Activation layers: Softmax (over features per step, over time on the real steps),
ReLU, LeakyReLU, PReLU, ELU: contract, Keras parity, padding invariance, errors."""

import keras
import pytest
import torch
from keras_oracle import assert_parity, build_keras, convert_layer, keras_call

from maskwise import ConfigError, Masked, ShapeError
from maskwise.layers import ELU, LeakyReLU, PReLU, ReLU, Softmax

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    example_input,
    example_mask,
    padding_property_tests,
)

LAYERS = {
    "softmax": lambda: Softmax(),
    "softmax_time": lambda: Softmax(axis=1),
    "softmax_both": lambda: Softmax(axis=[1, 2]),
    "relu": lambda: ReLU(),
    "relu_all": lambda: ReLU(max_value=0.8, negative_slope=0.1, threshold=0.2),
    "leaky_relu": lambda: LeakyReLU(0.2),
    "elu": lambda: ELU(0.5),
    "prelu": lambda: PReLU(alpha_initializer=0.25, shared_axes=[1]),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_activations_keep_the_contract(name, kind):
    check_layer_contract(LAYERS[name], example_input(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_prelu_with_a_slope_per_step_keeps_the_contract(kind):
    check_layer_contract(lambda: PReLU(alpha_initializer=0.5), example_input(kind))


# ---------------------------------------------------------------------- values
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_softmax_over_time_uses_the_real_steps_only(kind):
    x = example_input(kind)
    out = Softmax(axis=1)(x)
    for i in range(3):
        real = x.mask[i]
        expected = torch.softmax(x.values[i, real], dim=0)
        torch.testing.assert_close(out.values[i, real], expected)
        assert not out.values[i, ~real].any()


def test_softmax_over_time_of_a_sequence_without_real_steps_is_zero_not_nan():
    x = Masked(torch.randn(2, 3, 2), torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool))
    out = Softmax(axis=1)(x)
    assert torch.isfinite(out.values).all() and not out.values[1].any()


def test_softmax_over_several_axes_sums_to_one_over_them():
    x = example_input("post")
    out = Softmax(axis=[1, 2])(x)
    torch.testing.assert_close(out.values.sum(dim=(1, 2)), torch.ones(3))
    assert not out.values[~x.mask].any()


def test_relu_follows_keras_formula():
    x = torch.tensor([[[-2.0, 0.1, 0.3, 5.0]]])
    out = ReLU(max_value=1.0, negative_slope=0.5, threshold=0.2)(x).values
    # x > threshold: min(x, max_value); else negative_slope * (x - threshold)
    torch.testing.assert_close(out, torch.tensor([[[-1.1, -0.05, 0.3, 1.0]]]))


# ---------------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize(
    "make_keras",
    [
        lambda: keras.layers.ReLU(),
        lambda: keras.layers.ReLU(max_value=6.0),
        lambda: keras.layers.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.2),
        lambda: keras.layers.ReLU(negative_slope=0.3),
        lambda: keras.layers.LeakyReLU(),
        lambda: keras.layers.ELU(alpha=0.7),
        lambda: keras.layers.PReLU(shared_axes=[1]),
        lambda: keras.layers.PReLU(),
    ],
    ids=["relu", "relu6", "relu_all", "relu_leaky", "leaky", "elu", "prelu_shared", "prelu"],
)
def test_activations_match_keras(make_keras, kind):
    x = example_input(kind)
    keras_layer = build_keras(make_keras(), x)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_softmax_matches_keras_without_a_mask(axis):
    x = example_input("post").values
    keras_layer = keras.layers.Softmax(axis=axis)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_softmax_over_time_matches_keras_given_the_mask_as_its_argument(kind):
    x = example_input(kind)
    theirs = keras.layers.Softmax(axis=1)(x.values.clone(), mask=x.mask[:, :, None])
    ours = Softmax(axis=1)(x)
    torch.testing.assert_close(ours.values, torch.as_tensor(theirs.detach()))


def test_keras_softmax_fails_on_a_masked_sequence_where_maskwise_passes_the_mask():
    x = example_input("post")
    with pytest.raises(ValueError, match="must be broadcastable"):
        keras_call(keras.layers.Softmax(), x)
    out = Softmax()(x)
    assert torch.equal(out.mask, example_mask("post"))
    torch.testing.assert_close(out.values[x.mask], torch.softmax(x.values[x.mask], dim=-1))


# ---------------------------------------------------------------------- padding invariance
(
    test_real_outputs_do_not_depend_on_padding_length_or_content,
    test_a_sequence_alone_equals_itself_in_a_batch,
) = padding_property_tests(LAYERS)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ReLU(max_value=-1.0), r"(?s)ReLU max_value must be a non-negative number.*-1"),
        (lambda: ReLU(negative_slope=-0.1), r"ReLU negative_slope must be a non-negative"),
        (lambda: ReLU(threshold=None), r"(?s)ReLU threshold must be.*None"),
        (lambda: LeakyReLU(-0.3), r"LeakyReLU negative_slope must be a non-negative"),
        (lambda: ELU("one"), r"(?s)ELU alpha must be a number.*'one'"),
        (lambda: Softmax(0), r"(?s)Softmax axis must be one or more axes after the batch.*0"),
        (lambda: Softmax("last"), r"Softmax axis must be"),
        (lambda: PReLU(alpha_initializer="glorot"), r"Unknown initializer 'glorot'"),
        (lambda: PReLU(shared_axes=[0]), r"(?s)PReLU shared_axes must be axes after the batch"),
    ],
)
def test_bad_arguments_are_explained(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_shapes_are_explained():
    x = example_input("post")
    with pytest.raises(ShapeError, match=r"(?s)Softmax 's': axis \[3\] does not name axes.*"):
        Softmax(axis=3, name="s")(x)
    with pytest.raises(ShapeError, match=r"(?s)PReLU 'p': shared axis 3 is not an axis"):
        PReLU(shared_axes=[3], name="p")(x)
    prelu = PReLU(name="q")
    prelu(x)
    longer = Masked.pad([torch.ones(6, 4)])
    with pytest.raises(
        ShapeError,
        match=r"(?s)PReLU 'q' was built for values \(batch, 5, 4\).*\(1, 6, 4\).*shared_axes=\[1\]",
    ):
        prelu(longer)
