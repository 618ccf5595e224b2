"""maskwise: Keras-style masking for padded sequence batches on PyTorch.

Padding is ignored correctly everywhere, and a mask is never lost silently.
"""

from . import layers
from .errors import (
    ConfigError,
    MaskError,
    MaskwiseError,
    MaskwiseTypeError,
    MaskWarning,
    ShapeError,
)
from .masked import Masked, combine_masks, lengths_to_mask
from .models import Module, Sequential

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MaskError",
    "MaskWarning",
    "Masked",
    "MaskwiseError",
    "MaskwiseTypeError",
    "Module",
    "Sequential",
    "ShapeError",
    "__version__",
    "combine_masks",
    "layers",
    "lengths_to_mask",
]
