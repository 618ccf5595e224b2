"""Recurrent layers: parity with Keras 3, the fast path against a per-step reference,
gradients, padding invariance, converters and errors; `RNN` over built-in cells, stacks
and user cells; stateful streaming."""

from __future__ import annotations

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
from maskwise.layers import _host, _rnn_kernels, cells
from maskwise.layers.recurrent import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from maskwise.masked import fill_padding

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_input,
    padding_property_tests,
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
    directions = [layer] if isinstance(layer, RNN) else [layer.forward_layer, layer.backward_layer]
    n_states = sum(len(d.state_size) for d in directions)
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
def test_final_states_of_a_ragged_batch_match_reference(layer_class: type[RNN], plan: str) -> None:
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
        layer.cell.weight_hh.mul_(20.0)
        assert layer.cell.bias is not None
        layer.cell.bias.fill_(100.0)
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
def test_gradcheck_fast_path(layer_class: type[RNN], plan: str) -> None:
    """Gradients through one kernel call and through a chain of calls."""
    torch.manual_seed(0)
    layer = layer_class(3, return_sequences=True, return_state=True, input_dim=2).double()
    mask = torch.tensor(
        [[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool
    )
    x = torch.randn(4, 5, 2, dtype=torch.float64, requires_grad=True)
    states = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in layer.state_size]
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


PADDING_GRADIENT_LAYERS = {
    "lstm_states": lambda: LSTM(3, return_sequences=True, return_state=True, input_dim=2),
    "gru_backwards_last": lambda: GRU(3, return_state=True, go_backwards=True, input_dim=2),
    "simple_relu": lambda: SimpleRNN(3, activation="relu", return_sequences=True, input_dim=2),
    "bidirectional_concat": lambda: Bidirectional(LSTM(3, return_sequences=True, input_dim=2)),
}


@pytest.mark.parametrize("plan", ["by cost", "a call per length", OFF_CPU])
@pytest.mark.parametrize("name", sorted(PADDING_GRADIENT_LAYERS))
def test_nan_padding_gives_the_reference_gradients(name: str, plan: str) -> None:
    """NaN at every padded step (holes, trailing padding, an empty row) changes neither
    the outputs nor any gradient (weights, real inputs): they equal the per-step
    reference's on zero padding, and padded inputs get a zero gradient. The fast path
    runs real inputs at the positions after a row's real steps; this checks that it
    never reads them."""
    torch.manual_seed(0)
    layer = PADDING_GRADIENT_LAYERS[name]()
    mask = torch.tensor(
        [[1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0] * 6, [0, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0]],
        dtype=torch.bool,
    )
    x = torch.randn(5, 6, 2)
    noisy = x.masked_fill(~mask.unsqueeze(-1), math.nan).requires_grad_()
    zeros = x.masked_fill(~mask.unsqueeze(-1), 0.0).requires_grad_()
    with running(plan):
        got = values_of(layer(Masked(noisy, mask)))
    if isinstance(layer, Bidirectional):
        expected = reference_bidirectional(layer, zeros, mask)[0]
    else:
        output, states = reference_rnn(layer, zeros, mask)
        expected = [output, *(states if layer.return_state else [])]
    check_outputs_and_gradients(layer, (noisy, got), (zeros, expected), mask)


def values_of(result: Any) -> list[torch.Tensor]:
    """`outputs_of`, still on the autograd graph."""
    items = result if isinstance(result, list | tuple) else [result]
    return [item.values if isinstance(item, Masked) else item for item in items]


def check_outputs_and_gradients(
    layer: torch.nn.Module,
    got: tuple[torch.Tensor, list[torch.Tensor]],
    expected: tuple[torch.Tensor, list[torch.Tensor]],
    mask: torch.Tensor,
) -> None:
    """Outputs `got[1]` equal `expected[1]`, and so do the gradients of one random
    weighting of them with respect to the inputs (`got[0]`, `expected[0]`) and the
    layer's weights; padded inputs get exactly zero gradient."""
    (x_got, out_got), (x_expected, out_expected) = got, expected
    assert len(out_got) == len(out_expected)
    for a, b in zip(out_got, out_expected, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)
    weights = [torch.randn(t.shape, dtype=t.dtype) for t in out_expected]
    params = list(layer.parameters())

    def gradients(outputs: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        loss = sum((t * w).sum() for t, w in zip(outputs, weights, strict=True))
        return list(torch.autograd.grad(loss, [x, *params]))

    got_grads, expected_grads = gradients(out_got, x_got), gradients(out_expected, x_expected)
    assert torch.equal(got_grads[0][~mask], torch.zeros_like(got_grads[0][~mask]))
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def lstm_calls() -> tuple[list[tuple[int, ...]], Any]:
    """A list that records the input shape of every fused LSTM call, and a context in
    which the calls are recorded."""
    calls: list[tuple[int, ...]] = []
    real_lstm = cells.KERNELS["lstm"]

    def spy(*args: Any) -> Any:
        calls.append(tuple(args[0].shape))
        return real_lstm(*args)

    return calls, mock.patch.dict(cells.KERNELS, {"lstm": spy})


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bidirectional_lstm_on_a_post_padded_batch_runs_in_one_call(
    dtype: torch.dtype, merge_mode: str | None
) -> None:
    """Rows of nearly one length, padded at the end (what the length-bucketing loader
    makes): `Bidirectional(LSTM)` runs both directions in one bidirectional call over
    the batch as it is, the padding flag as one more feature, and gives the per-step
    reference's outputs and gradients, NaN padding included, in training too."""
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(4, return_sequences=True, input_dim=3), merge_mode).to(dtype)
    with torch.no_grad():
        layer.forward_layer.cell.weight_hh.mul_(3.0)  # far from 0 and 1, short of saturation
    lengths = torch.tensor([9, 9, 8, 7, 9, 8])
    mask = torch.arange(9) < lengths.unsqueeze(1)
    x = torch.randn(6, 9, 3, dtype=dtype)
    noisy = x.masked_fill(~mask.unsqueeze(-1), math.nan).requires_grad_()
    zeros = x.masked_fill(~mask.unsqueeze(-1), 0.0).requires_grad_()
    calls, recording = lstm_calls()
    layer.train()
    with recording:
        got = values_of(layer(Masked(noisy, mask)))
    assert calls == [(6, 9, 4)]
    expected = reference_bidirectional(layer, zeros, mask)[0]
    check_outputs_and_gradients(layer, (noisy, got), (zeros, expected), mask)


@pytest.mark.parametrize("fill", [math.nan, math.inf])
@pytest.mark.parametrize("one_call", [True, False])
def test_bidirectional_drops_non_finite_gradients_given_at_padded_steps(
    one_call: bool, fill: float
) -> None:
    """A gradient of NaN or inf given at the padded steps of the output (code that
    reads the padding, say `log` of it) reaches no weight, on the one-call path as on
    the masked path: the weights' gradients are those of zero gradients there."""
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(4, return_sequences=True, input_dim=3))
    mask = torch.arange(9) < torch.tensor([9, 9, 8, 7, 9, 8]).unsqueeze(1)
    calls, recording = lstm_calls()
    saving = _rnn_kernels.SINGLE_CALL_SAVING if one_call else -math.inf
    with recording, mock.patch.object(_rnn_kernels, "SINGLE_CALL_SAVING", saving):
        out = layer(Masked(torch.randn(6, 9, 3), mask)).values
    assert (calls == [(6, 9, 4)]) == one_call
    given = torch.randn(out.shape)
    params = list(layer.parameters())
    got = torch.autograd.grad(out, params, given.masked_fill(~mask.unsqueeze(-1), fill), True)
    expected = torch.autograd.grad(out, params, given.masked_fill(~mask.unsqueeze(-1), 0.0))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=32), extra=st.integers(0, 30))
