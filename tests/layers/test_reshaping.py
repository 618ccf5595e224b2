"""Reshaping layers: Cropping1D, UpSampling1D, ZeroPadding1D (the mask follows the
steps), Reshape, Permute, Flatten (the mask passes while the time axis stays, a masked
input is refused where the time axis is mixed unless a rule is stated), RepeatVector.
Contract, Keras parity, padding invariance, errors."""

import keras
import pytest
import torch
from keras_oracle import assert_parity, assert_same_values, build_keras, convert_layer, keras_call

from maskwise import ConfigError, Masked, MaskError, ShapeError
from maskwise.layers import (
    Cropping1D,
    Flatten,
    GlobalAveragePooling1D,
    Permute,
    RepeatVector,
    Reshape,
    UpSampling1D,
    ZeroPadding1D,
)

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    example_input,
    example_mask,
    padding_property_tests,
)


def _pairs(x: Masked) -> Masked:
    """(3, 4, 4) values: the first 4 steps of `x`, for reshapes that pair steps."""
    return Masked(x.values[:, :4], x.mask[:, :4])


# ---------------------------------------------------------------------- contract
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("cropping", [(1, 1), (0, 2), (2, 0), 1])
def test_cropping_keeps_the_contract(cropping, kind):
    start, end = (cropping, cropping) if isinstance(cropping, int) else cropping
    check_layer_contract(
        lambda: Cropping1D(cropping),
        example_input(kind),
        expected_shape=(3, 5 - start - end, 4),
        expected_mask=example_mask(kind)[:, start : 5 - end],
    )


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_up_sampling_repeats_the_mask_with_the_steps(kind):
    x = example_input(kind)
    out = check_layer_contract(
        lambda: UpSampling1D(3),
        x,
        expected_shape=(3, 15, 4),
        expected_mask=example_mask(kind).repeat_interleave(3, dim=1),
    )
    torch.testing.assert_close(out.values[:, 3:6], x.values[:, 1:2].expand(3, 3, 4))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_zero_padding_adds_masked_steps(kind):
    x = example_input(kind)
    false = torch.zeros(3, 1, dtype=torch.bool)
    out = check_layer_contract(
        lambda: ZeroPadding1D((1, 2)),
        x,
        expected_shape=(3, 8, 4),
        expected_mask=torch.cat([false, example_mask(kind), false, false], dim=1),
    )
    assert not out.values[:, [0, 6, 7]].any()
    torch.testing.assert_close(out.values[:, 1:6], x.values, atol=0.0, rtol=0.0)


def test_zero_padding_without_a_mask_gives_none_as_keras():
    x = torch.randn(2, 3, 4)
    keras_layer = keras.layers.ZeroPadding1D(2)
    out = assert_parity(keras_layer, convert_layer(keras_layer), x)
    assert out.mask is None and out.values.shape == (2, 7, 4)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_reshapes_of_the_feature_axes_pass_the_mask(kind):
    x = example_input(kind)
    check_layer_contract(lambda: Reshape((-1, 2, 2)), x, expected_shape=(3, 5, 2, 2))
    check_layer_contract(lambda: Reshape((5, 4, 1)), x, expected_shape=(3, 5, 4, 1))
    x4 = Masked(x.values.reshape(3, 5, 2, 2), x.mask)
    out = check_layer_contract(lambda: Permute((1, 3, 2)), x4, expected_shape=(3, 5, 2, 2))
    torch.testing.assert_close(out.values, x4.values.transpose(2, 3), atol=0.0, rtol=0.0)
    tokens = Masked(x.values[..., 0], x.mask)  # (batch, time): no feature axis to mix in
    check_layer_contract(Flatten, tokens, expected_shape=(3, 5))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_mixing_reshapes_with_a_stated_rule_keep_the_contract(kind):
    x = example_input(kind)
    flat = check_layer_contract(
        lambda: Flatten(mask="drop"), x, expected_shape=(3, 20), expected_mask=None
    )
    torch.testing.assert_close(flat.values, x.values.reshape(3, 20), atol=0.0, rtol=0.0)
    swapped = check_layer_contract(
        lambda: Permute((2, 1), mask="drop"), x, expected_shape=(3, 4, 5), expected_mask=None
    )
    torch.testing.assert_close(swapped.values, x.values.transpose(1, 2), atol=0.0, rtol=0.0)
    # two steps become one: real when both are (a callable rule, as with Lambda)
    pairs = _pairs(x)
    check_layer_contract(
        lambda: Reshape((2, 8), mask=lambda values, mask: mask[:, ::2] & mask[:, 1::2]),
        pairs,
        expected_shape=(3, 2, 8),
        expected_mask=pairs.mask[:, ::2] & pairs.mask[:, 1::2],
        json_config=False,
    )


