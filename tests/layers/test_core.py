"""Core layers: Masking, Dense, TimeDistributed, Dropout, SpatialDropout1D, Activation,
Lambda — the layer contract, parity with Keras 3, properties and error messages."""

import warnings

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, build_keras, convert_layer, keras_call

from maskwise import (
    ConfigError,
    Masked,
    MaskError,
    MaskWarning,
    MaskwiseTypeError,
    Sequential,
    ShapeError,
    layers,
)
from maskwise.layers import (
    Activation,
    Dense,
    Dropout,
    Lambda,
    Masking,
    SpatialDropout1D,
    TimeDistributed,
)

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
    example_mask,
)

# name -> (make a fresh layer, output features or None for "same as input")
PASS_ON = {
    "dense": (lambda: Dense(3, activation="tanh"), 3),
    "time_distributed": (lambda: TimeDistributed(Dense(3, activation="sigmoid")), 3),
    "dropout": (lambda: Dropout(0.5), None),
    "spatial_dropout": (lambda: SpatialDropout1D(0.5), None),
    "activation": (lambda: Activation("softmax"), None),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(PASS_ON))
def test_pass_on_layers_keep_the_contract(name, kind):
    make, features = PASS_ON[name]
    x = example_input(kind)
    shape = (3, 5, features or 4)
    out = check_layer_contract(make, x, expected_shape=shape)
    assert torch.equal(out.mask, example_mask(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masking_keeps_the_contract_and_creates_the_mask(kind):
    x = example_input(kind).with_mask(None)  # padded steps hold zeros
    out = check_layer_contract(lambda: Masking(0.0), x, expected_mask=example_mask(kind))
    torch.testing.assert_close(out.values, x.values, atol=0.0, rtol=0.0)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_lambda_keeps_the_contract(kind):
    x = example_input(kind)
    check_layer_contract(lambda: Lambda(lambda v: 2 * v), x, json_config=False)
    crop = check_layer_contract(
        lambda: Lambda(lambda v: v[:, 1:], mask=lambda inputs, mask: mask[:, 1:]),
        x,
        expected_shape=(3, 4, 4),
        expected_mask=example_mask(kind)[:, 1:],
        json_config=False,
    )
    torch.testing.assert_close(crop.values, x.values[:, 1:], atol=0.0, rtol=0.0)


# ---------------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize(
    "make_keras",
    [
        lambda: keras.layers.Dense(3, activation="relu"),
        lambda: keras.layers.Dense(2, use_bias=False),
        lambda: keras.layers.TimeDistributed(keras.layers.Dense(3, activation="sigmoid")),
        lambda: keras.layers.Dropout(0.3),
        lambda: keras.layers.SpatialDropout1D(0.3),
        lambda: keras.layers.Activation("softmax"),
        lambda: keras.layers.Activation("gelu"),
    ],
    ids=["dense_relu", "dense_nobias", "time_distributed", "dropout", "spatial", "softmax", "gelu"],
)
def test_pass_on_layers_match_keras(make_keras, kind):
    x = example_input(kind)
    keras_layer = build_keras(make_keras(), x)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_matches_keras(kind, mask_value):
    x = example_input(kind)
    padded = x.fill_padding(mask_value).with_mask(None)
    keras_layer = keras.layers.Masking(mask_value)
    ours = assert_parity(keras_layer, convert_layer(keras_layer), padded)
    assert torch.equal(ours.mask, example_mask(kind))
    # values zeroed at the masked steps, as Keras does
    assert not ours.values[~example_mask(kind)].any()


def test_masking_masks_a_step_only_when_all_features_match():
    x = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]])
    assert Masking(0.0)(x).mask.tolist() == [[False, True, True, False]]


def test_masking_with_nan_value_masks_all_nan_steps_and_zeroes_them():
    nan = float("nan")
    x = torch.tensor([[[nan, nan], [1.0, nan], [2.0, 3.0]]])
    out = Masking(nan)(x)
    assert out.mask.tolist() == [[False, True, True]]
    assert out.values[0, 0].tolist() == [0.0, 0.0]
    # a partly-NaN real step keeps its values, as it would with mask_value=0
    assert out.values[0, 2].tolist() == [2.0, 3.0]


