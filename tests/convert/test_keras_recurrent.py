"""`from_keras` with recurrent cells: `RNN(cell)`, `StackedRNNCells` and stateful
layers give Keras 3's values at the real steps; a stateful layer's streams carry on
from the states Keras holds."""

from typing import Any

import keras
import pytest
from keras_oracle import assert_same_mask, assert_same_values, keras_call, randomize_weights
from layers.contract import MASK_KINDS

from maskwise import ConfigError, from_keras

from .test_keras_model import features

L = keras.layers


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_rnn_of_cells_and_stacks_convert(kind: str) -> None:
    keras_model = keras.Sequential(
        [
            keras.Input((None, 5)),
            L.Masking(0.0),
            L.RNN(L.StackedRNNCells([L.LSTMCell(6), L.GRUCell(4)]), return_sequences=True),
            L.RNN(L.SimpleRNNCell(3, activation="relu"), go_backwards=True),
            L.Dense(2),
        ]
    )
    randomize_weights(keras_model)
    model = from_keras(keras_model).eval()
    x = features(kind)
    ours, theirs = model(x), keras_call(keras_model, x)
    assert_same_values(ours, theirs)
    assert_same_mask(ours, theirs)


def test_a_stateful_model_carries_on_from_keras_states() -> None:
    """Keras has already read one batch, so its states are not zeros: the converted
    model starts the next batch from them, and both agree on two more batches."""
    keras_model = keras.Sequential(
        [
            keras.Input(batch_shape=(3, None, 5)),
            L.Masking(0.0),
            L.RNN(L.LSTMCell(4), stateful=True, return_sequences=True),
            L.GRU(3, stateful=True),
        ]
    )
    randomize_weights(keras_model)
    keras_call(keras_model, features("post", seed=1))
    model = from_keras(keras_model).eval()
    for seed, kind in enumerate(("pre", "noncontiguous"), start=2):
        x = features(kind, seed=seed)
        assert_same_values(model(x), keras_call(keras_model, x))


class KerasUserCell(keras.layers.Layer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_size = 2

    def call(self, inputs: Any, states: Any) -> Any:
        return inputs[:, :2] + states[0], [inputs[:, :2] + states[0]]


def test_a_keras_user_cell_is_refused_with_the_way_out() -> None:
    keras_model = keras.Sequential([keras.Input((None, 5)), L.RNN(KerasUserCell())])
    with pytest.raises(ConfigError, match=r"(?s)no equivalent of Keras's `KerasUserCell`.*fix"):
        from_keras(keras_model)