def test_the_one_call_choice_is_the_cost_rule(lengths: list[int], extra: int) -> None:
    """`_one_call_pays` says yes exactly where one call over the padded batch costs at
    most the two directions' planned calls plus `SINGLE_CALL_SAVING` (computed here
    from `plan_segments` for every batch, without any shortcut)."""
    time = max(lengths) + extra
    mask = torch.arange(time) < torch.tensor(lengths).unsqueeze(1)
    cost = _rnn_kernels.SEGMENT_CALL_COSTS["cpu"]
    step = _rnn_kernels.SEGMENT_STEP_COST
    host = sorted(lengths, reverse=True)
    planned = sum(
        cost + (s.stop - s.start) * (step + s.rows) for s in _rnn_kernels.plan_segments(host, cost)
    )
    one_call = cost + time * (step + len(lengths))
    expected = max(lengths) > 0 and one_call <= planned + _rnn_kernels.SINGLE_CALL_SAVING
    assert _rnn_kernels._one_call_pays(mask) == expected


def test_bidirectional_lstm_first_called_under_inference_mode_then_trains() -> None:
    """The one call's padding-feature weight, a constant made at the first call, is a
    plain tensor even when that call runs under `torch.inference_mode`, so training
    afterwards works and reaches every weight."""
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(3, return_sequences=True, input_dim=2))
    x = Masked(torch.randn(2, 4, 2), torch.arange(4) < torch.tensor([[4], [3]]))
    with torch.inference_mode():
        layer(x)
    layer(x).values.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul"])