def test_masking_gives_no_gradient_to_masked_steps():
    x = example_input("noncontiguous").with_mask(None).values.requires_grad_()
    Masking(0.0)(x).values.sum().backward()
    assert not x.grad[~example_mask("noncontiguous")].any()
    assert x.grad[example_mask("noncontiguous")].eq(1.0).all()


def test_masking_an_already_masked_input_warns_and_redefines_the_mask():
    # seed 003: embedded padding is not zero, so a second Masking unmasks it
    x = Masked(torch.ones(2, 3, 2), torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool))
    with pytest.warns(
        MaskWarning,
        match=r"already has a mask.*differs: 3 padded step\(s\) \(sequence 0 step 2, "
        r"sequence 1 step 1, sequence 1 step 2\) do not hold 0.0 and would count as REAL"
        r".*remove this Masking",
    ):
        out = Masking(0.0)(x)
    keras_mask = keras_call(keras.layers.Masking(0.0), x).mask
    assert torch.equal(out.mask, keras_mask)
    assert out.mask.all()


def test_masking_fed_data_that_carries_its_lengths_warns_only_where_the_masks_differ():
    """Keras's habit: ragged lists are padded with their mask, then a Masking first
    layer recomputes it. Where the two agree there is nothing to say."""
    x = Masked.pad([torch.ones(4, 2), torch.ones(2, 2)])  # zero padding, mask from lengths
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = Masking(0.0)(x)
    assert torch.equal(out.mask, x.mask)
    # a real step that holds only the padding value: the one disagreement, named
    values = x.values.clone()
    values[0, 1] = 0.0
    with pytest.warns(
        MaskWarning,
        match=r"differs: 1 real step\(s\) \(sequence 0 step 1\) hold only 0.0 and would "
        r"be IGNORED as padding\. Fix: .*mask_value the real data never takes",
    ) as record:
        out = Masking(0.0)(x.with_values(values))
    assert "count as REAL" not in str(record[0].message)
    assert out.mask[0].tolist() == [True, False, True, True]


def test_lambda_returning_a_tuple_is_a_named_error():
    x = example_input("post")
    for inputs in (x, x.with_mask(None)):
        with pytest.raises(
            MaskwiseTypeError,
            match=r"(?s)Lambda layer 'pair' returned a tuple, not one tensor.*"
            r"received: tuple of Tensor \(3, 5, 4\), Tensor \(3, 5, 4\).*fix: return one",
        ):
            Lambda(lambda v: (v, v), name="pair")(inputs)


def test_time_distributed_applies_the_layer_to_each_step_alone():
    inner = Dense(2)
    x = example_input("post")
    out = TimeDistributed(inner)(x)
    for t in range(5):
        step = inner(x.values[:, t]).values
        torch.testing.assert_close(out.values[:, t][x.mask[:, t]], step[x.mask[:, t]])


def test_time_distributed_on_four_axes_matches_keras():
    x = Masked(torch.randn(2, 3, 4, 5), example_mask("pre")[:2, :3])
    keras_layer = build_keras(keras.layers.TimeDistributed(keras.layers.Dense(2)), x)
    assert_parity(keras_layer, convert_layer(keras_layer), x)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_dropout_in_training_drops_real_steps_only_and_zeros_padding(kind):
    x = Masked(torch.ones(3, 5, 400), example_mask(kind))
    x = x.with_values(torch.where(x.mask.unsqueeze(-1), x.values, torch.full_like(x.values, 7.0)))
    out = Dropout(0.25).train()(x)
    real = out.values[x.mask]
    torch.testing.assert_close(real.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(real.eq(0).float().mean().item() - 0.25) < 0.02
    assert out.values[~x.mask].eq(0.0).all()  # padding is read as zeros, whatever it held


def test_spatial_dropout_drops_whole_channels_per_sequence():
    x = Masked.from_lengths(torch.ones(4, 6, 300), [6, 4, 2, 1])
    out = SpatialDropout1D(0.5).train()(x)
    for row, length in enumerate([6, 4, 2, 1]):
        real = out.values[row, :length]
        assert (real == real[0]).all()  # one draw per channel, shared by every step
        assert 0.35 < real[0].eq(0).float().mean().item() < 0.65
        assert out.values[row, length:].eq(0.0).all()  # padding is read as zeros


# ---------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(PASS_ON)),
    steps=st.integers(1, 6),
    fill=st.sampled_from(["zeros", "random", "nan"]),
    training=st.booleans(),
)
def test_real_outputs_do_not_depend_on_padding_length_or_content(name, steps, fill, training):
    layer = PASS_ON[name][0]()
    # Dropout's random draws follow the tensor's shape, so training mode is compared
    # at equal lengths only (in the contract test).
    training = training and "dropout" not in name
    check_padding_length_invariance(layer, example_input("post"), steps, fill, training)


