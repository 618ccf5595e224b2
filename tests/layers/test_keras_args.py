"""Keras's arguments on every layer (`layers/_keras_args.py`): shapes that build at
construction, dtype, trainable, the weights' initializers, regularizers (added to the
loss by fit and evaluate, as Keras) and constraints (applied after each step), the
refusal of unknown arguments, and saving layers that hold them."""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import maskwise as mw
from maskwise import ConfigError, Masked, constraints, initializers, layers, regularizers
from maskwise.layers._keras_args import Layout, one_pass
from maskwise.layers.base import layer_from_config, layer_spec

X = torch.tensor(
    [[[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], [[-1.0, 1.0], [3.0, 1.0], [1.0, 1.0]]]
)  # (batch 2, time 3, features 2), no step all zeros
Y = torch.tensor([[[1.0], [0.0], [2.0]], [[0.5], [1.0], [-1.0]]])


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("kwargs", "kernel_rows"),
    [
        ({"input_dim": 4}, 4),
        ({"input_shape": (None, 4)}, 4),
        ({"batch_input_shape": (8, 10, 4)}, 4),
        ({"input_length": 10, "input_dim": 4}, 4),
    ],
)
def test_a_known_input_shape_builds_at_construction(kwargs, kernel_rows):
    dense = layers.Dense(3, **kwargs)
    assert dense.built
    assert dense.kernel.shape == (kernel_rows, 3)
    optimizer = torch.optim.SGD(dense.parameters(), lr=0.1)  # before the first call
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 15


def test_layers_without_weights_take_the_shape_arguments():
    masking = layers.Masking(0.0, input_shape=(20, 5))
    assert masking.keras_input_shape == [20, 5]
    assert layers.Add(input_shape=(3, 2), name="sum").name == "sum"


def test_recurrent_and_embedding_layers_build_from_keras_shapes():
    lstm = layers.LSTM(4, input_shape=(None, 3))
    assert lstm.cell.weight_ih.shape == (16, 3)
    embedding = layers.Embedding(10, 4, input_length=7)
    assert embedding.keras_input_shape == [7]


def test_state_dict_loads_into_a_fresh_layer_built_from_its_shape():
    source = layers.Dense(3, input_dim=2)
    fresh = layers.Dense(3, input_dim=2)
    fresh.load_state_dict(source.state_dict())
    torch.testing.assert_close(fresh(X).values, source(X).values)


# ---------------------------------------------------------------------- dtype, trainable
def test_dtype_sets_the_weights_and_the_computation():
    dense = layers.Dense(3, input_dim=2, dtype="float64")
    assert dense.kernel.dtype == torch.float64
    lazy = layers.Dense(3, dtype=torch.float64)
    assert lazy(X).values.dtype == torch.float64
    assert lazy.get_config()["dtype"] == "float64"


def test_trainable_false_freezes_weights_built_now_or_later():
    frozen = layers.Dense(3, trainable=False)
    frozen(X)
    assert not any(p.requires_grad for p in frozen.parameters())
    eager = layers.LSTM(2, input_dim=2, trainable=False)
    assert not any(p.requires_grad for p in eager.parameters())
    eager.trainable = True
    assert all(p.requires_grad for p in eager.parameters())