def test_outputs_zero_filled_by_the_gather_skip_the_next_fill_with_the_same_gradients(
    merge_mode: str,
) -> None:
    """The masked path's outputs with zeros at masked steps (`Bidirectional`'s) are
    recorded as filled, so the next layer's fill returns them as they are; the gradient
    a function gives at their padded steps (`sqrt`'s inf at 0) still reaches no weight,
    and every weight's gradient is that of an explicit `where` fill."""
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(4, return_sequences=True, input_dim=3), merge_mode)
    mask = torch.arange(9) < torch.tensor([9, 2, 8, 7, 9, 8]).unsqueeze(1)
    x = Masked(torch.randn(6, 9, 3), mask)
    params = list(layer.parameters())
    with mock.patch.object(_rnn_kernels, "SINGLE_CALL_SAVING", -math.inf):  # masked path
        out = layer(x)
        reference = layer(x).values
    filled = fill_padding(out.values, out.mask)
    assert filled is out.values
    got = torch.autograd.grad(filled.abs().add(1e-3).sqrt().sum(), params)
    refilled = torch.where(mask.unsqueeze(-1), reference, 0.0)
    expected = torch.autograd.grad(refilled.abs().add(1e-3).sqrt().sum(), params)
    for a, b in zip(got, expected, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)


def test_outputs_in_processing_order_are_not_recorded_as_filled_by_the_input_mask() -> None:
    """An LSTM run backwards without `Bidirectional` returns its outputs in processing
    (reversed) order, so their zeros are not at the input mask's padded steps: the
    next layer fills them."""
    layer = LSTM(3, return_sequences=True, go_backwards=True, zero_output_for_mask=True)
    mask = torch.arange(5) < torch.tensor([5, 2]).unsqueeze(1)
    out = layer(Masked(torch.randn(2, 5, 2), mask))
    assert fill_padding(out.values, mask) is not out.values
    forwards = LSTM(3, return_sequences=True, zero_output_for_mask=True)
    out = forwards(Masked(torch.randn(2, 5, 2), mask))
    assert fill_padding(out.values, mask) is out.values


