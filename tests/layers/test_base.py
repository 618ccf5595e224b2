"""`Layer.forward`'s shared rules: padded steps reach `call` as zeros detached from
everything before (so `sqrt`/`log` of the padding cannot put NaN into a weight), float
layers compute in their weights' dtype (integer features, float32 data into a float64
model), every layer answers a batch without any real step, and the contract itself:
call options, extra outputs, and no layer but a container with a `forward` of its own."""

import copy
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskwise
from maskwise import Masked, MaskError, MaskwiseTypeError, Sequential, layers
from maskwise.layers.base import Layer
from maskwise.models import Container

from .contract import example_input


def sqrt_abs(values: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(values.abs())


def log_abs(values: torch.Tensor) -> torch.Tensor:
    return torch.log(values.abs())


STACKS: dict[str, Callable[[], Sequential]] = {
    "dense-sqrt-lstm": lambda: Sequential(
        [
            layers.Dense(4),
            layers.Lambda(sqrt_abs),
            layers.LSTM(3, return_sequences=True),
            layers.Dense(2),
        ]
    ),
    "dense-log-gru": lambda: Sequential(
        [layers.Dense(4), layers.Lambda(log_abs), layers.GRU(3), layers.Dense(1)]
    ),
    "norm-softmax-bidirectional-max": lambda: Sequential(
        [
            layers.LayerNormalization(),
            layers.Dense(4),
            layers.Lambda(sqrt_abs),
            layers.Activation("softmax"),
            layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True)),
            layers.GlobalMaxPooling1D(),
        ]
    ),
    "time-distributed-batchnorm-average": lambda: Sequential(
        [
            layers.TimeDistributed(layers.Dense(3)),
            layers.Lambda(log_abs),
            layers.BatchNormalization(),
            layers.GlobalAveragePooling1D(),
        ]
    ),
}


def make(stack: str, seed: int = 0) -> Sequential:
    torch.manual_seed(seed)
    return STACKS[stack]()


def real_outputs(out: Masked) -> torch.Tensor:
    return out.values if out.mask is None else out.values[out.mask]


def loss_and_grads(model: Sequential, x: Masked) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The real outputs and the weights' gradients of their sum of squares."""
    model.zero_grad()
    out = real_outputs(model(x))
    out.square().sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


# ---------------------------------------------------------------------- safe padding
@pytest.mark.parametrize("function", [sqrt_abs, log_abs], ids=["sqrt", "log"])
def test_sqrt_or_log_of_zero_padding_trains_finitely_like_the_unpadded_run(function):
    """Masking -> Dense -> sqrt/log -> LSTM -> Dense: before the shared fill, the
    padded steps' derivative (inf at 0) times a zero gradient put NaN into the Dense
    weights after one step."""
    generator = torch.Generator().manual_seed(0)
    sequences = [torch.rand(n, 2, generator=generator) + 0.5 for n in (6, 3, 1)]
    torch.manual_seed(0)
    padded_model = Sequential(
        [
            layers.Masking(0.0),
            layers.Dense(4),
            layers.Lambda(function),
            layers.LSTM(3, return_sequences=True),
            layers.Dense(1),
        ]
    )
    padded_model(sequences[0].unsqueeze(0))  # build
    unpadded_model = copy.deepcopy(padded_model)
    x = Masked.pad(sequences).values  # zero padding, found by Masking
    steps = sum(len(s) for s in sequences)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05) for m in (padded_model, unpadded_model)]
    for _ in range(5):
        for optimizer in optimizers:
            optimizer.zero_grad()
        padded = real_outputs(padded_model(x))
        padded.square().sum().div(steps).backward()  # the mean over real steps
        unpadded = [unpadded_model(s.unsqueeze(0)).values[0] for s in sequences]
        torch.cat(unpadded).square().sum().div(steps).backward()
        for optimizer in optimizers:
            optimizer.step()
        for parameter in padded_model.parameters():
            assert torch.isfinite(parameter).all()
    for (name, p), q in zip(padded_model.named_parameters(), unpadded_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)
    with torch.no_grad():
        padded = padded_model(x)
        for row, sequence in enumerate(sequences):
            alone = unpadded_model(sequence.unsqueeze(0)).values[0]
            torch.testing.assert_close(padded.values[row, : len(sequence)], alone)


FILLS = {
    "zeros": lambda shape, g: torch.zeros(shape),
    "large": lambda shape, g: 1e6 * torch.randn(shape, generator=g),
    "nan": lambda shape, g: torch.full(shape, float("nan")),
    "inf": lambda shape, g: torch.full(shape, float("inf")),
    "-inf": lambda shape, g: torch.full(shape, float("-inf")),
}