def test_a_frozen_container_freezes_the_layers_it_builds_later():
    model = mw.Sequential([layers.Dense(3), layers.LSTM(2)], trainable=False)
    model(X)
    assert not any(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------- initializers
def test_weight_initializers_by_name_and_object():
    dense = layers.Dense(
        3, input_dim=2, kernel_initializer="ones", bias_initializer=initializers.Constant(0.5)
    )
    assert torch.equal(dense.kernel, torch.ones(2, 3))
    assert torch.equal(dense.bias, torch.full((3,), 0.5))
    embedding = layers.Embedding(5, 2, embeddings_initializer="zeros")
    assert torch.equal(embedding.embeddings, torch.zeros(5, 2))
    norm = layers.LayerNormalization(gamma_initializer="zeros", beta_initializer="ones")
    norm(X)
    assert torch.equal(norm.gamma, torch.zeros(2))
    assert torch.equal(norm.beta, torch.ones(2))


def test_prelu_takes_any_initializer_or_a_number():
    assert torch.equal(layers.PReLU(0.25, input_shape=(None, 2)).alpha, torch.full((1, 2), 0.25))
    prelu = layers.PReLU(initializers.Constant(-1.0), shared_axes=[1], alpha_constraint="non_neg")
    prelu(X)
    assert torch.equal(prelu.alpha, -torch.ones(1, 2))


def test_convolution_initializers_use_keras_s_kernel_layout():
    conv = layers.Conv1D(4, 3, kernel_initializer="he_uniform", input_shape=(None, 2))
    assert conv.kernel.shape == (3, 2, 4)
    assert conv.kernel.abs().max() <= (6 / (3 * 2)) ** 0.5  # fan_in = window * channels
    depthwise = layers.DepthwiseConv1D(2, depthwise_initializer="ones", input_shape=(5, 3))
    assert torch.equal(depthwise.kernel, torch.ones(2, 3, 1))
    separable = layers.SeparableConv1D(4, 2, pointwise_initializer="zeros", input_dim=3)
    assert torch.equal(separable.pointwise_kernel, torch.zeros(1, 3, 4))


def test_attention_projections_take_the_kernel_initializer():
    mha = layers.MultiHeadAttention(2, 3, kernel_initializer="ones", bias_initializer="ones")
    mha(X, X)
    for projection in (mha.query_dense, mha.key_dense, mha.value_dense, mha.output_dense):
        assert torch.equal(projection.kernel, torch.ones_like(projection.kernel))
        assert projection.bias is not None
        assert torch.equal(projection.bias, torch.ones_like(projection.bias))


# ---------------------------------------------------------------------- regularizers
def _keras_dense(units: int, ours: layers.Dense, **kwargs) -> keras.layers.Dense:
    theirs = keras.layers.Dense(units, **kwargs)
    theirs.build((None, ours.kernel.shape[0]))
    theirs.kernel.assign(ours.kernel.detach().numpy())
    theirs.bias.assign(ours.bias.detach().numpy())
    return theirs


def _number(x) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(x)))


def test_weight_penalties_match_hand_math_and_keras():
    dense = layers.Dense(
        2,
        input_dim=2,
        kernel_regularizer=regularizers.L2(0.1),
        bias_initializer="ones",
        bias_regularizer="l1",
    )
    [kernel_penalty, bias_penalty] = dense.losses
    assert kernel_penalty.item() == pytest.approx(0.1 * dense.kernel.square().sum().item())
    assert bias_penalty.item() == pytest.approx(0.01 * 2)
    theirs = _keras_dense(2, dense, kernel_regularizer=keras.regularizers.L2(0.1))
    assert kernel_penalty.item() == pytest.approx(_number(theirs.losses[0]), rel=1e-6)


def test_activity_penalty_counts_real_steps_only_divided_by_the_batch():
    dense = layers.Dense(
        1, input_dim=2, kernel_initializer="ones", activity_regularizer=regularizers.L1(1.0)
    )
    x = Masked(X, torch.tensor([[True, True, False], [True, False, False]]))
    dense(x)
    # outputs: sums of features: [3, -0.5, (2)] and [0, (4), (2)]; padded steps excluded
    [penalty] = dense.losses
    assert penalty.item() == pytest.approx((3 + 0.5 + 0) / 2)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    extra=st.integers(0, 3),
    fill=st.sampled_from([0.0, 7.0, float("nan")]),
)
def test_activity_penalty_is_independent_of_the_padding(lengths, extra, fill):
    torch.manual_seed(0)
    steps = [torch.randn(n, 2) for n in lengths]
    dense = layers.Dense(2, input_dim=2, activity_regularizer=regularizers.L1L2(0.1, 0.2))
    padded = Masked.pad(steps, value=fill, max_len=max(lengths) + extra)
    dense(padded)
    [penalty] = dense.losses
    outputs = [dense(s[None]).values[0] for s in steps]  # each sequence alone, unpadded
    real = torch.cat(outputs) if outputs else torch.zeros(0, 2)
    expected = (0.1 * real.abs().sum() + 0.2 * real.square().sum()) / len(lengths)
    torch.testing.assert_close(penalty, expected)


