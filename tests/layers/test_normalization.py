"""LayerNormalization, BatchNormalization, UnitNormalization, GroupNormalization:
contract, Keras parity (BatchNormalization in training uses the mask for its moments in
Keras 3 too; GroupNormalization is compared per sequence, as Keras counts the padding),
real-step statistics."""

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, build_keras, convert_layer, keras_call

from maskwise import ConfigError, Masked, ShapeError
from maskwise.layers import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)

from .contract import (
    MASK_KINDS,
    check_alone_equals_in_batch,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
)

LAYERS = {
    "layer_norm": lambda: LayerNormalization(),
    "layer_norm_plain": lambda: LayerNormalization(center=False, scale=False, epsilon=1e-5),
    "batch_norm": lambda: BatchNormalization(momentum=0.9),
    "unit_norm": lambda: UnitNormalization(),
    "unit_norm_time": lambda: UnitNormalization(axis=1),
    "group_norm": lambda: GroupNormalization(groups=2),
    "group_norm_instance": lambda: GroupNormalization(groups=-1, center=False, epsilon=1e-5),
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


# ---------------------------------------------------------------------- Unit, Group
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_unit_normalization_matches_keras(axis, kind):
    # padded steps are zeros in both, so a norm over time is over the real steps
    keras_layer = keras.layers.UnitNormalization(axis=axis)
    ours = assert_parity(keras_layer, convert_layer(keras_layer), example_input(kind))
    if axis == -1:
        norms = ours.values[ours.mask].norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_group_norm_statistics_are_those_of_each_sequence_real_steps(kind):
    x = example_input(kind).with_values(3 * example_input(kind).values + 1)
    out = GroupNormalization(groups=2, epsilon=1e-5)(x)
    for i in range(3):
        real = x.values[i][x.mask[i]]  # (steps, 4): groups are channels 0-1 and 2-3
        for group in (slice(0, 2), slice(2, 4)):
            values = real[:, group]
            expected = (values - values.mean()) / torch.sqrt(values.var(correction=0) + 1e-5)
            torch.testing.assert_close(out.values[i][x.mask[i]][:, group], expected)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    "make_keras",
    [
        lambda: keras.layers.GroupNormalization(groups=2),
        lambda: keras.layers.GroupNormalization(groups=-1, scale=False, epsilon=1e-5),
        lambda: keras.layers.GroupNormalization(groups=1, center=False),
    ],
    ids=["groups", "instance", "one_group"],
)
def test_group_norm_matches_keras_on_each_sequence_alone(make_keras, training):
    x = example_input("post").with_values(2 * example_input("post").values - 1)
    keras_layer = build_keras(make_keras(), x)
    ours = convert_layer(keras_layer)
    out = ours.train(training)(x)
    for i, length in enumerate(x.lengths.tolist()):
        alone = Masked(x.values[i : i + 1, :length])
        theirs = keras_call(keras_layer, alone, training=training)
        torch.testing.assert_close(out.values[i, :length], theirs.values[0], atol=1e-5, rtol=1e-5)
    # Keras counts the padding of the padded batch: the second sequence differs there
    padded = keras_call(keras_layer, x, training=training)
    assert not torch.allclose(padded.values[1, :3], out.values[1, :3], atol=1e-3)


def test_group_norm_without_real_steps_stays_finite():
    x = Masked(torch.randn(2, 3, 4), torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool))
    out = GroupNormalization(groups=2)(x)
    assert torch.isfinite(out.values).all()


@settings(max_examples=25, deadline=None)
@given(
    # BatchNormalization's statistics are over the batch: a batch of one differs
    name=st.sampled_from(sorted(set(LAYERS) - {"batch_norm"})),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    fill=st.sampled_from(["zeros", "random", "nan"]),
    seed=st.integers(0, 1000),
)
def test_a_sequence_alone_equals_itself_in_a_batch(name, lengths, fill, seed):
    generator = torch.Generator().manual_seed(seed)
    sequences = [3 * torch.randn(n, 4, generator=generator) + 1 for n in lengths]
    check_alone_equals_in_batch(LAYERS[name](), sequences, fill)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GroupNormalization(groups=0), r"(?s)groups must be a positive integer, or -1.*0"),
        (lambda: GroupNormalization(groups="2"), r"groups must be a positive integer"),
        (lambda: GroupNormalization(axis=1), r"GroupNormalization normalizes the feature axis"),
        (lambda: UnitNormalization(axis=0), r"(?s)UnitNormalization axis must be one or more"),
    ],
)
def test_unit_and_group_bad_arguments_are_explained(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_groups_that_do_not_divide_the_channels_are_explained():
    with pytest.raises(ShapeError, match=r"(?s)'gn': 3 groups do not divide 4 channels.*divisors"):
        GroupNormalization(groups=3, name="gn")(example_input("post"))
