"""Containers: Sequential, Graph and Module route `Masked` values and hold no masking
logic; plain modules are wrapped or refused; configs round-trip through JSON."""

import json

import keras
import numpy as np
import pytest
import torch
from torch import nn

import maskwise
import maskwise.models
from maskwise import (
    ConfigError,
    Graph,
    Masked,
    MaskwiseTypeError,
    Module,
    Sequential,
    layers,
)
from maskwise.layers.base import Layer, layer_from_config, layer_spec


def padded_batch() -> Masked:
    """Three sequences of lengths 5, 2, 3 with 4 features, post-padded with zeros."""
    generator = torch.Generator().manual_seed(0)
    return Masked.pad([torch.randn(n, 4, generator=generator) + 3.0 for n in (5, 2, 3)])


def round_trip(model: Layer) -> Layer:
    """A new model from the JSON text of `model`'s config, with its weights."""
    rebuilt = layer_from_config(json.loads(json.dumps(layer_spec(model))))
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt


class ReturnsTensor(Layer):
    def forward(self, inputs, mask=None):
        return torch.zeros(1)


# ---------------------------------------------------------------------- Sequential
def test_sequential_accepts_tensor_array_and_masked():
    x = padded_batch()
    model = Sequential([layers.Masking(0.0), layers.Dense(3)])
    from_tensor = model(x.values)
    from_array = model(x.values.numpy())
    from_masked = model(x.with_mask(None))
    for out in (from_tensor, from_array, from_masked):
        assert isinstance(out, Masked)
        assert out.values.shape == (3, 5, 3)
        assert out.lengths.tolist() == [5, 2, 3]
        torch.testing.assert_close(out.values, from_tensor.values, atol=0.0, rtol=0.0)


def test_a_model_runs_under_inference_mode_as_under_no_grad():
    """`torch.inference_mode()`, PyTorch's habit for inference, gives `no_grad`'s
    outputs through every kind of layer that fills, compacts or reads the padding
    (inference tensors keep no version counter, which the fills' memo must not read),
    and training afterwards still works."""
    torch.manual_seed(0)
    model = Sequential(
        [
            layers.Masking(0.0, input_shape=(None, 4)),
            layers.Dense(6, activation="tanh"),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
            layers.Conv1D(4, 2, padding="same"),
            layers.GRU(3, return_sequences=True),
            layers.Dense(2),
        ]
    )
    batch = padded_batch()
    with torch.no_grad():
        expected = model(batch)
    with torch.inference_mode():
        got = model(batch)
    assert torch.equal(got.values, expected.values) and torch.equal(got.mask, expected.mask)
    model(batch).values.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sequential_keeps_the_mask_of_a_masked_input():
    x = padded_batch()
    out = Sequential([layers.Dense(2), layers.Activation("tanh")])(x)
    assert torch.equal(out.mask, x.mask)
    assert out.values.shape == (3, 5, 2)


def test_sequential_values_are_the_layers_in_order():
    x = padded_batch()
    dense, act = layers.Dense(2), layers.Activation("tanh")
    out = Sequential([dense, act])(x)
    expected = torch.tanh(x.values @ dense.kernel + dense.bias)
    torch.testing.assert_close(out.values[x.mask], expected[x.mask], atol=1e-6, rtol=1e-6)


def test_sequential_wraps_per_step_torch_modules():
    x = padded_batch()
    model = Sequential([nn.Linear(4, 2), nn.ReLU()])
    assert all(isinstance(layer, layers.Lambda) for layer in model.layers)
    out = model(x)
    assert torch.equal(out.mask, x.mask)
    linear = model.layers[0].function
    expected = torch.relu(linear(x.values))
    torch.testing.assert_close(out.values[x.mask], expected[x.mask], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (nn.LSTM(4, 3), r"plain torch.nn.Module `LSTM` at position 1.*maskwise.layers.LSTM"),
        (nn.Conv1d(4, 3, 2), r"(?s)`Conv1d` at position 1 cannot take a mask.*Lambda\(Conv1d"),
        (nn.Softmax(dim=1), r"`Softmax` at position 1"),
    ],
)
def test_sequential_refuses_plain_modules_with_the_fix(module, match):
    with pytest.raises(MaskwiseTypeError, match=match):
        Sequential([layers.Dense(4), module])