def test_repeat_vector_makes_a_time_axis_without_a_mask():
    x = Masked(torch.randn(3, 4))
    out = check_layer_contract(lambda: RepeatVector(5), x, expected_shape=(3, 5, 4))
    assert out.mask is None
    torch.testing.assert_close(out.values, x.values[:, None].expand(3, 5, 4))


def test_repeat_vector_after_pooling_a_masked_sequence():
    x = example_input("post")
    out = RepeatVector(2)(GlobalAveragePooling1D()(x))
    assert out.mask is None
    expected = x.values[1, :3].mean(dim=0)
    torch.testing.assert_close(out.values[1], expected.expand(2, 4))


# ---------------------------------------------------------------------- Keras parity
UNMASKED_PARITY = {
    "up_sampling": (lambda: keras.layers.UpSampling1D(3), (2, 5, 4)),
    "zero_padding": (lambda: keras.layers.ZeroPadding1D((2, 1)), (2, 5, 4)),
    "reshape": (lambda: keras.layers.Reshape((10, 2)), (2, 5, 4)),
    "reshape_inferred": (lambda: keras.layers.Reshape((-1, 2, 2)), (2, 5, 4)),
    "permute": (lambda: keras.layers.Permute((2, 1)), (2, 5, 4)),
    "permute_3": (lambda: keras.layers.Permute((3, 1, 2)), (2, 5, 4, 3)),
    "flatten": (lambda: keras.layers.Flatten(), (2, 5, 4)),
    "flatten_2d": (lambda: keras.layers.Flatten(), (2, 5)),
    "repeat_vector": (lambda: keras.layers.RepeatVector(3), (2, 4)),
    "cropping": (lambda: keras.layers.Cropping1D((1, 2)), (2, 5, 4)),
}


@pytest.mark.parametrize("name", sorted(UNMASKED_PARITY))
def test_unmasked_inputs_reshape_as_keras(name):
    make, shape = UNMASKED_PARITY[name]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    keras_layer = build_keras(make(), x)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize(
    "make_keras, mask_rule",
    [
        (lambda: keras.layers.Cropping1D((1, 2)), lambda m: m[:, 1:3]),
        (lambda: keras.layers.UpSampling1D(2), lambda m: m.repeat_interleave(2, dim=1)),
        (
            lambda: keras.layers.ZeroPadding1D((2, 1)),
            lambda m: torch.nn.functional.pad(m, (2, 1), value=False),
        ),
        (lambda: keras.layers.Reshape((5, 2, 2)), lambda m: m),
    ],
    ids=["cropping", "up_sampling", "zero_padding", "reshape"],
)
def test_masked_values_match_keras_and_the_mask_follows_the_steps(make_keras, mask_rule, kind):
    # Keras 3 drops the mask at each of these layers; maskwise keeps it with the steps.
    keras_layer = make_keras()
    x = example_input(kind)
    theirs = keras_call(keras_layer, x)
    assert theirs.mask is None
    ours = convert_layer(keras_layer)(x)
    assert_same_values(ours, theirs)
    assert torch.equal(ours.mask, mask_rule(example_mask(kind)))


# ---------------------------------------------------------------------- padding invariance
LAYERS = {
    "cropping": lambda: Cropping1D((1, 0)),
    "up_sampling": lambda: UpSampling1D(2),
    "zero_padding": lambda: ZeroPadding1D((2, 1)),
    "reshape": lambda: Reshape((-1, 2, 2)),
    "permute": lambda: Permute((1, 2)),
}


