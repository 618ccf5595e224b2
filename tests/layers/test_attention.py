"""Attention layers: MultiHeadAttention, GroupQueryAttention, Attention,
AdditiveAttention — the layer contract, padding invariance, parity with Keras 3 at the
real steps, rows with nothing to attend to, containers, and error messages."""

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import to_keras

from maskwise import ConfigError, Masked, MaskError, MaskwiseTypeError, ShapeError, trace
from maskwise.layers import (
    AdditiveAttention,
    Attention,
    Dense,
    Embedding,
    GroupQueryAttention,
    MultiHeadAttention,
)
from maskwise.layers.attention import _plan
from maskwise.models import Graph, Module, Sequential

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
    example_mask,
)

# name -> a fresh layer (inputs have 4 features)
LAYERS = {
    "mha": lambda: MultiHeadAttention(num_heads=2, key_dim=3),
    "mha_dropout": lambda: MultiHeadAttention(2, 3, value_dim=5, dropout=0.3, output_shape=6),
    "mha_no_bias": lambda: MultiHeadAttention(1, 2, use_bias=False),
    "gqa": lambda: GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2),
    "attention": lambda: Attention(),
    "attention_concat": lambda: Attention(use_scale=True, score_mode="concat", dropout=0.3),
    "additive": lambda: AdditiveAttention(),
    "additive_dropout": lambda: AdditiveAttention(use_scale=False, dropout=0.3),
}
OUTPUT_FEATURES = {"mha_dropout": 6}


def out_shape(name: str) -> tuple[int, int, int]:
    return (3, 5, OUTPUT_FEATURES.get(name, 4))


# ---------------------------------------------------------------------- contract
@pytest.mark.parametrize(("kind", "other"), [(k, k) for k in MASK_KINDS] + [("post", "pre")])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_cross_attention_keeps_the_contract_and_the_query_mask(name, kind, other):
    x = [example_input(kind, seed=1), example_input(other, seed=2)]
    out = check_layer_contract(
        LAYERS[name], x, expected_shape=out_shape(name), expected_mask=example_mask(kind)
    )
    assert torch.isfinite(out.values).all()