def test_sequential_names_the_fix_for_a_keras_input_or_layer_in_its_list():
    with pytest.raises(
        maskwise.MaskwiseTypeError,
        match=r"(?s)Sequential got a symbolic tensor at position 0 \(`Input\(...\)` as in "
        r"Keras\).*fix: drop it: a Sequential reads the input shape at its first call",
    ):
        Sequential([maskwise.Input(shape=(None, 3)), layers.LSTM(4)])
    keras = pytest.importorskip("keras")
    with pytest.raises(
        maskwise.MaskwiseTypeError,
        match=r"(?s)a Keras layer at position 1.*fix: use `maskwise\.layers\.LSTM`",
    ):
        Sequential([layers.Masking(0.0), keras.layers.LSTM(4)])
    with pytest.raises(maskwise.MaskwiseTypeError, match=r"`str` at position 0 is not a layer"):
        Sequential(["dense"])


def test_load_state_dict_into_an_unbuilt_model_names_the_fix():
    def tagger() -> Sequential:
        return Sequential([layers.LSTM(3, return_sequences=True), layers.Dense(2)])

    x = Masked.from_lengths(torch.randn(2, 4, 3), [4, 2])
    trained = tagger()
    expected = trained(x).values
    fresh = tagger()
    with pytest.raises(
        ConfigError,
        match=r"(?s)cannot load these weights yet: its layers make their weights at their "
        r"first call.*received: 5 weights of layers not built yet \(first: 'layers.0.cell.bias'"
        r"\).*fix: call the model on one batch first",
    ):
        fresh.load_state_dict(trained.state_dict())
    fresh(x)  # the fix: built, then loaded
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(x).values, expected)


def test_a_partial_load_into_an_unbuilt_model_names_the_fix_instead_of_loading_nothing():
    x = Masked.from_lengths(torch.randn(2, 4, 3), [4, 2])
    pretrained = Sequential([layers.LSTM(3, return_sequences=True), layers.Dense(2)])
    pretrained(x)
    backbone = {k: v for k, v in pretrained.state_dict().items() if k.startswith("layers.0.")}
    fine_tuned = Sequential([layers.LSTM(3, return_sequences=True), layers.Dense(5)])
    with pytest.raises(ConfigError, match=r"(?s)cannot load these weights yet.*layers.0.cell"):
        fine_tuned.load_state_dict(backbone, strict=False)
    tagger = TwoLayers()
    with pytest.raises(ConfigError, match=r"(?s)cannot load these weights yet.*rnn.cell"):
        tagger.load_state_dict({"rnn." + k[len("layers.0.") :]: v for k, v in backbone.items()})
    fine_tuned(x)  # the fix: built, then loaded; an extra key is PyTorch's to report
    result = fine_tuned.load_state_dict({**backbone, "extra": torch.zeros(1)}, strict=False)
    assert result.unexpected_keys == ["extra"]
    assert torch.equal(fine_tuned.layers[0].cell.weight_hh, pretrained.layers[0].cell.weight_hh)


def test_sequential_add_appends_and_wraps():
    model = Sequential([layers.Masking(0.0)])
    model.add(layers.Dense(2))
    model.add(nn.Tanh())
    assert [type(layer).__name__ for layer in model.layers] == ["Masking", "Dense", "Lambda"]
    assert model(padded_batch().values).values.shape == (3, 5, 2)
    with pytest.raises(MaskwiseTypeError, match="`GRU` at position 3"):
        model.add(nn.GRU(2, 2))


def test_sequential_names_a_layer_that_returns_no_masked():
    model = Sequential([layers.Dense(2), ReturnsTensor(name="bad")])
    with pytest.raises(MaskwiseTypeError, match=r"Layer 'bad' returned a Tensor, not a Masked"):
        model(padded_batch())


