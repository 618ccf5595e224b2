"""Merge layers: a step masked in any input is masked in the output (seed 003); `Dot`
has its own rule (tested last).

Keras 3 merges masks with OR instead (a step real in any input is real), so its
values are compared everywhere and its masks where both inputs share one mask; the
AND rule is checked by hand, and the difference is shown."""

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import (
    assert_parity,
    assert_same_values,
    convert_layer,
    keras_call,
    randomize_weights,
)

from maskwise import ConfigError, Masked, MaskError, MaskwiseTypeError, ShapeError, from_keras
from maskwise.layers import (
    Add,
    Average,
    Concatenate,
    Dot,
    Embedding,
    Layer,
    Masking,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)

from .contract import (
    MASK_KINDS,
    append_padding,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
    example_mask,
)

MERGES = {
    "concatenate": (Concatenate, 8),
    "add": (Add, 4),
    "subtract": (Subtract, 4),
    "multiply": (Multiply, 4),
    "average": (Average, 4),
    "maximum": (Maximum, 4),
    "minimum": (Minimum, 4),
}
KERAS = {
    "concatenate": keras.layers.Concatenate,
    "add": keras.layers.Add,
    "subtract": keras.layers.Subtract,
    "multiply": keras.layers.Multiply,
    "average": keras.layers.Average,
    "maximum": keras.layers.Maximum,
    "minimum": keras.layers.Minimum,
}


def two_inputs(kind: str, other: str) -> list[Masked]:
    return [example_input(kind, seed=1), example_input(other, seed=2)]


@pytest.mark.parametrize(
    ("kind", "other"), [(k, k) for k in MASK_KINDS] + [("post", "pre"), ("pre", "noncontiguous")]
)
@pytest.mark.parametrize("name", sorted(MERGES))
def test_merges_keep_the_contract_and_and_the_masks(name, kind, other):
    make, features = MERGES[name]
    out = check_layer_contract(make, two_inputs(kind, other), expected_shape=(3, 5, features))
    assert torch.equal(out.mask, example_mask(kind) & example_mask(other))


def test_an_input_without_mask_counts_as_all_real():
    a, b = example_input("pre"), example_input("post").with_mask(None)
    assert torch.equal(Add()([a, b]).mask, a.mask)
    assert Add()([a.values, b.values]).mask is None


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(MERGES))
def test_merges_match_keras(name, kind):
    keras_layer = KERAS[name]()
    x = [example_input(kind, seed=1), example_input(kind, seed=2)]
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("name", sorted(MERGES))
def test_keras3_ors_different_masks_where_maskwise_ands_them(name):
    x = two_inputs("post", "pre")
    keras_layer = KERAS[name]()
    theirs = keras_call(keras_layer, x)
    ours = convert_layer(keras_layer)(x)
    assert_same_values(ours, theirs)  # at the steps real in both inputs
    assert torch.equal(theirs.mask, example_mask("post") | example_mask("pre"))
    assert torch.equal(ours.mask, example_mask("post") & example_mask("pre"))


def test_three_inputs_and_feature_axis_concatenation():
    a, b, c = (example_input(k, features=2, seed=i) for i, k in enumerate(MASK_KINDS))
    out = Concatenate()([a, b, c])
    torch.testing.assert_close(out.values, torch.cat([a.values, b.values, c.values], -1))
    assert torch.equal(out.mask, a.mask & b.mask & c.mask)
    summed = Add()([a, b, c])
    torch.testing.assert_close(summed.values, a.values + b.values + c.values)
    four = [Masked(torch.randn(3, 5, 2, 3), a.mask), Masked(torch.randn(3, 5, 4, 3), b.mask)]
    assert Concatenate(axis=2)(four).values.shape == (3, 5, 6, 3)


def test_explicit_masks_replace_the_inputs_own():
    a, b = example_input("post"), example_input("pre")
    out = Add()([a.values, b.values], mask=[a.mask, None])
    assert torch.equal(out.mask, a.mask)


def test_seed003_numeric_and_embedded_inputs_concatenate_with_both_masks():
    # Masking(0) on numeric features, Embedding(mask_zero=True) on a category, then
    # Concatenate: steps [0, 2, 4] of 5 padded in the numbers, step 3 in the category.
    numbers = torch.randn(1, 5, 3)
    numbers[:, [0, 2, 4]] = 0.0
    categories = torch.tensor([[4, 1, 2, 0, 3]])
    numeric = Masking(0.0)(numbers)
    embedded = Embedding(5, 2, mask_zero=True)(categories)
    out = Concatenate()([numeric, embedded])
    assert out.mask.tolist() == [[False, True, False, False, False]]
    assert out.values.shape == (1, 5, 5)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(MERGES)),
    steps=st.integers(1, 6),
    fill=st.sampled_from(["zeros", "random", "nan"]),
)
def test_real_outputs_do_not_depend_on_padding_length_or_content(name, steps, fill):
    layer = MERGES[name][0]()
    check_padding_length_invariance(layer, two_inputs("noncontiguous", "post"), steps, fill)


