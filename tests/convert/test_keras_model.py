"""`from_keras`: Keras 3 Sequential and functional models become maskwise `Sequential`
and `Model`s with the same weights, values and masks (Keras 3 as the oracle): several
inputs and outputs, shared layers, nested models, `return_state`/`initial_state`,
`mask=` given at a call, `Lambda`."""

import keras
import pytest
import torch
from keras_oracle import assert_same_mask, assert_same_values, keras_call, randomize_weights
from layers.contract import MASK_KINDS, example_mask

from maskwise import (
    ConfigError,
    Masked,
    MaskwiseTypeError,
    Model,
    Sequential,
    from_keras,
    trace,
)

L = keras.layers


def features(kind: str, count: int = 5, seed: int = 0) -> torch.Tensor:
    """`(3, 5, count)` values, non-zero at the real steps of `example_mask(kind)`, zero
    at the others (so Keras's `Masking(0.0)` finds that mask)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(3, 5, count, generator=generator) + 0.5
    return Masked(values, example_mask(kind)).fill_padding(0.0).values


def tokens(kind: str, vocabulary: int, seed: int = 1) -> torch.Tensor:
    """`(3, 5)` ids in `[1, vocabulary)` at the real steps of `example_mask(kind)`, 0 at
    the others (so `Embedding(mask_zero=True)` finds that mask)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocabulary, (3, 5), generator=generator)
    return torch.where(example_mask(kind), ids, torch.zeros_like(ids))


def convert(keras_model, seed: int = 0):
    randomize_weights(keras_model, seed)
    return from_keras(keras_model).eval()


def assert_same(ours: Masked, theirs: Masked) -> None:
    assert_same_values(ours, theirs)
    assert_same_mask(ours, theirs)