def test_bidirectional_lstm_takes_the_masked_path_where_one_call_is_not_exact() -> None:
    """A hole in a row, initial states, a backward layer without biases, input dropout
    in training, or padding that costs more than the masked path saves: each direction
    runs its planned calls on the compacted real steps (3 features, no padding flag),
    with the per-step reference's outputs."""
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(4, return_sequences=True, input_dim=3))
    mask = torch.arange(9) < torch.tensor([9, 9, 8, 7, 9, 8]).unsqueeze(1)
    holed = mask.clone()
    holed[0, 3] = False
    ragged = torch.arange(200) < torch.tensor([200] + [2] * 31).unsqueeze(1)
    initial = [torch.randn(6, 4) for _ in range(4)]
    unbiased = LSTM(4, return_sequences=True, go_backwards=True, use_bias=False, input_dim=3)
    mixed = Bidirectional(LSTM(4, return_sequences=True, input_dim=3), backward_layer=unbiased)
    dropped = Bidirectional(LSTM(4, return_sequences=True, dropout=0.5, input_dim=3)).train()
    calls, recording = lstm_calls()
    for bi, m, states in (
        (layer, holed, None),
        (layer, ragged, None),
        (layer, mask, initial),
        (mixed, mask, None),
        (dropped, mask, None),
    ):
        x = torch.randn(*m.shape, 3)
        calls.clear()
        torch.manual_seed(1)
        with recording:
            got = outputs_of(bi(Masked(x, m), initial_state=states))
        assert len(calls) >= 2 and all(shape[-1] == 3 for shape in calls)
        if bi is not dropped:
            expected = reference_bidirectional(bi, x, m, states)[0]
            torch.testing.assert_close(got[0], expected[0], atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("fill", ["zeros", "random", "nan"])
def test_bidirectional_padding_length_invariance_on_post_padding(fill: str) -> None:
    """More padding after a post-padded batch (which moves it from one bidirectional
    call to the masked path once the padding costs more) changes no real output."""
    layer = FACTORIES["bidirectional"]()
    x = example_input("post")
    for steps in (1, 400):
        check_padding_length_invariance(layer, x, steps, fill, training=True)


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


STATEFUL = {  # name -> (a fresh layer, its states, its output shape)
    "lstm_sequences": (lambda: LSTM(4, return_sequences=True, return_state=True), 2, (3, 5, 4)),
    "gru_last": (lambda: GRU(4, return_state=True, dropout=0.3), 1, (3, 4)),
    "bidirectional_pair": (
        lambda: Bidirectional(
            SimpleRNN(4, return_sequences=True, return_state=True), merge_mode=None
        ),
        2,
        (3, 5, 4),
    ),
    "bidirectional_last": (lambda: Bidirectional(LSTM(4, return_state=True)), 4, (3, 8)),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_layer_contract_with_initial_and_final_states(name: str, kind: str) -> None:
    """`initial_state` in, the final states out after the outputs: padding changes
    neither, and no gradient reaches it through the states."""
    make, count, shape = STATEFUL[name]
    generator = torch.Generator().manual_seed(5)
    states = [torch.randn(3, 4, generator=generator) for _ in range(count)]
    x = example_input(kind)
    options = {"initial_state": states}
    expected_mask = x.mask if len(shape) == 3 else None
    check_layer_contract(
        make, x, expected_shape=shape, expected_mask=expected_mask, options=options
    )
    result = make()(x, **options)
    masked = 2 if name == "bidirectional_pair" else 1
    assert len(result) == masked + count
    assert all(isinstance(item, Masked) for item in result[:masked])
    assert all(item.shape == (3, 4) for item in result[masked:])


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
        layer.cell.weight_hh.zero_()
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
    cell = layer.cell
    assert cell.bias is not None and torch.equal(cell.bias.detach(), expected_bias)
    gram = cell.weight_hh.detach().T @ cell.weight_hh.detach()
    torch.testing.assert_close(gram, torch.eye(5), atol=1e-5, rtol=0)  # orthogonal
    assert cell.weight_ih.abs().max() <= math.sqrt(6.0 / (3 + 20))  # glorot_uniform
    gru = GRU(5, input_dim=3).cell
    assert gru.recurrent_bias is not None and not gru.recurrent_bias.any()
    assert GRU(5, reset_after=False, input_dim=3).cell.recurrent_bias is None


# ---------------------------------------------------------------------- converters
def test_converters_are_registered() -> None:
    assert {"LSTM", "GRU", "SimpleRNN", "Bidirectional"} <= set(CONVERTERS)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
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
        (lambda: GRU(4, unroll=True), ConfigError, r"\(unroll=True\) is not supported"),
        (
            lambda: RNN(maskwise.layers.LSTMCell(4), unroll=True),
            ConfigError,
            r"RNN\(unroll=True\) is not supported",
        ),
        (
            lambda: RNN(torch.nn.Linear(3, 4)),
            MaskwiseTypeError,
            r"(?s)RNN `cell` must be a recurrent cell.*expected: an nn.Module with `state_size`",
        ),
        (lambda: LSTM(0), ConfigError, "units must be a positive integer"),
        (
            lambda: LSTM(4, use_cudnn="yes"),
            ConfigError,
            r"LSTM use_cudnn must be 'auto', True or False.\n  received: 'yes'",
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
    with pytest.raises(ShapeError, match=r"2 tensor\(s\) \(batch, size\): \[\(2, 5\), \(2, 5\)\]"):
        LSTM(5)(x, initial_state=[torch.zeros(2, 5)])
    with pytest.raises(ShapeError, match=r"received: 1 state\(s\) shaped \[\(2, 4\)\]"):
        GRU(5)(x, initial_state=torch.zeros(2, 4))
    with pytest.raises(ShapeError, match="wrong number of initial states"):
        Bidirectional(GRU(5))(x, initial_state=[torch.zeros(2, 5)])


def test_wrong_input_shape() -> None:
    layer = LSTM(5, input_dim=4)
    with pytest.raises(ShapeError, match=r"expected: \(batch, time, 4\)"):
        layer(torch.randn(2, 3, 7))


# ---------------------------------------------------------------------- RNN(cell)
KERAS_CELL_MAKERS: dict[str, Any] = {
    "lstm": lambda m: m.LSTMCell(4),
    "gru": lambda m: m.GRUCell(3),
    "gru_reset_before": lambda m: m.GRUCell(3, reset_after=False, activation="relu"),
    "simple": lambda m: m.SimpleRNNCell(2, activation="softsign"),
}


def keras_cell(names: list[str]) -> Any:
    """A Keras cell, or a `StackedRNNCells` of several."""
    made = [KERAS_CELL_MAKERS[name](keras.layers) for name in names]
    return made[0] if len(made) == 1 else keras.layers.StackedRNNCells(made)


def nested_states(names: list[str], flat: list[torch.Tensor]) -> list[Any]:
    """Flat states grouped as Keras's stacks want them (an LSTM cell's as a pair)."""
    if len(names) == 1:
        return flat
    grouped, start = [], 0
    for name in names:
        count = 2 if name == "lstm" else 1
        grouped.append(flat[start : start + count] if count == 2 else flat[start])
        start += count
    return grouped


STATE_SIZES = {"lstm": [4, 4], "gru": [3], "gru_reset_before": [3], "simple": [2]}


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(KERAS_CELL_MAKERS)), min_size=1, max_size=3),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    initial=st.booleans(),
    rows=st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_rnn_of_cells_matches_keras(
    names: list[str],
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
    initial: bool,
    rows: list[list[bool]],
    seed: int,
) -> None:
    """`RNN(cell)` and `RNN(StackedRNNCells(cells))`, converted from Keras with its
    weights, give Keras's outputs and (flat) final states under any mask."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.tensor(rows)
    x = torch.randn(len(rows), 5, 3, generator=generator)
    sizes = [size for name in names for size in STATE_SIZES[name]]
    flat = [torch.randn(len(rows), size, generator=generator) for size in sizes]
    theirs = keras.layers.RNN(
        keras_cell(names),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    kwargs: dict[str, Any] = {"mask": mask.clone()}
    if initial:
        kwargs["initial_state"] = nested_states(names, [s.clone() for s in flat])
    theirs(x.clone(), **kwargs)
    randomize_weights(theirs, seed)
    expected = theirs(x.clone(), **kwargs)
    ours = convert_layer(theirs)
    assert isinstance(ours, RNN) and ours.state_size == sizes
    keras_style = nested_states(names, flat)  # read flat, as maskwise returns them
    got = ours(Masked(x, mask), initial_state=keras_style if initial else None)
    expected_list = keras.tree.flatten(expected) if return_state else [expected]
    got_list = outputs_of(got)
    assert len(got_list) == len(expected_list)
    for a, b in zip(got_list, expected_list, strict=True):
        torch.testing.assert_close(a, torch.as_tensor(b), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("plan", ["by cost", "a call per length", OFF_CPU])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_a_stack_runs_each_cell_on_its_fast_path(plan: str, go_backwards: bool) -> None:
    """A stack of fused cells runs one fused kernel call per cell and equals the plain
    per-step reference that steps the cells together."""
    torch.manual_seed(0)
    stack = maskwise.layers.StackedRNNCells(
        [maskwise.layers.LSTMCell(4), maskwise.layers.GRUCell(3)]
    )
    layer = RNN(stack, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = example_input("noncontiguous", features=3)
    initial = [torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 3)]
    calls: list[Any] = []
    real_call = _rnn_kernels._fused_call

    def spy(cell: Any, weights: Any, block: torch.Tensor, hx: Any) -> Any:
        calls.append(type(cell).__name__)
        return real_call(cell, weights, block, hx)

    with running(plan), mock.patch.object(_rnn_kernels, "_fused_call", spy):
        got = outputs_of(layer(x, initial_state=initial))
    assert set(calls) == {"LSTMCell", "GRUCell"}
    output, states = reference_rnn(layer, x.values, x.mask, initial)
    for a, b in zip(got, [output, *states], strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


# ---------------------------------------------------------------------- user cells
class MinimalCell(torch.nn.Module):
    """Keras's documentation example of a user cell, in PyTorch: `h' = x W + h U`, with
    an output (`h' * 2`) that is not the state."""

    def __init__(self, features: int, units: int) -> None:
        super().__init__()
        self.state_size = units
        self.output_size = units
        self.kernel = torch.nn.Parameter(torch.randn(features, units))
        self.recurrent_kernel = torch.nn.Parameter(torch.randn(units, units) / 4)

    def forward(self, inputs: torch.Tensor, states: list[torch.Tensor]) -> Any:
        h = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return 2 * h, [h]


class KerasMinimalCell(keras.layers.Layer):
    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units))

    def call(self, inputs: Any, states: Any) -> Any:
        h = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return 2 * h, [h]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_a_user_cell_matches_keras(
    kind: str, go_backwards: bool, zero_output_for_mask: bool
) -> None:
    """The same user cell in Keras and in PyTorch: Keras's masking of outputs and
    states at padded steps, whatever the mask, including empty rows."""
    torch.manual_seed(0)
    x = example_input(kind, features=3)
    mask = torch.cat([x.mask, torch.zeros(1, 5, dtype=torch.bool)])  # one empty row too
    values = torch.cat([x.values, torch.randn(1, 5, 3)])
    args = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
        "zero_output_for_mask": zero_output_for_mask,
    }
    cell = MinimalCell(3, 4)
    theirs = keras.layers.RNN(KerasMinimalCell(4), **args)
    theirs(values.clone(), mask=mask.clone())
    theirs.cell.kernel.assign(cell.kernel.detach().numpy())
    theirs.cell.recurrent_kernel.assign(cell.recurrent_kernel.detach().numpy())
    expected = theirs(values.clone(), mask=mask.clone())
    got = outputs_of(RNN(cell, **args)(Masked(values, mask)))
    for a, b in zip(got, keras.tree.flatten(expected), strict=True):
        torch.testing.assert_close(a, torch.as_tensor(b), atol=ATOL, rtol=1e-5)