@pytest.mark.parametrize("name", ["mha", "gqa", "attention"])
def test_a_separate_key_keeps_the_contract(name):
    x = [example_input("post", seed=1), example_input("pre", seed=2)]
    key = example_input("noncontiguous", seed=3)
    check_layer_contract(
        LAYERS[name], [*x, key], expected_shape=out_shape(name), expected_mask=x[0].mask
    )


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_one_input_is_self_attention_and_keeps_the_contract(name, kind):
    x = example_input(kind)
    out = check_layer_contract(LAYERS[name], x, expected_shape=out_shape(name))
    layer = LAYERS[name]().eval()
    torch.manual_seed(0)
    alone = layer(x)
    torch.manual_seed(0)
    both = layer([x, x])
    torch.testing.assert_close(alone.values, both.values)
    assert torch.equal(out.mask, example_mask(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_causal_attention_with_scores_keeps_the_contract(name, kind):
    """The scores come after the output, and padding changes them nowhere."""
    x = [example_input(kind, seed=1), example_input("pre", seed=2)]
    options = {"use_causal_mask": True, "return_attention_scores": True}
    check_layer_contract(
        LAYERS[name],
        x,
        expected_shape=out_shape(name),
        expected_mask=example_mask(kind),
        options=options,
    )
    out, scores = LAYERS[name]()(x, **options)
    heads = {"mha": 2, "mha_dropout": 2, "mha_no_bias": 1, "gqa": 4}
    shape = (3, heads[name], 5, 5) if name in heads else (3, 5, 5)
    assert isinstance(out, Masked) and scores.shape == shape


def test_an_attention_mask_keeps_the_contract():
    x = example_input("noncontiguous", seed=1)
    allowed = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(4)) > 0.3
    check_layer_contract(LAYERS["mha"], x, options={"attention_mask": allowed})


def test_inputs_without_masks_give_no_mask_and_plain_attention():
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    out = Attention()([q, v])
    assert out.mask is None
    expected = torch.softmax(q @ v.transpose(1, 2), dim=-1) @ v
    torch.testing.assert_close(out.values, expected)


# ---------------------------------------------------------------------- padding invariance
@st.composite
def ragged_batches(draw):
    """Query and value lengths for a batch, the padding side and what the padding holds."""
    count = draw(st.integers(1, 4))
    query_lengths = draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
    value_lengths = draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
    extra = draw(st.integers(0, 3))
    padding = draw(st.sampled_from(["post", "pre"]))
    fill = draw(st.sampled_from(["zeros", "random", "nan"]))
    return query_lengths, value_lengths, extra, padding, fill


def pad_batch(seqs: list[torch.Tensor], extra: int, padding: str, fill: str) -> Masked:
    longest = max(len(s) for s in seqs) + extra
    x = Masked.pad(seqs, padding=padding, max_len=longest)
    if fill == "zeros":
        return x
    other = (
        torch.full_like(x.values, float("nan"))
        if fill == "nan"
        else 100 * torch.randn_like(x.values)
    )
    return x.with_values(torch.where(x.mask[..., None], x.values, other))


def alone(seq: torch.Tensor) -> Masked:
    return Masked(seq[None], torch.ones(1, len(seq), dtype=torch.bool))


@settings(max_examples=30, deadline=None)
@given(batch=ragged_batches(), name=st.sampled_from(sorted(LAYERS)), causal=st.booleans())
def test_a_sequence_alone_equals_it_in_a_padded_batch(batch, name, causal):
    query_lengths, value_lengths, extra, padding, fill = batch
    generator = torch.Generator().manual_seed(len(query_lengths))
    queries = [torch.randn(n, 4, generator=generator) for n in query_lengths]
    values = [torch.randn(n, 4, generator=generator) for n in value_lengths]
    layer = LAYERS[name]().eval()
    if causal:  # self-attention: query and value share their positions
        values = queries
    q_batch = pad_batch(queries, extra, padding, fill)
    v_batch = q_batch if causal else pad_batch(values, extra, padding, fill)
    out = layer([q_batch, v_batch], use_causal_mask=causal)
    assert torch.equal(out.mask, q_batch.mask)
    for i, (query, value) in enumerate(zip(queries, values, strict=True)):
        single = layer([alone(query), alone(value)], use_causal_mask=causal)
        torch.testing.assert_close(
            out.values[i][out.mask[i]], single.values[0], atol=1e-5, rtol=1e-5
        )


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(sorted(LAYERS)),
    steps=st.integers(1, 6),
    fill=st.sampled_from(["zeros", "random", "nan"]),
)
def test_real_outputs_do_not_depend_on_padding_length_or_content(name, steps, fill):
    x = [example_input("noncontiguous", seed=1), example_input("post", seed=2)]
    check_padding_length_invariance(LAYERS[name](), x, steps, fill)


# ---------------------------------------------------------------------- Keras parity
def copy_from_keras(keras_layer, layer) -> None:
    """Copy Keras's weights into `layer` by path: `query/kernel` -> `query_dense.kernel`,
    `attention_output/...` -> `output_dense`, `scale` and `concat_score_weight` as is."""
    names = {"query": "query_dense", "key": "key_dense", "value": "value_dense"}
    names["attention_output"] = "output_dense"
    params = dict(layer.named_parameters())
    assert len(params) == len(keras_layer.weights)
    with torch.no_grad():
        for weight in keras_layer.weights:
            parts = weight.path.split("/")[1:]
            target = ".".join([names.get(parts[0], parts[0]), *parts[1:]])
            params[target].copy_(torch.as_tensor(np.asarray(weight.numpy())))


def keras_run(keras_layer, query, value, key=None, **kwargs):
    """A Keras attention layer on maskwise inputs (their masks attached)."""
    if isinstance(keras_layer, keras.layers.Attention):  # AdditiveAttention too
        inputs = [to_keras(query), to_keras(value)] + ([to_keras(key)] if key is not None else [])
        return keras_layer(inputs, **kwargs)
    if key is not None:
        kwargs["key"] = to_keras(key)
    return keras_layer(to_keras(query), to_keras(value), **kwargs)


def ours_run(layer, query, value, key=None, **kwargs):
    inputs = [query, value] + ([key] if key is not None else [])
    if isinstance(layer, Attention | AdditiveAttention):
        return layer(inputs, **kwargs)
    return layer(*inputs, **kwargs)


def kept_rows(query: Masked, value: Masked, key: Masked | None, causal: bool, given=None):
    """(batch, query time): real query steps with at least one key step to attend to."""
    allowed = value.full_mask[:, None, :]
    if key is not None:
        allowed = allowed & key.full_mask[:, None, :]
    if causal:
        allowed = allowed & torch.ones(query.time, value.time, dtype=torch.bool).tril()
    if given is not None:
        allowed = allowed & given
    return query.full_mask & allowed.any(-1)


