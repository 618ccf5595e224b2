"""Transformer blocks: PositionEmbedding, TokenAndPositionEmbedding, TransformerEncoder —
the layer contract, padding invariance, parity with KerasHub's forward (rebuilt from
Keras 3 layers, since `keras_hub` is not a dependency), errors, and a model that learns."""

import contextlib

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras.src import backend as keras_backend
from keras_oracle import to_keras

from maskwise import (
    ConfigError,
    DoctorError,
    Masked,
    MaskError,
    MaskWarning,
    ShapeError,
    losses,
    trace,
)
from maskwise.layers import (
    Dense,
    PositionEmbedding,
    TokenAndPositionEmbedding,
    TransformerEncoder,
)
from maskwise.layers.base import layer_from_config, layer_spec
from maskwise.models import Sequential

from .contract import (
    MASK_KINDS,
    check_gradients,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
    example_mask,
)
from .test_attention import alone, pad_batch

VOCAB = 12
ENCODERS = {
    "post_norm": lambda: TransformerEncoder(intermediate_dim=16, num_heads=2),
    "pre_norm": lambda: TransformerEncoder(
        12, 4, dropout=0.2, activation="gelu", layer_norm_epsilon=1e-3, normalize_first=True
    ),
    "one_head": lambda: TransformerEncoder(8, 1, dropout=0.1),
}


def token_input(kind: str, seed: int = 0) -> Masked:
    """Token ids `(3, 5)` in `[1, VOCAB)` under `example_mask(kind)`, 0 at padded steps."""
    generator = torch.Generator().manual_seed(seed)
    mask = example_mask(kind)
    tokens = torch.randint(1, VOCAB, (3, 5), generator=generator)
    return Masked(tokens.masked_fill(~mask, 0), mask)


def positions_warning(kind: str, skip_padding: bool):
    """Pre-padding and holes warn unless the positions skip the padding."""
    if kind == "post" or skip_padding:
        return contextlib.nullcontext()
    return pytest.warns(MaskWarning, match="real steps follow padded ones")


# ---------------------------------------------------------------------- contract
@pytest.mark.parametrize("skip_padding", [False, True])
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_position_embedding_keeps_the_contract(kind, skip_padding):
    with positions_warning(kind, skip_padding):
        check_layer_contract(
            lambda: PositionEmbedding(6, skip_padding=skip_padding),
            example_input(kind),
            reads_values=False,
        )


@pytest.mark.parametrize("skip_padding", [False, True])
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_token_and_position_embedding_keeps_the_contract(kind, mask_zero, skip_padding):
    def make():
        return TokenAndPositionEmbedding(
            VOCAB, 5, 4, mask_zero=mask_zero, skip_padding=skip_padding
        )

    with positions_warning(kind, skip_padding):
        check_layer_contract(make, token_input(kind), expected_shape=(3, 5, 4))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_transformer_encoder_keeps_the_contract(name, kind):
    out = check_layer_contract(ENCODERS[name], example_input(kind, features=8))
    assert torch.isfinite(out.values).all()


@pytest.mark.parametrize("fill", ["random", "nan"])
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_a_fully_padded_sequence_gives_finite_values_and_gradients(name, fill):
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    x = Masked(torch.randn(2, 4, 8), mask).fill_padding(0.0)
    layer = ENCODERS[name]()
    for training in (False, True):
        out = layer.train(training)(x.fill_padding(float("nan")) if fill == "nan" else x)
        assert torch.isfinite(out.values).all() and torch.equal(out.mask, mask)
        check_gradients(layer, x, fill, training)


# ---------------------------------------------------------------------- padding invariance
@st.composite
def ragged_batches(draw):
    """Sequence lengths, extra padded steps, the padding side and what it holds."""
    count = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
    extra = draw(st.integers(0, 3))
    padding = draw(st.sampled_from(["post", "pre"]))
    fill = draw(st.sampled_from(["zeros", "random", "nan"]))
    return lengths, extra, padding, fill


