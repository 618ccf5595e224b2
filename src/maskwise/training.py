"""Training API mixed into `Sequential` and `Module`: compile, fit, evaluate, predict."""

from __future__ import annotations


class TrainingMixin:
    """compile / fit / evaluate / predict / save for maskwise models."""
