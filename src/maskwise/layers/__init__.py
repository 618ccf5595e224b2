"""Mask-aware layers, with Keras's names and arguments."""

from ..functional import Input
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .attention import AdditiveAttention, Attention, GroupQueryAttention, MultiHeadAttention
from .base import Layer
from .cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .convolutional import Conv1D, Conv1DTranspose, DepthwiseConv1D, SeparableConv1D
from .core import (
    Activation,
    AlphaDropout,
    Dense,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    Lambda,
    Masking,
    SpatialDropout1D,
    TimeDistributed,
)
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from .normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    Normalization,
    UnitNormalization,
)
from .pooling import (
    AveragePooling1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from .recurrent import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from .reshaping import (
    Cropping1D,
    Flatten,
    Permute,
    RepeatVector,
    Reshape,
    UpSampling1D,
    ZeroPadding1D,
)
from .transformer import PositionEmbedding, TokenAndPositionEmbedding, TransformerEncoder

__all__ = [
    "ELU",
    "GRU",
    "LSTM",
    "RNN",
    "Activation",
    "Add",
    "AdditiveAttention",
    "AlphaDropout",
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
    "Dot",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRUCell",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GroupNormalization",
    "GroupQueryAttention",
    "Input",
    "LSTMCell",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "Maximum",
    "Minimum",
    "MultiHeadAttention",
    "Multiply",
    "Normalization",
    "PReLU",
    "Permute",
    "PositionEmbedding",
    "ReLU",
    "RepeatVector",
    "Reshape",
    "SeparableConv1D",
    "SimpleRNN",
    "SimpleRNNCell",
    "Softmax",
    "SpatialDropout1D",
    "StackedRNNCells",
    "Subtract",
    "TimeDistributed",
    "TokenAndPositionEmbedding",
    "TransformerEncoder",
    "UnitNormalization",
    "UpSampling1D",
    "ZeroPadding1D",
]
