"""maskwise: Keras-style masking for padded sequence batches on PyTorch.

Padding is ignored correctly everywhere, and a mask is never lost silently.
"""

from . import (
    callbacks,
    constraints,
    data,
    doctor,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
)
from .callbacks import History
from .convert.keras_model import from_keras
from .errors import (
    ConfigError,
    DoctorError,
    MaskError,
    MaskWarning,
    MaskwiseError,
    MaskwiseTypeError,
    NonFiniteError,
    ShapeError,
)
from .functional import Input, SymbolicTensor
from .masked import Masked, combine_masks, lengths_to_mask
from .models import Graph, Model, Module, Sequential
from .trace import Trace, trace
from .training import argmax, load

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DoctorError",
    "Graph",
    "History",
    "Input",
    "MaskError",
    "MaskWarning",
    "Masked",
    "MaskwiseError",
    "MaskwiseTypeError",
    "Model",
    "Module",
    "NonFiniteError",
    "Sequential",
    "ShapeError",
    "SymbolicTensor",
    "Trace",
    "__version__",
    "argmax",
    "callbacks",
    "combine_masks",
    "constraints",
    "data",
    "doctor",
    "from_keras",
    "initializers",
    "layers",
    "lengths_to_mask",
    "load",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "trace",
]
