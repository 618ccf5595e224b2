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
    assert "when the padded steps hold other values" in finding.message
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
    norm = layers.Lambda(nn.LayerNorm([6, 3]), mask=keep, name="norm")
    finding = only_mw013(probe_leaks(Sequential([norm, layers.Dense(2)]), batch()))
    assert "norm (layers.0) (Lambda)" in finding.message
    assert "instead of the plain `LayerNorm`" in finding.fix
    assert "layers.LayerNormalization" in finding.fix


class CumulativeSum(layers.Layer):
    """Declared per-step (the default mask rule) but sums over time."""

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return values.cumsum(1)


class RunningTotal(Module):
    def forward(self, x: Masked) -> Masked:
        return x.with_values(x.values.cumsum(1))


@pytest.mark.parametrize("mixer", [CumulativeSum(name="running"), RunningTotal()])
def test_custom_layer_or_module_that_mixes_steps_is_named(mixer: nn.Module) -> None:
    # Post-padding: a cumulative sum never reads the padding after the real steps; the
    # placement variant (padding first) exposes it.
    model = Sequential([layers.Dense(4), mixer, layers.Dense(2)])
    finding = only_mw013(probe_leaks(model, batch()))
    name = (
        "running (layers.1) (CumulativeSum)"
        if isinstance(mixer, layers.Layer)
        else ("RunningTotal (layers.1)")
    )
    assert f"{name} is the first layer whose real-step outputs change" in finding.message
    assert "(exposed by: placement)" in finding.message
    assert f"make `{type(mixer).__name__}` read the mask" in finding.fix


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


def test_the_first_of_two_leaking_layers_is_named() -> None:
    # The second leak (a flip) shows with any padding values; the first (a cumulative
    # sum) only when the padding comes first: the earlier layer is named all the same.
    model = Sequential(
        [
            layers.Dense(4),
            layers.Lambda(lambda v: v.cumsum(1), name="first_leak"),
            layers.Lambda(lambda v: v.flip(1), mask=keep, name="second_leak"),
            layers.Dense(2),
        ]
    )
    finding = only_mw013(probe_leaks(model, batch()))
    assert "first_leak (layers.1) (Lambda) is the first layer" in finding.message
    assert "second_leak" not in finding.message


def test_nan_reaching_real_steps_through_padding_is_a_leak() -> None:
    # 0 * sum over time: finite padding adds nothing, NaN padding turns every step NaN.
    model = Sequential(
        [layers.Lambda(lambda v: v + 0 * v.sum(1, keepdim=True), name="zero_sum"), layers.Dense(2)]
    )
    finding = only_mw013(probe_leaks(model, batch()))
    assert "when the padded steps hold NaN, zero_sum (layers.0) (Lambda)" in finding.message
    assert "(exposed by: NaN)" in finding.message


def test_gradient_through_the_padding_is_reported_with_the_parameter() -> None:
    # The forward adds exactly 0 (NaN too), but the backward sends every step's
    # gradient, padded steps included, to the Dense before it.
    def zero_with_gradient(v: torch.Tensor) -> torch.Tensor:
        return v + (v - v.detach()).nan_to_num().sum(1, keepdim=True)

    model = Sequential(
        [layers.Dense(4), layers.Lambda(zero_with_gradient, name="grad_leak"), layers.Dense(2)]
    )
    finding = only_mw013(probe_leaks(model, batch()))
    assert "padding changes the gradients" in finding.message
    assert "the gradient of parameter 'layers.0.bias' changes" in finding.message


def test_gradient_leak_after_a_lost_mask_says_so() -> None:
    model = Sequential(
        [layers.Masking(0.0), layers.Lambda(lambda v: v, mask="drop"), layers.Dense(2)]
    )
    finding = only_mw013(probe_leaks(model, array_batch()))
    assert "'layers.2.kernel'" in finding.message
    assert "gets no mask although the padding is there" in finding.message


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
    # Baseline plus 4 variants, on the 2 rows with padding (the first six have none), cut
    # to 6 steps (one padded step after the longest) and 9 with more padding; the pass
    # that finds the mask the model makes stops at the Masking, before the model returns.
    assert calls == [([3, 5], 6)] * 3 + [([3, 5], 9), ([3, 5], 6)]


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