KERAS_PAIRS = {
    "mha": (
        lambda: keras.layers.MultiHeadAttention(num_heads=2, key_dim=3),
        lambda: MultiHeadAttention(num_heads=2, key_dim=3),
    ),
    "mha_2d_output": (
        lambda: keras.layers.MultiHeadAttention(3, 2, output_shape=(2, 3)),
        lambda: MultiHeadAttention(3, 2, output_shape=(2, 3)),
    ),
    "mha_shapes": (
        lambda: keras.layers.MultiHeadAttention(2, 3, value_dim=5, output_shape=7, use_bias=False),
        lambda: MultiHeadAttention(2, 3, value_dim=5, output_shape=7, use_bias=False),
    ),
    "gqa": (
        lambda: keras.layers.GroupQueryAttention(3, 4, 2),
        lambda: GroupQueryAttention(3, 4, 2),
    ),
    "mqa": (
        lambda: keras.layers.GroupQueryAttention(2, 3, 1, use_bias=False),
        lambda: GroupQueryAttention(2, 3, 1, use_bias=False),
    ),
    "attention": (lambda: keras.layers.Attention(), lambda: Attention()),
    "attention_scale": (
        lambda: keras.layers.Attention(use_scale=True),
        lambda: Attention(use_scale=True),
    ),
    "attention_concat": (
        lambda: keras.layers.Attention(use_scale=True, score_mode="concat"),
        lambda: Attention(use_scale=True, score_mode="concat"),
    ),
    "additive": (lambda: keras.layers.AdditiveAttention(), lambda: AdditiveAttention()),
    "additive_no_scale": (
        lambda: keras.layers.AdditiveAttention(use_scale=False),
        lambda: AdditiveAttention(use_scale=False),
    ),
}


def keras_pair(name: str, query: Masked, value: Masked, key: Masked | None = None):
    make_keras, make_ours = KERAS_PAIRS[name]
    keras_layer = make_keras()
    keras_run(keras_layer, query, value, key)  # builds it
    rng = np.random.default_rng(0)
    for weight in keras_layer.weights:
        weight.assign(rng.normal(0.0, 0.5, tuple(weight.shape)).astype("float32"))
    ours = make_ours()
    ours_run(ours, query, value, key)
    copy_from_keras(keras_layer, ours)
    return keras_layer, ours.eval()


def assert_parity_at(ours: torch.Tensor, theirs, rows: torch.Tensor) -> None:
    theirs = torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(theirs)))
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[rows], theirs[rows], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("kind", "other"), [("post", "post"), ("pre", "noncontiguous")])
@pytest.mark.parametrize("name", sorted(KERAS_PAIRS))
def test_matches_keras_at_real_steps(name, kind, other, causal):
    query, value = example_input(kind, seed=1), example_input(other, seed=2)
    keras_layer, ours = keras_pair(name, query, value)
    theirs = keras_run(keras_layer, query, value, use_causal_mask=causal)
    out = ours_run(ours, query, value, use_causal_mask=causal)
    assert torch.equal(out.mask, torch.as_tensor(theirs._keras_mask))
    rows = kept_rows(query, value, None, causal)
    assert rows.sum() >= 5
    assert_parity_at(out.values.detach(), theirs, rows)


@pytest.mark.parametrize("name", ["mha", "gqa", "attention", "additive"])
def test_a_key_mask_matches_keras(name):
    # Keras's Attention reads only the value's mask: give the key the same one there.
    query, value = example_input("post", seed=1), example_input("pre", seed=2)
    key_mask = value.mask if name in ("attention", "additive") else example_mask("noncontiguous")
    key = Masked(torch.randn(3, 5, 4), key_mask)
    keras_layer, ours = keras_pair(name, query, value, key)
    theirs = keras_run(keras_layer, query, value, key)
    out = ours_run(ours, query, value, key)
    assert_parity_at(out.values.detach(), theirs, kept_rows(query, value, key, False))


@pytest.mark.parametrize("name", ["mha", "gqa", "attention", "additive"])
def test_a_query_without_mask_gives_no_mask_as_in_keras(name):
    query, value = example_input("post", seed=1).with_mask(None), example_input("pre", seed=2)
    keras_layer, ours = keras_pair(name, query, value)
    theirs = keras_run(keras_layer, query, value)
    out = ours_run(ours, query, value)
    assert out.mask is None and getattr(theirs, "_keras_mask", None) is None
    assert_parity_at(out.values.detach(), theirs, torch.ones(3, 5, dtype=torch.bool))


