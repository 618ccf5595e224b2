"""The functional API: `Input`, layers called on symbolic tensors, `Model(inputs,
outputs)`. A model gives what calling its layers by hand gives (values and masks),
whatever its wiring; it saves, loads, traces, trains and passes the doctor's checks."""

import copy
import io
import json
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskwise
import maskwise.functional
import maskwise.models
from maskwise import (
    ConfigError,
    Input,
    Masked,
    MaskwiseTypeError,
    Model,
    Sequential,
    doctor,
    layers,
    trace,
)
from maskwise.doctor.leak_probe import probe_leaks

torch.manual_seed(0)


def tokens() -> torch.Tensor:
    return torch.tensor([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [6, 0, 0, 0, 0]])


def padded(features: int = 4, seed: int = 0) -> Masked:
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(3, 5, features, generator=generator) + 0.5
    return Masked(values, tokens() != 0)


def assert_same(a: Masked, b: Masked) -> None:
    torch.testing.assert_close(a.values, b.values)
    assert (a.mask is None and b.mask is None) or torch.equal(a.mask, b.mask)


# ---------------------------------------------------------------------- symbolic tensors
def test_input_and_layer_calls_record_shapes_dtypes_and_masks():
    ids = Input(shape=(None,), dtype="int64", name="ids")
    assert ids.shape == (None, None) and ids.dtype == torch.int64 and not ids.masked
    x = layers.Embedding(10, 4, mask_zero=True)(ids)
    assert (x.shape, x.dtype, x.masked) == ((None, None, 4), torch.float32, True)
    pooled = layers.GlobalAveragePooling1D()(x)
    assert (pooled.shape, pooled.masked) == ((None, 4), False)
    fixed = Input(batch_shape=(None, 7, 3))
    assert layers.Conv1D(2, 3)(fixed).shape == (None, 5, 2)


def test_input_refuses_a_missing_or_bad_shape_and_dtype():
    with pytest.raises(ConfigError, match=r"Input needs its shape"):
        Input()
    with pytest.raises(ConfigError, match=r"dims must be sizes.*\n.*\n.*received: \(-1, 3\)"):
        Input(shape=(-1, 3))
    with pytest.raises(ConfigError, match=r"Unknown Input dtype 'int77'"):
        Input(shape=(None,), dtype="int77")


def test_a_torch_function_on_a_symbolic_tensor_is_refused_with_the_fix():
    x = Input(shape=(None, 4))
    with pytest.raises(MaskwiseTypeError, match=r"(?s)`linear` got a symbolic tensor.*Lambda"):
        torch.nn.Linear(4, 2)(x)
    y = layers.Lambda(torch.nn.Linear(4, 2))(x)  # wrapped: per step, the mask passes
    assert y.shape == (None, None, 2)


def test_tensor_habits_on_a_symbolic_tensor_name_the_layer_to_use():
    """Keras users slice and add KerasTensors (`x[:, -1]`, `a + b`), which drops the
    mask there; here each is refused with the maskwise layer that keeps it."""
    x = layers.Masking(0.0)(Input(shape=(None, 4)))
    with pytest.raises(MaskwiseTypeError, match=r"(?s)symbolic tensor.*`x\[...\]`.*mask="):
        x[:, 1:]
    with pytest.raises(MaskwiseTypeError, match=r"(?s)`x \+ \.\.\.`.*layers.Add"):
        x + x
    with pytest.raises(AttributeError, match=r"(?s)`.mean`.*GlobalAveragePooling1D"):
        x.mean(1)
    assert layers.Add()([x, x]).masked  # the layer named keeps the mask


def test_model_inputs_and_outputs_must_be_symbolic():
    with pytest.raises(ConfigError, match=r"Model inputs must be symbolic tensors"):
        Model(torch.zeros(2, 3), Input(shape=(3,)))


def test_an_output_that_needs_an_input_not_given_is_refused():
    a, b = Input(shape=(None, 2), name="a"), Input(shape=(None, 2), name="b")
    out = layers.Add()([a, b])
    with pytest.raises(ConfigError, match=r"need the input 'b'.*\n.*\n.*inputs \['a'\]"):
        Model(a, out)


# ---------------------------------------------------------------------- wiring
def test_model_equals_its_layers_called_by_hand():
    ids = Input(shape=(None,), dtype="int64")
    embed, rnn, head = (
        layers.Embedding(10, 4, mask_zero=True),
        layers.LSTM(3, return_sequences=True),
        layers.Dense(2),
    )
    model = Model(ids, head(rnn(embed(ids))))
    assert list(model.layers) == [embed, rnn, head]
    assert_same(model(tokens()), head(rnn(embed(tokens()))))
    assert model(tokens()).lengths.tolist() == [3, 2, 1]


