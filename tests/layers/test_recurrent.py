"""Recurrent layers: parity with Keras 3, the fast path against a per-step reference,
gradients, padding invariance, converters and errors."""

from __future__ import annotations

import doctest
import math
from typing import Any
from unittest import mock

import keras
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras.src import backend as keras_backend
from keras_oracle import randomize_weights

import maskwise.convert.recurrent
import maskwise.layers
from maskwise import Masked
from maskwise.convert.registry import CONVERTERS, convert_layer
from maskwise.errors import ConfigError, MaskwiseTypeError, ShapeError
from maskwise.layers import _host, _rnn_kernels, recurrent
from maskwise.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN, _Recurrent

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
)
from .rnn_reference import reference_bidirectional, reference_rnn

ATOL = 1e-5
KINDS = ("LSTM", "GRU", "GRU_reset_before", "SimpleRNN")


# ---------------------------------------------------------------------- layer specs
@st.composite
def specs(draw: Any) -> dict[str, Any]:
    """A recurrent configuration, a batch under a random mask, and initial states."""
    batch, time, features = draw(st.integers(1, 3)), draw(st.integers(1, 6)), 3
    rows = draw(
        st.lists(
            st.lists(st.booleans(), min_size=time, max_size=time), min_size=batch, max_size=batch
        )
    )
    bidirectional = draw(
        st.one_of(st.none(), st.sampled_from(["concat", "sum", "mul", "ave", "none"]))
    )
    return {
        "kind": draw(st.sampled_from(KINDS)),
        "fused_activations": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
        "return_sequences": draw(st.booleans()),
        "return_state": draw(st.booleans()),
        "go_backwards": bidirectional is None and draw(st.booleans()),
        "zero_output_for_mask": draw(st.booleans()),
        "bidirectional": bidirectional,
        "custom_backward": bidirectional is not None and draw(st.booleans()),
        "mask": None
        if draw(st.booleans()) and draw(st.booleans())
        else torch.tensor(rows, dtype=torch.bool),
        "seed": draw(st.integers(0, 2**16)),
        "shape": (batch, time, features),
        "initial_state": draw(st.booleans()),
    }


def _layer_args(spec: dict[str, Any], go_backwards: bool, fused: bool) -> tuple[str, dict]:
    kind = spec["kind"]
    args: dict[str, Any] = {
        "use_bias": spec["use_bias"],
        "return_sequences": spec["return_sequences"],
        "return_state": spec["return_state"],
        "go_backwards": go_backwards,
        "zero_output_for_mask": spec["zero_output_for_mask"],
    }
    if kind == "SimpleRNN":
        args["activation"] = "relu" if fused else "softsign"
    elif not fused:
        args["activation"] = "relu"
        args["recurrent_activation"] = "hard_sigmoid"
    if kind.startswith("GRU"):
        args["reset_after"] = kind == "GRU"
        kind = "GRU"
    return kind, args


def build_layers(spec: dict[str, Any], module: Any, units: int = 4) -> Any:
    """The layer `spec` describes, from `keras.layers` or `maskwise.layers`."""
    kind, args = _layer_args(spec, spec["go_backwards"], spec["fused_activations"])
    layer = getattr(module, kind)(units, **args)
    if spec["bidirectional"] is None:
        return layer
    backward = None
    if spec["custom_backward"]:
        kind, args = _layer_args(spec, True, not spec["fused_activations"])
        backward = getattr(module, kind)(units, **args)
    merge = None if spec["bidirectional"] == "none" else spec["bidirectional"]
    return module.Bidirectional(layer, merge_mode=merge, backward_layer=backward)


