"""The leak probe (MW013): a model run with its padding changed names the first layer
whose real-step outputs (or whose parameters' gradients) move."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maskwise import ConfigError, Graph, Masked, Module, Sequential, doctor, layers
from maskwise.doctor.leak_probe import probe_leaks

from .helpers import padded

LENGTHS = [6, 3, 4, 2, 5]


def batch(features: int = 3, lengths: list[int] = LENGTHS, seed: int = 0) -> Masked:
    """Post-padded sequences with their mask (what `make_loader` gives from lists)."""
    generator = torch.Generator().manual_seed(seed)
    return Masked.pad([torch.randn(n, features, generator=generator) for n in lengths])


def array_batch() -> Masked:
    """A padded array without a mask: the model's `Masking` makes it."""
    return Masked(torch.as_tensor(padded(LENGTHS), dtype=torch.float32))


def keep(inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    return mask


def only_mw013(findings: list) -> doctor.Finding:
    (finding,) = findings
    assert finding.code == "MW013" and finding.severity == "error"
    return finding


# ---------------------------------------------------------------- leaks found and named
def test_lambda_that_rolls_time_is_named() -> None:
    model = Sequential(
        [
            layers.Dense(4),
            layers.Lambda(lambda v: torch.roll(v, 1, dims=1), mask=keep, name="roll"),
            layers.Dense(2),
        ]
    )
    finding = only_mw013(probe_leaks(model, batch()))
    assert "roll (layers.1) (Lambda) is the first layer whose real-step outputs change" in (
        finding.message
    )
    # Appending padding to the full row moves a padded step into its first real step.
    assert "more padding" in finding.message
    assert "Lambda(f, mask=lambda inputs, mask: ...)" in finding.fix


def test_lambda_that_flips_time_after_masking_is_named() -> None:
    # A padded array: the mask is made by Masking, the padding changed at its output.
    model = Sequential(
        [
            layers.Masking(0.0),
            layers.Lambda(lambda v: v.flip(1), mask=keep, name="flip"),
            layers.LSTM(3, return_sequences=True),
        ]
    )
    finding = only_mw013(probe_leaks(model, array_batch()))
    assert "flip (layers.1) (Lambda) is the first layer" in finding.message


def test_normalising_over_time_is_named() -> None:
    centre = layers.Lambda(lambda v: v - v.mean(1, keepdim=True), mask=keep, name="centre")
    finding = only_mw013(probe_leaks(Sequential([centre, layers.Dense(2)]), batch()))
    assert "centre (layers.0) (Lambda) is the first layer" in finding.message
    assert "more padding" in finding.message  # the mean's denominator counts padding


def test_plain_module_over_time_names_the_maskwise_replacement() -> None:
    # A softmax over time: every padded step adds to the denominator.
    softmax = layers.Lambda(nn.Softmax(dim=1), mask=keep, name="over_time")
    finding = only_mw013(probe_leaks(Sequential([softmax, layers.Dense(2)]), batch()))
    assert "over_time (layers.0) (Lambda)" in finding.message
    assert "instead of the plain `Softmax`" in finding.fix


class TimeAverage(layers.Layer):
    """Declared per-step (the default mask rule) but averages over time."""

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return values.mean(1, keepdim=True).expand_as(values)


class RunningTotal(Module):
    """A Module whose forward sums over time on the values it is given."""

    def forward(self, x: Masked) -> Masked:
        return x.with_values(x.values.cumsum(1))


def test_custom_layer_that_mixes_steps_is_named() -> None:
    model = Sequential([layers.Dense(4), TimeAverage(name="average"), layers.Dense(2)])
    finding = only_mw013(probe_leaks(model, batch()))
    assert "average (layers.1) (TimeAverage) is the first layer" in finding.message
    assert "make `TimeAverage` read the mask" in finding.fix


def test_custom_module_with_a_cumulative_sum_is_named() -> None:
    # Post-padding: a cumulative sum never reads the padding after the real steps; the
    # placement variant (padding first) exposes it.
    model = Sequential([layers.Dense(4), RunningTotal(), layers.Dense(2)])
    finding = only_mw013(probe_leaks(model, batch()))
    assert "RunningTotal (layers.1) is the first layer whose real-step" in finding.message
    assert "(exposed by: placement)" in finding.message
    assert "make `RunningTotal` read the mask" in finding.fix


def test_step_mixing_between_layers_names_the_forward() -> None:
    class Tagger(Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = layers.Dense(4)
            self.out = layers.Dense(2)

        def forward(self, x: Masked) -> Masked:
            h = self.hidden(x)
            return self.out(h.with_values(h.values.flip(1)))

    finding = only_mw013(probe_leaks(Tagger(), batch()))
    assert "the real-step inputs of dense" in finding.message
    assert "(out) (Dense) already differ" in finding.message
    assert "code outside any layer, in the forward of Tagger" in finding.message


class Flip(Module):
    def forward(self, x: Masked) -> Masked:
        return x.with_values(x.values.flip(1))


def test_the_first_of_two_leaking_layers_is_named() -> None:
    # The second leak (a flip) shows with any padding values; the first (the padded
    # length added to every step) only with more padding: the earlier layer is named.
    model = Sequential(
        [
            layers.Dense(4),
            layers.Lambda(lambda v: v + v.shape[1], name="first_leak"),
            Flip(),
            layers.Dense(2),
        ]
    )
    finding = only_mw013(probe_leaks(model, batch()))
    assert "first_leak (layers.1) (Lambda) is the first layer" in finding.message
    assert "(exposed by: more padding" in finding.message
    assert "Flip" not in finding.message


class ZeroSum(Module):
    """0 * sum over time: finite padding adds nothing, NaN padding turns every step NaN."""

    def forward(self, x: Masked) -> Masked:
        return x.with_values(x.values + 0 * x.values.sum(1, keepdim=True))


def test_nan_reaching_real_steps_through_padding_is_a_leak() -> None:
    finding = only_mw013(probe_leaks(Sequential([ZeroSum(), layers.Dense(2)]), batch()))
    assert "when the padded steps hold NaN, ZeroSum (layers.0) is the first" in finding.message
    assert "(exposed by: NaN)" in finding.message


class ZeroWithGradient(Module):
    """Adds exactly 0 (NaN too), but the backward pass sends every step's gradient,
    padded steps included, to the layer before."""

    def forward(self, x: Masked) -> Masked:
        v = x.values
        return x.with_values(v + (v - v.detach()).nan_to_num().sum(1, keepdim=True))


def test_gradient_through_the_padding_is_reported_with_the_parameter() -> None:
    model = Sequential([layers.Dense(4), ZeroWithGradient(), layers.Dense(2)])
    finding = only_mw013(probe_leaks(model, batch()))
    assert "padding changes the gradients" in finding.message
    assert "the gradient of parameter 'layers.0.bias' changes" in finding.message


def test_gradient_leak_after_a_lost_mask_says_so() -> None:
    class Tagger(Module):  # passes bare values on: the Dense computes on the padding
        def __init__(self) -> None:
            super().__init__()
            self.out = layers.Dense(2)

        def forward(self, x: Masked) -> Masked:
            return self.out(x.values)

    finding = only_mw013(probe_leaks(Tagger(), batch()))
    assert "when the padded steps hold NaN, the gradient of parameter 'out.kernel'" in (
        finding.message
    )
    assert "dense" in finding.message and "(out) (Dense) gets no mask although" in (finding.message)


# ---------------------------------------------------------------- no false alarm
def tokens() -> torch.Tensor:
    return torch.tensor([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [5, 5, 5, 5, 5], [7, 0, 0, 0, 0]])


def two_inputs() -> Graph:
    return Graph(
        inputs=["a", "b"],
        nodes=[
            ("cat", layers.Concatenate(), ["a", "b"]),
            ("rnn", layers.LSTM(3, return_sequences=True), ["cat"]),
            ("out", layers.Dense(2), ["rnn"]),
        ],
        outputs="out",
    )


CLEAN = {
    "masking-bilstm-dense": (
        lambda: Sequential(
            [
                layers.Masking(0.0),
                layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                layers.Dense(2),
            ]
        ),
        array_batch,
    ),
    "masking-on-a-masked-batch": (
        lambda: Sequential(
            [layers.Masking(0.0), layers.GRU(3, return_sequences=True), layers.Dense(2)]
        ),
        batch,
    ),
    "bilstm-dense": (
        lambda: Sequential(
            [layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.Dense(2)]
        ),
        batch,
    ),
    "embedding-gru": (
        lambda: Sequential(
            [
                layers.Embedding(10, 4, mask_zero=True),
                layers.GRU(3, return_sequences=True),
                layers.Dense(2),
            ]
        ),
        lambda: Masked(tokens()),
    ),
    "embedding-gru-masked-tokens": (
        lambda: Sequential(
            [layers.Embedding(10, 4), layers.GRU(3, return_sequences=True), layers.Dense(2)]
        ),
        lambda: Masked(tokens(), tokens() != 0),
    ),
    "two-inputs-concatenated": (
        two_inputs,
        lambda: (batch(), batch(features=2, seed=1)),
    ),
    "beside-an-input-without-mask": (  # its padding is unknown: its steps stay put
        two_inputs,
        lambda: (batch(), Masked(batch(features=2, seed=1).values)),
    ),
    "pooling-dropout-batchnorm": (
        lambda: Sequential(
            [
                layers.Dense(4),
                layers.Dropout(0.5),
                layers.BatchNormalization(),
                layers.GlobalAveragePooling1D(),
                layers.Dense(2, activation="softmax"),
            ]
        ),
        batch,
    ),
    "lstm-last-state-maxpool": (
        lambda: Graph(
            inputs=["x"],
            nodes=[
                ("rnn", layers.LSTM(3), ["x"]),
                ("out", layers.Dense(2), ["rnn"]),
            ],
            outputs="out",
        ),
        batch,
    ),
    "cropping-acts-on-positions": (
        lambda: Sequential(
            [layers.Dense(4), layers.Cropping1D((1, 1)), layers.LSTM(2, return_sequences=True)]
        ),
        batch,
    ),
    "layer-norm-and-time-distributed": (
        lambda: Sequential(
            [
                layers.LayerNormalization(),
                layers.TimeDistributed(layers.Dense(3)),
                layers.GlobalMaxPooling1D(),
            ]
        ),
        batch,
    ),
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_models_give_no_finding(name: str) -> None:
    make_model, make_x = CLEAN[name]
    torch.manual_seed(0)
    model = make_model()
    model.train()  # dropout and batch statistics would differ between runs
    assert probe_leaks(model, make_x()) == []


def test_no_mask_anywhere_means_nothing_to_probe() -> None:
    # Without a mask every step is real: a roll is the model's business.
    model = Sequential([layers.Lambda(lambda v: torch.roll(v, 1, dims=1)), layers.Dense(2)])
    assert probe_leaks(model, array_batch()) == []


# ---------------------------------------------------------------- the model is left alone
def test_weights_grads_modes_and_random_state_are_unchanged() -> None:
    torch.manual_seed(0)
    model = Sequential(
        [
            layers.Dense(4),
            layers.BatchNormalization(),
            layers.Dropout(0.3),
            layers.Lambda(lambda v: v.flip(1), mask=keep),  # a leak: every pass is made
            layers.LSTM(3, return_sequences=True),
        ]
    )
    x = batch()
    model(x)  # build
    model.train()
    model.layers[1].eval()  # a frozen BatchNormalization stays frozen
    grads = {name: torch.full_like(p, 0.5) for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = grads[name].clone()
    model.layers[0].bias.grad = None
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    rng = torch.random.get_rng_state()

    assert probe_leaks(model, x)[0].code == "MW013"

    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.layers[0].bias.grad is None
    for name, p in model.named_parameters():
        if name != "layers.0.bias":
            assert torch.equal(p.grad, grads[name]), name
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not any(m._forward_hooks for m in model.modules())


def test_runs_under_no_grad_and_keeps_it_off() -> None:
    model = Sequential([layers.Dense(4), layers.Lambda(lambda v: v.flip(1), mask=keep)])
    with torch.no_grad():
        assert probe_leaks(model, batch())[0].code == "MW013"
        assert not torch.is_grad_enabled()


def test_cost_is_a_few_passes_on_a_few_padded_rows() -> None:
    x = batch(lengths=[7, 7, 7, 7, 7, 7, 3, 5, 2])
    model = Sequential([layers.Masking(0.0), layers.LSTM(3, return_sequences=True)])
    calls: list[tuple[list[int], int]] = []
    model.register_forward_hook(
        lambda m, args, out: calls.append((out.lengths.tolist(), out.values.shape[1]))
    )
    assert probe_leaks(model, x, rows=2) == []
    # Baseline plus 4 variants, on a row with padding and a full one (of 7 steps, 10 with
    # more padding); the pass that finds the mask the model makes stops at the Masking,
    # before the model returns.
    assert calls == [([3, 7], 7)] * 3 + [([3, 7], 10), ([3, 7], 7)]
    calls.clear()
    assert probe_leaks(model, Masked(x.values[6:]), rows=2) == []
    # No full row: the steps after the longest row (but one) are cut.
    assert calls == [([3, 5], 6)] * 3 + [([3, 5], 9), ([3, 5], 6)]


def test_a_variant_the_model_cannot_run_is_skipped() -> None:
    def six_steps_flipped(v: torch.Tensor) -> torch.Tensor:
        if v.shape[1] != 6:
            raise ValueError("built for 6 steps")
        return v.flip(1)

    model = Sequential([layers.Lambda(six_steps_flipped, mask=keep, name="six")])
    finding = only_mw013(probe_leaks(model, batch()))
    exposed = finding.message.partition("(exposed by: ")[2].partition(")")[0].split(", ")
    assert "placement" in exposed and "more padding" not in exposed
    assert not any(m._forward_hooks for m in model.modules())


def test_rows_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="rows must be a positive integer"):
        probe_leaks(Sequential([layers.Dense(2)]), batch(), rows=0)


def test_a_model_that_cannot_run_is_left_to_the_other_checks() -> None:
    model = Sequential([layers.Dense(2, input_dim=7)])
    assert probe_leaks(model, batch()) == []


# ---------------------------------------------------------------- in doctor.check
def test_check_runs_the_probe_on_the_data() -> None:
    model = Sequential(
        [
            layers.Masking(0.0),
            layers.Lambda(lambda v: torch.roll(v, 1, dims=1), mask=keep, name="roll"),
            layers.Dense(2),
        ]
    )
    finding = only_mw013(doctor.check(padded(LENGTHS), model=model))
    assert "roll (layers.1) (Lambda) is the first layer" in finding.message
    clean = Sequential([layers.Masking(0.0), layers.GRU(3, return_sequences=True)])
    assert doctor.check(padded(LENGTHS), model=clean) == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_rounding_is_no_leak(dtype: torch.dtype) -> None:
    # More padding changes how the steps are batched, and half precision rounds to a
    # few digits: the tolerance follows the dtype, and a real leak still shows.
    x = batch(features=8)
    clean = Sequential(
        [
            layers.Dense(16),
            layers.Bidirectional(layers.LSTM(16, return_sequences=True)),
            layers.LayerNormalization(),
            layers.Dense(2),
        ]
    )
    leaky = Sequential([layers.Dense(4), layers.Lambda(lambda v: v.flip(1), mask=keep)])
    for model in (clean, leaky):
        model(x)
        model.to(dtype)
    half = Masked(x.values.to(dtype), x.mask)
    assert probe_leaks(clean, half) == []
    assert only_mw013(probe_leaks(leaky, half))
