"""LayerNormalization, BatchNormalization, UnitNormalization, GroupNormalization:
contract, Keras parity (BatchNormalization in training uses the mask for its moments in
Keras 3 too; GroupNormalization is compared per sequence, as Keras counts the padding),
real-step statistics."""

import keras
import numpy as np
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
    Normalization,
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


# ---------------------------------------------------------------- Normalization (adapt)

ADAPT_DATA = [
    3 * torch.randn(n, 4, generator=torch.Generator().manual_seed(n)) + 5 for n in (6, 2, 4)
]

NORMALIZATIONS = {
    "adapted": lambda: _adapted(Normalization()),
    "adapted_inverse": lambda: _adapted(Normalization(invert=True)),
    "adapted_scalar": lambda: _adapted(Normalization(axis=None)),
    "given": lambda: Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 4.0, 9.0, 0.0]),
    "given_scalar": lambda: Normalization(mean=2.0, variance=3.0, invert=True),
}


def _adapted(layer: Normalization) -> Normalization:
    layer.adapt(ADAPT_DATA)
    return layer


def _keras_adapted(data, **kwargs):
    layer = keras.layers.Normalization(**kwargs)
    layer.adapt(data)
    return layer


def _real_concatenated(sequences):
    return np.concatenate([np.asarray(s) for s in sequences])


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(NORMALIZATIONS))
def test_normalization_keeps_the_contract_and_zeros_at_padded_steps(name, kind):
    x = example_input(kind)
    out = check_layer_contract(NORMALIZATIONS[name], x)
    assert not out.values[~x.mask].any()  # a Masking after it still finds the padding


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("axis", [-1, None])
def test_normalization_adapted_without_padding_matches_keras(axis, invert):
    """Full-length sequences: Keras's adapt and call, to 1e-6."""
    data = (4 * np.random.default_rng(0).normal(size=(8, 5, 3)) + 10).astype("float32")
    keras_layer = _keras_adapted(data, axis=axis, invert=invert)
    ours = Normalization(axis=axis, invert=invert)
    ours.adapt(data)
    np.testing.assert_allclose(ours.mean.numpy(), np.asarray(keras_layer.adapt_mean), rtol=1e-6)
    np.testing.assert_allclose(
        ours.variance.numpy(), np.asarray(keras_layer.adapt_variance), rtol=1e-6
    )
    theirs = keras.ops.convert_to_numpy(keras_layer(data))
    np.testing.assert_allclose(
        ours(torch.as_tensor(data)).values.numpy(), theirs, atol=1e-6, rtol=1e-6
    )
    ragged = Normalization(axis=axis, invert=invert)
    ragged.adapt(list(data))  # the same sequences as a list: the same statistics
    torch.testing.assert_close(ragged.mean, ours.mean, atol=1e-6, rtol=1e-6)


def test_normalization_given_statistics_match_keras_and_keep_keras_config():
    data = np.random.default_rng(1).normal(size=(2, 3, 2)).astype("float32")
    for kwargs in ({"mean": [1.0, -2.0], "variance": [4.0, 0.25]}, {"mean": 3.0, "variance": 2.0}):
        keras_layer = keras.layers.Normalization(**kwargs, invert=True)
        ours = Normalization(**kwargs, invert=True)
        theirs = keras.ops.convert_to_numpy(keras_layer(data))
        np.testing.assert_allclose(
            ours(torch.as_tensor(data)).values.numpy(), theirs, atol=1e-6, rtol=1e-6
        )
        config = keras_layer.get_config()
        assert {k: ours.get_config()[k] for k in ("mean", "variance", "invert")} == {
            k: config[k] for k in ("mean", "variance", "invert")
        }
        assert ours.state_dict() == {} and keras_layer.get_weights() == []


def test_normalization_adapts_on_real_steps_only_unlike_keras():
    """On a padded array, maskwise's statistics are Keras's on the real steps alone
    (concatenated); Keras's own adapt counts the padded zeros."""
    padded = Masked.pad(ADAPT_DATA).values.numpy()
    ours = Normalization()
    ours.adapt(padded)
    on_real = _keras_adapted(_real_concatenated(ADAPT_DATA))
    on_padded = _keras_adapted(padded)
    np.testing.assert_allclose(ours.mean.numpy(), np.asarray(on_real.adapt_mean), rtol=1e-6)
    np.testing.assert_allclose(ours.variance.numpy(), np.asarray(on_real.adapt_variance), rtol=1e-6)
    assert int(ours.count) == sum(len(s) for s in ADAPT_DATA)
    assert not np.allclose(ours.mean.numpy(), np.asarray(on_padded.adapt_mean), rtol=1e-2)
    # Keras's Normalization then turns the padded zeros into -mean/std: Masking finds none.
    keras_out = keras.ops.convert_to_numpy(on_padded(padded))
    assert not (keras_out[1, 2:] == 0).all(axis=-1).any()
    ours_out = ours(Masked.pad(ADAPT_DATA)).values.numpy()
    assert (ours_out[1, 2:] == 0).all()