def spec_inputs(spec: dict[str, Any], layer: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    generator = torch.Generator().manual_seed(spec["seed"])
    x = torch.randn(spec["shape"], generator=generator)
    if not spec["initial_state"]:
        return x, None
    directions = (
        [layer] if isinstance(layer, _Recurrent) else [layer.forward_layer, layer.backward_layer]
    )
    n_states = sum(d.cell.n_states for d in directions)
    batch = spec["shape"][0]
    return x, [torch.randn(batch, 4, generator=generator) for _ in range(n_states)]


def outputs_of(result: Any) -> list[torch.Tensor]:
    items = result if isinstance(result, list | tuple) else [result]
    return [
        (item.values if isinstance(item, Masked) else torch.as_tensor(item)).detach()
        for item in items
    ]


# ---------------------------------------------------------------------- Keras parity
@settings(max_examples=30, deadline=None)
@given(spec=specs())
def test_parity_with_keras(spec: dict[str, Any]) -> None:
    ours_template = build_layers(spec, maskwise.layers)
    x, initial = spec_inputs(spec, ours_template)
    keras_layer = build_layers(spec, keras.layers)
    kwargs: dict[str, Any] = {} if spec["mask"] is None else {"mask": spec["mask"].clone()}
    if initial is not None:
        kwargs["initial_state"] = [s.clone() for s in initial]
    keras_layer(x.clone(), **kwargs)
    randomize_weights(keras_layer)
    theirs = keras_layer(x.clone(), **kwargs)

    ours_layer = convert_layer(keras_layer)
    ours = ours_layer(Masked(x, spec["mask"]), initial_state=initial)
    expected, got = outputs_of(theirs), outputs_of(ours)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)
    if not spec["return_state"]:
        first = theirs[0] if isinstance(theirs, tuple | list) else theirs
        ours_first = ours[0] if isinstance(ours, tuple) else ours
        keras_mask = keras_backend.get_keras_mask(first)
        if keras_mask is None:
            assert ours_first.mask is None
        else:
            expected_mask = torch.as_tensor(keras_mask).bool()
            if spec["go_backwards"] and spec["return_sequences"]:
                # We differ on purpose: Keras keeps the input's mask on reversed outputs.
                expected_mask = expected_mask.flip(1)
            assert torch.equal(ours_first.mask, expected_mask)


def test_keras_go_backwards_positions_and_empty_rows() -> None:
    """Spelled out: go_backwards returns outputs in reversed order, and (unlike Keras)
    the mask reversed with them, so it marks the steps holding real outputs; an empty
    row outputs zeros and keeps its initial state."""
    mask = torch.tensor([[True, True, True, False, False], [False] * 5])
    x = Masked(torch.randn(2, 5, 3), mask)
    layer = GRU(4, return_sequences=True, return_state=True, go_backwards=True)
    h0 = torch.randn(2, 4)
    out, h = layer(x, initial_state=[h0])
    forward = GRU(4, return_sequences=True, input_dim=3)
    forward.load_state_dict(layer.state_dict())
    real_backwards = forward(x.values[:1, [2, 1, 0]], initial_state=[h0[:1]]).values
    torch.testing.assert_close(out.values[0, 2:], real_backwards[0], atol=ATOL, rtol=0)
    assert torch.equal(out.values[0, :2], torch.zeros(2, 4))  # before the first real step
    assert out.mask[0].tolist() == [False, False, True, True, True]
    assert torch.equal(out.values[1], torch.zeros(5, 4))
    torch.testing.assert_close(h[1], h0[1])


# ---------------------------------------------------------------------- fast path
CALL_COSTS = {
    "by cost": _rnn_kernels.SEGMENT_CALL_COSTS["cpu"],
    "a call per length": 0.0,
    "one call": math.inf,
}
"""Kernel-call costs that make `plan_segments` cut where it measures best, at every
row's length, or nowhere: each plan must give the same outputs."""

OFF_CPU = "off the CPU"
PLANS = [*sorted(CALL_COSTS), OFF_CPU]
"""The CPU's plans, and the path of devices where host reads are not cheap: one call
over the whole time axis, nothing read back (run on CPU by patching the policy)."""


def running(plan: str) -> Any:
    """A context running the masked path with `plan` (one of `PLANS`) on CPU."""
    if plan == OFF_CPU:
        return mock.patch.object(_host, "host_reads_are_cheap", lambda device: False)
    return mock.patch.dict(_rnn_kernels.SEGMENT_CALL_COSTS, {"cpu": CALL_COSTS[plan]})


@settings(max_examples=60, deadline=None)
@given(
    spec=specs(),
    plan=st.sampled_from(PLANS),
    grad=st.booleans(),
)
def test_fast_path_matches_reference(spec: dict[str, Any], plan: str, grad: bool) -> None:
    """Every segment plan and the path off the CPU, with and without autograd recording."""
    layer = build_layers(spec, maskwise.layers)
    x, initial = spec_inputs(spec, layer)
    layer.eval()
    with running(plan), torch.set_grad_enabled(grad):
        got = outputs_of(layer(Masked(x, spec["mask"]), initial_state=initial))
    if isinstance(layer, Bidirectional):
        outputs, states = reference_bidirectional(layer, x, spec["mask"], initial)
    else:
        output, states = reference_rnn(layer, x, spec["mask"], initial)
        outputs = [output]
    expected = outputs + (states if spec["return_state"] else [])
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


