"""Conversion from Keras 3 models (`from_keras`): layers, weights, and graphs."""
