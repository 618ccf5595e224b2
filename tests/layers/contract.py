"""The contract every mask-aware layer keeps, checked by one function.

`check_layer_contract(make_layer, x)` checks, for a fresh layer from `make_layer()`:
output shape and output mask; that the content of padded steps (random values, and
NaN for layers documented as NaN-safe) cannot change the real outputs, in evaluation
and in training mode; that no gradient reaches padded input steps; that a state-dict
round trip into a fresh layer and a JSON config round trip give the same outputs.
With call options (`initial_state=`, `return_attention_scores=True`), every output
is checked: each `Masked` one (`Bidirectional`'s pair) and the extras after them
(final states, attention scores), which padding must not change either.
`check_padding_length_invariance` is the same idea for extra padded steps at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import Masked
from maskwise.layers.base import Layer, layer_from_config, layer_spec
from maskwise.masked import per_step

Inputs = Masked | list[Masked]
MASK_KINDS = ("post", "pre", "noncontiguous")


def example_mask(kind: str) -> torch.Tensor:
    """A `(3, 5)` mask: trailing padding, leading padding, or holes (seed 003 masks steps
    0, 2 and 4 of 5 in row 0)."""
    rows = {
        "post": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
        "pre": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
        "noncontiguous": [[0, 1, 0, 1, 0], [1, 1, 0, 1, 1], [0, 0, 1, 1, 0]],
    }[kind]
    return torch.tensor(rows, dtype=torch.bool)


def example_input(kind: str, features: int = 4, seed: int = 0) -> Masked:
    """Random float values `(3, 5, features)` under `example_mask(kind)`, zero padding."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(3, 5, features, generator=generator)
    return Masked(values, example_mask(kind)).fill_padding(0.0)


def refill_padding(x: Inputs, fill: str, seed: int = 1) -> Inputs:
    """The same inputs with their padded steps set to random values or NaN."""
    if isinstance(x, list):
        return [refill_padding(item, fill, seed + i) for i, item in enumerate(x)]
    if x.mask is None or (fill == "nan" and not x.values.is_floating_point()):
        return x
    generator = torch.Generator().manual_seed(seed)
    if not x.values.is_floating_point():  # token ids: anything, out of range included
        other = torch.randint(-100, 1000, x.values.shape, generator=generator)
        other = other.to(x.values.dtype)
    elif fill == "nan":
        other = torch.full_like(x.values, float("nan"))
    else:
        other = 100 * torch.randn(x.values.shape, generator=generator).to(x.values.dtype)
    keep = per_step(x.mask, x.values)
    return x.with_values(torch.where(keep, x.values, other))


def outputs(
    layer: torch.nn.Module,
    x: Inputs,
    training: bool = False,
    seed: int = 7,
    options: dict[str, Any] | None = None,
) -> list[Any]:
    """Every output of `layer(x, **options)` called in the given mode, with the random
    state fixed (dropout draws): the `Masked` outputs, then the extras."""
    layer.train(training)
    torch.manual_seed(seed)
    out = layer(x, **(options or {}))
    return list(out) if isinstance(out, tuple) else [out]


def run(layer: torch.nn.Module, x: Inputs, training: bool = False, seed: int = 7) -> Masked:
    """The (first) `Masked` output of `layer(x)` in the given mode (see `outputs`)."""
    return outputs(layer, x, training, seed)[0]


def assert_same_real(a: Masked, b: Masked, atol: float = 1e-6) -> None:
    """Same mask, same values at its real steps (everywhere when there is no mask)."""
    assert (a.mask is None) == (b.mask is None)
    if a.mask is None:
        torch.testing.assert_close(a.values, b.values, atol=atol, rtol=1e-6)
        return
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.values[a.mask], b.values[b.mask], atol=atol, rtol=1e-6)


def assert_same_outputs(a: list[Any], b: list[Any]) -> None:
    """`assert_same_real` for each `Masked` output, equal extras (states, scores)."""
    assert len(a) == len(b)
    for first, second in zip(a, b, strict=True):
        if isinstance(first, Masked):
            assert_same_real(first, second)
        else:
            torch.testing.assert_close(first, second, atol=1e-6, rtol=1e-6)


def _inputs_list(x: Inputs) -> list[Masked]:
    return x if isinstance(x, list) else [x]