def plan_cost(plan: list[_rnn_kernels.Segment], call_cost: float) -> float:
    return sum(
        call_cost + (s.stop - s.start) * (_rnn_kernels.SEGMENT_STEP_COST + s.rows) for s in plan
    )


def test_kernel_calls_per_device_type() -> None:
    """On CPU a batch of one long and many short rows runs in several calls, the later
    ones on fewer rows, or in one call cut to the grid step after the longest row when
    calls cost too much; off the CPU, in one call over the whole time axis (no length is
    read on the host), with or without the LSTM's final states."""
    lengths = torch.tensor([5] * 31 + [200])
    x = Masked.from_lengths(torch.randn(32, 230, 3), lengths)
    layer = LSTM(4, return_sequences=True, input_dim=3)
    with_states = LSTM(4, return_sequences=True, return_state=True, input_dim=3)
    with_states.load_state_dict(layer.state_dict())
    calls: list[tuple[int, ...]] = []
    real_call = _rnn_kernels._fused_call

    def spy(cell: Any, weights: Any, block: torch.Tensor, hx: Any) -> Any:
        calls.append(tuple(block.shape[:2]))
        return real_call(cell, weights, block, hx)

    with mock.patch.object(_rnn_kernels, "_fused_call", spy):
        expected = outputs_of(with_states(x))
        calls.clear()
        torch.testing.assert_close(layer(x).values, expected[0], atol=ATOL, rtol=1e-5)
        assert len(calls) > 1 and calls[0][0] == 32 and calls[-1][0] == 1
        for plan, model in (("one call", layer), (OFF_CPU, layer), (OFF_CPU, with_states)):
            calls.clear()
            with running(plan):
                got = outputs_of(model(x))
            assert calls == [(32, 230 if plan == OFF_CPU else _rnn_kernels.grid_steps(200))]
            for a, b in zip(got, expected, strict=False):
                torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("layer_class", [LSTM, GRU])
