"""`torch.compile` (default backend, inductor): every layer family, forward and
backward, gives eager's values, masks, gradients and buffers on a ragged batch with a
non-contiguous mask and an all-padding row."""

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch._dynamo
import torch.utils._pytree as pytree
from torch._dynamo.utils import counters
from torch._inductor import config as inductor_config

from maskwise import Masked
from maskwise import layers as L
from maskwise.errors import ConfigError, MaskWarning
from maskwise.models import Graph, Module, Sequential

pytestmark = [
    pytest.mark.compile,
    # torch's own noise: inductor's lowerings call a deprecated torch helper, and dynamo
    # probes `.grad` on non-leaf tensors after a graph break (hidden from users by
    # torch, but raised by this suite's `filterwarnings = error`)
    pytest.mark.filterwarnings("ignore::FutureWarning:torch._inductor.*"),
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
]

MASK = torch.tensor(
    [
        [1, 1, 1, 1, 1, 0],  # post-padding
        [1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],  # all padding
        [1, 0, 1, 1, 0, 1],  # holes: not contiguous
    ],
    dtype=torch.bool,
)


@pytest.fixture(autouse=True)
def _fresh_compiler() -> Iterator[None]:
    """No compiled code shared between tests; inductor draws random numbers with
    eager's generator, so dropout drops the same features in both runs."""
    torch._dynamo.reset()
    with inductor_config.patch(fallback_random=True):
        yield
    torch._dynamo.reset()


def ragged(features: int, mask: torch.Tensor = MASK, seed: int = 1) -> Masked:
    """Random real steps under `mask`, NaN at the padded ones; their gradient is checked."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(*mask.shape, features, generator=generator)
    values = values.masked_fill(~mask.unsqueeze(-1), float("nan"))
    return Masked(values.requires_grad_(), mask)


def tokens(vocabulary: int, mask: torch.Tensor = MASK) -> torch.Tensor:
    """Token ids in `[1, vocabulary)` at the real steps of `mask`, 0 at the padded ones."""
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(1, vocabulary, mask.shape, generator=generator)
    return ids.masked_fill(~mask, 0)


def run(model: Callable[..., Any], inputs: list[Any]) -> tuple[list[Any], list[Any]]:
    """Outputs (every leaf of the result: values, masks, states) and the gradients of a
    fixed weighted sum of the float outputs, for the model's parameters and the input
    values that require one (fresh leaves per run)."""
    leaves = [x.values.detach().clone().requires_grad_() for x in inputs if _graded(x)]
    fresh = iter(leaves)
    inputs = [Masked(next(fresh), x.mask) if _graded(x) else x for x in inputs]
    torch.manual_seed(5)  # the same dropout draws in both runs
    outputs = [t for t in pytree.tree_leaves(model(*inputs)) if t is not None]
    loss = sum(
        (t * torch.linspace(-1.0, 1.0, t.numel()).reshape(t.shape)).nansum()
        for t in outputs
        if t.is_floating_point()
    )
    parameters = [p for p in _module(model).parameters() if p.requires_grad]
    gradients = torch.autograd.grad(loss, [*leaves, *parameters])
    return outputs, list(gradients)


def _graded(x: Any) -> bool:
    return isinstance(x, Masked) and x.values.requires_grad


def _module(model: Any) -> torch.nn.Module:
    return getattr(model, "_orig_mod", model)


def assert_compiles_like_eager(
    model: torch.nn.Module, *inputs: Any, **compile_args: Any
) -> list[Any]:
    """Compile a copy of `model` (built by one eager call first) and check its outputs,
    gradients and buffers against the eager model's; returns the eager outputs."""
    model(*inputs)
    twin = copy.deepcopy(model)
    expected, expected_grads = run(model, list(inputs))
    got, got_grads = run(torch.compile(twin, **compile_args), list(inputs))
    assert len(got) == len(expected)
    for want, have in zip([*expected, *expected_grads], [*got, *got_grads], strict=True):
        if want.dtype == torch.bool:
            assert torch.equal(have, want)
        else:
            torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-5, equal_nan=True)
    for want, have in zip(model.buffers(), twin.buffers(), strict=True):
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-6)
    return expected