@settings(max_examples=30, deadline=None)
@given(batch=ragged_batches(), name=st.sampled_from(sorted(ENCODERS)))
def test_an_encoded_sequence_alone_equals_it_in_a_padded_batch(batch, name):
    lengths, extra, padding, fill = batch
    generator = torch.Generator().manual_seed(len(lengths))
    sequences = [torch.randn(n, 8, generator=generator) for n in lengths]
    layer = ENCODERS[name]().eval()
    x = pad_batch(sequences, extra, padding, fill)
    out = layer(x)
    assert torch.equal(out.mask, x.mask)
    for i, sequence in enumerate(sequences):
        single = layer(alone(sequence))
        torch.testing.assert_close(
            out.values[i][out.mask[i]], single.values[0], atol=1e-5, rtol=1e-5
        )


def pad_tokens(sequences: list[torch.Tensor], extra: int, padding: str, fill: str) -> Masked:
    """Token ids padded on one side, the padding holding zeros or any ids (out of the
    vocabulary included: they are never read)."""
    x = Masked.pad(sequences, padding=padding, max_len=max(map(len, sequences)) + extra)
    if fill == "zeros":
        return x
    other = torch.randint(-50, 50, x.values.shape)
    return x.with_values(torch.where(x.mask, x.values, other))


@settings(max_examples=30, deadline=None)
@given(batch=ragged_batches(), skip_padding=st.booleans())
def test_a_tagger_gives_a_sequence_alone_what_it_gives_it_in_a_batch(batch, skip_padding):
    lengths, extra, padding, fill = batch
    if padding == "pre":  # positions count padded steps otherwise (see the test below)
        skip_padding = True
    generator = torch.Generator().manual_seed(len(lengths))
    sequences = [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]
    model = Sequential(
        [
            TokenAndPositionEmbedding(VOCAB, 6, 8, skip_padding=skip_padding),
            TransformerEncoder(16, 2),
            Dense(3),
        ]
    ).eval()
    x = pad_tokens(sequences, extra, padding, fill)
    out = model(x)
    assert torch.equal(out.mask, x.mask)
    for i, sequence in enumerate(sequences):
        single = model(alone(sequence))
        torch.testing.assert_close(
            out.values[i][out.mask[i]], single.values[0], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("fill", ["zeros", "random", "nan"])
@pytest.mark.parametrize("steps", [1, 4])
def test_real_outputs_do_not_depend_on_padding_length_or_content(steps, fill):
    x = example_input("post", features=8)
    for layer in [PositionEmbedding(5), PositionEmbedding(5, skip_padding=True)]:
        check_padding_length_invariance(layer, x, steps, fill)  # longer than sequence_length
    for make in ENCODERS.values():
        check_padding_length_invariance(
            make(), example_input("noncontiguous", features=8), steps, fill
        )
    tokens = TokenAndPositionEmbedding(VOCAB, 5, 4, mask_zero=True)
    check_padding_length_invariance(tokens, token_input("post"), steps, "zeros")


def test_positions_are_step_indices_or_counts_of_real_steps():
    x = Masked(torch.zeros(2, 5, 3), torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 0, 1]]).bool())
    layer = PositionEmbedding(5, skip_padding=True)
    table = layer(example_input("post", features=3)).values[0]  # builds it: rows 0..4
    torch.testing.assert_close(layer.position_embeddings, table)
    out = layer(x)
    torch.testing.assert_close(out.values[0, :3], table[:3])
    torch.testing.assert_close(out.values[1, [2, 4]], table[:2])  # holes do not count
    layer.skip_padding = False
    with pytest.warns(MaskWarning, match=r"sequence 1 step 2.*skip_padding=True"):
        out = layer(x)
    torch.testing.assert_close(out.values[1, [2, 4]], table[[2, 4]])  # KerasHub's rule


def test_pre_padding_shifts_keras_hub_positions_and_skip_padding_does_not():
    sequence = torch.tensor([3, 5, 7])
    for skip_padding in (False, True):
        embed = TokenAndPositionEmbedding(VOCAB, 6, 4, mask_zero=True, skip_padding=skip_padding)
        alone_out = embed(sequence[None]).values[0]
        padded = torch.tensor([[0, 0, 3, 5, 7]])
        with positions_warning("pre", skip_padding):
            out = embed(padded)
        moved = (out.values[0, 2:] - alone_out).abs().max()
        assert (moved < 1e-6) if skip_padding else (moved > 1e-3)