@pytest.mark.parametrize("plan", ["a call per length", "by cost", OFF_CPU])
def test_final_states_of_a_ragged_batch_match_reference(
    layer_class: type[_Recurrent], plan: str
) -> None:
    """Eleven rows of distinct lengths (one empty), so the calls run rounded-up row
    counts and, for the LSTM's cell state, end at every length; off the CPU, one call
    whose padded steps keep each row's cell state."""
    torch.manual_seed(0)
    lengths = torch.tensor([3, 17, 0, 9, 40, 1, 26, 5, 33, 12, 21])
    x = Masked.from_lengths(torch.randn(11, 40, 3), lengths)
    layer = layer_class(4, return_sequences=True, return_state=True)
    initial = [torch.randn(11, 4) for _ in range(2 if layer_class is LSTM else 1)]
    with running(plan):
        got = outputs_of(layer(x, initial_state=initial))
    output, states = reference_rnn(layer, x.values, x.mask, initial)
    for a, b in zip(got, [output, *states], strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("plan", ["by cost", OFF_CPU])
def test_an_empty_batch_runs_no_kernel(plan: str) -> None:
    """No row at all: zero-row outputs and states, without a kernel call (which cuDNN
    would refuse)."""
    layer = LSTM(4, return_sequences=True, return_state=True, input_dim=3)
    x = Masked(torch.randn(0, 5, 3), torch.zeros(0, 5, dtype=torch.bool))
    with running(plan), mock.patch.object(_rnn_kernels, "_fused_call") as call:
        out, h, c = layer(x)
    call.assert_not_called()
    assert out.values.shape == (0, 5, 4) and h.shape == c.shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_off_the_cpu_padded_steps_keep_the_cell_state_under_large_weights(
    dtype: torch.dtype,
) -> None:
    """The feature that holds the LSTM's cell state through padded steps saturates its
    gates exactly even when biases and recurrent weights are large (row sums of
    absolute weights in the hundreds), and passes no gradient from padded steps."""
    torch.manual_seed(0)
    lengths = torch.tensor([3, 0, 12, 7])
    x = Masked.from_lengths(torch.randn(4, 12, 3, dtype=dtype), lengths)
    layer = LSTM(16, return_state=True, input_dim=3).to(dtype)
    with torch.no_grad():
        layer.weight_hh.mul_(20.0)
        assert layer.bias is not None
        layer.bias.fill_(100.0)
    initial = [torch.randn(4, 16, dtype=dtype) for _ in range(2)]
    with running(OFF_CPU):
        got = layer(x, initial_state=initial)
        sum(t.values.sum() if isinstance(t, Masked) else t.sum() for t in got).backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    expected = reference_rnn(layer, x.values, x.mask, initial)
    sum(t.sum() for t in [expected[0], *expected[1]]).backward()
    for a, b in zip(outputs_of(got), [expected[0], *expected[1]], strict=True):
        torch.testing.assert_close(a, b.detach(), atol=ATOL, rtol=1e-5)
    for a, b in zip(grads, [p.grad for p in layer.parameters()], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


ROW_SIZES = sorted({2**k for k in range(12)} | {3 * 2**k for k in range(12)})
"""The row counts a kernel call may run: 1, 2, 3, 4, 6, 8, 12, 16, 24, ..."""


GRID_STEPS = sorted(
    {*range(1, 17)} | {n for k in range(4, 12) for n in range(2**k, 2 ** (k + 1) + 1, 2 ** (k - 3))}
)
"""Where a kernel call may stop: every step up to 16, then 8 places per octave."""


def test_grid_steps_is_the_next_grid_step() -> None:
    for steps in range(1, 3000):
        rounded = _rnn_kernels.grid_steps(steps)
        assert rounded == min(n for n in GRID_STEPS if n >= steps)
        assert rounded < steps * 1.125


def test_call_rows_is_the_next_allowed_size() -> None:
    for alive in range(1, 1000):
        assert _rnn_kernels.call_rows(alive, 4096) == min(n for n in ROW_SIZES if n >= alive)
        assert _rnn_kernels.call_rows(alive, alive) == alive  # never more than the batch


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 300), min_size=1, max_size=9),
    call_cost=st.sampled_from([0.0, 10.0, 80.0, 1000.0, math.inf]),
)
def test_segment_plan_covers_the_real_steps_at_least_cost(
    lengths: list[int], call_cost: float
) -> None:
    """The plan runs every real step exactly once, each call on at least the rows real
    at its start, in a bounded set of shapes (steps on the grid, rows from ROW_SIZES or
    the whole batch), and no other split on the grid costs less (brute force); with
    `cut_at_every_length`, every row ends where a call ends."""
    lengths = sorted(lengths, reverse=True)
    plan = _rnn_kernels.plan_segments(lengths, call_cost)
    exact = _rnn_kernels.plan_segments(lengths, call_cost, cut_at_every_length=True)
    for segments in (plan, exact):
        assert [s.start for s in segments] == [0, *(s.stop for s in segments)][: len(segments)]
        for s in segments:
            assert s.rows >= sum(n > s.start for n in lengths)
    assert (plan[-1].stop if plan else 0) == _rnn_kernels.grid_steps(max(lengths))
    for s in plan:
        assert s.stop in GRID_STEPS
        assert s.rows in ROW_SIZES or s.rows == len(lengths)
    assert {s.stop for s in exact} == set(lengths) - {0}
    assert [s.running for s in exact] == [sum(n > s.start for n in lengths) for s in exact]

    top = plan[-1].stop if plan else 0
    inner = sorted({_rnn_kernels.grid_steps(n) for n in lengths} - {0, top})
    candidates = []
    for chosen in range(2 ** len(inner)):
        stops = [t for k, t in enumerate(inner) if chosen >> k & 1] + [top]
        starts = [0, *stops[:-1]]
        rows = [_rnn_kernels.call_rows(sum(n > a for n in lengths), len(lengths)) for a in starts]
        candidates.append(
            [
                _rnn_kernels.Segment(a, b, r, sum(n > a for n in lengths))
                for a, b, r in zip(starts, stops, rows, strict=True)
                if top > 0
            ]
        )
    if math.isinf(call_cost):
        assert len(plan) == (1 if top else 0)
    else:
        best = min(plan_cost(c, call_cost) for c in candidates)
        assert plan_cost(plan, call_cost) == pytest.approx(best)