@pytest.mark.parametrize("copy_of", ["deepcopy", "pickle", "torch.save"])
def test_a_model_deep_copies_and_pickles_with_its_weights(copy_of):
    ids = Input(shape=(None,), dtype="int64")
    out = layers.Dense(2)(layers.LSTM(3, return_sequences=True)(layers.Embedding(10, 4)(ids)))
    model = Model(ids, out)
    if copy_of == "deepcopy":
        copied = copy.deepcopy(model)  # an EMA or best-weights copy
    elif copy_of == "pickle":
        copied = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copied = torch.load(buffer, weights_only=False)
    assert_same(copied(tokens()), model(tokens()))
    next(copied.parameters()).data.add_(1.0)  # a copy: its weights are its own
    assert not torch.equal(next(copied.parameters()), next(model.parameters()))


def test_shared_layer_is_one_layer_called_twice():
    a, b = Input(shape=(None, 4), name="a"), Input(shape=(None, 4), name="b")
    shared = layers.Dense(3)
    model = Model([a, b], layers.Concatenate()([shared(a), shared(b)]))
    assert len(model.layers) == 2 and sum(1 for _ in model.parameters()) == 2
    x, y = padded(seed=1), padded(seed=2)
    expected = layers.Concatenate()([shared(x), shared(y)])
    assert_same(model(x, y), expected)
    assert_same(model([x, y]), expected)
    assert_same(model({"a": x, "b": y}), expected)


def test_return_state_unpacks_and_initial_state_takes_the_states():
    source, target = Input(shape=(None, 4), name="source"), Input(shape=(None, 2), name="target")
    encoder = layers.LSTM(3, return_state=True)
    decoder = layers.LSTM(3, return_sequences=True)
    _, h, c = encoder(source)
    assert h.shape == c.shape == (None, 3)
    model = Model([source, target], decoder(target, initial_state=[h, c]))
    x, y = padded(), padded(2, seed=3)
    _, h_real, c_real = encoder(x)
    assert_same(model(x, y), decoder(y, initial_state=[h_real, c_real]))


def test_bidirectional_without_merge_gives_two_masked_outputs():
    x_in = Input(shape=(None, 4))
    bi = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode=None)
    forward, backward = bi(x_in)
    model = Model(x_in, {"forward": forward, "backward": backward})
    out = model(padded())
    by_hand = bi(padded())
    assert_same(out["forward"], by_hand[0])
    assert_same(out["backward"], by_hand[1])


@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_attention_query_value_key(how):
    q_in, v_in = Input(shape=(None, 4), name="q"), Input(shape=(None, 4), name="v")
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    key = layers.Dense(4)
    out = (
        mha(q_in, v_in, key(v_in))
        if how == "positional"
        else mha(query=q_in, value=v_in, key=key(v_in))
    )
    model = Model([q_in, v_in], out)
    q, v = padded(seed=4), Masked(padded(seed=5).values, tokens()[[2, 0, 1]] != 0)
    assert_same(model(q, v), mha(q, v, key(v)))


def test_mask_given_at_a_call_replaces_the_inputs_mask():
    x_in = Input(shape=(None, 4), name="x")
    real = Input(shape=(None,), dtype="bool", name="m")
    rnn = layers.GRU(3, return_sequences=True)
    model = Model([x_in, real], rnn(x_in, mask=real))
    x, mask = (
        padded().values,
        torch.tensor([[1, 0, 1, 1, 0], [1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]).bool(),
    )
    assert_same(model(x, mask), rnn(x, mask=mask))


def test_nested_models_are_layers():
    inner_in = Input(shape=(None, 4))
    inner = Model(inner_in, layers.Dense(3)(layers.Masking(0.0)(inner_in)), name="inner")
    block = Sequential([layers.Dense(3, activation="relu")])
    x_in = Input(shape=(None, 4))
    model = Model(x_in, layers.GlobalAveragePooling1D()(block(inner(x_in))))
    assert model.get_layer("inner") is inner
    x = padded().fill_padding(0.0).values  # Masking finds the padding
    assert_same(model(x), layers.GlobalAveragePooling1D()(block(inner(x))))


def test_model_call_errors_name_the_inputs():
    a, b = Input(shape=(None, 2), name="a"), Input(shape=(None, 2), name="b")
    model = Model([a, b], layers.Add()([a, b]), name="pair")
    with pytest.raises(ConfigError, match=r"Model 'pair' takes 2 input\(s\): \['a', 'b'\]"):
        model(torch.zeros(1, 3, 2))
    with pytest.raises(ConfigError, match=r"Model 'pair' is missing inputs \['b'\]"):
        model({"a": torch.zeros(1, 3, 2)})
    with pytest.raises(ConfigError, match=r"`mask=` is for a model with one input"):
        model(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), mask=torch.ones(1, 3).bool())


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 3))
def test_real_outputs_do_not_depend_on_the_padding(lengths, extra):
    """A functional model's real-step outputs are those of each sequence alone."""
    torch.manual_seed(0)
    x_in = Input(shape=(None, 3))
    _, h = layers.GRU(4, return_state=True)(layers.Masking(0.0)(x_in))
    seq = layers.GRU(4, return_sequences=True)(layers.Masking(0.0)(x_in), initial_state=h)
    model = Model(x_in, layers.Dense(2)(seq)).eval()
    sequences = [torch.rand(n, 3) + 0.5 for n in lengths]
    batch = Masked.pad(sequences, max_len=max(lengths) + extra).values
    out = model(batch)
    for row, seq_values in enumerate(sequences):
        alone = model(seq_values[None])
        torch.testing.assert_close(out.values[row, : len(seq_values)], alone.values[0])
    assert out.lengths.tolist() == lengths