@st.composite
def masks(draw: st.DrawFn) -> torch.Tensor:
    """A `(batch, time)` mask with at least one real step per row: post- or pre-padding
    or holes."""
    batch, time = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    rows = [
        draw(st.lists(st.booleans(), min_size=time, max_size=time).filter(any))
        for _ in range(batch)
    ]
    return torch.tensor(rows)


@settings(max_examples=30, deadline=None)
@given(
    stack=st.sampled_from(sorted(STACKS)),
    mask=masks(),
    fill=st.sampled_from(sorted(FILLS)),
    seed=st.integers(0, 2**16),
)
def test_padding_content_never_changes_real_outputs_or_weight_gradients(stack, mask, fill, seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(*mask.shape, 3, generator=generator) + 0.5
    clean = Masked(values, mask).fill_padding(0.0)
    hostile = clean.with_values(
        torch.where(mask.unsqueeze(-1), values, FILLS[fill](values.shape, generator))
    )
    model = make(stack, seed)
    expected, expected_grads = loss_and_grads(model, clean)
    out, grads = loss_and_grads(model, hostile)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-5, msg=name)


def test_padded_steps_reach_call_as_detached_zeros():
    seen = []
    x = example_input("noncontiguous")
    values = x.values.clone().requires_grad_()
    hostile = torch.where(x.mask.unsqueeze(-1), values, torch.full_like(values, float("nan")))
    layer = layers.Lambda(lambda v: seen.append(v) or torch.log(v.abs()))
    layer(Masked(hostile, x.mask)).values[x.mask].sum().backward()
    assert seen[0][~x.mask].eq(0.0).all()
    assert values.grad[~x.mask].eq(0.0).all()  # log's inf at 0 never flows back
    assert torch.isfinite(values.grad).all()


# ---------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: layers.Dense(2),
        lambda: layers.LSTM(2, return_sequences=True),
        lambda: layers.Bidirectional(layers.GRU(2)),
        lambda: layers.LayerNormalization(),
        lambda: layers.Activation("softmax"),
    ],
    ids=["Dense", "LSTM", "Bidirectional", "LayerNormalization", "Activation"],
)
def test_integer_features_are_cast_to_the_weights_dtype(make_layer):
    ints = Masked.pad([torch.randint(-3, 4, (4, 3)), torch.randint(-3, 4, (2, 3))])
    layer = make_layer()
    out = layer(ints)
    assert out.values.dtype == torch.float32
    reference = layer(ints.with_values(ints.values.float()))
    torch.testing.assert_close(real_outputs(out), real_outputs(reference))


def test_float32_data_into_a_float64_model_computes_in_float64():
    x64 = example_input("pre", features=3).to(torch.float64)
    x32 = x64.to(torch.float32)
    built = Sequential([layers.Dense(4), layers.LSTM(2, return_sequences=True)])
    expected = built(x64)  # built by float64 data: float64 weights
    out = built(x32)
    assert out.values.dtype == torch.float64
    torch.testing.assert_close(real_outputs(out), real_outputs(built(x32.to(torch.float64))))
    assert torch.equal(out.mask, expected.mask)


def test_a_model_converted_before_building_builds_in_that_dtype():
    asked = Sequential([layers.Dense(4), layers.GRU(2)]).double()
    assert asked(example_input("post")).values.dtype == torch.float64  # float32 data
    moved = Sequential([layers.Dense(4)]).to("cpu")  # a device alone asks no dtype
    assert moved(example_input("post").to(torch.float64)).values.dtype == torch.float64