@pytest.mark.parametrize("plan", ["by cost", OFF_CPU])
@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_grid_matches_reference(kind: str, plan: str) -> None:
    """Every mask shape (an empty row included), both directions, both output forms."""
    x = example_input("noncontiguous", features=3)
    for mask in (*(example_input(k).mask for k in MASK_KINDS), torch.zeros(3, 5, dtype=bool)):
        for go_backwards in (False, True):
            for return_sequences in (False, True):
                spec = {
                    "kind": kind,
                    "fused_activations": True,
                    "use_bias": True,
                    "return_sequences": return_sequences,
                    "return_state": True,
                    "go_backwards": go_backwards,
                    "zero_output_for_mask": False,
                    "bidirectional": None,
                }
                layer = build_layers(spec, maskwise.layers).eval()
                with running(plan):
                    got = outputs_of(layer(Masked(x.values, mask)))
                output, states = reference_rnn(layer, x.values, mask)
                for a, b in zip(got, [output, *states], strict=True):
                    torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("plan", ["by cost", "a call per length", OFF_CPU])
@pytest.mark.parametrize("layer_class", [LSTM, GRU, SimpleRNN])
def test_gradcheck_fast_path(layer_class: type[_Recurrent], plan: str) -> None:
    """Gradients through one kernel call and through a chain of calls."""
    torch.manual_seed(0)
    layer = layer_class(3, return_sequences=True, return_state=True, input_dim=2).double()
    mask = torch.tensor(
        [[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool
    )
    x = torch.randn(4, 5, 2, dtype=torch.float64, requires_grad=True)
    states = [
        torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        for _ in range(layer.cell.n_states)
    ]
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(x: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = dict(zip(names, rest[: len(names)], strict=True))
        initial = list(rest[len(names) :])
        out = torch.func.functional_call(
            layer, weights, (Masked(x, mask),), {"initial_state": initial}
        )
        return (out[0].values, *out[1:])

    with running(plan):
        assert torch.autograd.gradcheck(f, (x, *params, *states), atol=1e-6)


# ---------------------------------------------------------------------- invariances
FACTORIES = {
    "lstm": lambda: LSTM(4, return_sequences=True),
    "gru_backwards": lambda: GRU(4, return_sequences=True, go_backwards=True),
    "gru_reset_before_dropout": lambda: GRU(
        4, reset_after=False, return_sequences=True, dropout=0.3, recurrent_dropout=0.3
    ),
    "simple_relu_dropout": lambda: SimpleRNN(
        4, activation="relu", return_sequences=True, dropout=0.3
    ),
    "bidirectional": lambda: Bidirectional(LSTM(4, return_sequences=True)),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_layer_contract(name: str, kind: str) -> None:
    x = example_input(kind)
    units = 8 if name == "bidirectional" else 4
    # go_backwards returns its outputs in reversed order, with the mask reversed too.
    expected_mask = x.mask.flip(1) if name == "gru_backwards" else "same"
    check_layer_contract(
        FACTORIES[name], x, expected_shape=(3, 5, units), expected_mask=expected_mask
    )


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_layer_contract_last_output(kind: str) -> None:
    check_layer_contract(
        lambda: Bidirectional(GRU(4), merge_mode="sum"),
        example_input(kind),
        expected_shape=(3, 4),
        expected_mask=None,
    )


@pytest.mark.parametrize("plan", ["by cost", OFF_CPU])
@pytest.mark.parametrize("fill", ["zeros", "random", "nan"])
@pytest.mark.parametrize("name", ["lstm", "bidirectional", "gru_reset_before_dropout"])
def test_padding_length_invariance(name: str, fill: str, plan: str) -> None:
    layer = FACTORIES[name]()
    for training in (False, True):
        with running(plan):
            check_padding_length_invariance(
                layer, example_input("noncontiguous"), 4, fill, training
            )


def test_unmasked_input_equals_masked_all_real() -> None:
    layer = Bidirectional(LSTM(4, return_sequences=True, return_state=True))
    x = torch.randn(2, 5, 3)
    plain = outputs_of(layer(x))
    masked = outputs_of(layer(Masked(x, torch.ones(2, 5, dtype=torch.bool))))
    for a, b in zip(plain, masked, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------- dropout, init
def test_input_dropout_mask_is_fixed_across_time() -> None:
    layer = SimpleRNN(8, activation="linear", return_sequences=True, dropout=0.5, input_dim=16)
    with torch.no_grad():
        layer.weight_hh.zero_()
    x = torch.randn(4, 1, 16).expand(4, 6, 16)  # the same input at every step
    layer.train()
    out = layer(x).values
    torch.testing.assert_close(out, out[:, :1].expand_as(out), atol=1e-6, rtol=0)
    layer.eval()
    assert not torch.allclose(out, layer(x).values)


def test_recurrent_dropout_acts_in_training_only() -> None:
    layer = LSTM(6, return_sequences=True, recurrent_dropout=0.5)
    x = example_input("noncontiguous")
    layer.eval()
    evaluated = layer(x).values
    reference, _ = reference_rnn(layer, x.values, x.mask)
    torch.testing.assert_close(evaluated, reference, atol=ATOL, rtol=0)
    layer.train()
    assert not torch.allclose(layer(x).values[x.mask], reference[x.mask])


def test_keras_default_initialisers() -> None:
    layer = LSTM(5, input_dim=3, kernel_initializer="glorot_uniform", use_cudnn="auto")
    expected_bias = torch.zeros(20)
    expected_bias[5:10] = 1.0  # unit_forget_bias
    assert layer.bias is not None and torch.equal(layer.bias.detach(), expected_bias)
    gram = layer.weight_hh.detach().T @ layer.weight_hh.detach()
    torch.testing.assert_close(gram, torch.eye(5), atol=1e-5, rtol=0)  # orthogonal
    assert layer.weight_ih.abs().max() <= math.sqrt(6.0 / (3 + 20))  # glorot_uniform
    gru = GRU(5, input_dim=3)
    assert gru.recurrent_bias is not None and not gru.recurrent_bias.any()
    assert GRU(5, reset_after=False, input_dim=3).recurrent_bias is None


# ---------------------------------------------------------------------- converters
def test_converters_are_registered() -> None:
    assert {"LSTM", "GRU", "SimpleRNN", "Bidirectional"} <= set(CONVERTERS)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("stateful", True, "stateful=True"),
        ("unroll", True, "unroll=True"),
    ],
)
def test_converter_refuses_unsupported_keras_options(option: str, value: Any, match: str) -> None:
    keras_layer = keras.layers.LSTM(3, **{option: value})
    keras_layer(torch.zeros(1, 2, 3))
    with pytest.raises(ConfigError, match=match):
        convert_layer(keras_layer)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LSTM(4, stateful=True), ConfigError, r"\(stateful=True\) is not supported"),
        (lambda: GRU(4, unroll=True), ConfigError, r"\(unroll=True\) is not supported"),
        (lambda: LSTM(0), ConfigError, "units must be a positive integer"),
        (
            lambda: LSTM(4, seed=3),
            ConfigError,
            r"the Keras argument seed=3.\n  expected: seed=None",
        ),
        (lambda: GRU(4, time_major=True), ConfigError, "GRU does not take the argument time_ma"),
        (lambda: SimpleRNN(4, dropout=1.0), ConfigError, r"dropout must be a rate in \[0, 1\)"),
        (lambda: LSTM(4, activation="swoosh"), ConfigError, "Unknown activation"),
        (lambda: Bidirectional(LSTM(4), merge_mode="max"), ConfigError, "merge_mode"),
        (
            lambda: Bidirectional(LSTM(4, go_backwards=True)),
            ConfigError,
            "one layer reading forwards and one backwards",
        ),
        (
            lambda: Bidirectional(
                LSTM(4), backward_layer=LSTM(4, go_backwards=True, return_sequences=True)
            ),
            ConfigError,
            "disagree on `return_sequences`",
        ),
        (
            lambda: Bidirectional(torch.nn.LSTM(3, 4)),
            MaskwiseTypeError,
            "must be a maskwise recurrent layer",
        ),
    ],
)
def test_constructor_errors(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_wrong_initial_state_shape() -> None:
    x = torch.randn(2, 3, 4)
    with pytest.raises(ShapeError, match=r"2 tensor\(s\) \[h, c\], each \(batch, units\)"):
        LSTM(5)(x, initial_state=[torch.zeros(2, 5)])
    with pytest.raises(ShapeError, match=r"received: 1 state\(s\) shaped \[\(2, 4\)\]"):
        GRU(5)(x, initial_state=torch.zeros(2, 4))
    with pytest.raises(ShapeError, match="wrong number of initial states"):
        Bidirectional(GRU(5))(x, initial_state=[torch.zeros(2, 5)])


def test_wrong_input_shape() -> None:
    layer = LSTM(5, input_dim=4)
    with pytest.raises(ShapeError, match=r"expected: \(batch, time, 4\)"):
        layer(torch.randn(2, 3, 7))


def test_docstring_examples() -> None:
    result = doctest.testmod(recurrent, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