def test_core_layers_compile_to_one_graph() -> None:
    model = Sequential(
        [
            L.Masking(0.0),
            L.Dense(6, activation="tanh"),
            L.TimeDistributed(L.Dense(5)),
            L.Activation("softmax"),
            L.Dropout(0.3),
            L.SpatialDropout1D(0.2),
            L.Lambda(lambda v: 2.0 * v + 1.0),
            L.Lambda(lambda v: v[:, 1:], mask=lambda inputs, mask: mask[:, 1:]),
        ]
    ).train()
    padded = ragged(3).fill_padding(0.0).values  # Masking finds the padding by its zeros
    outputs = assert_compiles_like_eager(model, Masked(padded), fullgraph=True)
    assert torch.equal(outputs[1], MASK[:, 1:])


def test_embedding_compiles() -> None:
    model = Sequential([L.Embedding(12, 4, mask_zero=True), L.Dense(3)])
    outputs = assert_compiles_like_eager(model, Masked(tokens(12)))
    assert torch.equal(outputs[1], MASK)


def test_checks_still_raise_and_warn_when_compiled() -> None:
    embedding = torch.compile(L.Embedding(12, 4))
    with pytest.raises(ConfigError, match="outside its vocabulary"):
        embedding(torch.tensor([[3, 12]]))
    masking = torch.compile(L.Masking(0.0))
    disagreeing = Masked(torch.tensor([[[1.0], [0.0], [2.0]]]), torch.tensor([[1, 1, 0]]).bool())
    with pytest.warns(MaskWarning, match="1 padded step.*would count as REAL"):
        masking(disagreeing)


def test_merges_compile_to_one_graph() -> None:
    merges = {
        "cat": L.Concatenate(),
        "add": L.Add(),
        "sub": L.Subtract(),
        "mul": L.Multiply(),
        "ave": L.Average(),
        "max": L.Maximum(),
    }
    graph = Graph(
        inputs=["a", "b"],
        nodes=[
            *((name, layer, ["a", "b"]) for name, layer in merges.items()),
            ("all", L.Concatenate(), list(merges)),
        ],
        outputs="all",
    )
    other = MASK.clone()
    other[0, 1] = False  # a step real in one input only is masked in the merge
    outputs = assert_compiles_like_eager(graph, ragged(3), ragged(3, other, seed=3), fullgraph=True)
    assert torch.equal(outputs[1], MASK & other)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_normalization_compiles_to_one_graph(training: bool) -> None:
    model = Sequential([L.LayerNormalization(), L.BatchNormalization(momentum=0.5)])
    model.train(training)  # in training, the moving statistics are compared too
    assert_compiles_like_eager(model, ragged(3), fullgraph=True)


class Pools(Module):
    def __init__(self) -> None:
        super().__init__()
        self.crop = L.Cropping1D((1, 2))
        self.average = L.GlobalAveragePooling1D()
        self.maximum = L.GlobalMaxPooling1D()

    def forward(self, x: Masked) -> tuple[Masked, ...]:
        return self.crop(x), self.average(x), self.maximum(x)


def test_pooling_compiles_to_one_graph() -> None:
    outputs = assert_compiles_like_eager(Pools(), ragged(3), fullgraph=True)
    assert torch.equal(outputs[1], MASK[:, 1:4])
    assert torch.equal(outputs[3][2], torch.zeros(3))  # the empty row pools to zeros