# ---------------------------------------------------------------------- errors
def test_different_time_axes_are_explained():
    a = example_input("post")
    b = Masked.pad([torch.ones(7, 4)] * 3)
    with pytest.raises(
        ShapeError,
        match=r"input 1 does not have the \(batch, time\).*\n"
        r".*\(3, 5\).*\n.*\(3, 7, 4\).*\n.*max_len",
    ):
        Concatenate(name="join")([a, b])


def test_different_feature_sizes_are_explained():
    a, b = example_input("post"), example_input("post", features=3)
    with pytest.raises(ShapeError, match=r"feature axes must agree.*\n.*\n.*\(3, 5, 3\)"):
        Add()([a, b])
    with pytest.raises(ShapeError, match="every axis but axis 2"):
        Concatenate(axis=2)([Masked(torch.zeros(3, 5, 2, 3)), Masked(torch.zeros(3, 5, 2, 4))])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: Add()(example_input("post")), MaskwiseTypeError, r"list of inputs.*\n.*\n.*\[x1"),
        (lambda: Subtract()([example_input("post")] * 3), ConfigError, "exactly 2 inputs"),
        (lambda: Add()([]), ConfigError, "at least 1 inputs"),
        (lambda: Add()([example_input("post")] * 2, mask=[None]), MaskError, "one mask per input"),
        (
            lambda: Concatenate(axis=1)([example_input("post")] * 2),
            ConfigError,
            r"feature axes only.*\n.*\n.*axis=1",
        ),
        (lambda: Concatenate(axis=0), ConfigError, "feature axes only"),
    ],
)
def test_bad_calls_are_explained(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "layer_class", [Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract]
)
def test_merges_keep_the_layer_contract_without_a_forward_of_their_own(layer_class):
    below_layer = layer_class.__mro__[: layer_class.__mro__.index(Layer)]
    assert all("forward" not in vars(cls) for cls in below_layer)
    assert layer_class.takes_list


def test_merge_call_and_compute_mask_take_lists_of_values_and_masks():
    a, b = torch.full((2, 3, 1), 2.0), torch.full((2, 3, 1), 5.0)
    first = torch.tensor([[True, True, False], [True, False, False]])
    second = torch.tensor([[True, False, False], [True, True, True]])
    layer = Subtract()
    assert torch.equal(layer.call([a, b], [first, second]), torch.full((2, 3, 1), -3.0))
    assert layer.compute_mask([a, b], [first, second]).tolist() == [
        [True, False, False],
        [True, False, False],
    ]


# ---------------------------------------------------------------------- no time axis
def _vectors(*features: int) -> list[torch.Tensor]:
    """`(3, f)` inputs without a time axis (e.g. a recurrent layer's final states)."""
    generator = torch.Generator().manual_seed(4)
    return [torch.randn(3, f, generator=generator) for f in features]