def test_attention_ands_the_key_mask_where_keras_ignores_it():
    query, value = example_input("post", seed=1), example_input("post", seed=2)
    key = example_input("pre", seed=3)
    _, weights = Attention()([query, value, key], return_attention_scores=True)
    forbidden = ~(value.mask & key.mask)[:, None, :].expand_as(weights)
    assert torch.count_nonzero(weights[forbidden]) == 0
    theirs = keras_run(keras.layers.Attention(), query, value, key, return_attention_scores=True)
    keras_weights = torch.as_tensor(np.asarray(theirs[1]))
    assert torch.count_nonzero(keras_weights[forbidden & query.mask[:, :, None]]) > 0


@pytest.mark.parametrize("name", ["mha", "gqa"])
def test_attention_mask_matches_keras(name):
    query, value = example_input("post", seed=1), example_input("pre", seed=2)
    given = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(4)) > 0.3
    keras_layer, ours = keras_pair(name, query, value)
    theirs = keras_run(keras_layer, query, value, attention_mask=given, use_causal_mask=True)
    out = ours(query, value, attention_mask=given, use_causal_mask=True)
    rows = kept_rows(query, value, None, True, given)
    assert rows.sum() >= 4
    assert_parity_at(out.values.detach(), theirs, rows)
    # a (query time, key time) mask broadcasts over the batch
    both = ours(query, value, attention_mask=given[0])
    torch.testing.assert_close(both.values, ours(query, value, attention_mask=given[:1]).values)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(KERAS_PAIRS))
def test_attention_scores_match_keras(name, causal):
    query, value = example_input("pre", seed=1), example_input("noncontiguous", seed=2)
    keras_layer, ours = keras_pair(name, query, value)
    _, theirs = keras_run(
        keras_layer, query, value, use_causal_mask=causal, return_attention_scores=True
    )
    _, scores = ours_run(ours, query, value, use_causal_mask=causal, return_attention_scores=True)
    rows = kept_rows(query, value, None, causal)
    if scores.dim() == 4:  # (batch, heads, query time, key time)
        rows = rows[:, None].expand(scores.shape[:3])
    assert_parity_at(scores.detach(), theirs, rows)
    torch.testing.assert_close(scores.sum(-1)[rows], torch.ones(int(rows.sum())))
    assert torch.count_nonzero(scores[~rows]) == 0  # nothing to attend to: zero weights


# ---------------------------------------------------------------------- empty rows
def empty_rows_inputs(fill: float) -> list[Masked]:
    """Row 0: a real query whose value is all padding; row 1: pre-padded, so under the
    causal mask its first real query steps see only padded keys."""
    query = Masked(torch.randn(2, 4, 4), torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]]).bool())
    value = Masked(torch.randn(2, 4, 4), torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]]).bool())
    return [x.with_values(x.fill_padding(fill).values.requires_grad_()) for x in (query, value)]


@pytest.mark.parametrize("scores", [False, True])
@pytest.mark.parametrize("fill", [0.0, float("nan")])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_rows_with_nothing_to_attend_to_give_zero_and_finite_gradients(name, fill, scores):
    layer = LAYERS[name]().eval()
    query, value = empty_rows_inputs(fill)
    result = ours_run(layer, query, value, use_causal_mask=True, return_attention_scores=scores)
    out = result[0] if scores else result
    empty = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0]]).bool()  # real query, no key
    # the attended value is 0: the output is the output projection's bias (or 0)
    bias = getattr(getattr(layer, "output_dense", None), "bias", None)
    expected = torch.zeros(out.values.shape[-1]) if bias is None else bias.detach()
    torch.testing.assert_close(out.values[empty].detach(), expected.expand(3, -1))
    assert torch.isfinite(out.values).all()
    (out.values[out.mask].sum() + (result[1].sum() if scores else 0)).backward()
    for x in (query, value):
        assert torch.isfinite(x.values.grad[x.mask]).all()
        assert torch.count_nonzero(x.values.grad[~x.mask]) == 0
    for parameter in layer.parameters():
        assert parameter.grad is None or torch.isfinite(parameter.grad).all()
    assert torch.count_nonzero(query.values.grad[1, 2:]) > 0  # real rows with keys learn