def test_normalization_reads_every_form_of_the_data_alike():
    from maskwise.data import SequenceDataset, make_loader

    reference = Normalization()
    reference.adapt(ADAPT_DATA)
    padded = Masked.pad(ADAPT_DATA)
    nan_padded = Masked.pad(ADAPT_DATA, value=float("nan")).values
    forms = {
        "array": (padded.values.numpy(), {}),
        "tensor": (padded.values, {"batch_size": 1}),
        "nan padding": (nan_padded, {"mask_value": float("nan")}),
        "masked": (Masked.pad(ADAPT_DATA, value=7.0), {"batch_size": 2}),
        "numpy list": ([s.numpy() for s in ADAPT_DATA], {"batch_size": 2}),
        "dataset": (SequenceDataset(ADAPT_DATA), {"batch_size": 2}),
        "loader": (make_loader(padded.values.numpy(), batch_size=2), {}),
    }
    for name, (data, kwargs) in forms.items():
        layer = Normalization()
        layer.adapt(data, **kwargs)
        torch.testing.assert_close(layer.mean, reference.mean, msg=name)
        torch.testing.assert_close(layer.variance, reference.variance, msg=name)
        assert int(layer.count) == 12, name
    rows = Normalization()
    rows.adapt(_real_concatenated(ADAPT_DATA))  # (samples, features): every row
    torch.testing.assert_close(rows.variance, reference.variance)
    first = Normalization()
    first.adapt(ADAPT_DATA, batch_size=1, steps=1)  # the first sequence only
    torch.testing.assert_close(first.mean, ADAPT_DATA[0].mean(0))


def test_normalization_statistics_are_computed_in_float64():
    """A large offset costs no precision (float32 sums would lose the variance)."""
    rng = np.random.default_rng(2)
    data = [1e6 + rng.normal(size=(n, 2)) for n in (50, 30)]
    layer = Normalization(dtype="float64")
    layer.adapt(data, batch_size=1)
    whole = np.concatenate(data)
    np.testing.assert_allclose(layer.variance.numpy(), whole.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(layer.mean.numpy(), whole.mean(axis=0), rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    extra=st.integers(0, 4),
    fill=st.sampled_from([0.0, float("nan"), 1e4, -3.0]),
    seed=st.integers(0, 1000),
)
def test_normalization_ignores_how_much_padding_there_is_and_what_it_holds(
    lengths, extra, fill, seed
):
    generator = torch.Generator().manual_seed(seed)
    sequences = [torch.randn(n, 3, generator=generator) * 2 + 1 for n in lengths]
    reference = Normalization()
    reference.adapt(sequences)
    expected = reference(Masked.pad(sequences))
    time = max(lengths) + extra
    padded = Masked.pad(sequences, max_len=time, value=fill)
    layer = Normalization()
    layer.adapt(padded)
    torch.testing.assert_close(layer.mean, reference.mean)
    torch.testing.assert_close(layer.variance, reference.variance)
    out = layer(padded)
    torch.testing.assert_close(
        out.values[:, : max(lengths)][expected.mask], expected.values[expected.mask]
    )
    array = Normalization()  # a padded array: its padding found from mask_value
    array.adapt(padded.values, mask_value=fill)
    torch.testing.assert_close(array.mean, reference.mean)


def test_normalization_weights_are_keras_s_and_survive_save_and_load(tmp_path):
    import maskwise as mw
    from maskwise.layers import LSTM, Dense

    keras_layer = _keras_adapted(_real_concatenated(ADAPT_DATA))
    model = mw.Sequential([Normalization(), LSTM(3), Dense(1)])
    model.layers[0].adapt(ADAPT_DATA)
    x = Masked.pad(ADAPT_DATA)
    expected = model(x).values
    ours = model.layers[0]
    assert [w.shape for w in keras_layer.get_weights()] == [
        tuple(w.shape) for w in (ours.mean, ours.variance, ours.count)
    ]
    weights = model.get_weights()
    assert [w.shape for w in weights[:3]] == [(4,), (4,), ()]
    fresh = mw.Sequential([Normalization(), LSTM(3), Dense(1)])
    fresh(x)
    fresh.set_weights(weights)
    torch.testing.assert_close(fresh(x).values, expected)
    model.save(tmp_path / "model.pt")
    loaded = mw.load(tmp_path / "model.pt")
    torch.testing.assert_close(loaded(x).values, expected)
    assert int(loaded.layers[0].count) == 12


@pytest.mark.parametrize(
    "make",
    [
        lambda: _keras_adapted(Masked.pad(ADAPT_DATA).values.numpy()),
        lambda: _keras_adapted(Masked.pad(ADAPT_DATA).values.numpy(), axis=None, invert=True),
        lambda: keras.layers.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0] * 4),
    ],
    ids=["adapted", "scalar_inverse", "given"],
)
def test_an_adapted_keras_normalization_converts_with_its_outputs(make):
    keras_layer = make()
    x = Masked.pad(ADAPT_DATA)
    ours = convert_layer(keras_layer)
    theirs = keras_call(keras_layer, x)
    out = ours(x)
    torch.testing.assert_close(out.values[x.mask], theirs.values[x.mask], atol=1e-6, rtol=1e-6)
    assert torch.equal(out.mask, x.mask)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Normalization(axis=1), "axis=-1 or axis=None"),
        (lambda: Normalization(mean=1.0), "together"),
        (lambda: Normalization(mean=[1.0, 2.0], variance=[1.0]), "one shape"),
    ],
)
def test_normalization_refuses_bad_arguments(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_normalization_refuses_data_it_cannot_adapt_on():
    with pytest.raises(ConfigError, match="cannot adapt"):
        Normalization(mean=0.0, variance=1.0).adapt(ADAPT_DATA)
    with pytest.raises(ShapeError, match="no real step"):
        Normalization().adapt(np.zeros((2, 3, 4)))
    nan = Masked.pad(ADAPT_DATA, value=float("nan")).values
    with pytest.raises(ShapeError, match=r"NaN or inf(?s:.*)mask_value=np.nan"):
        Normalization().adapt(nan)
    with pytest.raises(ShapeError, match="cannot read"):
        Normalization().adapt({"x": ADAPT_DATA})
    layer = _adapted(Normalization())
    with pytest.raises(ShapeError, match="has 4 features"):
        layer.adapt([torch.ones(3, 2)])
    with pytest.raises(ShapeError, match="has 4 features"):
        layer(torch.ones(1, 3, 2))