# ---------------------------------------------------------------------- what models do
def tagger() -> Model:
    ids = Input(shape=(None,), dtype="int64", name="ids")
    x = layers.Embedding(10, 4, mask_zero=True)(ids)
    seq, h, c = layers.LSTM(3, return_sequences=True, return_state=True)(x)
    x = layers.LSTM(3, return_sequences=True)(x, initial_state=[h, c])
    return Model(ids, layers.Dense(2, activation="softmax")(layers.Concatenate()([seq, x])))


def test_config_round_trip_and_save_load(tmp_path):
    model = tagger().eval()
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = Model.from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    assert_same(rebuilt(tokens()), model(tokens()))
    model.compile(loss="sparse_categorical_crossentropy")
    path = model.save(tmp_path / "tagger.safetensors")
    loaded = maskwise.load(path).eval()
    assert isinstance(loaded, Model) and loaded.inputs[0].shape == (None, None)
    assert_same(loaded(tokens()), model(tokens()))


def test_compile_fit_evaluate_predict():
    model = tagger()
    y = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", learning_rate=0.05)
    before = model.evaluate(tokens(), y)["loss"]
    model.fit(tokens(), y, epochs=15, verbose=0, seed=0)
    assert model.evaluate(tokens(), y)["loss"] < before
    assert [len(p) for p in model.predict(tokens())] == [3, 2, 1]


def test_trace_and_doctor_look_into_a_model():
    model = tagger()
    rows = trace(model, tokens()).rows
    assert [r.type for r in rows] == ["Embedding", "LSTM", "LSTM", "Concatenate", "Dense"]
    assert not any(r.dropped for r in rows)
    # (3 LSTM units, and the probe trims the batch to 3 steps: a state is not a step)
    assert [f for f in doctor.check(tokens(), model=model) if f.severity != "info"] == []


def test_doctor_finds_a_leak_in_a_model():
    x_in = Input(shape=(None, 3))
    roll = layers.Lambda(lambda v: torch.roll(v, 1, dims=1), name="roll")
    model = Model(x_in, layers.Dense(2)(roll(layers.Dense(4)(x_in))))
    x = Masked.pad([torch.randn(n, 3) for n in (5, 3, 2)])  # the full row exposes the roll
    findings = probe_leaks(model, x)
    assert [f.code for f in findings] == ["MW013"]
    assert "roll (layers.1) (Lambda) is the first layer" in findings[0].message


def test_keras_import_paths():
    assert maskwise.models.Model is Model and layers.Input is Input is maskwise.Input


def test_sequential_wraps_plain_modules_on_symbolic_inputs():
    x_in = Input(shape=(None, 4))
    block = Sequential([torch.nn.Linear(4, 2), torch.nn.ReLU()])
    model = Model(x_in, block(x_in))
    assert model(padded()).lengths.tolist() == [3, 2, 1]


def test_fit_with_several_inputs():
    ids, extra = Input(shape=(None,), dtype="int64", name="ids"), Input(shape=(None, 3), name="x")
    joined = layers.Concatenate()([layers.Embedding(10, 4, mask_zero=True)(ids), extra])
    model = Model([ids, extra], layers.Dense(2, activation="softmax")(layers.GRU(3)(joined)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", learning_rate=0.05)
    x = (tokens(), padded(3).values)
    y = torch.tensor([0, 1, 1])
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=10, verbose=0, seed=0)
    assert model.evaluate(x, y)["loss"] < before
