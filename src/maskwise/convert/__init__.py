"""Conversion from Keras 3 models (`from_keras`): layers, weights, and graphs."""

from . import core  # noqa: F401  (registers the core-layer converters)