# ---------------------------------------------------------------------- KerasHub parity
def keras_hub_position_embedding(table: torch.Tensor, inputs: torch.Tensor) -> np.ndarray:
    """KerasHub's `PositionEmbedding.call` (start_index=0, no positions): the table's
    first `time` rows broadcast to the input's shape."""
    shape = keras.ops.shape(inputs)
    sliced = keras.ops.slice(table.detach(), (0, 0), (shape[-2], shape[-1]))
    return keras.ops.convert_to_numpy(keras.ops.broadcast_to(sliced, shape))


@pytest.mark.parametrize(
    ("kind", "skip_padding"), [(kind, False) for kind in MASK_KINDS] + [("post", True)]
)
def test_position_embedding_matches_keras_hub(kind, skip_padding):
    x = example_input(kind)
    layer = PositionEmbedding(7, skip_padding=skip_padding)
    with positions_warning(kind, skip_padding):
        out = layer(x)
    expected = torch.as_tensor(keras_hub_position_embedding(layer.position_embeddings, x.values))
    torch.testing.assert_close(out.values[x.mask], expected[x.mask])
    assert torch.equal(out.mask, x.mask)


@pytest.mark.parametrize(
    ("kind", "skip_padding"), [("post", True), ("post", False), ("pre", False)]
)
def test_token_and_position_embedding_matches_keras_hub(kind, skip_padding):
    x = token_input(kind)
    layer = TokenAndPositionEmbedding(VOCAB, 6, 4, mask_zero=True, skip_padding=skip_padding)
    token_embedding = keras.layers.Embedding(VOCAB, 4, mask_zero=True)
    token_embedding.build((3, 5))
    token_embedding.embeddings.assign(layer.token_embedding.embeddings.detach().numpy())
    tokens = token_embedding(x.values)  # KerasHub's call: tokens + positions, tokens' mask
    expected = keras.ops.convert_to_numpy(tokens) + keras_hub_position_embedding(
        layer.position_embedding.position_embeddings, tokens
    )
    with positions_warning(kind, skip_padding):
        out = layer(x)
    torch.testing.assert_close(out.values[x.mask], torch.as_tensor(expected)[x.mask])
    assert torch.equal(out.mask, torch.as_tensor(token_embedding.compute_mask(x.values)))


class KerasHubEncoder:
    """KerasHub's `TransformerEncoder` (keras_hub/src/layers/modeling/
    transformer_encoder.py, `build` and `call`, with `merge_padding_and_attention_mask`)
    written with Keras 3 layers, as an independent reference; in inference, so its
    dropout layers (the identity there) are left out."""

    def __init__(self, intermediate_dim, num_heads, activation, epsilon, normalize_first):
        self.intermediate_dim, self.num_heads = intermediate_dim, num_heads
        self.activation, self.epsilon = activation, epsilon
        self.normalize_first = normalize_first

    def build(self, hidden: int) -> None:
        key_dim = hidden // self.num_heads
        self.self_attention_layer = keras.layers.MultiHeadAttention(self.num_heads, key_dim)
        self.self_attention_layer.build((1, 1, hidden), (1, 1, hidden))
        self.self_attention_layer_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        self.self_attention_layer_norm.build((1, 1, hidden))
        self.feedforward_layer_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        self.feedforward_layer_norm.build((1, 1, hidden))
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation
        )
        self.feedforward_intermediate_dense.build((1, 1, hidden))
        self.feedforward_output_dense = keras.layers.Dense(hidden)
        self.feedforward_output_dense.build((1, 1, self.intermediate_dim))

    def __call__(self, inputs, attention_mask=None, return_attention_scores=False):
        mask = keras_backend.get_keras_mask(inputs)
        merged = None if mask is None else keras.ops.cast(keras.ops.expand_dims(mask, 1), "int32")
        if attention_mask is not None:
            given = keras.ops.cast(attention_mask, "int32")
            merged = given if merged is None else keras.ops.minimum(merged, given)
        x = inputs
        residual = x
        if self.normalize_first:
            x = self.self_attention_layer_norm(x)
        x, scores = self.self_attention_layer(
            query=x, value=x, attention_mask=merged, return_attention_scores=True
        )
        x = x + residual
        if not self.normalize_first:
            x = self.self_attention_layer_norm(x)
        residual = x
        if self.normalize_first:
            x = self.feedforward_layer_norm(x)
        x = self.feedforward_intermediate_dense(x)
        x = self.feedforward_output_dense(x)
        x = x + residual
        if not self.normalize_first:
            x = self.feedforward_layer_norm(x)
        return (x, scores) if return_attention_scores else x


