"""`summary()` and Keras's other model methods on containers: `count_params`,
`get_weights`/`set_weights`, `get_layer`; the mask column from each layer's contract."""

import keras
import numpy as np
import pytest
import torch

from maskwise import ConfigError, Input, Model, Sequential, layers
from maskwise.summary import mask_effect


@pytest.mark.parametrize(
    ("layer", "effect"),
    [
        (layers.Masking(0.0), "creates"),
        (layers.Embedding(5, 2, mask_zero=True), "creates"),
        (layers.Embedding(5, 2), "passes"),
        (layers.Dense(2), "passes"),
        (layers.LSTM(2, return_sequences=True), "passes"),
        (layers.LSTM(2, return_sequences=True, go_backwards=True), "transforms"),
        (layers.LSTM(2), "consumes"),
        (layers.GlobalAveragePooling1D(), "consumes"),
        (layers.Concatenate(), "transforms"),
        (layers.Cropping1D((1, 0)), "transforms"),
        (layers.Lambda(torch.tanh), "passes"),
        (layers.Lambda(lambda v: v.sum(1), mask="drop"), "consumes"),
        (Sequential([layers.Masking(0.0), layers.Dense(2)]), "creates"),
        (Sequential([layers.Masking(0.0), layers.GRU(2)]), "consumes"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_mask_effect_follows_the_layer_contract(layer, effect):
    assert mask_effect(layer) == effect


def tagger() -> Sequential:
    model = Sequential(
        [
            layers.Embedding(20, 8, mask_zero=True, name="embed"),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True), name="a_long_layer_name"),
            layers.BatchNormalization(name="norm"),
            layers.GlobalAveragePooling1D(name="pool"),
            layers.Dense(2, name="out"),
        ],
        name="tagger",
    )
    model(torch.tensor([[1, 2, 0]]))
    return model


def test_sequential_summary_table():
    lines: list[str] = []
    tagger().summary(print_fn=lines.append)
    assert lines[0] == 'Model: "tagger"'
    assert all(len(line) <= 80 for line in lines)
    rows = {line.split()[0]: line.split() for line in lines if line[:1].islower()}
    assert rows["embed"][2:] == ["(None,", "None,", "8)", "160", "creates"]
    assert rows["norm"][-5:] == ["(None,", "None,", "8)", "32", "passes"]  # 16 + 16 moving
    assert rows["pool"][-3:] == ["4)", "0", "consumes"] or rows["pool"][-2:] == ["0", "consumes"]
    assert "Total params: 626 (2.45 KB)" in lines
    assert "Trainable params: 610 (2.38 KB)" in lines
    assert "Non-trainable params: 16 (64.00 B)" in lines


def test_summary_fits_a_narrow_terminal_and_prints_by_default(capsys):
    lines: list[str] = []
    tagger().summary(line_length=60, print_fn=lines.append)
    assert max(len(line) for line in lines) <= 60
    assert any("(Bidirectional)" in line for line in lines)  # wrapped, not cut
    Sequential([layers.Dense(2)]).summary()
    assert "? " in capsys.readouterr().out  # not called yet: shapes unknown


def test_functional_summary_names_what_each_layer_reads():
    a, b = Input(shape=(None, 3), name="a"), Input(shape=(None, 3), name="b")
    shared = layers.Dense(4, name="shared")
    model = Model([a, b], layers.Add(name="add")([shared(a), shared(b)]), name="pair")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert lines[2].split() == [
        "Layer",
        "(type)",
        "Output",
        "Shape",
        "Param",
        "#",
        "Mask",
        "Connected",
        "to",
    ]
    shared_row = next(line for line in lines if line.startswith("shared "))
    assert "16" in shared_row and shared_row.split()[-3:] == ["passes", "a,", "b"]
    assert any(line.startswith("a (Input)") for line in lines)
    assert "Total params: 16 (64.00 B)" in lines


def test_count_params_matches_keras():
    ours = tagger()
    theirs = keras.Sequential(
        [
            keras.Input((None,)),
            keras.layers.Embedding(20, 8, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2),
        ]
    )
    assert ours.count_params() == theirs.count_params() == 626


def test_get_and_set_weights_round_trip():
    model, other = tagger(), tagger()
    weights = model.get_weights()
    assert all(isinstance(w, np.ndarray) for w in weights)
    assert weights[0].shape == (20, 8)  # Embedding first, as in Keras
    other.set_weights(weights)
    x = torch.tensor([[3, 4, 5, 0]])
    torch.testing.assert_close(other.eval()(x).values, model.eval()(x).values)
    with pytest.raises(ConfigError, match=r"holds \d+ weights.*\n.*\n.*received: 1 arrays"):
        other.set_weights(weights[:1])
    with pytest.raises(ConfigError, match=r"weight 'layers.0.embeddings' has another shape"):
        other.set_weights([np.zeros((3, 3)), *weights[1:]])


def test_get_layer_by_name_or_index():
    model = tagger()
    assert model.get_layer("norm") is model.layers[2]
    assert model.get_layer(index=-1).name == "out"
    with pytest.raises(ConfigError, match=r"has no layer 'nope'.*\n.*expected: one of \['embed'"):
        model.get_layer("nope")
    with pytest.raises(ConfigError, match=r"has 5 layers"):
        model.get_layer(index=5)
    with pytest.raises(ConfigError, match=r"takes a name or an index"):
        model.get_layer()