def test_a_user_cell_in_a_stack_reads_the_cell_before() -> None:
    torch.manual_seed(0)
    lstm, user = maskwise.layers.LSTMCell(4), MinimalCell(4, 2)
    stacked = RNN([lstm, user], return_sequences=True)
    x = example_input("pre", features=3)
    first = RNN(lstm, return_sequences=True)(x)
    expected = RNN(user, return_sequences=True)(first)
    got = stacked(x)
    torch.testing.assert_close(got.values, expected.values, atol=ATOL, rtol=1e-5)
    assert torch.equal(got.mask, x.mask)


# ---------------------------------------------------------------------- stateful
def chunks_of(x: Masked, sizes: list[int]) -> list[Masked]:
    """Consecutive time chunks of `x`, each with its part of the mask."""
    values = x.values.split(sizes, dim=1)
    masks = x.full_mask.split(sizes, dim=1)
    return [Masked(v, m) for v, m in zip(values, masks, strict=True)]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stateful_layers_match_keras_over_consecutive_batches(bidirectional: bool) -> None:
    """A stateful Keras LSTM and its conversion, fed the same three masked batches, a
    state reset, and one more: the same outputs and states after every batch."""
    torch.manual_seed(0)
    keras_lstm = keras.layers.LSTM(4, return_sequences=True, stateful=True)
    theirs = keras.layers.Bidirectional(keras_lstm) if bidirectional else keras_lstm
    batches = [example_input(kind, features=3, seed=i) for i, kind in enumerate(MASK_KINDS)]
    theirs(batches[0].values.clone(), mask=batches[0].mask.clone())
    randomize_weights(theirs)
    theirs.reset_state()
    ours = convert_layer(theirs)
    for x in [*batches, "reset", batches[0]]:
        if x == "reset":
            theirs.reset_state()
            ours.reset_states()
            continue
        assert isinstance(x, Masked)
        expected = theirs(x.values.clone(), mask=x.mask.clone())
        got = ours(x)
        assert isinstance(got, Masked)
        torch.testing.assert_close(got.values, torch.as_tensor(expected), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("layer_class", [LSTM, GRU, SimpleRNN])
def test_streaming_in_chunks_equals_one_pass(layer_class: type[RNN]) -> None:
    """A stateful layer fed a masked batch in chunks gives, at every real step, what one
    pass over the whole batch gives; each row carries its own state through chunks where
    it has no real step (a row that ended, or one that starts late)."""
    torch.manual_seed(0)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 1]]
    ).bool()
    x = Masked(torch.randn(3, 8, 3), mask)
    whole = layer_class(4, return_sequences=True, return_state=True, input_dim=3)
    stream = layer_class(4, return_sequences=True, return_state=True, stateful=True, input_dim=3)
    stream.load_state_dict(whole.state_dict())
    expected, *expected_states = whole(x)
    pieces = [stream(chunk) for chunk in chunks_of(x, [3, 3, 2])]
    got = torch.cat([piece[0].values for piece in pieces], dim=1)
    torch.testing.assert_close(got[mask], expected.values[mask], atol=ATOL, rtol=1e-5)
    for a, b in zip(pieces[-1][1:], expected_states, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)
    stream.reset_states()
    again = stream(chunks_of(x, [3, 5])[0])[0]
    torch.testing.assert_close(again.values, pieces[0][0].values, atol=0.0, rtol=0.0)


