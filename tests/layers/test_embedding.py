"""Embedding: lookups, the mask_zero mask, Keras parity, padding ids never read."""

import keras
import pytest
import torch
from host_reads import counting_host_reads, off_the_cpu
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, build_keras, convert_layer

from maskwise import ConfigError, Masked, MaskwiseTypeError
from maskwise.layers import Embedding

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    check_padding_length_invariance,
    example_mask,
)


def example_tokens(kind: str, vocabulary: int = 10) -> Masked:
    """Ids in [1, vocabulary) at real steps, 0 at padded ones, with their mask."""
    mask = example_mask(kind)
    ids = torch.randint(1, vocabulary, mask.shape, generator=torch.Generator().manual_seed(0))
    return Masked(torch.where(mask, ids, torch.zeros_like(ids)), mask)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("mask_zero", [True, False])
def test_embedding_keeps_the_contract(kind, mask_zero):
    x = example_tokens(kind)
    out = check_layer_contract(
        lambda: Embedding(10, 4, mask_zero=mask_zero), x, expected_shape=(3, 5, 4)
    )
    assert torch.equal(out.mask, example_mask(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_mask_zero_creates_the_mask_from_the_ids(kind):
    x = example_tokens(kind)
    layer = Embedding(10, 4, mask_zero=True)
    out = layer(x.values)
    assert torch.equal(out.mask, example_mask(kind))
    torch.testing.assert_close(out.values, layer.embeddings[x.values], atol=0.0, rtol=0.0)


def test_mask_zero_combines_with_an_incoming_mask():
    ids = torch.tensor([[3, 0, 5, 7]])
    incoming = torch.tensor([[True, True, True, False]])
    out = Embedding(10, 2, mask_zero=True)(Masked(ids, incoming))
    assert out.mask.tolist() == [[True, False, True, False]]


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_embedding_matches_keras(kind):
    x = example_tokens(kind)
    keras_layer = build_keras(keras.layers.Embedding(10, 4, mask_zero=True), x.values)
    assert_parity(keras_layer, convert_layer(keras_layer), x.with_mask(None))


def test_keras_initialiser_range_and_gradient_rows():
    layer = Embedding(1000, 8)
    assert layer.embeddings.abs().max() <= 0.05
    assert layer.embeddings.std() > 0.02  # uniform(-0.05, 0.05) has std 0.029
    x = example_tokens("post")
    out = layer(x)
    out.values[out.mask].sum().backward()
    used = torch.zeros(1000, dtype=torch.bool)
    used[x.values[x.mask]] = True
    assert layer.embeddings.grad[used].ne(0).all()
    assert not layer.embeddings.grad[~used].any()  # padded ids (0) get no gradient


def test_whole_number_float_ids_are_accepted():
    layer = Embedding(10, 2)
    out = layer(torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(out.values[0], layer.embeddings[[1, 2]], atol=0.0, rtol=0.0)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), mask_zero=st.booleans(), fill=st.sampled_from(["zeros", "random"]))
def test_real_outputs_do_not_depend_on_padding_length_or_content(steps, mask_zero, fill):
    layer = Embedding(10, 3, mask_zero=mask_zero)
    check_padding_length_invariance(layer, example_tokens("pre"), steps, fill)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [10, -1, -100])
def test_out_of_range_ids_at_real_steps_are_explained(bad):
    ids = torch.tensor([[1, 2, bad]])
    with pytest.raises(ConfigError, match=rf"outside its vocabulary.*\n.*\[0, 10\).*\n.*id {bad} "):
        Embedding(10, 2, name="words")(ids)


def test_out_of_range_ids_at_padded_steps_are_never_read():
    ids = torch.tensor([[1, 2, -100]])
    out = Embedding(10, 2)(Masked(ids, torch.tensor([[True, True, False]])))
    assert out.values.shape == (1, 3, 2)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 3), "input_dim must be a positive integer"),
        ((10, 2.5), "output_dim must be a positive integer"),
    ],
)
def test_bad_sizes_are_explained(args, match):
    with pytest.raises(ConfigError, match=match):
        Embedding(*args)


def test_fractional_ids_are_refused():
    with pytest.raises(MaskwiseTypeError, match="integer token ids"):
        Embedding(10, 2)(torch.tensor([[1.5, 2.0]]))


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (torch.tensor([[1, 2, 10]]), ConfigError, r"outside its vocabulary.*\n.*\[0, 10\)"),
        (torch.tensor([[1.5, 2.0]]), MaskwiseTypeError, "integer token ids"),
    ],
)
def test_off_the_cpu_ids_are_checked_on_the_device_without_host_reads(ids, error, match):
    """Off the CPU the checks read nothing back: a device-side assertion carries the
    message (it raises at once on CPU, where it is run here)."""
    layer = Embedding(10, 2, name="words")
    good = torch.tensor([[1, 2, 9]], dtype=ids.dtype)
    with off_the_cpu():
        with counting_host_reads() as reads:
            out = layer(good)
        assert not reads
        with pytest.raises(RuntimeError, match=match) as raised:
            layer(ids)
    assert not isinstance(raised.value, error)  # the device's assertion, not the host's
    with pytest.raises(error, match=match):
        layer(ids)
    torch.testing.assert_close(out.values[0], layer.embeddings[[1, 2, 9]], atol=0.0, rtol=0.0)
