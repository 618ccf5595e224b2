"""Mask-aware layers, with Keras's names and arguments."""

from .base import Layer
from .core import Dense, Lambda

__all__ = ["Dense", "Lambda", "Layer"]