def test_a_model_first_called_under_autocast_builds_full_precision_weights():
    """Autocast computes in bfloat16 but keeps the weights in float32: a layer built
    from an autocast output (a Conv1D's, a Dense's without bias) is too."""
    model = Sequential(
        [
            layers.Conv1D(4, 2, padding="same"),
            layers.Dense(4, use_bias=False),
            layers.LSTM(3, return_sequences=True),
            layers.LayerNormalization(),
        ]
    )
    x = example_input("post", features=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)  # the weights are made here
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model(x).values.dtype == torch.float32
    data64 = Sequential([layers.Dense(2)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        data64(x.to(torch.float64))  # float64 data: no autocast output
    assert data64.layers[0].kernel.dtype == torch.float64
    on_meta = Sequential([layers.Dense(2)]).to("meta")  # a device without autocast
    assert on_meta(x.to("meta")).values.device.type == "meta"


def test_a_model_first_called_under_inference_mode_still_trains():
    """Weights made at a first call under `torch.inference_mode()` are normal tensors:
    PyTorch refuses inference tensors in a backward pass and in-place updates."""
    torch.manual_seed(0)
    model = Sequential(
        [
            layers.Dense(4),
            layers.BatchNormalization(),  # running statistics updated in place
            layers.Bidirectional(layers.LSTM(2, return_sequences=True)),
            layers.Dense(1),
        ]
    )
    x = example_input("post", features=3)
    with torch.inference_mode():
        model(x)  # the weights are made here
    assert not any(t.is_inference() for t in [*model.parameters(), *model.buffers()])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    model(x).values.sum().backward()
    optimizer.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_requires_grad_false_before_the_first_call_freezes_the_weights_made_at_it():
    frozen = Sequential([layers.Dense(4), layers.LSTM(2)]).requires_grad_(False)
    frozen(example_input("post"))  # the weights are made here
    assert [p.requires_grad for p in frozen.parameters()] == [False] * 5
    assert frozen.requires_grad_() is frozen
    assert all(p.requires_grad for p in frozen.parameters())


def test_a_saved_model_keeps_its_frozen_layers_and_its_weights_dtype(tmp_path):
    model = Sequential([layers.Dense(4), layers.LSTM(2, return_sequences=True), layers.Dense(1)])
    x = example_input("post", features=3).to(torch.float64)
    model(x)  # float64 data: float64 weights
    model.layers[0].trainable = False
    model.layers[1].requires_grad_(False)
    model.save(tmp_path / "model.mw")
    loaded = maskwise.load(tmp_path / "model.mw")
    assert [p.requires_grad for p in loaded.parameters()] == [False] * 5 + [True] * 2
    assert {p.dtype for p in loaded.parameters()} == {torch.float64}
    torch.testing.assert_close(loaded(x).values, model(x).values, rtol=0, atol=0)
    model.float().layers[0].trainable = True  # back to float32 and trainable: said so too
    model.save(tmp_path / "model.mw")
    reloaded = maskwise.load(tmp_path / "model.mw")
    assert [p.requires_grad for p in reloaded.parameters()] == [True] * 2 + [False] * 3 + [True] * 2
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}


# ---------------------------------------------------------------------- no real step
EMPTY_BATCHES = {
    "all-rows-empty": lambda: Masked.from_lengths(torch.randn(2, 4, 3), [0, 0]),
    "time-0": lambda: Masked(torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.bool)),
    "time-0-no-mask": lambda: Masked(torch.zeros(2, 0, 3)),
}
SEQUENCE_LAYERS = {
    "Dense": lambda: layers.Dense(2),
    "LSTM-sequences": lambda: layers.LSTM(2, return_sequences=True),
    "GRU-sequences-state": lambda: layers.GRU(2, return_sequences=True, return_state=True),
    "Bidirectional-sequences": lambda: layers.Bidirectional(layers.LSTM(2, return_sequences=True)),
    "LayerNormalization": lambda: layers.LayerNormalization(),
}
CONSUMING_LAYERS = {
    "LSTM": lambda: layers.LSTM(2),
    "LSTM-state": lambda: layers.LSTM(2, return_state=True),
    "SimpleRNN-step-loop": lambda: layers.SimpleRNN(2, activation="softsign"),
    "Bidirectional": lambda: layers.Bidirectional(layers.GRU(1)),
    "GlobalAveragePooling1D": lambda: layers.GlobalAveragePooling1D(),
    "GlobalMaxPooling1D": lambda: layers.GlobalMaxPooling1D(),
}


@pytest.mark.parametrize("batch", sorted(EMPTY_BATCHES))
@pytest.mark.parametrize("name", sorted(SEQUENCE_LAYERS))
def test_sequence_layers_on_a_batch_without_real_steps_keep_shape_and_mask(batch, name):
    x = EMPTY_BATCHES[batch]()
    out = SEQUENCE_LAYERS[name]()(x)
    first = out[0] if isinstance(out, tuple) else out
    assert first.values.shape[:2] == x.values.shape[:2]
    assert (first.mask is None) == (x.mask is None)
    if x.mask is not None:
        assert torch.equal(first.mask, x.mask)
    assert torch.isfinite(first.values).all()


