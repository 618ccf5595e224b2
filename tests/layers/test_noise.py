"""Noise layers GaussianNoise, GaussianDropout, AlphaDropout: noise at real steps only
(padded steps stay zero), the identity in evaluation; contract, Keras parity (the
identity in evaluation, the same noise distribution in training), errors."""

import keras
import pytest
import torch
from keras_oracle import assert_parity, convert_layer, keras_call

from maskwise import ConfigError, Masked
from maskwise.layers import AlphaDropout, GaussianDropout, GaussianNoise

from .contract import (
    MASK_KINDS,
    check_layer_contract,
    example_input,
    padding_property_tests,
    run,
)

LAYERS = {
    "gaussian_noise": lambda: GaussianNoise(0.5),
    "gaussian_dropout": lambda: GaussianDropout(0.3),
    "alpha_dropout": lambda: AlphaDropout(0.3),
}
KERAS = {
    "gaussian_noise": lambda: keras.layers.GaussianNoise(0.5),
    "gaussian_dropout": lambda: keras.layers.GaussianDropout(0.3),
    "alpha_dropout": lambda: keras.layers.AlphaDropout(0.3),
}


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_noise_layers_keep_the_contract(name, kind):
    check_layer_contract(LAYERS[name], example_input(kind))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_noise_reaches_real_steps_only_and_padding_stays_zero(name, kind):
    x = example_input(kind)
    out = run(LAYERS[name](), x, training=True)
    assert not out.values[~x.mask].any()
    assert not torch.equal(out.values[x.mask], x.values[x.mask])
    torch.testing.assert_close(run(LAYERS[name](), x).values, x.values, atol=0.0, rtol=0.0)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_noise_layers_are_the_identity_in_evaluation_as_keras(name, kind):
    keras_layer = KERAS[name]()
    assert_parity(keras_layer, convert_layer(keras_layer), example_input(kind))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_training_noise_has_keras_distribution(name):
    """Same input, many values: the outputs' mean and spread agree with Keras's."""
    x = torch.randn(4, 500, 100, generator=torch.Generator().manual_seed(0))
    keras_layer = KERAS[name]()
    theirs = keras_call(keras_layer, x, training=True).values
    ours = run(convert_layer(keras_layer), Masked(x), training=True).values
    for statistic in (torch.mean, torch.std):
        torch.testing.assert_close(statistic(ours - x), statistic(theirs - x), atol=0.01, rtol=0.0)
    if name == "alpha_dropout":  # keeps the mean and variance of standardized inputs
        assert abs(ours.mean().item()) < 0.01 and abs(ours.std().item() - 1.0) < 0.01
        # every dropped value becomes one constant, the most common output: Keras's
        torch.testing.assert_close(ours.flatten().mode().values, theirs.flatten().mode().values)


(
    test_real_outputs_do_not_depend_on_padding_length_or_content,
    test_a_sequence_alone_equals_itself_in_a_batch,
) = padding_property_tests(LAYERS)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GaussianNoise(-0.1), r"(?s)GaussianNoise stddev must be a non-negative.*-0.1"),
        (lambda: GaussianNoise("1"), r"GaussianNoise stddev must be"),
        (lambda: GaussianDropout(1.0), r"(?s)GaussianDropout rate must be a probability.*1.0"),
        (lambda: AlphaDropout(-0.5), r"(?s)AlphaDropout rate must be a probability.*\[0, 1\)"),
    ],
)
def test_bad_arguments_are_explained(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_keras_alpha_dropout_noise_shape_is_refused():
    with pytest.raises(ConfigError, match="noise_shape"):
        convert_layer(keras.layers.AlphaDropout(0.5, noise_shape=(None, 1, 3)))