@pytest.mark.parametrize(
    ("keras_layer", "layer", "features"),
    [
        (lambda: keras.layers.Concatenate(), lambda: Concatenate(), (4, 2, 3)),
        (lambda: keras.layers.Concatenate(axis=1), lambda: Concatenate(axis=1), (4, 2)),
        *[
            (KERAS[name], MERGES[name][0], (4, 4))
            for name in sorted(MERGES)
            if name != "concatenate"
        ],
        (lambda: keras.layers.Add(), lambda: Add(), (4, 4, 4)),
        (lambda: keras.layers.Dot(axes=1), lambda: Dot(axes=1), (4, 4)),
        (lambda: keras.layers.Dot(axes=-1, normalize=True), lambda: Dot(-1, True), (4, 4)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_merges_of_inputs_without_a_time_axis_match_keras_without_a_mask(
    keras_layer, layer, features
):
    """`(batch, features)` inputs merge row by row, as in Keras, with no output mask."""
    ours = assert_parity(keras_layer(), convert_layer(keras_layer()), _vectors(*features))
    assert ours.mask is None
    assert layer()(_vectors(*features)).values.shape == ours.values.shape


def test_a_vector_and_a_sequence_are_not_paired():
    vector, sequence = _vectors(4)[0], example_input("post")
    with pytest.raises(
        ShapeError,
        match=r"(?s)input 0 without a time axis and input 1 with one.*\(3, 4\).*\(3, 5, 4\)"
        r".*RepeatVector",
    ):
        Add(name="mix")([vector, sequence])
    with pytest.raises(ShapeError, match=r"does not have the \(batch,\) axes of input 0"):
        Concatenate()([torch.zeros(3, 4), torch.zeros(2, 4)])
    with pytest.raises(ShapeError, match=r"feature axes must agree.*\n.*\(3, 4\)"):
        Multiply()(_vectors(4, 2))


def test_the_final_states_of_a_bidirectional_lstm_concatenate_as_in_keras():
    """A functional model joining the forward and backward final states of a
    `Bidirectional(LSTM(return_state=True))` over masked sequences."""
    inputs = keras.Input((None, 4))
    masked = keras.layers.Masking(0.0)(inputs)
    _, h_forward, _, h_backward, _ = keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_state=True)
    )(masked)
    joined = keras.layers.Concatenate()([h_forward, h_backward])
    keras_model = keras.Model(inputs, keras.layers.Dense(2)(joined))
    randomize_weights(keras_model)
    ours = from_keras(keras_model)
    x = example_input("post", seed=1).fill_padding(0.0).values
    out = ours(x)
    assert out.mask is None and out.values.shape == (3, 2)
    torch.testing.assert_close(out.values, keras_model(x).detach(), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- Dot
def _keys(features: int = 4, seed: int = 3) -> torch.Tensor:
    return torch.randn(3, 6, features, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_over_features_keeps_input_0s_time_axis_and_mask(kind, normalize):
    x = [example_input(kind, seed=1), Masked(_keys())]
    out = check_layer_contract(
        lambda: Dot(axes=(2, 2), normalize=normalize),
        x,
        expected_shape=(3, 5, 6),
        expected_mask=example_mask(kind),
    )
    a, b = x[0].values, x[1].values
    if normalize:
        a = a / a.norm(dim=-1, keepdim=True)
        b = b / b.norm(dim=-1, keepdim=True)
    expected = torch.einsum("btf,bsf->bts", a, b)
    torch.testing.assert_close(out.values[out.mask], expected[out.mask])


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_over_time_sums_the_steps_real_in_both_inputs(kind, normalize):
    x = [example_input(kind, seed=1), example_input("post", features=3, seed=2)]
    out = check_layer_contract(
        lambda: Dot(axes=1, normalize=normalize),
        x,
        expected_shape=(3, 4, 3),
        expected_mask=None,
    )
    a = x[0].values * x[0].mask[..., None]
    b = x[1].values * x[1].mask[..., None]
    if normalize:  # norms over each input's real steps
        a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-7)
        b = b / b.norm(dim=1, keepdim=True).clamp(min=1e-7)
    both = (x[0].mask & x[1].mask)[..., None]
    expected = torch.stack(
        [sum(a[i, t, :, None] * b[i, t, None, :] * both[i, t] for t in range(5)) for i in range(3)]
    )
    torch.testing.assert_close(out.values, expected)
    assert Dot(axes=1).consumes_mask and not Dot(axes=-1).consumes_mask


@pytest.mark.parametrize(
    "axes, normalize, shapes",
    [
        ((2, 2), False, [(3, 5, 4), (3, 6, 4)]),
        (-1, True, [(3, 5, 4), (3, 6, 4)]),
        (1, False, [(3, 5, 4), (3, 5, 2)]),
        ((1, 2), False, [(3, 4, 5), (3, 6, 4)]),
        (1, True, [(3, 4), (3, 4)]),
    ],
    ids=["features", "cosine", "time", "mixed", "vectors"],
)
def test_dot_matches_keras_without_masks(axes, normalize, shapes):
    generator = torch.Generator().manual_seed(0)
    x = [torch.randn(shape, generator=generator) for shape in shapes]
    keras_layer = keras.layers.Dot(axes=axes, normalize=normalize)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_dot_matches_keras_at_real_steps_and_keeps_the_mask_keras_drops(kind):
    x = [example_input(kind, seed=1), _keys()]
    keras_layer = keras.layers.Dot(axes=-1)
    ours = assert_parity(keras_layer, convert_layer(keras_layer), x, check_mask=False)
    assert keras_call(keras_layer, x).mask is None
    assert torch.equal(ours.mask, example_mask(kind))


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), fill=st.sampled_from(["zeros", "random", "nan"]))
def test_dot_real_outputs_do_not_depend_on_padding_length_or_content(steps, fill):
    over_time = [example_input("noncontiguous", seed=1), example_input("post", seed=2)]
    check_padding_length_invariance(Dot(axes=1, normalize=True), over_time, steps, fill)
    queries, keys = example_input("pre", seed=1), _keys()
    short = Dot(axes=-1)([queries, keys])
    long = Dot(axes=-1)([append_padding(queries, steps, fill), keys])
    assert torch.equal(long.mask[:, :5], short.mask) and not long.mask[:, 5:].any()
    torch.testing.assert_close(long.values[:, :5][short.mask], short.values[short.mask])


def test_dot_keeping_a_masked_time_axis_of_input_1_is_refused():
    x = [example_input("post", seed=1), example_input("pre", seed=2)]
    with pytest.raises(
        MaskError,
        match=r"(?s)Dot layer 'scores' keeps the time axis of input 1, which has a mask.*"
        r"axes \(2, 2\) with input 1 masked.*use Attention or MultiHeadAttention",
    ):
        Dot(axes=-1, name="scores")(x)


@pytest.mark.parametrize("axes", [0, (1, 2, 3), "1", (0, 1), (True, 1)])
def test_dot_bad_axes_are_explained(axes):
    with pytest.raises(ConfigError, match=r"(?s)Dot axes must be one axis.*not 0"):
        Dot(axes=axes)


def test_dot_axes_of_different_sizes_are_explained():
    with pytest.raises(
        ShapeError,
        match=r"(?s)cannot take the dot product of inputs \(3, 5, 4\) and "
        r"\(3, 6, 3\) along axes \(2, 2\).*axis 2 of size 4, axis 2 of size 3",
    ):
        Dot(axes=-1)([example_input("post"), _keys(features=3)])