class Recurrent(Module):
    """Every recurrent path: fused kernels and the step loop, with and without a mask,
    both directions, dropout, states returned and passed on."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = L.LSTM(5, return_sequences=True, return_state=True)
        self.lstm_from_state = L.LSTM(5, go_backwards=True)
        self.gru = L.GRU(4, dropout=0.2, return_sequences=True)
        self.gru_loop = L.GRU(4, reset_after=False, recurrent_dropout=0.3, return_state=True)
        self.relu_rnn = L.SimpleRNN(3, activation="relu", return_sequences=True)
        self.bi_lstm = L.Bidirectional(L.LSTM(4, return_sequences=True, return_state=True))
        self.bi_rnn = L.Bidirectional(L.SimpleRNN(3), merge_mode=None)

    def forward(self, x: Masked, unmasked: Masked) -> tuple[Any, ...]:
        sequence, *states = self.lstm(x)
        return (
            sequence,
            *states,
            self.lstm_from_state(x, initial_state=states),
            self.gru(x),
            self.gru_loop(x),
            self.relu_rnn(x),
            self.bi_lstm(x),
            self.bi_rnn(x),
            self.lstm(unmasked),
            self.gru_loop(unmasked),
        )


def test_recurrent_layers_compile() -> None:
    model = Recurrent().train()
    unmasked = Masked(torch.randn(3, 4, 3))  # data needing no gradient, as in training
    outputs = assert_compiles_like_eager(model, ragged(3), unmasked)
    assert torch.equal(outputs[1], MASK)  # the LSTM's output mask


def test_ragged_batches_reuse_the_dynamic_compilation() -> None:
    # No batch or time size equals a feature size: dynamo would take such a coincidence
    # for a rule ("duck sizing") and compile again once it breaks.
    model = Sequential(
        [
            L.Embedding(20, 5, mask_zero=True),
            L.Bidirectional(L.LSTM(7, return_sequences=True)),
            L.Dense(3),
        ]
    )
    model(tokens(20))  # built eagerly, as `fit` builds before it compiles
    compiled = torch.compile(model, dynamic=True)
    batches = [MASK, MASK[:2, :4], torch.ones(6, 9, dtype=torch.bool), MASK.repeat(2, 2)]
    graphs = []
    for mask in batches:
        x = tokens(20, mask)
        got, want = compiled(x), model(x)
        torch.testing.assert_close(got.values, want.values, rtol=1e-4, atol=1e-5)
        assert torch.equal(got.mask, want.mask)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1:] == graphs[:1] * 3  # no recompilation after the first batch


def test_masked_passes_through_dynamo_as_a_pytree() -> None:
    double = torch.compile(lambda x: x.with_values(2 * x.values), fullgraph=True)
    x = ragged(2)
    y = double(x)
    assert isinstance(y, Masked)
    assert y.mask is x.mask
    torch.testing.assert_close(y.values, 2 * x.values, equal_nan=True)


def test_attention_and_transformer_layers_compile() -> None:
    class Encoder(Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = L.TokenAndPositionEmbedding(30, 8, 8, mask_zero=True)
            self.block = L.TransformerEncoder(intermediate_dim=12, num_heads=2)
            self.attend = L.MultiHeadAttention(2, 4)
            self.additive = L.AdditiveAttention()

        def forward(self, ids: torch.Tensor) -> Masked:
            x = self.block(self.embed(ids))
            return self.additive([self.attend(x, x), x])

    assert_compiles_like_eager(Encoder().eval(), tokens(30))


def test_convolution_reshaping_and_small_layers_compile() -> None:
    model = Sequential(
        [
            L.Conv1D(6, 3, padding="same", activation="relu"),
            L.SeparableConv1D(5, 2, padding="same"),
            L.MaxPooling1D(2, padding="same"),
            L.UpSampling1D(2),
            L.ZeroPadding1D(1),
            L.AveragePooling1D(2, strides=1, padding="same"),
            L.LeakyReLU(),
            L.GroupNormalization(groups=1),
            L.UnitNormalization(),
            L.GaussianNoise(0.1),
            L.Softmax(),
        ]
    )
    assert_compiles_like_eager(model, ragged(4))


def test_fit_with_jit_compile_gives_eager_weights() -> None:
    from training_helpers import assert_same_weights, logits_loss, tagger, tagging_data

    x, y = tagging_data(24, seed=3)
    models = []
    for jit_compile in (False, True):
        torch.manual_seed(0)
        model = tagger()
        model.compile("adam", logits_loss())
        counters.clear()
        model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, jit_compile=jit_compile)
        assert (counters["stats"]["unique_graphs"] > 0) == jit_compile  # compiled, or not
        models.append(model)
    assert_same_weights(*models, atol=1e-5)


def test_jit_compile_takes_a_bool() -> None:
    from training_helpers import logits_loss, tagger, tagging_data

    model = tagger()
    model.compile("adam", logits_loss())
    with pytest.raises(ConfigError, match=r"jit_compile=...\) takes True or False"):
        model.fit(*tagging_data(4), verbose=0, jit_compile="auto")
