"""GlobalAveragePooling1D, GlobalMaxPooling1D (over real steps only): contract, Keras
parity, fully padded rows, errors."""

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, convert_layer, keras_call

from maskwise import ConfigError, Masked, ShapeError
from maskwise.layers import GlobalAveragePooling1D, GlobalMaxPooling1D

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
)

POOLS = {"average": GlobalAveragePooling1D, "max": GlobalMaxPooling1D}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(POOLS))
def test_pooling_keeps_the_contract(name, kind):
    check_layer_contract(
        POOLS[name], example_input(kind), expected_shape=(3, 4), expected_mask=None
    )


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_average_pooling_matches_keras(kind):
    keras_layer = keras.layers.GlobalAveragePooling1D()
    x = example_input(kind)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_max_pooling_matches_keras_on_each_sequence_real_steps(kind):
    # Keras 3's GlobalMaxPooling1D ignores the mask (padding can win the max), so the
    # oracle is Keras on each sequence's real steps alone.
    keras_layer = keras.layers.GlobalMaxPooling1D()
    x = example_input(kind).with_values(example_input(kind).values - 10)  # padding 0 > all
    ours = convert_layer(keras_layer)(x)
    for row, steps in enumerate(x.unpad()):
        theirs = keras_call(keras_layer, Masked(steps.unsqueeze(0)))
        torch.testing.assert_close(ours.values[row], theirs.values[0], atol=1e-6, rtol=1e-6)
    assert_parity(keras_layer, ours_layer := convert_layer(keras_layer), x.with_mask(None))
    assert ours_layer(x).mask is None


@pytest.mark.parametrize("name", sorted(POOLS))
def test_fully_padded_rows_pool_to_zero(name):
    x = Masked(torch.randn(2, 4, 3), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
    x = x.with_values(torch.where(x.mask[..., None], x.values, float("nan")))
    out = POOLS[name]()(x)
    assert out.values[1].eq(0).all()
    assert torch.isfinite(out.values).all()


def test_max_pooling_of_real_steps_that_are_all_minus_inf_is_minus_inf():
    """-inf is a valid maximum; a finite filler (finfo.min) used to win over it."""
    x = Masked.pad([torch.full((1, 1), float("-inf")), torch.tensor([[1.0], [2.0]])])
    assert GlobalMaxPooling1D()(x).values[:, 0].tolist() == [float("-inf"), 2.0]
    empty = Masked(torch.full((1, 3, 1), float("-inf")), torch.zeros(1, 3, dtype=torch.bool))
    assert GlobalMaxPooling1D()(empty).values.tolist() == [[0.0]]  # no real step: 0


def test_pooling_integer_values():
    x = Masked.pad([torch.tensor([[-3], [-5]]), torch.tensor([[-7]])])  # padding 0 would win
    maximum = GlobalMaxPooling1D()(x).values
    assert maximum.dtype == torch.int64 and maximum[:, 0].tolist() == [-3, -7]
    assert GlobalAveragePooling1D()(x).values[:, 0].tolist() == [-4.0, -7.0]


def test_max_pooling_boolean_values_is_any_over_real_steps():
    values = torch.tensor([[[False], [True]], [[False], [False]]])
    x = Masked(values, torch.tensor([[True, False], [True, True]]))
    maximum = GlobalMaxPooling1D()(x).values
    assert maximum.dtype == torch.bool and maximum[:, 0].tolist() == [False, False]


def test_keras_average_pooling_gives_nan_for_a_fully_padded_row():
    x = Masked(torch.randn(2, 4, 3), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
    theirs = keras_call(keras.layers.GlobalAveragePooling1D(), x)
    assert torch.isnan(theirs.values[1]).all()  # the difference GlobalAveragePooling1D documents


def test_pooling_without_mask_uses_every_step():
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(GlobalAveragePooling1D()(x).values, x.mean(dim=1))
    torch.testing.assert_close(GlobalMaxPooling1D()(x).values, x.amax(dim=1))


@settings(max_examples=25, deadline=None)
@given(
    layer=st.sampled_from([GlobalAveragePooling1D, GlobalMaxPooling1D]),
    steps=st.integers(1, 6),
    fill=st.sampled_from(["zeros", "random", "nan"]),
)
def test_real_outputs_do_not_depend_on_padding_length_or_content(layer, steps, fill):
    for kind in MASK_KINDS:
        check_padding_length_invariance(layer(), example_input(kind), steps, fill)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", sorted(POOLS))
def test_pooling_needs_a_feature_axis(name):
    with pytest.raises(ShapeError, match=r"feature axis.*\n.*\n.*\(2, 5\).*\n.*unsqueeze"):
        POOLS[name]()(torch.zeros(2, 5))


def test_keras_pooling_options_maskwise_lacks_are_refused():
    with pytest.raises(ConfigError, match="keepdims"):
        convert_layer(keras.layers.GlobalAveragePooling1D(keepdims=True))
    with pytest.raises(ConfigError, match="channels_first"):
        convert_layer(keras.layers.GlobalMaxPooling1D(data_format="channels_first"))