def test_nested_sequential_equals_the_flat_one():
    x = padded_batch()
    masking, d1, d2 = layers.Masking(0.0), layers.Dense(3), layers.Dense(2)
    nested = Sequential([Sequential([masking, d1]), d2])
    flat = Sequential([masking, d1, d2])
    a, b = nested(x.values), flat(x.values)
    torch.testing.assert_close(a.values, b.values, atol=0.0, rtol=0.0)
    assert torch.equal(a.mask, x.mask)


def test_sequential_json_round_trip_with_weights():
    x = padded_batch()
    model = Sequential(
        [layers.Masking(0.0), Sequential([layers.Dense(3, "relu")]), layers.Dense(2)],
        name="tagger",
    )
    expected = model(x.values)
    rebuilt = round_trip(model)
    assert rebuilt.name == "tagger"
    out = rebuilt(x.values)
    torch.testing.assert_close(out.values, expected.values, atol=0.0, rtol=0.0)
    assert torch.equal(out.mask, expected.mask)


# ---------------------------------------------------------------------- Graph
def two_input_graph(**kwargs) -> Graph:
    nodes = kwargs.pop(
        "nodes",
        [
            ("out", layers.Dense(2), ["cat"]),  # any order: the graph sorts them
            ("cat", layers.Concatenate(), ["num", "emb"]),
            ("emb", layers.Embedding(10, 3, mask_zero=True), ["tokens"]),
            ("num", layers.Masking(0.0), ["features"]),
        ],
    )
    return Graph(inputs=["features", "tokens"], nodes=nodes, outputs="out", **kwargs)


