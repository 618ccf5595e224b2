"""from_keras on Keras's attention layers: outputs equal Keras's at real steps, the
query's mask comes out, call options (`use_causal_mask=`, `attention_mask=`) carry
over, and unsupported options are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskwise import from_keras
from maskwise.errors import ConfigError

keras = pytest.importorskip("keras")

TOKENS = np.array([[3, 5, 2, 7, 1], [4, 6, 0, 0, 0], [8, 0, 0, 0, 0]], dtype="int32")
LENGTHS = [5, 2, 1]


def _embedded(name: str) -> tuple[object, object]:
    tokens = keras.Input((None,), dtype="int32", name=name)
    return tokens, keras.layers.Embedding(10, 8, mask_zero=True)(tokens)


def _check(keras_model: object, inputs: list[np.ndarray]) -> None:
    """maskwise's outputs equal Keras's at the real steps, and carry the first
    input's lengths."""
    expected = np.asarray(keras_model.predict(inputs, verbose=0))
    model = from_keras(keras_model)
    got = model(*[torch.as_tensor(x) for x in inputs])
    assert got.lengths.tolist() == LENGTHS
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(
            got.values[row, :length].detach().numpy(), expected[row, :length], atol=1e-5
        )


def test_self_attention_after_a_masking_embedding() -> None:
    tokens, x = _embedded("tokens")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    _check(keras.Model(tokens, keras.layers.Dense(3)(y)), [TOKENS])


def test_cross_attention_by_keyword_with_a_key() -> None:
    tokens, x = _embedded("tokens")
    context, c = _embedded("context")
    k = keras.layers.Dense(6)(c)
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)(
        query=x, value=c, key=k
    )
    other = np.array([[1, 2, 0, 0], [5, 0, 0, 0], [2, 3, 4, 0]], dtype="int32")
    _check(keras.Model([tokens, context], y), [TOKENS, other])


def test_group_query_attention() -> None:
    tokens, x = _embedded("tokens")
    y = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)(x, x)
    _check(keras.Model(tokens, y), [TOKENS])


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.Attention(),
        lambda: keras.layers.Attention(use_scale=True, score_mode="concat"),
        lambda: keras.layers.AdditiveAttention(),
    ],
    ids=["dot", "concat", "additive"],
)
def test_list_called_attention(layer: object) -> None:
    tokens, x = _embedded("tokens")
    keras_layer = layer()
    y = keras_layer([x, x])
    model = keras.Model(tokens, y)
    for weight in keras_layer.weights:  # away from the initial values, so a missed copy shows
        weight.assign(np.full(weight.shape, 0.7, dtype="float32"))
    _check(model, [TOKENS])


def test_attention_axes_is_refused() -> None:
    tokens, x = _embedded("tokens")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(1,))(x, x)
    from_keras(keras.Model(tokens, y))  # the time axis: the default, accepted
    q = keras.Input((None, 3, 8))
    z = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(2,))(q, q)
    with pytest.raises(ConfigError, match="attention_axes"):
        from_keras(keras.Model(q, z))


def test_causal_mask_at_call() -> None:
    tokens, x = _embedded("tokens")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True)
    _check(keras.Model(tokens, y), [TOKENS])
    z = keras.layers.Attention()([x, x], use_causal_mask=True)
    _check(keras.Model(tokens, z), [TOKENS])


def test_cross_attention_positional_value_and_key() -> None:
    tokens, x = _embedded("tokens")
    context, c = _embedded("context")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, c, keras.layers.Dense(8)(c))
    other = np.array([[1, 0, 0], [5, 6, 7], [2, 3, 0]], dtype="int32")
    _check(keras.Model([tokens, context], y), [TOKENS, other])


def test_attention_mask_tensor() -> None:
    tokens, x = _embedded("tokens")
    allowed = keras.Input((None, None), dtype="bool", name="allowed")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(
        x, x, attention_mask=allowed
    )
    pattern = np.tril(np.ones((3, 5, 5), dtype=bool))  # causal, given as a tensor
    _check(keras.Model([tokens, allowed], y), [TOKENS, pattern])


@pytest.mark.parametrize(
    ("layer", "option"),
    [
        (lambda: keras.layers.MultiHeadAttention(2, 4, use_gate=True), "use_gate"),
        (lambda: keras.layers.GroupQueryAttention(4, 2, 1, use_gate=True), "use_gate"),
    ],
    ids=["mha-gate", "gqa-gate"],
)
def test_unsupported_options_are_refused(layer: object, option: str) -> None:
    tokens, x = _embedded("tokens")
    keras_model = keras.Model(tokens, layer()(x, x))
    with pytest.raises(ConfigError, match=rf"maskwise does not implement {option}"):
        from_keras(keras_model)


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: keras.layers.MultiHeadAttention(2, 4, dropout=0.2, seed=seed),
        lambda seed: keras.layers.GroupQueryAttention(4, 4, 2, dropout=0.2, seed=seed),
        lambda seed: keras.layers.Attention(dropout=0.2, seed=seed),
        lambda seed: keras.layers.AdditiveAttention(dropout=0.2, seed=seed),
    ],
    ids=["MultiHeadAttention", "GroupQueryAttention", "Attention", "AdditiveAttention"],
)
def test_attention_layers_carry_their_seed(make) -> None:
    for seed in (5, None):
        tokens, x = _embedded("tokens")
        layer = make(seed)
        projected = (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)
        heads = isinstance(layer, projected)
        model = from_keras(keras.Model(tokens, layer(x, x) if heads else layer([x, x])))
        converted = [layer for layer in model.layers if "ttention" in type(layer).__name__]
        assert converted[0].get_config()["seed"] == seed