def test_stateful_states_are_set_and_detached() -> None:
    layer = GRU(4, stateful=True, input_dim=3)
    h = torch.randn(2, 4)
    layer.reset_states([h])
    x = Masked(torch.randn(2, 3, 3), torch.tensor([[1, 1, 1], [0, 0, 0]]).bool())
    from_states = layer(x).values
    plain = GRU(4, return_state=True, input_dim=3)
    plain.load_state_dict(layer.state_dict())
    expected, final = plain(x, initial_state=[h])
    torch.testing.assert_close(from_states, expected.values, atol=ATOL, rtol=1e-5)
    assert layer.states is not None and not layer.states[0].requires_grad
    torch.testing.assert_close(layer.states[0], final.detach())
    torch.testing.assert_close(layer.states[0][1], h[1])  # an empty row keeps its state


def test_stateful_refuses_another_batch_size_until_reset() -> None:
    layer = LSTM(4, stateful=True)
    layer(torch.randn(3, 2, 5))
    with pytest.raises(
        ConfigError, match=r"(?s)another size than the previous one.*expected: 3 rows.*reset_states"
    ):
        layer(torch.randn(2, 2, 5))
    layer.reset_states()
    assert layer(torch.randn(2, 2, 5)).values.shape == (2, 4)
    with pytest.raises(ShapeError, match=r"expected: 2 tensor\(s\) \(batch, size\)"):
        layer.reset_states([torch.zeros(2, 4)])


# ---------------------------------------------------------------------- RNN contract
RNN_LAYERS: dict[str, Any] = {
    "rnn_lstm_cell": lambda: RNN(maskwise.layers.LSTMCell(4), return_sequences=True),
    "rnn_stack": lambda: RNN(
        [maskwise.layers.GRUCell(3), maskwise.layers.SimpleRNNCell(4, activation="softsign")],
        return_sequences=True,
    ),
    "rnn_user_cell": lambda: RNN(MinimalCell(4, 4), return_sequences=True),
    "rnn_stack_last_output": lambda: RNN(
        maskwise.layers.StackedRNNCells([maskwise.layers.LSTMCell(3), MinimalCell(3, 4)])
    ),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(RNN_LAYERS))