def keras_hub_pair(normalize_first: bool, activation: str = "relu"):
    """KerasHub's encoder with random weights, and a maskwise encoder holding them."""
    reference = KerasHubEncoder(16, 2, activation, 1e-5, normalize_first)
    reference.build(8)
    ours = TransformerEncoder(16, 2, activation=activation, normalize_first=normalize_first)
    ours(example_input("post", features=8))  # builds it
    params = dict(ours.named_parameters())
    projections = {"query": "query_dense", "key": "key_dense", "value": "value_dense"}
    projections["attention_output"] = "output_dense"
    rng = np.random.default_rng(0)
    copied = 0
    with torch.no_grad():
        for part in vars(reference).values():
            if not isinstance(part, keras.layers.Layer):
                continue
            prefix = {id(v): k for k, v in vars(reference).items()}[id(part)]
            for weight in part.weights:
                value = rng.normal(0.0, 0.5, tuple(weight.shape)).astype("float32")
                weight.assign(value)
                path = weight.path.split("/")[1:]
                path[0] = projections.get(path[0], path[0])
                params[".".join([prefix, *path])].copy_(torch.as_tensor(value))
                copied += 1
    assert copied == len(params)
    return reference, ours.eval()


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("kind", [*MASK_KINDS, "no mask"])
def test_transformer_encoder_matches_keras_hub_at_real_steps(kind, normalize_first, activation):
    reference, ours = keras_hub_pair(normalize_first, activation)
    x = example_input("post" if kind == "no mask" else kind, features=8, seed=3)
    if kind == "no mask":
        x = Masked(x.values)
    theirs = reference(to_keras(x))
    out = ours(x)
    assert (out.mask is None) if x.mask is None else torch.equal(out.mask, x.mask)
    expected = torch.as_tensor(keras.ops.convert_to_numpy(theirs))
    real = x.full_mask
    torch.testing.assert_close(out.values[real], expected[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_attention_mask_and_scores_match_keras_hub(normalize_first):
    reference, ours = keras_hub_pair(normalize_first)
    x = example_input("noncontiguous", features=8, seed=4)
    causal = torch.ones(5, 5, dtype=torch.bool).tril().expand(3, 5, 5)
    # every real step keeps a real key: itself (the diagonal is allowed)
    theirs, their_scores = reference(to_keras(x), causal, return_attention_scores=True)
    out, scores = ours(x, attention_mask=causal, return_attention_scores=True)
    expected = torch.as_tensor(keras.ops.convert_to_numpy(theirs))
    torch.testing.assert_close(out.values[x.mask], expected[x.mask], atol=1e-4, rtol=1e-4)
    their_scores = torch.as_tensor(keras.ops.convert_to_numpy(their_scores))
    rows = x.mask[:, None, :, None].expand_as(scores)
    torch.testing.assert_close(scores[rows], their_scores[rows], atol=1e-5, rtol=1e-5)
    unmasked = ours(x)  # the attention mask did restrict the attention
    assert not torch.allclose(unmasked.values[x.mask], out.values[x.mask], atol=1e-3)


# ---------------------------------------------------------------------- containers, config
def test_sublayers_are_named_after_the_block_and_trace_shows_one_row():
    model = Sequential(
        [
            TokenAndPositionEmbedding(VOCAB, 6, 8, mask_zero=True, name="embed"),
            TransformerEncoder(16, 2, name="encoder"),
        ]
    )
    tokens = torch.tensor([[3, 1, 4, 0], [2, 0, 0, 0]])
    rows = trace(model, tokens).rows
    assert [(r.name, r.type) for r in rows] == [
        ("embed", "TokenAndPositionEmbedding"),
        ("encoder", "TransformerEncoder"),
    ]
    assert torch.equal(rows[-1].output_mask, tokens != 0)
    encoder = model.layers[1]
    assert encoder.self_attention_layer.name == "encoder/self_attention_layer"
    assert encoder.feedforward_output_dense.name == "encoder/feedforward_output_dense"


def test_a_saved_config_rebuilds_the_weights_before_loading():
    layer = TransformerEncoder(16, 2, normalize_first=True).eval()
    x = example_input("pre", features=8)
    reference = layer(x)
    rebuilt = layer_from_config(layer_spec(layer))  # no call: built from the saved shape
    rebuilt.load_state_dict(layer.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x).values, reference.values)


def test_float64_inputs_build_a_float64_block():
    x = example_input("post", features=8).to(torch.float64)
    out = TransformerEncoder(16, 2)(x)
    assert out.values.dtype == torch.float64
    assert PositionEmbedding(5)(x).values.dtype == torch.float64


def test_dropout_acts_in_training_only():
    layer = TransformerEncoder(16, 2, dropout=0.5).eval()  # before building its sublayers
    x = example_input("post", features=8)
    torch.testing.assert_close(layer(x).values, layer(x).values)
    layer.train()
    assert not torch.allclose(layer(x).values, layer(x).values)


# ---------------------------------------------------------------------- a model that learns
def first_token_task(count: int, rng: np.random.Generator) -> tuple[list, list]:
    """Ragged sequences of ids 1..9; a step's tag is 1 iff its token is larger than the
    sequence's FIRST token: no model that sees one step at a time can learn it."""
    x, y = [], []
    for _ in range(count):
        tokens = rng.integers(1, 10, size=int(rng.integers(3, 11)))
        x.append(tokens)
        y.append((tokens > tokens[0]).astype(np.int64))
    return x, y


def best_accuracy_from_the_token_alone(x: list, y: list) -> float:
    """The accuracy of the best rule that reads one token: its majority tag."""
    tokens, tags = np.concatenate(x), np.concatenate(y)
    right = sum(
        max(np.sum(tags[tokens == t]), np.sum(tokens == t) - np.sum(tags[tokens == t]))
        for t in np.unique(tokens)
    )
    return right / len(tokens)


def test_token_and_position_embedding_and_an_encoder_learn_a_ragged_tagging_task():
    torch.manual_seed(3)  # 10 epochs of 300 sequences: some initial draws need more
    rng = np.random.default_rng(0)
    x, y = first_token_task(300, rng)
    test_x, test_y = first_token_task(200, rng)
    model = Sequential(
        [
            TokenAndPositionEmbedding(10, 10, 16, mask_zero=True),
            TransformerEncoder(32, 2),
            Dense(2),
        ]
    )
    model.compile(
        "adam",
        losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        learning_rate=0.01,
    )
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    accuracy = model.evaluate(test_x, test_y, verbose=0)["accuracy"]
    baseline = best_accuracy_from_the_token_alone(test_x, test_y)
    assert baseline < 0.85
    assert accuracy > 0.97


def test_fit_stops_at_keras_hub_positions_that_depend_on_the_padding():
    x, y = first_token_task(16, np.random.default_rng(0))
    model = Sequential(
        [
            TokenAndPositionEmbedding(10, 10, 8, mask_zero=True, skip_padding=False, name="emb"),
            TransformerEncoder(16, 2),
            Dense(2),
        ]
    )
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(DoctorError, match=r"MW013.*emb .*TokenAndPositionEmbedding"):
        model.fit(x, y, epochs=1, verbose=0)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PositionEmbedding(0), r"sequence_length` must be a positive integer"),
        (lambda: PositionEmbedding(None), r"sequence_length` must be a positive integer"),
        (lambda: PositionEmbedding(4, initializer="he_norm"), r"Unknown initializer 'he_norm'"),
        (lambda: PositionEmbedding(4, skip_padding="yes"), r"skip_padding` is a switch"),
        (lambda: TokenAndPositionEmbedding(0, 4, 4), r"vocabulary_size` must be a positive"),
        (lambda: TokenAndPositionEmbedding(5, 4, 2.5), r"embedding_dim` must be a positive"),
        (
            lambda: TokenAndPositionEmbedding(5, 4, 4, embeddings_initializer="one_s"),
            r"Unknown initializer 'one_s'.\n  expected: one of the Keras names",
        ),
        (lambda: TokenAndPositionEmbedding(5, 4, 4, mask_zero=1), r"mask_zero` is a switch"),
        (lambda: TransformerEncoder(0, 2), r"intermediate_dim` must be a positive integer"),
        (lambda: TransformerEncoder(8, 0), r"num_heads` must be a positive integer"),
        (lambda: TransformerEncoder(8, 2, dropout=1.0), r"rate must be a probability"),
        (lambda: TransformerEncoder(8, 2, activation="swoosh"), r"Unknown activation"),
        (lambda: TransformerEncoder(8, 2, layer_norm_epsilon=0), r"layer_norm_epsilon"),
        (
            lambda: TransformerEncoder(8, 2, kernel_initializer="he"),
            r"Unknown initializer 'he'",
        ),
        (lambda: TransformerEncoder(8, 2, normalize_first=None), r"normalize_first"),
    ],
)
def test_bad_arguments_are_explained(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_more_heads_than_features_is_explained():
    with pytest.raises(ConfigError, match=r"8 features among 9 heads.*\n.*num_heads <= features"):
        TransformerEncoder(16, 9)(example_input("post", features=8))


def test_wrong_inputs_are_explained_and_build_nothing():
    encoder, positions = TransformerEncoder(16, 2), PositionEmbedding(5)
    flat = torch.randn(3, 5)
    with pytest.raises(
        ShapeError, match=r"(?s)needs \(batch, time, features\).*\n.*received: values \(3, 5\)"
    ):
        encoder(flat)
    with pytest.raises(ShapeError, match=r"(?s)PositionEmbedding.*\n.*received: values \(3, 5\)"):
        positions(flat)
    assert not encoder.built and not positions.built
    encoder(example_input("post", features=8))
    positions(example_input("post", features=8))
    for layer in (encoder, positions):
        with pytest.raises(ShapeError, match=r"(?s)with 8 features.*received: values \(3, 5, 4\)"):
            layer(example_input("post", features=4))
    with pytest.raises(ShapeError, match=r"(?s)takes token ids.*\n.*received: values \(3, 5, 4\)"):
        TokenAndPositionEmbedding(VOCAB, 5, 4)(example_input("post").values.long())


def test_real_steps_beyond_sequence_length_are_explained():
    x = example_input("post", features=4)  # sequence 0 has 5 real steps
    with pytest.raises(
        ShapeError, match=r"learns 4 positions, but sequence 0 has a real step at position 4"
    ):
        PositionEmbedding(4)(x)
    holes = Masked(
        torch.randn(2, 7, 4), torch.tensor([[1, 0, 0, 1, 0, 0, 0], [1] * 5 + [0, 0]]).bool()
    )
    out = PositionEmbedding(5, skip_padding=True)(holes)  # 2 and 5 real steps: they fit
    assert out.values.shape == (2, 7, 4)
    with pytest.raises(ShapeError, match=r"(?s)sequence 1 .* position 4.*counting real"):
        PositionEmbedding(4, skip_padding=True)(holes)
    longer_second = Masked(torch.randn(2, 7, 4), torch.tensor([[1] * 5 + [0] * 2, [1] * 7]).bool())
    with pytest.raises(ShapeError, match=r"sequence 0 has a real step at position 4\."):
        PositionEmbedding(4)(longer_second)  # the first sequence too long, with its own step
    with pytest.raises(ShapeError, match="layer 'embed/position_embedding' learns 3 positions"):
        TokenAndPositionEmbedding(VOCAB, 3, 4, name="embed")(token_input("post"))


def test_bad_attention_masks_and_token_ids_are_explained():
    x = example_input("post", features=8)
    encoder = TransformerEncoder(16, 2, name="encoder")
    with pytest.raises(MaskError, match=r"'encoder/self_attention_layer': `attention_mask`"):
        encoder(x, attention_mask=torch.ones(3, 5, 5))
    with pytest.raises(ConfigError, match="token_embedding' got a token id outside its vocabulary"):
        TokenAndPositionEmbedding(4, 5, 4)(token_input("post"))


def test_initializers_reach_every_table_and_kernel():
    encoder = TransformerEncoder(8, 2, kernel_initializer="ones", bias_initializer="ones")
    encoder(torch.zeros(1, 3, 4))
    for module in encoder.modules():
        for name, param in module.named_parameters(recurse=False):
            if name in ("kernel", "bias") and "norm" not in type(module).__name__.lower():
                assert torch.equal(param, torch.ones_like(param)), name
    embed = TokenAndPositionEmbedding(5, 4, 3, embeddings_initializer="zeros")
    assert not embed.token_embedding.embeddings.any()
    assert not embed.position_embedding.position_embeddings.any()
