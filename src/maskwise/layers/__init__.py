"""Mask-aware layers, with Keras's names and arguments."""

from .attention import AdditiveAttention, Attention, GroupQueryAttention, MultiHeadAttention
from .base import Layer
from .core import (
    Activation,
    Dense,
    Dropout,
    Lambda,
    Masking,
    SpatialDropout1D,
    TimeDistributed,
)
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Maximum, Multiply, Subtract
from .normalization import BatchNormalization, LayerNormalization
from .pooling import Cropping1D, GlobalAveragePooling1D, GlobalMaxPooling1D
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "AdditiveAttention",
    "Attention",
    "Average",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Cropping1D",
    "Dense",
    "Dropout",
    "Embedding",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GroupQueryAttention",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "Masking",
    "Maximum",
    "MultiHeadAttention",
    "Multiply",
    "SimpleRNN",
    "SpatialDropout1D",
    "Subtract",
    "TimeDistributed",
]