def test_no_kernel_sees_a_row_without_keys():
    # PyTorch before 2.5 (and some GPU kernels) give NaN for a fully masked row: such a
    # row is opened to every key for the kernel, and its result dropped afterwards.
    query, value = empty_rows_inputs(0.0)
    plan = _plan(query.mask, value.mask, None, True, 4, 4)
    assert plan.allowed is not None and plan.allowed.any(-1).all()
    assert torch.equal(plan.has_key[:, 0, :, 0], torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]]).bool())
    assert not plan.allowed[1, 0, 2, :2].any()  # rows with keys keep their mask


# ---------------------------------------------------------------------- containers
SEEDED = {
    "mha": lambda seed: MultiHeadAttention(2, 3, dropout=0.5, seed=seed),
    "gqa": lambda seed: GroupQueryAttention(3, 4, 2, dropout=0.5, seed=seed),
    "attention": lambda seed: Attention(dropout=0.5, seed=seed),
    "additive": lambda seed: AdditiveAttention(dropout=0.5, seed=seed),
}


@pytest.mark.parametrize("name", SEEDED)
@pytest.mark.parametrize("scores", [False, True])
def test_a_seeded_dropout_repeats_from_run_to_run_and_leaves_the_global_generator(name, scores):
    """Keras's `seed`: two layers made with one seed (and the same weights) drop the
    same weights in training, on the fused path and with the scores; each call draws
    anew; another seed draws otherwise; PyTorch's global generator is not used."""
    x = example_input("post", seed=1)
    first, again, other = (SEEDED[name](seed) for seed in (7, 7, 8))
    for layer in (first, again, other):
        layer.eval()(x)  # builds the weights; no draw outside training
        layer.load_state_dict(first.state_dict())

    def run(layer):
        out = layer.train()(x, return_attention_scores=True) if scores else layer.train()(x)
        return out[0].values if scores else out.values

    state = torch.random.get_rng_state()
    a1, a2, b1, c1 = run(first), run(first), run(again), run(other)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a1, b1)
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)
    assert torch.equal(run(again), a2)


def test_self_attention_in_a_sequential_after_an_embedding():
    tokens = torch.tensor([[3, 1, 4, 0, 0], [2, 7, 0, 0, 0]])
    model = Sequential([Embedding(10, 8, mask_zero=True), MultiHeadAttention(2, 4), Dense(3)])
    out = model(tokens)
    assert torch.equal(out.mask, tokens != 0)
    shorter = model(tokens[:, :3])
    torch.testing.assert_close(out.values[:, :3][out.mask[:, :3]], shorter.values[shorter.mask])


def test_a_graph_node_and_a_module_call_it_as_keras_does():
    mha = MultiHeadAttention(2, 4).eval()
    x, y = example_input("pre", features=8, seed=1), example_input("post", features=8, seed=2)
    graph = Graph(inputs=["x", "y"], nodes=[("att", mha, ["x", "y"])], outputs="att")
    torch.testing.assert_close(graph(x, y).values, mha(x, y).values)

    class Decoder(Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x, y):
            return self.mha(x, y, use_causal_mask=False)

    rows = trace(Decoder(), x, y).rows
    assert [r.type for r in rows] == ["MultiHeadAttention"]
    assert rows[0].input_shapes == ((3, 5, 8),) * 3  # query, value, and the value as key
    assert all(torch.equal(mask, y.mask) for mask in rows[0].input_masks[1:])
    assert torch.equal(rows[0].output_mask, x.mask) and not rows[0].dropped


def test_dropout_acts_in_training_only():
    layer = MultiHeadAttention(2, 3, dropout=0.5)
    x = example_input("post")
    layer.eval()
    torch.testing.assert_close(layer(x).values, layer(x).values)
    layer.train()
    assert not torch.allclose(layer(x).values, layer(x).values)


def test_float64_inputs_build_a_float64_layer():
    x = example_input("post").to(torch.float64)
    layer = MultiHeadAttention(2, 3)
    assert layer(x).values.dtype == torch.float64
    assert layer.query_dense.kernel.dtype == torch.float64


# ---------------------------------------------------------------------- errors
def test_different_batch_sizes_are_explained():
    q, v = example_input("post"), Masked(torch.randn(2, 5, 4))
    with pytest.raises(
        ShapeError, match=r"different numbers of sequences.*\n.*\n.*value \(2, 5, 4\)"
    ):
        MultiHeadAttention(2, 3, name="att")(q, v)
    with pytest.raises(ShapeError, match="different numbers of sequences"):
        Attention()([q, v])