def test_rnn_layer_contract(name: str, kind: str) -> None:
    x = example_input(kind)
    last = name.endswith("last_output")
    check_layer_contract(
        RNN_LAYERS[name],
        x,
        expected_shape=(3, 4) if last else (3, 5, 4),
        expected_mask=None if last else "same",
        json_config="user" not in name and "last_output" not in name,  # a user cell has none
    )


(
    test_rnn_real_outputs_do_not_depend_on_padding_length_or_content,
    test_rnn_a_sequence_alone_equals_itself_in_a_batch,
) = padding_property_tests(RNN_LAYERS)


def test_bidirectional_copies_a_user_cell() -> None:
    """A user cell has no config, so the forward direction is a deep copy of it (its
    weights included); each direction then has its own."""
    cell = MinimalCell(3, 4)
    bi = Bidirectional(RNN(cell, return_sequences=True), merge_mode=None)
    x = example_input("post", features=3)
    forward, backward = bi(x)
    alone = RNN(cell, return_sequences=True, zero_output_for_mask=True)(x)
    torch.testing.assert_close(forward.values, alone.values, atol=ATOL, rtol=1e-5)
    assert bi.forward_layer.cell is not cell and bi.backward_layer.cell is not cell
    assert backward.values.shape == (3, 5, 4)


def test_bidirectional_copies_a_stack_holding_a_user_cell() -> None:
    stack = maskwise.layers.StackedRNNCells([maskwise.layers.GRUCell(3), MinimalCell(3, 2)])
    bi = Bidirectional(RNN(stack, return_sequences=True))
    assert bi(example_input("pre", features=3)).values.shape == (3, 5, 4)
    assert bi.forward_layer.cell.cells[1] is not stack.cells[1]


# ---------------------------------------------------------------------- Keras's layer arguments
FIT_X = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(0))
FIT_Y = torch.randn(4, 1, generator=torch.Generator().manual_seed(1))


def _ruled_pair(kind: str) -> tuple[Any, Any]:
    """The same recurrent model in maskwise and in Keras: the same initial weights (a
    deterministic initializer), penalties on every weight and on the outputs, and
    constraints that tell Keras's gates apart."""
    from maskwise import constraints, regularizers

    from .test_cells import ramp, wave

    rules = {
        "kernel_initializer": wave,
        "recurrent_initializer": wave,
        "bias_initializer": wave,
        "kernel_constraint": ramp,
        "recurrent_constraint": ramp,
    }
    # Keras 3's SimpleRNN takes activity_regularizer and drops it (maskwise applies it)
    activity = kind != "SimpleRNN"
    ours_rules = {
        "kernel_regularizer": regularizers.L2(0.1),
        "recurrent_regularizer": regularizers.L1(0.05),
        "bias_regularizer": regularizers.L1L2(0.02, 0.03),
        "activity_regularizer": regularizers.L2(0.04) if activity else None,
        "bias_constraint": constraints.MaxNorm(0.3, axis=0),
    }
    theirs_rules = {
        "kernel_regularizer": keras.regularizers.L2(0.1),
        "recurrent_regularizer": keras.regularizers.L1(0.05),
        "bias_regularizer": keras.regularizers.L1L2(0.02, 0.03),
        "activity_regularizer": keras.regularizers.L2(0.04) if activity else None,
        "bias_constraint": keras.constraints.MaxNorm(0.3, axis=0),
    }
    ours = maskwise.Sequential(
        [
            getattr(maskwise.layers, kind)(3, input_shape=(None, 2), **rules, **ours_rules),
            maskwise.layers.Dense(1, kernel_initializer=wave),
        ]
    )
    theirs = keras.Sequential(
        [
            keras.Input((None, 2)),
            getattr(keras.layers, kind)(3, **rules, **theirs_rules),
            keras.layers.Dense(1, kernel_initializer=wave),
        ]
    )
    ours.compile("sgd", "mse", learning_rate=0.5)
    theirs.compile(keras.optimizers.SGD(0.5), "mse")
    return ours, theirs


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_penalties_and_constraints_train_as_in_keras(kind: str) -> None:
    ours, theirs = _ruled_pair(kind)
    assert ours.count_params() == theirs.count_params()
    loss = ours.evaluate(FIT_X, FIT_Y, batch_size=2)["loss"]
    keras_loss = theirs.evaluate(FIT_X.numpy(), FIT_Y.numpy(), batch_size=2, verbose=0)
    plain = torch.mean((ours(FIT_X).values - FIT_Y) ** 2).item()
    assert loss > plain + 0.1  # the penalties are in
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    history = ours.fit(FIT_X, FIT_Y, epochs=2, batch_size=2, shuffle=False, verbose=0).history
    keras_history = theirs.fit(
        FIT_X.numpy(), FIT_Y.numpy(), epochs=2, batch_size=2, shuffle=False, verbose=0
    ).history
    assert history["loss"] == pytest.approx(keras_history["loss"], rel=1e-4)
    # the weights after the steps (each projected by its constraint) are Keras's
    twin = getattr(keras.layers, kind)(3)  # without the rules, which cannot convert
    twin.build((None, None, 2))
    twin.set_weights(theirs.layers[0].get_weights())
    trained = convert_layer(twin)
    for mine, keras_weight in zip(ours.layers[0].parameters(), trained.parameters(), strict=True):
        torch.testing.assert_close(mine, keras_weight, rtol=1e-4, atol=1e-5)