def two_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    features = padded_batch().values
    tokens = torch.tensor([[1, 2, 3, 4, 5], [0, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    return features, tokens


def test_graph_routes_values_and_masks_like_calling_the_layers_by_hand():
    graph = two_input_graph()
    features, tokens = two_inputs()
    out = graph(features, tokens)
    by_name = dict(zip(graph.node_names, graph.layers, strict=True))
    num = by_name["num"](features)
    emb = by_name["emb"](tokens)
    expected = by_name["out"](by_name["cat"]([num, emb]))
    torch.testing.assert_close(out.values, expected.values, atol=0.0, rtol=0.0)
    # a step is real when real in both inputs: lengths 5, 2, 3 and tokens 5, (2 of 3), 2
    assert out.mask.tolist() == [
        [True] * 5,
        [False, True, False, False, False],
        [True, True, False, False, False],
    ]


def test_graph_takes_positional_list_or_dict_inputs():
    graph = two_input_graph()
    features, tokens = two_inputs()
    a = graph(features, tokens)
    b = graph([features, tokens])
    c = graph({"tokens": tokens, "features": features})
    for other in (b, c):
        torch.testing.assert_close(other.values, a.values, atol=0.0, rtol=0.0)


def test_graph_with_several_outputs_returns_a_tuple():
    graph = Graph(
        inputs=["x"],
        nodes=[
            ("h", layers.Dense(3), ["x"]),
            ("pooled", layers.GlobalAveragePooling1D(), ["h"]),
        ],
        outputs=["h", "pooled", "x"],
    )
    x = padded_batch()
    h, pooled, same = graph(x)
    assert h.values.shape == (3, 5, 3) and torch.equal(h.mask, x.mask)
    assert pooled.values.shape == (3, 3) and pooled.mask is None
    assert same is not None and torch.equal(same.values, x.values)


@pytest.mark.parametrize(
    ("nodes", "outputs", "match"),
    [
        ([("d", layers.Dense(2), ["nope"])], "d", r"node 'd' reads unknown names \['nope'\]"),
        ([("d", layers.Dense(2), ["x"])], "nope", r"outputs \['nope'\] are not inputs or nodes"),
        (
            [
                ("a", layers.Dense(2), ["b"]),
                ("b", layers.Dense(2), ["a"]),
                ("c", layers.Dense(2), ["a", "x"]),
            ],
            "c",
            r"nodes \['a', 'b', 'c'\] form or follow a cycle",
        ),
        (
            [("d", layers.Dense(2), ["x"]), ("unused", layers.Dense(2), ["x"])],
            "d",
            r"inputs or nodes \['unused'\] reach no output",
        ),
        ([("x", layers.Dense(2), ["x"])], "x", r"names \['x'\] are used more than once"),
        ([("d", layers.Dense(2))], "d", r"node 0 is not a \(name, layer, input_names\) triple"),
        ([("d", nn.LSTM(2, 2), ["x"])], "d", None),
    ],
)
def test_graph_is_validated_when_built(nodes, outputs, match):
    if match is None:  # a plain module is refused as in a Sequential
        with pytest.raises(MaskwiseTypeError, match="`LSTM` at position 0"):
            Graph(inputs=["x"], nodes=nodes, outputs=outputs)
        return
    with pytest.raises(ConfigError, match=match):
        Graph(inputs=["x"], nodes=nodes, outputs=outputs)


def test_graph_refuses_an_unused_input_and_a_shared_layer():
    with pytest.raises(ConfigError, match=r"\['spare'\] reach no output"):
        Graph(inputs=["x", "spare"], nodes=[("d", layers.Dense(2), ["x"])], outputs="d")
    dense = layers.Dense(2)
    with pytest.raises(ConfigError, match=r"nodes \['a', 'b'\] share one layer object"):
        Graph(inputs=["x"], nodes=[("a", dense, ["x"]), ("b", dense, ["a"])], outputs="b")


def test_graph_checks_its_inputs_when_called():
    graph = two_input_graph(name="g")
    features, _ = two_inputs()
    with pytest.raises(ConfigError, match=r"Graph 'g' takes 2 input\(s\)"):
        graph(features)
    with pytest.raises(ConfigError, match=r"Graph 'g' is missing inputs \['tokens'\]"):
        graph({"features": features})


def test_graph_names_a_layer_that_returns_no_masked():
    graph = Graph(inputs=["x"], nodes=[("bad", ReturnsTensor(name="bad"), ["x"])], outputs="bad")
    with pytest.raises(MaskwiseTypeError, match=r"'bad' returned a Tensor.*Graph passes"):
        graph(padded_batch())


def test_graph_json_round_trip_with_weights():
    graph = two_input_graph(name="seed003")
    features, tokens = two_inputs()
    expected = graph(features, tokens)
    rebuilt = round_trip(graph)
    assert isinstance(rebuilt, Graph) and rebuilt.node_names == graph.node_names
    out = rebuilt(features, tokens)
    torch.testing.assert_close(out.values, expected.values, atol=0.0, rtol=0.0)
    assert torch.equal(out.mask, expected.mask)


def test_graph_saves_and_loads_from_the_file_alone(tmp_path):
    graph = two_input_graph()
    features, tokens = two_inputs()
    expected = graph(features, tokens)
    loaded = maskwise.load(graph.save(tmp_path / "graph.safetensors"))
    assert isinstance(loaded, Graph)
    torch.testing.assert_close(loaded(features, tokens).values, expected.values, atol=0.0, rtol=0.0)


# ---------------------------------------------------------------------- Module
class TwoLayers(Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = layers.LSTM(3, return_sequences=True)
        self.out = layers.Dense(2)

    def forward(self, x):
        return self.out(self.rnn(x))


def test_requires_grad_false_on_a_module_freezes_the_weights_its_layers_make_later():
    frozen = TwoLayers().requires_grad_(False)
    frozen(padded_batch())  # the weights are made here
    assert [p.requires_grad for p in frozen.parameters()] == [False] * 5
    assert frozen.requires_grad_() is frozen
    assert all(p.requires_grad for p in frozen.parameters())


class Seed003(Module):
    """Seed 003's model as a subclass: numeric features through Masking, two categorical
    inputs through Embedding(mask_zero=True), concatenated, GRUs, Dense(2, softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.masking = layers.Masking(0.0)
        self.colour = layers.Embedding(6, 3, mask_zero=True)
        self.shape = layers.Embedding(5, 2, mask_zero=True)
        self.concat = layers.Concatenate()
        self.gru1 = layers.GRU(8, return_sequences=True)
        self.gru2 = layers.GRU(8, return_sequences=True)
        self.gru3 = layers.GRU(4)
        self.out = layers.Dense(2, activation="softmax")

    def forward(self, numeric, colour, shape):
        x = self.concat([self.masking(numeric), self.colour(colour), self.shape(shape)])
        return self.out(self.gru3(self.gru2(self.gru1(x))))


def seed003_inputs(holes: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch of 2, 5 steps; row 1 has 3 real steps, in front or (holes) at steps 0, 2, 4."""
    generator = torch.Generator().manual_seed(3)
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1] if holes else [1, 1, 1, 0, 0]])
    numeric = (torch.rand(2, 5, 4, generator=generator) + 0.5) * real.unsqueeze(-1)
    colour = torch.randint(1, 6, (2, 5), generator=generator) * real
    shape = torch.randint(1, 5, (2, 5), generator=generator) * real
    return numeric, colour, shape


@pytest.mark.parametrize("holes", [False, True])
def test_subclassed_seed003_model_ignores_padding(holes):
    model = Seed003().eval()
    numeric, colour, shape = seed003_inputs(holes)
    out = model(numeric, colour, shape)
    assert out.values.shape == (2, 2) and out.mask is None
    torch.testing.assert_close(out.values.sum(-1), torch.ones(2), atol=1e-6, rtol=1e-6)
    # Row 1 alone, with its padded steps removed, gives the same prediction.
    keep = numeric[1].abs().sum(-1) > 0
    alone = model(numeric[1:, keep], colour[1:, keep], shape[1:, keep])
    torch.testing.assert_close(alone.values[0], out.values[1], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- plain modules
@pytest.mark.parametrize(
    ("module", "match"),
    [
        (
            nn.Softmax(),
            r"(?s)`Softmax` at position 1 with dim=None is not per step: PyTorch then picks "
            r"the axis from the input's rank.*fix: `nn.Softmax\(dim=-1\)`.*"
            r"`layers.Activation\('softmax'\)`",
        ),
        (
            nn.Softmax(dim=1),
            r"(?s)`Softmax` at position 1 with dim=1 is not per step: it normalises along "
            r"the time axis.*nn.Softmax\(dim=-1\)",
        ),
        (nn.LogSoftmax(dim=0), r"(?s)`LogSoftmax`.*dim=0.*the batch axis.*'log_softmax'"),
        (nn.Softmin(dim=-2), r"(?s)`Softmin`.*dim=-2.*the time axis.*nn.Softmin\(dim=-1\)"),
        (nn.GLU(dim=1), r"(?s)`GLU`.*dim=1.*halves along the time axis.*nn.GLU\(dim=-1\)"),
        (
            nn.LayerNorm([5, 4]),
            r"(?s)`LayerNorm` at position 1 with normalized_shape=\[5, 4\] is not per step: "
            r"it normalises over the last 2 axes.*include time.*"
            r"fix: `nn.LayerNorm\(4\)` or `layers.LayerNormalization\(\)`.*"
            r"Lambda\(nn.LayerNorm",
        ),
        (nn.RMSNorm([5, 4]), r"(?s)`RMSNorm`.*normalized_shape=\[5, 4\].*nn.RMSNorm\(4\)"),
        (
            nn.Flatten(),
            r"(?s)`Flatten`.*start_dim=1.*merges the time axis into the features.*"
            r"nn.Flatten\(start_dim=2\).*mask='drop'",
        ),
        (nn.Unflatten(1, (2, 2)), r"(?s)`Unflatten`.*dim=1.*nn.Unflatten\(-1, sizes\)"),
        (nn.PReLU(5), r"(?s)`PReLU`.*num_parameters=5.*axis 1 is time.*nn.PReLU\(\)"),
        (nn.Softmax(dim=-4), r"(?s)dim=-4.*axis -4, which counts from the end"),
    ],
)
def test_plain_modules_that_mix_steps_are_refused_with_argument_reason_and_fix(module, match):
    with pytest.raises(MaskwiseTypeError, match=match):
        Sequential([layers.Dense(4), module])


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (nn.Dropout1d(0.5), r"Dropout1d drops whole channels of axis 1.*SpatialDropout1D"),
        (nn.BatchNorm1d(5), r"BatchNorm1d normalises axis 1.*layers.BatchNormalization"),
        (nn.GroupNorm(1, 5), r"GroupNorm normalises axis 1.*layers.LayerNormalization"),
        (nn.CosineSimilarity(), r"CosineSimilarity takes two inputs.*Masked\(result"),
        (nn.Sequential(nn.Linear(5, 5), nn.Conv1d(5, 5, 3)), r"Conv1d slides.*layers.Conv1D"),
        (nn.Embedding(9, 5, padding_idx=0), r"layers.Embedding\(9, 5, mask_zero=True\)"),
        (nn.MultiheadAttention(5, 1), r"layers.MultiHeadAttention.*~key_padding_mask"),
        (nn.TransformerEncoderLayer(5, 1), r"layers.TransformerEncoder.*~src_key_padding_mask"),
    ],
)
def test_plain_modules_known_to_read_several_steps_are_refused_with_a_hint(module, match):
    with pytest.raises(MaskwiseTypeError, match=r"(?s)cannot take a mask.*" + match):
        Sequential([layers.Dense(5), module])