def _length_per_step(x, mask, training):
    """Adds each sequence's length (times 10 in training) to its steps: reads both."""
    return x + mask.sum(1, keepdim=True)[..., None].to(x.dtype) * (10.0 if training else 1.0)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_lambda_passes_mask_and_training_to_a_function_that_takes_them_as_keras(kind):
    x = example_input(kind).values  # zero padding: Masking(0.0) finds the mask
    ours = Sequential([Masking(0.0), Lambda(_length_per_step)])
    theirs = keras.layers.Lambda(_length_per_step)
    keras_masked = keras.layers.Masking(0.0)(x)
    for training in (False, True):
        ours.train(training)
        out = ours(x)
        expected = theirs(keras_masked, training=training)
        torch.testing.assert_close(out.values, expected)
        assert torch.equal(out.mask, example_mask(kind))  # the mask passes on, as before


def test_lambda_passes_only_the_arguments_the_function_names():
    x = example_input("post")
    seen = {}

    def spy(v, *, mask=None, **kwargs):
        seen.update(mask=mask, kwargs=kwargs)
        return v

    Lambda(spy)(x)
    assert torch.equal(seen["mask"], x.mask) and seen["kwargs"] == {}  # **kwargs names none
    Lambda(lambda v, mask: v * 2.0)(x.values)  # no mask: None, as in Keras
    encoder = torch.nn.TransformerEncoder(  # its `mask` is an attention mask: not ours
        torch.nn.TransformerEncoderLayer(4, 1, 8, dropout=0.0, batch_first=True),
        1,
        enable_nested_tensor=False,
    ).eval()
    torch.testing.assert_close(Lambda(encoder)(x).values, encoder(x.fill_padding().values))


def test_a_lambda_reading_the_mask_still_needs_a_mask_rule_to_crop():
    with pytest.raises(MaskError, match=r"changed the time axis"):
        Lambda(lambda v, mask: v[:, 2:] * mask[:, 2:, None], name="crop")(example_input("post"))
    crop = Lambda(lambda v, mask: v[:, 2:], mask=lambda inputs, mask: mask[:, 2:])
    assert torch.equal(crop(example_input("post")).mask, example_mask("post")[:, 2:])


# ---------------------------------------------------------------------- errors
def test_lambda_that_changes_time_without_mask_rule_raises():
    with pytest.raises(MaskError, match=r"changed the time axis.*\n.*\n.*\n.*mask=lambda"):
        Lambda(lambda v: v[:, 2:], name="crop")(example_input("post"))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Dense(0), ConfigError, "positive integer"),
        (lambda: Dense(2, activation="relux"), ConfigError, "Unknown activation"),
        (lambda: Activation("nope"), ConfigError, "Unknown activation"),
        (lambda: Dropout(1.0), ConfigError, r"probability.*\n.*\[0, 1\)"),
        (lambda: SpatialDropout1D(-0.1), ConfigError, "probability"),
        (lambda: Masking("0"), ConfigError, "must be a number"),
        (lambda: Lambda(3), ConfigError, "needs a callable"),
        (lambda: Lambda(abs, mask="keep"), ConfigError, "Unknown Lambda mask rule"),
        (lambda: TimeDistributed(torch.nn.Linear(2, 2)), MaskwiseTypeError, "Lambda"),
    ],
)
def test_bad_arguments_are_explained(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_dense_called_with_other_feature_size_raises():
    layer = Dense(2, input_dim=4)
    with pytest.raises(ShapeError, match=r"built for 4 input features.*\n.*\n.*\(2, 5, 3\)"):
        layer(torch.zeros(2, 5, 3))


def test_time_distributed_needs_a_feature_axis():
    with pytest.raises(ShapeError, match="needs a feature axis"):
        TimeDistributed(Dense(2))(torch.zeros(2, 5))


def test_spatial_dropout_needs_three_axes():
    with pytest.raises(ShapeError, match=r"3-D values"):
        SpatialDropout1D(0.5).train()(torch.zeros(2, 5, 3, 2))


def test_keras_lambda_reuses_its_function_on_the_torch_backend(monkeypatch):
    ours = convert_layer(keras.layers.Lambda(lambda v: v * 2.0, name="double"))
    x = Masked(torch.ones(1, 3, 2), torch.tensor([[True, True, False]]))
    out = ours(x)
    assert isinstance(ours, Lambda) and ours.name == "double"
    torch.testing.assert_close(out.values, torch.tensor([[[2.0, 2.0], [2.0, 2.0], [0.0, 0.0]]]))
    assert torch.equal(out.mask, x.mask)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match=r"(?s)computes on jax tensors.*KERAS_BACKEND=torch"):
        convert_layer(keras.layers.Lambda(lambda v: v))