def test_activity_penalties_add_up_in_one_pass_and_are_replaced_outside():
    dense = layers.Dense(1, input_dim=2, activity_regularizer=regularizers.L1(1.0))
    for _ in range(3):
        dense(X)
    assert len(dense.losses) == 1  # repeated calls keep only the last: nothing piles up
    expected = dense(X).values.abs().sum() / 2 + dense(X[:1]).values.abs().sum()
    with one_pass(dense):  # a batch of fit or evaluate: a shared layer counts twice
        dense(X)
        dense(X[:1])
    assert len(dense.losses) == 2
    assert sum(dense.losses).item() == pytest.approx(expected.item())


def test_activity_penalty_without_padding_matches_keras():
    dense = layers.Dense(2, input_dim=2, activity_regularizer=regularizers.L2(0.3))
    dense(X)
    theirs = _keras_dense(2, dense, activity_regularizer=keras.regularizers.L2(0.3))
    theirs(X)
    assert dense.losses[0].item() == pytest.approx(_number(theirs.losses[0]), rel=1e-5)


def _models(**kwargs) -> tuple[mw.Sequential, keras.Sequential]:
    ours = mw.Sequential([layers.Dense(1, input_shape=(3, 2), bias_initializer="ones", **kwargs)])
    dense = ours.layers[0]
    keras_kwargs = {
        key: getattr(keras.regularizers, type(value).__name__)(**value.get_config())
        for key, value in kwargs.items()
    }
    theirs = keras.Sequential([keras.Input((3, 2)), _keras_dense(1, dense, **keras_kwargs)])
    ours.compile("sgd", "mse")
    theirs.compile("sgd", "mse")
    return ours, theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_regularizer": regularizers.L2(0.5)},
        {"bias_regularizer": regularizers.L1L2(0.2, 0.3)},
        {"activity_regularizer": regularizers.L1(0.1)},
    ],
    ids=["kernel", "bias", "activity"],
)
def test_evaluate_adds_the_penalties_as_keras_does(kwargs):
    ours, theirs = _models(**kwargs)
    loss = ours.evaluate(X, Y, batch_size=2)["loss"]
    keras_loss = theirs.evaluate(X.numpy(), Y.numpy(), batch_size=2, verbose=0)
    plain = torch.mean((ours(X).values - Y) ** 2).item()
    assert loss > plain + 1e-3  # the penalty is there
    assert loss == pytest.approx(keras_loss, rel=1e-5)


def test_fit_trains_on_the_penalty():
    dense = layers.Dense(1, input_dim=2, kernel_regularizer=regularizers.L2(10.0))
    model = mw.Sequential([dense])
    model.compile("sgd", "mse", learning_rate=0.01)
    before = dense.kernel.detach().clone()
    logs = model.fit(X, Y, epochs=1, batch_size=2, verbose=0, shuffle=False).history
    penalty = 10.0 * before.square().sum().item()
    plain = torch.mean((Masked(X).values @ before + 0.0 - Y) ** 2).item()
    assert logs["loss"][0] == pytest.approx(plain + penalty, rel=1e-5)
    # the L2 gradient 2 * 10 * w dominates: the kernel shrinks
    assert dense.kernel.norm() < before.norm()


# ---------------------------------------------------------------------- constraints
def test_constraints_apply_after_each_optimizer_step():
    dense = layers.Dense(
        2,
        input_dim=2,
        kernel_initializer=initializers.Constant(3.0),
        kernel_constraint=constraints.MaxNorm(1.0, axis=0),
        bias_constraint="non_neg",
    )
    assert dense.kernel.norm(dim=0).max() > 4  # not at construction: after a step, as Keras
    model = mw.Sequential([dense])
    model.compile("sgd", "mse", learning_rate=0.5)
    model.fit(X, -10 * torch.ones(2, 3, 2), epochs=1, batch_size=2, verbose=0)
    assert dense.kernel.norm(dim=0).max() <= 1.0 + 1e-6
    assert dense.bias is not None
    assert (dense.bias >= 0).all()