@pytest.mark.parametrize(
    "module",
    [
        nn.Softmax(dim=-1),
        nn.Softmax(dim=2),
        nn.LogSoftmax(dim=-1),
        nn.Softmin(dim=-1),
        nn.GLU(),
        nn.LayerNorm(4),
        nn.LayerNorm([4]),
        nn.RMSNorm(4),
        nn.Flatten(start_dim=2),
        nn.Unflatten(-1, (2, 2)),
        nn.PReLU(),
        nn.Hardswish(),
        nn.AlphaDropout(0.2),
        nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.LayerNorm(3))),
    ],
)
def test_plain_modules_with_per_step_arguments_still_wrap_and_keep_real_steps(module):
    x = padded_batch()
    model = Sequential([module]).eval()
    assert isinstance(model.layers[0], layers.Lambda)
    out = model(x)
    assert torch.equal(out.mask, x.mask)
    # each real step's output is the module on that step alone
    for row, length in enumerate(x.lengths.tolist()):
        alone = module(x.values[row : row + 1, :length])
        torch.testing.assert_close(out.values[row, :length], alone[0], atol=1e-6, rtol=1e-6)


def test_a_maskwise_layer_inside_a_torch_sequential_is_refused_as_it_would_lose_the_mask():
    inner = nn.Sequential(nn.Linear(4, 4), layers.LSTM(2, return_sequences=True))
    with pytest.raises(MaskwiseTypeError, match=r"(?s)holds the maskwise layer LSTM.*mw.Seq"):
        Sequential([inner])