@pytest.mark.parametrize("batch", sorted(EMPTY_BATCHES))
@pytest.mark.parametrize("name", sorted(CONSUMING_LAYERS))
def test_consuming_layers_on_a_batch_without_real_steps_give_zeros(batch, name):
    """Keras's rule for RNNs (the initial state, zeros), and pooling's documented 0."""
    out = CONSUMING_LAYERS[name]()(EMPTY_BATCHES[batch]())
    outputs = out if isinstance(out, tuple) else (out,)
    for item in outputs:
        values = item.values if isinstance(item, Masked) else item
        assert values.shape[0] == 2 and values.dim() == 2
        assert values.eq(0.0).all()
    assert outputs[0].mask is None


@pytest.mark.parametrize("batch", ["all-rows-empty", "time-0"])
@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: layers.LSTM(2),
        lambda: layers.GRU(2, return_sequences=True),
        lambda: layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True)),
        lambda: layers.GlobalMaxPooling1D(),
    ],
    ids=["LSTM", "GRU-sequences", "Bidirectional-sequences", "GlobalMaxPooling1D"],
)
def test_a_batch_without_real_steps_backpropagates_zero_gradients(batch, make_layer):
    """A loss on such a batch (a bucket of empty sequences in `fit`) must not fail in
    `backward` because the zeros hang on no graph."""
    x = EMPTY_BATCHES[batch]()
    values = x.values.clone().requires_grad_()
    layer = make_layer()
    out = layer(x.with_values(values))
    out.values.square().sum().add(out.values.sum()).backward()
    assert values.grad is not None and values.grad.eq(0.0).all()
    for parameter in layer.parameters():  # no gradient, or a zero one: no update
        assert parameter.grad is None or parameter.grad.eq(0.0).all()


class _Pair(layers.Layer):
    """A layer called with a list of two inputs that records what `call` receives."""

    takes_list = True

    def call(self, values, mask):
        self.seen = (values, mask)
        return values[0] * values[1]

    def compute_mask(self, values, mask):
        return mask[1]


def test_a_layer_taking_a_list_gets_each_inputs_padding_as_zeros_and_a_list_of_masks():
    nan_padded = Masked(torch.tensor([[[1.0], [float("nan")]]]), torch.tensor([[True, False]]))
    plain = torch.tensor([[[3.0], [4.0]]])
    pair = _Pair()
    out = pair([nan_padded, plain])
    values, masks = pair.seen
    assert values[0].tolist() == [[[1.0], [0.0]]]
    assert masks[0].tolist() == [[True, False]] and masks[1] is None
    assert out.values.tolist() == [[[3.0], [0.0]]] and out.mask is None


def test_a_layer_taking_a_list_explains_a_single_input_and_a_wrong_mask_list():
    x = torch.ones(1, 2, 1)
    with pytest.raises(MaskwiseTypeError, match=r"_Pair layer .* takes a list of inputs"):
        _Pair()(x)
    with pytest.raises(MaskError, match="one mask per input"):
        _Pair()([x, x], mask=[None])


class _Scaled(Layer):
    """Call options and extra outputs: `values * factor`, the pair `(out, -out)` with
    `pair`, and the sum of the values `call` got with `return_total`."""

    def call(self, values, mask, *, factor=1.0, return_total=False, pair=False):
        out = values * factor
        main = (out, -out) if pair else out
        return (main, values.sum()) if return_total else (main,)


def test_call_options_are_the_keyword_arguments_of_call():
    assert _Scaled.call_options == ("factor", "return_total", "pair")
    assert layers.Dense.call_options == ()
    assert layers.LSTM.call_options == layers.Bidirectional.call_options == ("initial_state",)
    assert layers.MultiHeadAttention.call_options == (
        "attention_mask",
        "use_causal_mask",
        "return_attention_scores",
    )
    assert layers.Attention.call_options == ("return_attention_scores", "use_causal_mask")


def test_call_returns_values_or_values_then_extras_and_each_value_gets_the_mask():
    x = Masked(torch.tensor([[[1.0], [2.0], [float("nan")]]]), torch.tensor([[True, True, False]]))
    layer = _Scaled()
    alone = layer(x)
    assert isinstance(alone, Masked) and alone.values.tolist() == [[[1.0], [2.0], [0.0]]]
    assert torch.equal(alone.mask, x.mask)
    assert layer(x.values, x.mask).values.tolist() == alone.values.tolist()  # mask by position
    out, total = layer(x, factor=3.0, return_total=True)
    assert out.values.tolist() == [[[3.0], [6.0], [0.0]]] and total.item() == 3.0
    first, second = layer(x, pair=True)
    assert second.values.tolist() == [[[-1.0], [-2.0], [0.0]]]
    assert torch.equal(first.mask, x.mask) and torch.equal(second.mask, x.mask)
    *pair, total = layer(x, pair=True, return_total=True)
    assert [type(p) for p in pair] == [Masked, Masked] and total.item() == 3.0


