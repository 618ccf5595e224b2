"""`from_keras` carries a Keras layer's regularizers, constraints and `trainable` flag
(`convert/core.py`'s `keras_rules`): the converted layer's penalties equal Keras's on
the same weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from keras_oracle import build_keras, convert_layer

import maskwise.convert.attention
import maskwise.convert.convolutional
import maskwise.convert.recurrent  # noqa: F401
from maskwise import ConfigError, constraints, from_keras, regularizers

FEATURES = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
TOKENS = torch.tensor([[1, 4, 2, 0, 0], [3, 3, 1, 2, 5]])


def _total(losses) -> float:
    return float(sum(np.asarray(keras.ops.convert_to_numpy(loss)) for loss in losses))


@pytest.mark.parametrize(
    ("make", "inputs"),
    [
        (
            lambda: keras.layers.Dense(
                4, kernel_regularizer="l2", bias_regularizer=keras.regularizers.L1(0.3)
            ),
            FEATURES,
        ),
        (
            lambda: keras.layers.Embedding(
                6, 2, embeddings_regularizer=keras.regularizers.L1L2(0.1, 0.2)
            ),
            TOKENS,
        ),
        (lambda: keras.layers.Conv1D(4, 2, kernel_regularizer="l1"), FEATURES),
        (lambda: keras.layers.DepthwiseConv1D(2, depthwise_regularizer="l2"), FEATURES),
        (
            lambda: keras.layers.LSTM(
                3, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2"
            ),
            FEATURES,
        ),
        (lambda: keras.layers.GRU(3, bias_regularizer="l1", recurrent_regularizer="l2"), FEATURES),
        (
            lambda: keras.layers.SimpleRNN(3, kernel_regularizer="l1", bias_regularizer="l2"),
            FEATURES,
        ),
        (
            lambda: keras.layers.RNN(
                keras.layers.StackedRNNCells(
                    [
                        keras.layers.LSTMCell(3, recurrent_regularizer="l2"),
                        keras.layers.GRUCell(2, kernel_regularizer="l1", bias_regularizer="l2"),
                    ]
                )
            ),
            FEATURES,
        ),
        (
            lambda: keras.layers.Bidirectional(
                keras.layers.LSTM(3, kernel_regularizer="l2", recurrent_regularizer="l1")
            ),
            FEATURES,
        ),
        (lambda: keras.layers.PReLU(alpha_initializer="ones", alpha_regularizer="l1"), FEATURES),
        (
            lambda: keras.layers.LayerNormalization(gamma_regularizer="l2", beta_regularizer="l1"),
            FEATURES,
        ),
        (lambda: keras.layers.BatchNormalization(gamma_regularizer="l1"), FEATURES),
    ],
    ids=[
        "Dense",
        "Embedding",
        "Conv1D",
        "DepthwiseConv1D",
        "LSTM",
        "GRU",
        "SimpleRNN",
        "StackedRNNCells",
        "Bidirectional",
        "PReLU",
        "LayerNormalization",
        "BatchNormalization",
    ],
)
def test_weight_penalties_survive_the_conversion(make, inputs):
    keras_layer = build_keras(make(), inputs)
    ours = convert_layer(keras_layer)
    assert _total(keras_layer.losses) > 0
    assert sum(p.item() for p in ours.losses) == pytest.approx(_total(keras_layer.losses), 1e-5)


def test_attention_penalties_and_constraints_survive_the_conversion():
    query = keras.Input((None, 3))
    attention = keras.layers.MultiHeadAttention(
        2, 4, kernel_regularizer="l2", kernel_constraint=keras.constraints.MaxNorm(1.5)
    )
    keras_model = keras.Model(query, attention(query, query))
    model = from_keras(keras_model)
    ours = model.layers[0]
    assert sum(p.item() for p in ours.losses) == pytest.approx(_total(keras_model.losses), 1e-5)
    assert ours._weight_rules["kernel"].constraint == constraints.MaxNorm(1.5)


def test_activity_regularizer_constraints_and_trainable_are_carried():
    keras_layer = keras.layers.Dense(
        2,
        activity_regularizer=keras.regularizers.L2(0.4),
        kernel_constraint=keras.constraints.MinMaxNorm(0.5, 2.0, rate=0.5, axis=1),
        bias_constraint="non_neg",
    )
    keras_layer.trainable = False
    ours = convert_layer(build_keras(keras_layer, FEATURES))
    assert ours.activity_regularizer == regularizers.L2(0.4)
    assert ours._weight_rules["kernel"].constraint == constraints.MinMaxNorm(0.5, 2.0, 0.5, 1)
    assert ours._weight_rules["bias"].constraint == constraints.NonNeg()
    assert not any(p.requires_grad for p in ours.parameters())


def test_a_regularizer_maskwise_lacks_is_refused_by_name():
    keras_layer = build_keras(
        keras.layers.Dense(2, kernel_regularizer=keras.regularizers.OrthogonalRegularizer()),
        FEATURES,
    )
    with pytest.raises(
        ConfigError,
        match=r"does not implement kernel_regularizer=OrthogonalRegularizer.\n.*\n"
        r"  fix: use one of maskwise.regularizers's classes \(l1, l1_l2, l1l2, l2\)",
    ):
        convert_layer(keras_layer)


def test_recurrent_constraints_seed_and_use_cudnn_are_carried():
    keras_layer = keras.layers.Bidirectional(
        keras.layers.GRU(
            3,
            kernel_constraint=keras.constraints.MaxNorm(1.5),
            bias_constraint="non_neg",
            seed=4,
            use_cudnn=False,
        )
    )
    ours = convert_layer(build_keras(keras_layer, FEATURES))
    for direction in (ours.forward_layer, ours.backward_layer):
        rules = direction.cell._weight_rules
        assert rules["kernel"].constraint == constraints.MaxNorm(1.5)
        assert rules["bias"].constraint == constraints.NonNeg()
        assert (direction.cell.seed, direction.use_cudnn) == (4, False)