def test_masking_first_layer_on_ragged_lists_warns_nothing():
    """Keras's habit: ragged lists (padded with their mask from the lengths) into a
    `Masking` first layer. The two masks agree, so there is nothing to warn about
    (pytest turns any warning into an error here)."""
    rng = np.random.default_rng(0)
    x = [rng.random((n, 3)).astype("float32") + 0.5 for n in (5, 2, 4, 3)]
    y = [s.sum(-1, keepdims=True) for s in x]
    model = Sequential(
        [layers.Masking(0.0), layers.LSTM(4, return_sequences=True), layers.Dense(1)]
    )
    model.compile(loss="mse")
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, seed=0)
    assert [len(p) for p in model.predict(x)] == [5, 2, 4, 3]


def test_rnn_only_model_trains_through_a_batch_without_real_steps():
    """Two empty sequences form the first batch (no shuffling): its loss is defined and
    backpropagates to zero gradients instead of failing in `backward`."""
    x = [np.zeros((0, 4), "float32")] * 2 + [np.ones((3, 4), "float32")] * 2
    y = [np.zeros((len(s), 2), "float32") for s in x]
    model = Sequential([layers.LSTM(2, return_sequences=True)])
    model.compile(loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=2, shuffle=False, verbose=0, seed=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------------- eager build
def _stack(**first: object) -> Sequential:
    return Sequential(
        [
            layers.Masking(0.0, **first),
            layers.Conv1D(3, 3),  # valid padding: needs 3 steps at least
            layers.LSTM(4, return_sequences=True),
            layers.GRU(2),
            layers.Dense(2),
        ]
    )


def _keras_parameter_count() -> int:
    import keras

    model = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.Masking(0.0),
            keras.layers.Conv1D(3, 3),
            keras.layers.LSTM(4, return_sequences=True),
            keras.layers.GRU(2),
            keras.layers.Dense(2),
        ]
    )
    return int(model.count_params())


