"""`TrainingState`: everything a checkpoint keeps of training, besides the weights.

The `Trainer` holds one and updates it as it trains; `Trainer.snapshot()` fills in the
optimizer's state, the compile config and the callbacks' state, `checkpoint.save`
writes it and `checkpoint.read_state` reads it back; `Trainer.restore` puts it back
(the one place resuming happens, for `fit(..., resume_from=...)` and `maskwise.load`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainingState:
    """Where training stands.

    Example:
        >>> model = Sequential([layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = y = np.ones((4, 3, 1), dtype="float32")
        >>> _ = model.fit(x, y, epochs=2, batch_size=2, verbose=0, seed=0)
        >>> model.trainer.state.position()  # 2 epochs done, 4 optimizer steps
        {'epoch': 2, 'step': 4, 'batch': 0, 'loader_seed': 0, 'grad_scaler': None}

    Attributes:
        epoch: epochs completed (during an epoch: the index of the current one, from 0);
            a resumed `fit` starts at this epoch.
        step: optimizer steps taken in all epochs.
        batch: the position of the data loader in the current epoch: the batches done
            (during a step: the index of the current batch). 0 at an epoch's end.
        loader_seed: the seed of the training loader's batch order (the order of epoch
            `e` follows from it and `e`); None before the first `fit`.
        compile: the compile config (`Compiled.config`): optimizer class and
            hyper-parameters, loss and metrics, as JSON; None when not compiled.
        optimizer: the optimizer's `state_dict()`; None before the optimizer exists.
        callbacks: each stateful callback's `get_state()`, under its checkpoint key
            (`maskwise.callbacks.keyed`).
        callback_tensors: each stateful callback's `get_tensors()`, under the same keys.
        grad_scaler: the loss scaler's `state_dict()` (scale, growth tracker, ...)
            after a `fit(precision="fp16")`; None before one.
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    loader_seed: int | None = None
    compile: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    callback_tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    grad_scaler: dict[str, float] | None = None

    def position(self) -> dict[str, Any]:
        """The counters, the loader's seed and the grad scaler's state, as the JSON a
        checkpoint stores."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "loader_seed": self.loader_seed,
            "grad_scaler": self.grad_scaler,
        }