def test_an_option_a_layer_does_not_take_is_refused_with_the_ones_it_takes():
    x = torch.ones(2, 3, 4)
    with pytest.raises(
        MaskwiseTypeError,
        match=r"LSTM layer 'enc' got call arguments it does not take: `initial_states`"
        r"(.|\n)*expected: keyword arguments among `initial_state`",
    ):
        layers.LSTM(3, name="enc")(x, initial_states=[torch.zeros(2, 3)] * 2)
    with pytest.raises(MaskwiseTypeError, match=r"`model.train\(\)`, `model.eval\(\)`"):
        layers.Dense(2)(x, training=True)
    with pytest.raises(MaskwiseTypeError, match="among none"):
        layers.Dense(2)(x, return_state=True)


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ("key_padding_mask", r"True = padded.*`Masked\(values, ~key_padding_mask\)`"),
        ("src_key_padding_mask", r"True = padded.*`Masked\(values, ~src_key_padding_mask\)`"),
        ("attn_mask", r"True = may not attend.*`attention_mask=~attn_mask`"),
        ("need_weights", "`return_attention_scores=True`"),
        ("is_causal", "`use_causal_mask=True`"),
    ],
)
def test_pytorchs_attention_arguments_are_refused_naming_their_maskwise_form(option, hint):
    x = torch.ones(2, 3, 4)
    attention = layers.MultiHeadAttention(2, 2)
    with pytest.raises(MaskwiseTypeError, match=rf"(?s)`{option}`.*fix: PyTorch's.*{hint}"):
        attention(x, x, **{option: torch.zeros(2, 3, dtype=torch.bool)})


def test_pytorchs_key_padding_mask_inverted_is_the_keys_mask():
    torch.manual_seed(0)
    key_padding_mask = torch.tensor([[False, False, True], [False, True, True]])
    values = torch.randn(2, 3, 4)
    attention = layers.MultiHeadAttention(2, 2)
    out = attention(values, Masked(values, ~key_padding_mask))  # the hint, followed
    noisy = values.masked_fill(key_padding_mask[..., None], 1e3)  # other padded keys
    other = attention(values, Masked(noisy, ~key_padding_mask))
    torch.testing.assert_close(out.values, other.values)


def test_no_layer_but_the_containers_overrides_forward():
    """Every library layer keeps the contract: `call` and `compute_mask` under the
    base's `forward`, so `trace` and the padding rules see each of them the same way.
    Recurrent cells are not sequence layers: their `forward` is Keras's one-step cell
    call, `cell(inputs, states) -> (output, new_states)`, run by `RNN`."""
    library = [
        cls
        for cls in Layer.registry.values()
        if cls.__module__.startswith("maskwise.") and not issubclass(cls, Container)
    ]
    cells = {cls.__name__ for cls in library if cls.__module__ == "maskwise.layers.cells"}
    library = [cls for cls in library if cls.__name__ not in cells]
    assert set(layers.__all__) - {"Layer", "Input"} - cells <= {cls.__name__ for cls in library}
    assert [cls.__name__ for cls in library if cls.forward is not Layer.forward] == []


@pytest.mark.parametrize(
    "register",
    ["register_full_backward_hook", "register_full_backward_pre_hook", "register_backward_hook"],
)
def test_a_backward_hook_that_pytorch_would_never_call_is_refused_with_the_fix(register):
    dense = layers.Dense(2)
    with pytest.raises(MaskwiseTypeError, match=r"(?s)would never be called.*fix:.*register_hook"):
        getattr(dense, register)(lambda *args: None)
    seen = []

    def hook(module, args, out):  # the fix: a hook on the output values' gradient
        out.values.register_hook(seen.append)

    dense.register_forward_hook(hook)
    x = example_input("post", features=3)
    dense(x).values.sum().backward()
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], torch.ones(*x.shape[:2], 2))


def test_a_build_by_hand_leaves_the_layer_built():
    dense = layers.Dense(2)
    dense.build((None, 3))
    assert dense.built
    loaded = torch.randn(3, 2)
    with torch.no_grad():
        dense.kernel.copy_(loaded)
    dense(torch.randn(1, 3))  # no second build drawing new weights
    torch.testing.assert_close(dense.kernel.detach(), loaded)