def test_a_first_layer_with_input_shape_builds_every_layer_at_construction():
    model = _stack(input_shape=(None, 5))
    assert all(m.built for m in model.modules() if isinstance(m, Layer))
    optimizer = torch.optim.Adam(model.parameters())  # before the first call
    count = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert count == _keras_parameter_count()
    assert model.build_shape == [None, 5]


def test_build_then_load_state_dict_into_a_fresh_model():
    source = _stack(input_shape=(None, 5))
    fresh = _stack()
    assert not any(p.numel() for p in fresh.parameters())
    fresh.build((None, None, 5))
    fresh.load_state_dict(source.state_dict())
    x = Masked.pad([torch.randn(6, 5), torch.randn(4, 5)])
    torch.testing.assert_close(fresh(x).values, source(x).values)


def test_add_to_a_built_sequential_builds_the_new_layer():
    model = Sequential([layers.Dense(3, input_dim=2)])
    model.add(layers.Dense(4))
    assert model.layers[1].kernel.shape == (3, 4)


def test_build_with_a_time_axis_too_short_for_a_layer_says_so():
    with pytest.raises(maskwise.ShapeError, match="a time axis of at least 3 steps"):
        _stack().build((None, 2, 5))


def _keras_and_ours(kind: str) -> tuple[keras.Model, maskwise.Sequential]:
    """The same stack in Keras (random weights) and in maskwise (built, other weights)."""
    keras.utils.set_random_seed(0)
    recurrent = getattr(keras.layers, kind)(4, return_sequences=True)
    theirs = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(recurrent),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )
    rng = np.random.default_rng(1)
    for weight in theirs.weights:
        weight.assign(rng.uniform(0.5, 1.5, tuple(weight.shape)).astype("float32"))
    layer = getattr(maskwise.layers, kind)(4, return_sequences=True)
    ours = maskwise.Sequential(
        [
            maskwise.layers.Masking(0.0),
            maskwise.layers.Bidirectional(layer),
            maskwise.layers.BatchNormalization(),
            maskwise.layers.Dense(2),
        ]
    )
    ours.build((None, None, 4))
    return theirs, ours


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_weights_are_keras_arrays_both_ways(kind: str) -> None:
    """`get_weights` gives Keras's arrays (recurrent kernels `(in, gates*units)`, GRU's
    bias `(2, 3*units)`), so `set_weights(keras_model.get_weights())` copies a Keras
    model: a SimpleRNN with as many units as features has square kernels, which a
    PyTorch layout would take transposed without a word."""
    theirs, ours = _keras_and_ours(kind)
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    x[1, 3:] = 0.0
    expected = keras.ops.convert_to_numpy(theirs(x))
    out = ours.eval()(torch.as_tensor(x))
    np.testing.assert_allclose(out.values[out.mask].detach().numpy(), expected[out.mask], atol=1e-5)
    for got, want in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