def test_eager_build_from_input_shape() -> None:
    model = maskwise.Sequential([LSTM(8, input_shape=(None, 5)), maskwise.layers.Dense(2)])
    keras_model = keras.Sequential(
        [keras.Input((None, 5)), keras.layers.LSTM(8), keras.layers.Dense(2)]
    )
    assert model.count_params() == keras_model.count_params() == 4 * 8 * (5 + 8 + 1) + 18
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # before the first call
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(3, 4, 5), torch.randn(3, 2)
    torch.mean((model(x).values - y) ** 2).backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    fresh = maskwise.Sequential([LSTM(8, input_shape=(None, 5)), maskwise.layers.Dense(2)])
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x).values, model(x).values)


def test_eager_build_of_bidirectional_and_stacked_cells() -> None:
    bi = Bidirectional(GRU(4), input_shape=(None, 3))
    stacked = RNN([maskwise.layers.LSTMCell(4), maskwise.layers.GRUCell(2)], input_dim=3)
    assert bi.built and stacked.built
    keras_bi = keras.layers.Bidirectional(keras.layers.GRU(4))
    keras_bi.build((None, None, 3))
    assert sum(p.numel() for p in bi.parameters()) == keras_bi.count_params()
    assert [tuple(p.shape) for p in stacked.parameters()] == [
        (16, 3),
        (16, 4),
        (16,),
        (6, 4),
        (6, 2),
        (6,),
        (6,),
    ]


def test_a_stateful_layer_built_eagerly_starts_from_zeros() -> None:
    model = maskwise.Sequential([GRU(3, stateful=True, input_shape=(None, 2))])
    x = torch.randn(4, 5, 2)
    first = model(x).values  # a batch of 4, after a build on a batch of 1
    model.layers[0].reset_states()
    torch.testing.assert_close(model(x).values, first)


def test_a_cell_s_activity_regularizer_is_refused() -> None:
    cell = maskwise.layers.LSTMCell(3, activity_regularizer="l2")
    with pytest.raises(
        ConfigError,
        match=r"RNN: the cell 'lstm_cell.*' has an activity_regularizer.*\n.*\n.*\n"
        r"  fix: pass activity_regularizer to the RNN layer instead",
    ):
        RNN(cell)


def test_simple_rnn_applies_its_activity_regularizer() -> None:
    # Keras 3's SimpleRNN takes the argument and drops it; maskwise applies it, as on LSTM
    from maskwise import regularizers

    layer = SimpleRNN(2, input_dim=2, activity_regularizer=regularizers.L1(0.5))
    out = layer(FIT_X).values
    [penalty] = layer.losses
    assert penalty.item() == pytest.approx(0.5 * out.abs().sum().item() / len(FIT_X))


def test_use_cudnn_and_seed_are_kept_and_use_cudnn_changes_nothing() -> None:
    from maskwise.layers.base import layer_from_config, layer_spec

    auto = GRU(3, input_dim=2, seed=5)
    off = layer_from_config(layer_spec(GRU(3, input_dim=2, seed=5, use_cudnn=False)))
    assert (off.use_cudnn, off.cell.seed) == (False, 5)
    off.load_state_dict(auto.state_dict())
    x = torch.randn(2, 4, 2)
    torch.testing.assert_close(off(x).values, auto(x).values)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_lstm_under_float16_autocast_on_cpu_computes_in_float32(
    bidirectional: bool, return_state: bool
) -> None:
    """oneDNN has no float16 LSTM on CPU, so autocast's cast of the fused kernel's
    inputs would fail inside it: the layer computes in its weights' dtype there, with
    the outputs and gradients of a call without autocast."""
    torch.manual_seed(0)
    lstm = LSTM(3, return_sequences=True, return_state=return_state, input_dim=2)
    layer = Bidirectional(lstm) if bidirectional else lstm
    x = Masked.pad([torch.randn(5, 2), torch.randn(2, 2), torch.randn(4, 2)])
    params = list(layer.parameters())

    def tensors(result: Any) -> list[torch.Tensor]:
        items = result if isinstance(result, list | tuple) else [result]
        return [item.values if isinstance(item, Masked) else item for item in items]

    with torch.autocast("cpu", dtype=torch.float16):
        got = tensors(layer(x))
    expected = tensors(layer(x))
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)
    got_grads = torch.autograd.grad(sum(t.sum() for t in got), params)
    expected_grads = torch.autograd.grad(sum(t.sum() for t in expected), params)
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b)