def test_value_and_key_on_different_time_axes_are_explained():
    q, v, k = example_input("post"), example_input("post"), Masked(torch.randn(3, 6, 4))
    with pytest.raises(ShapeError, match=r"same time axis.*\n.*key time = value time = 5"):
        MultiHeadAttention(2, 3)(q, v, k)


def test_wrong_feature_size_after_building_is_explained():
    layer = MultiHeadAttention(2, 3, name="att")
    layer(example_input("post"))
    with pytest.raises(
        ShapeError, match=r"'att' was built for 4 query features.*\n.*\(batch, time, 4\)"
    ):
        layer(example_input("post", features=6), example_input("post"))
    with pytest.raises(ShapeError, match="built for 4 value features"):
        layer(example_input("post"), example_input("post", features=6))
    additive = AdditiveAttention()
    additive(example_input("post"))
    with pytest.raises(ShapeError, match="built for 4 query features"):
        additive(example_input("post", features=6))


def test_query_and_key_features_must_agree_without_projections():
    q, v = example_input("post"), example_input("post", features=3)
    with pytest.raises(
        ShapeError, match=r"same features.*\n.*key \(batch, time, 4\).*\n.*\n.*Dense"
    ):
        Attention()([q, v])
    assert Attention()([q, v, example_input("post")]).values.shape == (3, 5, 3)


def test_inputs_that_are_not_3d_are_explained_and_build_nothing():
    layer = MultiHeadAttention(2, 3)
    with pytest.raises(ShapeError, match=r"the value must be 3-D.*\n.*\(batch, time, features\)"):
        layer(example_input("post"), Masked(torch.randn(3, 5, 2, 2)))
    with pytest.raises(ShapeError, match=r"the query must be 3-D.*\n.*\n.*query shape \(3, 5\)"):
        layer(Masked(torch.randn(3, 5)))
    assert not layer.built
    assert layer(example_input("post")).values.shape == (3, 5, 4)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: MultiHeadAttention(0, 3), ConfigError, r"`num_heads` must be a positive integer"),
        (lambda: MultiHeadAttention(2.0, 3), ConfigError, r"num_heads=2\.0"),
        (lambda: MultiHeadAttention(2, None), ConfigError, r"`key_dim` must be"),
        (lambda: MultiHeadAttention(2, 3, value_dim=-1), ConfigError, r"value_dim=-1"),
        (lambda: MultiHeadAttention(2, 3, dropout=1.0), ConfigError, r"\[0, 1\)"),
        (lambda: MultiHeadAttention(2, 3, output_shape="8"), ConfigError, r"output_shape='8'"),
        (lambda: GroupQueryAttention(0, 4, 2), ConfigError, r"`head_dim` must be"),
        (
            lambda: GroupQueryAttention(3, 6, 4),
            ConfigError,
            r"multiple of num_key_value_heads.*\n.*num_query_heads=6, num_key_value_heads=4"
            r".*\n.*num_key_value_heads=3",
        ),
        (lambda: Attention(score_mode="add"), ConfigError, r"'dot' or 'concat'.*\n.*'add'"),
        (lambda: AdditiveAttention(dropout=-0.1), ConfigError, r"probability"),
    ],
)
def test_bad_arguments_are_explained(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_attention_masks_are_explained():
    q, v = example_input("post"), example_input("post")
    layer = MultiHeadAttention(2, 3)
    with pytest.raises(
        MaskError, match=r"\(3, 5, 5\).*\n.*int64 tensor of shape \(3, 5, 5\).*\n.*\.bool\(\)"
    ):
        layer(q, v, attention_mask=torch.ones(3, 5, 5, dtype=torch.long))
    with pytest.raises(MaskError, match=r"bool tensor of shape \(3, 4, 5\)"):
        layer(q, v, attention_mask=torch.ones(3, 4, 5, dtype=torch.bool))


def test_inputs_in_a_form_attention_cannot_read_are_explained():
    x = example_input("post")
    with pytest.raises(ConfigError, match=r"a list of 4 input\(s\)"):
        Attention()([x, x, x, x])
    with pytest.raises(ConfigError, match="and more inputs after it"):
        MultiHeadAttention(2, 3)([x, x], x)
    with pytest.raises(
        MaskwiseTypeError, match=r"the value must be a Masked or a tensor.*\n.*list"
    ):
        MultiHeadAttention(2, 3)(x, [x.values])
    with pytest.raises(MaskError, match="one mask per input"):
        Attention()([x, x], mask=[x.mask])