def test_keras_dropout_with_noise_shape_is_refused():
    with pytest.raises(ConfigError, match="noise_shape"):
        convert_layer(keras.layers.Dropout(0.5, noise_shape=(None, 1, 3)))


def test_a_wrapped_module_given_other_features_is_a_named_error():
    model = Sequential([torch.nn.Linear(2, 2)])
    with pytest.raises(ShapeError, match=r"(?s)Lambda layer 'linear'.*\(3, 4, 5\).*in_features"):
        model(torch.zeros(3, 4, 5))


@pytest.mark.parametrize("activation", ["linear", "softmax", "log_softmax", "hard_sigmoid"])
def test_a_model_with_any_activation_survives_torch_save_and_load(tmp_path, activation):
    """`torch.save(model)` pickles every layer: an activation must be a named function."""
    model = Sequential([Dense(3, activation=activation), Activation(activation)])
    x = Masked.from_lengths(torch.randn(2, 4, 2), [4, 1])
    expected = model(x).values
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    torch.testing.assert_close(loaded(x).values, expected)


# ---------------------------------------------------------------- Keras's `seed` on noise
SEEDED_NOISE = {
    "Dropout": lambda seed: layers.Dropout(0.5, seed=seed),
    "SpatialDropout1D": lambda seed: layers.SpatialDropout1D(0.5, seed=seed),
    "GaussianNoise": lambda seed: layers.GaussianNoise(1.0, seed=seed),
    "GaussianDropout": lambda seed: layers.GaussianDropout(0.5, seed=seed),
    "AlphaDropout": lambda seed: layers.AlphaDropout(0.5, seed=seed),
}


@pytest.mark.parametrize("kind", sorted(SEEDED_NOISE))
def test_a_seeded_noise_layer_repeats_across_runs_and_draws_anew_each_call(kind):
    """As Keras's `seed`: two layers built with the same seed draw the same noise, each
    call draws new noise, and the global generator plays no part; padded steps stay
    zeros and the mask passes on."""
    x = Masked.from_lengths(torch.ones(2, 5, 8), [5, 3])
    first, second = SEEDED_NOISE[kind](11), SEEDED_NOISE[kind](11)
    torch.manual_seed(0)
    a1, a2 = first(x), first(x)
    torch.manual_seed(1)
    b1 = second(x)
    assert torch.equal(a1.values, b1.values)
    assert not torch.equal(a1.values, a2.values)
    assert torch.equal(a1.mask, x.mask)
    assert not a1.values[1, 3:].any()
    rebuilt = type(first).from_config(first.get_config())
    assert torch.equal(rebuilt(x).values, a1.values)
    unseeded = SEEDED_NOISE[kind](None)
    torch.manual_seed(5)
    c1 = unseeded(x).values
    torch.manual_seed(5)
    assert torch.equal(unseeded(x).values, c1)  # None: torch.manual_seed decides


@pytest.mark.parametrize("bad", [1.5, "7", True])
def test_a_seed_that_is_not_an_int_is_refused(bad):
    with pytest.raises(ConfigError, match=r"Dropout seed must be an integer or None"):
        layers.Dropout(0.5, seed=bad)
