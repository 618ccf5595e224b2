"""Optimizers with Keras 3's names, arguments, defaults and update math.

    model.compile(optimizer=maskwise.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy")

`Adam`, `AdamW`, `SGD`, `RMSprop`, `Adagrad`, `Nadam`, `Adamax`, `Adadelta` and `Lion`
give the weights Keras's optimizers give for the same weights and gradients
(`rules.py`); `schedules` holds the learning-rate schedules. Each is made without
parameters, as in Keras, and built on the model's weights by the first `fit`
(`Optimizer`, base.py); once built it is a `torch.optim.Optimizer`, usable in a
hand-written loop too. `compile(optimizer="adam")` makes the class of that name.
"""

from . import schedules
from .base import Optimizer, check_learning_rate
from .rules import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Lion, Nadam, RMSprop

OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {
    cls.__name__: cls for cls in (Adam, AdamW, SGD, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Lion)
}
"""The optimizers by class name (how a checkpoint's compile config names them)."""

__all__ = [
    "OPTIMIZER_CLASSES",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "check_learning_rate",
    "schedules",
]