def test_frozen_weights_are_not_projected():
    dense = layers.Dense(
        1, input_dim=2, kernel_initializer="ones", kernel_constraint="unit_norm", trainable=False
    )
    model = mw.Sequential([dense, layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(X, Y, epochs=1, batch_size=2, verbose=0)
    assert torch.equal(dense.kernel, torch.ones(2, 1))


# ---------------------------------------------------------------------- saving
def test_layers_with_keras_arguments_save_and_load():
    dense = layers.Dense(
        3,
        input_dim=2,
        kernel_initializer=initializers.GlorotNormal(seed=1),
        kernel_regularizer=regularizers.L1L2(0.1, 0.2),
        kernel_constraint=constraints.MaxNorm(2.0),
        activity_regularizer="l2",
        dtype="float64",
        trainable=False,
    )
    copy = layer_from_config(layer_spec(dense))
    assert copy.get_config() == dense.get_config()
    assert copy._weight_rules["kernel"].regularizer == regularizers.L1L2(0.1, 0.2)
    assert copy.kernel.dtype == torch.float64
    assert not copy.kernel.requires_grad
    assert torch.equal(copy.kernel, dense.kernel)  # the seeded initializer draws the same


def test_a_model_with_penalties_round_trips_through_save(tmp_path):
    model = mw.Sequential([layers.Dense(2, input_dim=2, kernel_regularizer=regularizers.L2(0.5))])
    model.compile("sgd", "mse")
    model.save(tmp_path / "model")
    loaded = mw.load(tmp_path / "model")
    assert loaded.losses[0].item() == pytest.approx(model.losses[0].item())


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: layers.Masking(0.0, input_shape=(20, 5), mask_val=1),
            r"Masking does not take the argument mask_val=.\n  expected: one of .*input_shape, "
            r"mask_value, name, trainable\n  received: mask_val=1",
        ),
        (
            lambda: layers.Dense(3, recurrent_initializer="ones"),
            r"Dense does not take the argument recurrent_initializer=.\n  expected: .*, "
            "kernel_constraint, kernel_initializer, kernel_regularizer,",
        ),
        (lambda: layers.Dense(3, kernel_initializer="glorot"), "Unknown initializer 'glorot'"),
        (lambda: layers.Dense(3, kernel_regularizer="l3"), "Unknown regularizer 'l3'"),
        (lambda: layers.Embedding(3, 2, embeddings_constraint="max"), "Unknown constraint 'max'"),
        (
            lambda: layers.Dense(3, dtype="mixed_float16"),
            r"dtype 'mixed_float16' is not a float dtype.*\n.*\n.*\n  fix: .*precision=\"bf16\"",
        ),
        (lambda: layers.Dense(3, dtype="int32"), r"expected: one of \['bfloat16', 'float16'"),
        (lambda: layers.Dense(3, trainable="no"), "trainable must be True or False"),
    ],
)
def test_refusals_name_the_layer_and_the_fix(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


class _KerasStyle(layers.Layer):
    """A custom layer written the Keras way: `**kwargs` passed on to the base class."""

    weight_names = ("kernel",)

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.add_weight("kernel", (input_shape[-1], self.units), "glorot_uniform")

    def call(self, values, mask):
        return values @ self.kernel


def test_a_custom_layer_passing_kwargs_on_takes_the_keras_arguments():
    layer = _KerasStyle(3, input_shape=(None, 2), kernel_initializer="ones", name="mine")
    assert layer.name == "mine"
    assert torch.equal(layer.kernel, torch.ones(2, 3))
    with pytest.raises(ConfigError, match=r"_KerasStyle does not take the argument foo=.\n.*units"):
        _KerasStyle(3, foo=1)


def _required_arguments() -> dict[str, dict]:
    """The arguments without defaults of each public layer, container and cell."""
    return {
        "Activation": {"activation": "relu"},
        "AlphaDropout": {"rate": 0.1},
        "Bidirectional": {"layer": layers.LSTM(2)},
        "Conv1D": {"filters": 2, "kernel_size": 2},
        "Conv1DTranspose": {"filters": 2, "kernel_size": 2},
        "Dense": {"units": 2},
        "DepthwiseConv1D": {"kernel_size": 2},
        "Dot": {"axes": 1},
        "Dropout": {"rate": 0.1},
        "Embedding": {"input_dim": 5, "output_dim": 2},
        "GRU": {"units": 2},
        "GRUCell": {"units": 2},
        "GaussianDropout": {"rate": 0.1},
        "GaussianNoise": {"stddev": 0.1},
        "GroupQueryAttention": {"head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1},
        "LSTM": {"units": 2},
        "LSTMCell": {"units": 2},
        "Lambda": {"function": torch.relu},
        "MultiHeadAttention": {"num_heads": 2, "key_dim": 2},
        "Permute": {"dims": (2, 1)},
        "PositionEmbedding": {"sequence_length": 4},
        "RNN": {"cell": layers.GRUCell(2)},
        "RepeatVector": {"n": 2},
        "Reshape": {"target_shape": (2, 2)},
        "SeparableConv1D": {"filters": 2, "kernel_size": 2},
        "SimpleRNN": {"units": 2},
        "SimpleRNNCell": {"units": 2},
        "SpatialDropout1D": {"rate": 0.1},
        "StackedRNNCells": {"cells": [layers.LSTMCell(2)]},
        "TimeDistributed": {"layer": layers.Dense(2)},
        "TokenAndPositionEmbedding": {
            "vocabulary_size": 5,
            "sequence_length": 4,
            "embedding_dim": 2,
        },
        "TransformerEncoder": {"intermediate_dim": 4, "num_heads": 2},
        "Sequential": {"layers": []},
    }


PUBLIC_LAYERS = sorted(
    [
        name
        for name in layers.__all__
        if isinstance(getattr(layers, name), type)
        and issubclass(getattr(layers, name), layers.Layer)
    ]
    + ["Sequential"]
)


@pytest.mark.parametrize("name", PUBLIC_LAYERS)
def test_every_layer_refuses_an_unknown_argument_listing_those_it_takes(name):
    kind = getattr(layers, name, None) or getattr(mw, name)
    required = _required_arguments().get(name, {})
    own = [
        p
        for p in inspect.signature(kind.__init__).parameters
        if p not in ("self", "kwargs", "keras_args")
    ]
    rules = [f"{weight}_initializer" for weight in kind.weight_names]
    with pytest.raises(ConfigError) as refusal:
        kind(**required, lorem_ipsum=1)
    message = str(refusal.value)
    assert message.startswith(f"{name} does not take the argument lorem_ipsum=.\n")
    supported = re.search(r"expected: one of (.*)\n", message)
    assert supported is not None
    listed = supported.group(1).split(", ")
    assert {*own, *rules, "input_shape", "dtype", "trainable", "name"} <= set(listed)
    assert "  received: lorem_ipsum=1\n" in message


def test_a_functional_model_refuses_an_unknown_argument():
    inputs = mw.Input((None, 3))
    with pytest.raises(
        ConfigError, match=r"Model does not take the argument lorem=.\n  expected: .*, outputs,"
    ):
        mw.Model(inputs, layers.Dense(2)(inputs), lorem=1)


@settings(max_examples=40, deadline=None)
@given(
    gates=st.permutations(range(3)),
    transpose=st.booleans(),
    split=st.booleans(),
    rows=st.integers(1, 3),
)
def test_a_layout_stores_and_gives_back_keras_s_weight(gates, transpose, split, rows):
    # Keras's weight -> the stored parameters -> Keras's weight again, exactly; the
    # stored parameters are Keras's gates reordered (and transposed) by hand
    assume(not (split and transpose))  # split parts are vectors (GRU's biases)
    shape = (2, 3 * rows) if split else (rows, 3 * rows)
    values = torch.arange(float(np.prod(shape))).reshape(shape)
    attrs = ("first", "second") if split else ("only",)
    layout = Layout("kernel", attrs, transpose, tuple(gates))
    stored = layout.from_keras(values)
    chunks = values.chunk(3, dim=-1)
    by_hand = torch.cat([chunks[k] for k in gates], dim=-1)
    parts = list(by_hand.unbind(0)) if split else [by_hand]
    for mine, expected in zip(stored, parts, strict=True):
        assert torch.equal(mine, expected.T if transpose else expected)
    holder = torch.nn.Module()
    for attr, param in zip(attrs, stored, strict=True):
        setattr(holder, attr, torch.nn.Parameter(param))
    assert torch.equal(layout.to_keras(holder), values)