# ---------------------------------------------------------------------- Sequential
def test_sequential_of_core_layers_becomes_a_sequential():
    keras_model = keras.Sequential(
        [
            keras.Input((None, 5)),
            L.Masking(0.0),
            L.Dense(6, activation="tanh"),
            L.Dropout(0.3),
            L.TimeDistributed(L.Dense(3, activation="sigmoid")),
        ],
        name="tagger",
    )
    model = convert(keras_model)
    assert isinstance(model, Sequential) and model.name == "tagger"
    assert [type(m).__name__ for m in model.layers] == [
        "Masking", "Dense", "Dropout", "TimeDistributed",
    ]  # fmt: skip
    for kind in MASK_KINDS:
        x = features(kind)
        ours = model(x)
        assert_same(ours, keras_call(keras_model, x))
        assert torch.equal(ours.mask, example_mask(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_seed000_bidirectional_lstm_tagger(kind):
    """Seed 000: Masking -> Bidirectional(LSTM, return_sequences) -> Dropout ->
    TimeDistributed(Dense(3, sigmoid))."""
    keras_model = keras.Sequential(
        [
            keras.Input((None, 5)),
            L.Masking(0.0),
            L.Bidirectional(L.LSTM(6, return_sequences=True)),
            L.Dropout(0.2),
            L.TimeDistributed(L.Dense(3, activation="sigmoid")),
        ]
    )
    model = convert(keras_model)
    x = features(kind)
    assert_same(model(x), keras_call(keras_model, x))


# ---------------------------------------------------------------------- functional
def seed003_keras(last_sequences: bool) -> keras.Model:
    """Seed 003: numeric features through Masking(0), two categorical inputs through
    Embedding(mask_zero=True), concatenated, three GRUs, Dense(2, softmax)."""
    numeric = keras.Input((None, 4), name="numeric")
    colour = keras.Input((None,), name="colour", dtype="int32")
    shape = keras.Input((None,), name="shape", dtype="int32")
    x = L.Concatenate()(
        [
            L.Masking(0.0)(numeric),
            L.Embedding(6, 3, mask_zero=True)(colour),
            L.Embedding(5, 2, mask_zero=True)(shape),
        ]
    )
    x = L.GRU(8, return_sequences=True)(x)
    x = L.GRU(8, return_sequences=True)(x)
    x = L.GRU(4, return_sequences=last_sequences)(x)
    out = L.Dense(2, activation="softmax")(x)
    return keras.Model([numeric, colour, shape], out, name="seed003")


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("last_sequences", [False, True])
def test_seed003_three_input_gru_classifier(kind, last_sequences):
    keras_model = seed003_keras(last_sequences)
    model = convert(keras_model)
    assert isinstance(model, Model)
    assert model.input_names == ["numeric", "colour", "shape"]
    inputs = [features(kind, 4), tokens(kind, 6, seed=1), tokens(kind, 5, seed=2)]
    ours = model(*inputs)
    theirs = keras_call(keras_model, inputs)
    assert_same(ours, theirs)
    if last_sequences:
        assert torch.equal(ours.mask, example_mask(kind))


def test_functional_model_with_several_outputs_and_a_nested_sequential():
    x_in = keras.Input((None, 5), name="x")
    h = L.Masking(0.0)(x_in)
    block = keras.Sequential([keras.Input((None, 5)), L.Dense(4, activation="relu"), L.Dense(3)])
    h = block(h)
    summed = L.Add()([h, L.Dense(3)(h)])
    pooled = L.GlobalAveragePooling1D()(summed)
    keras_model = keras.Model(x_in, [summed, pooled])
    model = convert(keras_model)
    assert isinstance(model.get_layer(block.name), Sequential)
    x = features("noncontiguous")
    ours = model(x)
    theirs = keras_model(x)
    assert isinstance(ours, list) and len(ours) == 2
    assert_same_values(ours[0], Masked(theirs[0]))
    assert torch.equal(ours[0].mask, example_mask("noncontiguous"))
    torch.testing.assert_close(ours[1].values, theirs[1], atol=1e-5, rtol=1e-5)
    assert ours[1].mask is None


def test_converted_graph_traces_under_keras_names():
    keras_model = seed003_keras(last_sequences=False)
    model = convert(keras_model)
    inputs = [features("post", 4), tokens("post", 6), tokens("post", 5)]
    rows = trace(model, *inputs).rows
    assert [r.name for r in rows] == [layer.name for layer in keras_model.layers[3:]]
    assert [r.consumed for r in rows].count(True) == 1  # the last GRU consumes the mask
    assert not any(r.dropped for r in rows)


# ---------------------------------------------------------------------- refusals
def test_unsupported_layer_is_named():
    keras_model = keras.Sequential(
        [keras.Input((None, 5)), L.Dense(3), L.AdaptiveAveragePooling1D(2)]
    )
    pool = keras_model.layers[-1].name
    match = rf"layer '{pool}'.*no equivalent of Keras's `AdaptiveAveragePooling1D`"
    with pytest.raises(ConfigError, match=match):
        from_keras(keras_model)


def test_keras_ops_call_in_a_functional_model_is_refused():
    a = keras.Input((None, 3))
    b = keras.Input((None, 3))
    keras_model = keras.Model([a, b], L.Dense(2)(keras.ops.add(a, b)))
    match = r"operation 'add(_\d+)?' \(Add\): it is a `keras.ops` call"
    with pytest.raises(ConfigError, match=match):
        from_keras(keras_model)


def test_shared_layer_stays_shared():
    a = keras.Input((None, 3), name="a")
    b = keras.Input((None, 3), name="b")
    dense = L.Dense(2, name="shared")
    keras_model = keras.Model([a, b], L.Concatenate()([dense(a), dense(b)]))
    model = convert(keras_model)
    assert [m.name for m in model.layers].count("shared") == 1
    inputs = [features("post", 3), features("pre", 3, seed=1)]
    assert_same(model(*inputs), keras_call(keras_model, inputs))


def test_return_state_feeds_initial_state():
    """An encoder's final states start a decoder (the Keras seq2seq guide's wiring).

    Keras 3 runs a recurrent layer given `initial_state=` over every step, masked or
    not (it passes the mask on but does not use it); maskwise carries the state over
    masked steps. With padding at the end, the real steps agree."""
    source = keras.Input((None, 5), name="source")
    target = keras.Input((None, 3), name="target")
    _, h, c = L.LSTM(4, return_state=True, name="encoder")(L.Masking(0.0)(source))
    decoded = L.LSTM(4, return_sequences=True, name="decoder")(
        L.Masking(0.0)(target), initial_state=[h, c]
    )
    keras_model = keras.Model([source, target], L.Dense(2)(decoded))
    model = convert(keras_model)
    inputs = [features("noncontiguous"), features("post", 3, seed=1)]
    assert_same(model(*inputs), keras_call(keras_model, inputs))


def test_bidirectional_without_merge_and_with_states():
    x_in = keras.Input((None, 5))
    forward, backward, *states = L.Bidirectional(
        L.GRU(3, return_sequences=True, return_state=True), merge_mode=None
    )(L.Masking(0.0)(x_in))
    keras_model = keras.Model(x_in, [L.Add()([forward, backward]), L.Add()(states)])
    model = convert(keras_model)
    x = features("pre")
    ours, theirs = model(x), keras_model(x)
    assert_same_values(ours[0], Masked(theirs[0]))
    assert torch.equal(ours[0].mask, example_mask("pre"))
    torch.testing.assert_close(ours[1].values, theirs[1], atol=1e-5, rtol=1e-5)


def test_mask_given_at_a_call():
    x_in = keras.Input((None, 5), name="x")
    real = keras.Input((None,), dtype="bool", name="real")
    y = L.LSTM(4, return_sequences=True, name="lstm")(x_in, mask=real)
    keras_model = keras.Model([x_in, real], L.Dense(2)(y))
    model = convert(keras_model)
    x, mask = features("noncontiguous"), example_mask("noncontiguous")
    ours = model(x, mask)
    theirs = keras_call(keras_model, [x, mask])
    assert_same_values(ours, Masked(theirs.values, mask))
    assert torch.equal(ours.mask, mask)


def test_nested_functional_model_with_dict_inputs_and_outputs():
    inner_in = keras.Input((None, 5), name="inner_in")
    inner = keras.Model(inner_in, L.Dense(3)(L.Masking(0.0)(inner_in)), name="inner")
    x_in = keras.Input((None, 5), name="x")
    h = inner(x_in)
    keras_model = keras.Model(
        {"x": x_in}, {"steps": h, "pooled": L.GlobalAveragePooling1D()(h)}, name="outer"
    )
    model = convert(keras_model)
    assert isinstance(model.get_layer("inner"), Model)
    x = features("post")
    ours, theirs = model({"x": x}), keras_model({"x": x})
    assert set(ours) == {"steps", "pooled"}
    assert_same_values(ours["steps"], Masked(theirs["steps"], example_mask("post")))
    torch.testing.assert_close(ours["pooled"].values, theirs["pooled"], atol=1e-5, rtol=1e-5)


def test_lambda_reuses_the_keras_function_and_its_mask_rule():
    x_in = keras.Input((None, 5))
    h = L.Masking(0.0)(x_in)
    scaled = L.Lambda(  # Keras drops the mask at a Lambda without `mask=`; maskwise keeps it
        lambda t, factor: t * factor, arguments={"factor": 3.0}, mask=lambda inputs, mask: mask
    )(h)
    cropped = L.Lambda(lambda t: t[:, 1:], mask=lambda inputs, mask: mask[:, 1:])(scaled)
    keras_model = keras.Model(x_in, L.Dense(4)(cropped))
    model = convert(keras_model)
    x = features("noncontiguous")
    ours = model(x)
    assert_same(ours, keras_call(keras_model, x))
    assert torch.equal(ours.mask, example_mask("noncontiguous")[:, 1:])


def test_lambda_from_a_keras_file_is_refused_with_the_fix(tmp_path):
    x_in = keras.Input((None, 5))
    keras_model = keras.Model(x_in, L.Lambda(lambda t: t * 2.0)(x_in))
    path = tmp_path / "lambda.keras"
    keras_model.save(path)
    with pytest.raises(ConfigError, match=r"(?s)holds a Lambda layer.*safe_mode=False"):
        from_keras(path)
    model = from_keras(keras.saving.load_model(path, safe_mode=False))
    torch.testing.assert_close(model(torch.ones(1, 2, 5)).values, torch.full((1, 2, 5), 2.0))


def test_lambda_taking_the_mask_and_training_gets_them_as_in_keras():
    def fn(t, mask=None, training=None):  # the input's lengths added to each step
        lengths = 0.0 if mask is None else mask.sum(1, keepdim=True)[..., None]
        return t + lengths * (10.0 if training else 1.0)

    keras_lambda = L.Lambda(fn, name="lam")
    model = from_keras(keras.Sequential([keras.Input((None, 5)), L.Masking(0.0), keras_lambda]))
    x = features("post")
    keras_masked = L.Masking(0.0)(x)
    for training in (False, True):
        model.train(training)
        expected = keras_lambda(keras_masked, training=training)
        assert not torch.equal(expected, x)  # the function read the mask
        torch.testing.assert_close(model(x).values, expected)


def test_call_argument_maskwise_does_not_take_is_refused():
    x_in = keras.Input((None, 4))
    keras_model = keras.Model(x_in, L.LayerNormalization(name="norm")(x_in, training=True))
    from_keras(keras_model)  # `training=` is the model's mode: dropped
    y = L.MultiHeadAttention(2, 4, name="mha")(x_in, x_in, return_attention_scores=True)
    ours = from_keras(keras.Model(x_in, y[1]))
    assert ours(torch.ones(1, 3, 4)).shape == (1, 2, 3, 3)


def test_unbuilt_and_subclassed_models_are_refused():
    with pytest.raises(ConfigError, match=r"(?s)is not built.*keras.Input"):
        from_keras(keras.Sequential([L.Dense(2)], name="plain"))

    class Custom(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(MaskwiseTypeError, match=r"(?s)Sequential or functional Model.*Custom"):
        from_keras(Custom())
    with pytest.raises(MaskwiseTypeError, match="received: Dense"):
        from_keras(L.Dense(2))