def check_gradients(
    layer: torch.nn.Module,
    x: Inputs,
    fill: str = "random",
    training: bool = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Backpropagate a random weighting of the real outputs (and of the extras): padded
    input steps get exactly zero gradient, real ones some; with NaN padding the
    gradients of real input steps and of every weight are finite."""
    items = _inputs_list(refill_padding(x, fill))
    if not items[0].values.is_floating_point():
        return
    leaves = [item.values.clone().requires_grad_() for item in items]
    rebuilt = [Masked(v, item.mask) for v, item in zip(leaves, items, strict=True)]
    layer.zero_grad()
    results = outputs(layer, rebuilt if isinstance(x, list) else rebuilt[0], training, 7, options)
    generator = torch.Generator().manual_seed(3)
    total = torch.zeros(())
    for out in results:
        values = out.values if isinstance(out, Masked) else out
        weights = torch.randn(values.shape, generator=generator)
        if isinstance(out, Masked):
            keep = per_step(out.full_mask, values)
            total = total + torch.where(keep, values * weights, torch.zeros_like(values)).sum()
        else:
            total = total + (values * weights).sum()
    total.backward()
    for leaf, item in zip(leaves, items, strict=True):
        grad = leaf.grad
        assert grad is not None
        if item.mask is not None:
            assert torch.isfinite(grad[item.mask]).all()
            if fill != "nan":  # NaN padding may keep NaN gradients at its own steps
                assert torch.count_nonzero(grad[~item.mask]) == 0, "gradient reached padding"
        assert torch.count_nonzero(grad) > 0, "no gradient reached the real steps"
    if fill == "nan":
        for name, parameter in layer.named_parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), f"NaN padding reached {name}.grad"


def check_layer_contract(
    make_layer: Callable[[], Layer],
    x: Inputs,
    *,
    expected_shape: tuple[int, ...] | None = None,
    expected_mask: Any = "same",
    nan_safe: bool = True,
    json_config: bool = True,
    reads_values: bool = True,
    options: dict[str, Any] | None = None,
) -> Masked:
    """Check the layer contract; returns the layer's (first) output (evaluation mode)
    on `x`.

    Args:
        make_layer: builds a fresh layer (called several times).
        x: a `Masked`, or a list of them for merge layers.
        expected_shape: the output values' shape (default: the input's).
        expected_mask: `"same"` (the input's mask; for lists, the AND of the masks),
            None, or a bool tensor: the mask of every `Masked` output.
        nan_safe: the layer promises that NaN in padded steps reaches neither real
            outputs nor gradients (of inputs' real steps and of weights).
        json_config: check the `layer_spec` / `layer_from_config` round trip.
        reads_values: False for a layer whose outputs do not depend on the input values
            (`PositionEmbedding`): no gradient can reach the inputs, so the gradient
            checks are skipped.
        options: call options passed at every call (`layer(x, **options)`).
    """
    layer = make_layer()
    results = outputs(layer, x, options=options)
    out = results[0]
    first = _inputs_list(x)[0]
    if expected_shape is None:
        expected_shape = tuple(first.values.shape)
    assert tuple(out.values.shape) == tuple(expected_shape)

    if isinstance(expected_mask, str):
        masks = [item.mask for item in _inputs_list(x) if item.mask is not None]
        expected_mask = None
        for mask in masks:
            expected_mask = mask if expected_mask is None else expected_mask & mask
    for output in results:
        if not isinstance(output, Masked):
            continue
        if expected_mask is None:
            assert output.mask is None
        else:
            assert output.mask is not None and torch.equal(output.mask, expected_mask)

    fills = ("random", "nan") if nan_safe else ("random",)
    for training in (False, True):
        reference = outputs(layer, x, training, options=options)
        for fill in fills:
            refilled = outputs(layer, refill_padding(x, fill), training, options=options)
            assert_same_outputs(refilled, reference)

    for training in (False, True):
        for fill in fills if reads_values else ():
            check_gradients(layer, x, fill, training, options)

    reference = outputs(layer, x, options=options)
    fresh = make_layer()
    outputs(fresh, x, options=options)
    fresh.load_state_dict(layer.state_dict())
    assert_same_outputs(outputs(fresh, x, options=options), reference)

    if json_config:
        spec = json.loads(json.dumps(layer_spec(layer)))
        rebuilt = layer_from_config(spec)
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()
        rebuilt.load_state_dict(layer.state_dict())
        assert_same_outputs(outputs(rebuilt, x, options=options), reference)
    return out


def append_padding(x: Inputs, steps: int, fill: str) -> Inputs:
    """`x` with `steps` more padded steps at the end holding zeros, random values or NaN."""
    if isinstance(x, list):
        return [append_padding(item, steps, fill) for item in x]
    extra_shape = (x.values.shape[0], steps, *x.values.shape[2:])
    if fill == "nan" and x.values.is_floating_point():
        extra = torch.full(extra_shape, float("nan"), dtype=x.values.dtype)
    elif fill == "random" and x.values.is_floating_point():
        extra = 100 * torch.randn(extra_shape).to(x.values.dtype)
    else:
        extra = torch.zeros(extra_shape, dtype=x.values.dtype)
    mask = torch.cat([x.full_mask, torch.zeros(extra_shape[:2], dtype=torch.bool)], dim=1)
    return Masked(torch.cat([x.values, extra], dim=1), mask)


def check_padding_length_invariance(
    layer: torch.nn.Module, x: Inputs, steps: int, fill: str, training: bool = False
) -> None:
    """Real outputs do not depend on how many padded steps follow, nor on their content.

    Outputs keep their time positions (the extra steps come last), so the longer run's
    first steps are compared with the shorter run's real steps.
    """
    short = run(layer, x, training)
    long = run(layer, append_padding(x, steps, fill), training)
    if short.mask is None:
        torch.testing.assert_close(long.values, short.values, atol=1e-5, rtol=1e-5)
        return
    time = short.values.shape[1]
    assert long.mask is not None and torch.equal(long.mask[:, :time], short.mask)
    assert not long.mask[:, time:].any()
    torch.testing.assert_close(
        long.values[:, :time][short.mask], short.values[short.mask], atol=1e-5, rtol=1e-5
    )


def check_alone_equals_in_batch(
    layer: torch.nn.Module, sequences: list[torch.Tensor], fill: str, training: bool = False
) -> None:
    """Each sequence run alone (no padding, an all-real mask) gives the real outputs it
    gives in a batch padded to the longest sequence, whatever the padding holds.

    Real output positions are compared in order (a layer may move or repeat steps);
    an output without a mask (the time axis consumed) is compared whole.
    """
    batch = refill_padding(Masked.pad(sequences), fill)
    assert isinstance(batch, Masked)
    together = run(layer, batch, training)
    for i, sequence in enumerate(sequences):
        real = torch.ones(1, sequence.shape[0], dtype=torch.bool)
        alone = run(layer, Masked(sequence.unsqueeze(0), real), training)
        if alone.mask is None:
            assert together.mask is None
            torch.testing.assert_close(together.values[i], alone.values[0], atol=1e-5, rtol=1e-5)
            continue
        assert together.mask is not None
        torch.testing.assert_close(
            together.values[i][together.mask[i]],
            alone.values[0][alone.mask[0]],
            atol=1e-5,
            rtol=1e-5,
        )


def padding_property_tests(
    layers: dict[str, Callable[[], torch.nn.Module]], min_length: int = 1
) -> tuple[Callable[..., None], Callable[..., None]]:
    """The two hypothesis tests of a layer family, over `layers` (name -> a new layer):
    extra padding of any length and content changes no real output (every mask kind),
    and a sequence alone equals itself in a batch. Assign them to `test_*` names."""
    fills = st.sampled_from(["zeros", "random", "nan"])

    @settings(max_examples=25, deadline=None)
    @given(name=st.sampled_from(sorted(layers)), steps=st.integers(1, 6), fill=fills)
    def padding_changes_nothing(name: str, steps: int, fill: str) -> None:
        for kind in MASK_KINDS:
            check_padding_length_invariance(layers[name](), example_input(kind), steps, fill)

    @settings(max_examples=25, deadline=None)
    @given(
        name=st.sampled_from(sorted(layers)),
        lengths=st.lists(st.integers(min_length, 7), min_size=1, max_size=4),
        fill=fills,
        seed=st.integers(0, 1000),
    )
    def alone_equals_in_batch(name: str, lengths: list[int], fill: str, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        sequences = [torch.randn(n, 4, generator=generator) for n in lengths]
        check_alone_equals_in_batch(layers[name](), sequences, fill)

    return padding_changes_nothing, alone_equals_in_batch
