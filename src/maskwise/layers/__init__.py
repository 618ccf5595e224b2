"""Mask-aware layers, with Keras's names and arguments."""

from .attention import AdditiveAttention, Attention, GroupQueryAttention, MultiHeadAttention
from .base import Layer
from .convolutional import Conv1D, Conv1DTranspose, DepthwiseConv1D, SeparableConv1D
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
from .pooling import (
    AveragePooling1D,
    Cropping1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .transformer import PositionEmbedding, TokenAndPositionEmbedding, TransformerEncoder

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "AdditiveAttention",
    "Attention",
    "Average",
    "AveragePooling1D",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv1DTranspose",
    "Cropping1D",
    "Dense",
    "DepthwiseConv1D",
    "Dropout",
    "Embedding",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GroupQueryAttention",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "Maximum",
    "MultiHeadAttention",
    "Multiply",
    "PositionEmbedding",
    "SeparableConv1D",
    "SimpleRNN",
    "SpatialDropout1D",
    "Subtract",
    "TimeDistributed",
    "TokenAndPositionEmbedding",
    "TransformerEncoder",
]