(
    test_real_outputs_do_not_depend_on_padding_length_or_content,
    test_a_sequence_alone_equals_itself_in_a_batch,
) = padding_property_tests(LAYERS, min_length=2)


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: Flatten(name="flat"), (3, 5, 4)),
        (lambda: Reshape((20,), name="flat"), (3, 5, 4)),
        (lambda: Reshape((10, 2), name="flat"), (3, 5, 4)),
        (lambda: Permute((2, 1), name="flat"), (3, 5, 4)),
    ],
    ids=["flatten", "reshape_flat", "reshape_split", "permute"],
)
def test_mixing_the_time_axis_of_a_masked_input_is_refused_with_the_fix(make, shape):
    layer = make()
    kind = type(layer).__name__
    x = example_input("post")
    values = x.values.reshape(shape)
    with pytest.raises(
        MaskError,
        match=rf"(?s){kind} layer 'flat' mixes the time axis of a masked input.*padding "
        r"would count as data.*received: values \(3, 5, 4\) with a mask.*"
        r"GlobalAveragePooling1D\(\).*mask='drop'",
    ):
        layer(Masked(values, x.mask))
    # the same values without a mask: as Keras
    assert layer(values).mask is None


def test_the_refusal_says_how_to_keep_the_time_axis():
    x = example_input("post")
    with pytest.raises(MaskError, match=r"expected: a target_shape whose first entry is the time"):
        Reshape((20,))(x)
    with pytest.raises(MaskError, match=r"expected: dims starting with 1"):
        Permute((2, 1))(x)
    with pytest.raises(MaskError, match=r"expected: values \(batch, time\) without feature"):
        Flatten()(x)


def test_a_dropped_mask_is_shown_as_consumed():
    assert Flatten(mask="drop").consumes_mask
    assert not Flatten().consumes_mask
    assert not Reshape((2, 8), mask=lambda values, mask: mask[:, ::2]).consumes_mask


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("cropping", [(1, 2, 3), (-1, 0), "1", (1.5, 0)])
def test_bad_cropping_is_explained(cropping):
    with pytest.raises(ConfigError, match="Cropping1D cropping must be two non-negative integers"):
        Cropping1D(cropping)


def test_cropping_every_step_is_explained():
    with pytest.raises(ShapeError, match=r"would remove every step.*\n.*\(3, 2\)"):
        Cropping1D((3, 2))(example_input("post"))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: UpSampling1D(0), ConfigError, r"UpSampling1D size must be an integer of at least"),
        (lambda: ZeroPadding1D((1, -1)), ConfigError, r"ZeroPadding1D padding must be two non-"),
        (
            lambda: ZeroPadding1D(data_format="channels_first"),
            ConfigError,
            r"ZeroPadding1D supports data_format='channels_last' only",
        ),
        (lambda: Flatten("channels_first"), ConfigError, r"Flatten supports data_format="),
        (lambda: RepeatVector(0), ConfigError, r"RepeatVector n must be an integer of at least 1"),
        (lambda: Reshape((0, 4)), ConfigError, r"(?s)Reshape target_shape must be.*\(0, 4\)"),
        (lambda: Reshape((-1, -1)), ConfigError, r"(?s)Reshape target_shape.*\(-1, -1\)"),
        (lambda: Reshape(()), ConfigError, r"Reshape target_shape must be positive"),
        (lambda: Permute((1, 1)), ConfigError, r"(?s)Permute dims must be a permutation.*\(1, 1\)"),
        (lambda: Permute((0, 1)), ConfigError, r"Permute dims must be a permutation"),
        (lambda: Reshape((5, 4), mask="keep"), ConfigError, r"(?s)Unknown Reshape mask rule.*keep"),
    ],
)
def test_bad_arguments_are_explained(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_shapes_are_explained():
    x = example_input("post")
    with pytest.raises(ShapeError, match=r"(?s)cannot reshape a sequence of \(5, 4\).*\(3, 3\)"):
        Reshape((3, 3))(x)
    with pytest.raises(ShapeError, match=r"(?s)Permute 'p' has dims \(1, 3, 2\).*\(3, 5, 4\)"):
        Permute((1, 3, 2), name="p")(x)
    with pytest.raises(ShapeError, match=r"(?s)UpSampling1D 'up' needs 3-D values.*\(3, 5\)"):
        UpSampling1D(name="up")(torch.zeros(3, 5))
    with pytest.raises(ShapeError, match=r"(?s)ZeroPadding1D 'zp' needs 3-D values"):
        ZeroPadding1D(name="zp")(torch.zeros(3, 5))
    with pytest.raises(
        ShapeError,
        match=r"(?s)RepeatVector 'rv' repeats one vector per sequence.*\(3, 5, 4\) with a mask"
        r".*GlobalAveragePooling1D",
    ):
        RepeatVector(2, name="rv")(x)
