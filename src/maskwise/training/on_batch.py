"""Keras's single-batch methods: `train_on_batch`, `test_on_batch`, `predict_on_batch`.

The data given is one batch, whatever its size (padded array, ragged list, several
inputs, as `fit` takes them); it goes through the model's own `train_step` /
`test_step`, so an overridden step serves here too. The figures returned are this
batch's alone, as Keras 3 gives them (the metrics are reset at each call): the loss
over its real steps and its metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..data import Batch
from .inputs import (
    data_loader,
    read_targets,
    require_batches,
    require_grad_mode,
    require_targets,
)
from .modes import training_mode
from .outputs import check_class_weight, targets_by_name
from .totals import EpochTotals

if TYPE_CHECKING:
    from .trainer import Logs, Trainer

ONE_BATCH = 2**31 - 1
"""A batch size no data reaches: every sequence given goes into the one batch."""


def one_batch(trainer: Trainer, x: Any, y: Any, sample_weight: Any, what: str) -> Batch:
    """`x`, `y` and `sample_weight` as one batch on the model's device, the model built
    (targets read per step or per sequence as its output says, `read_targets`)."""
    loader = data_loader(x, y, sample_weight, ONE_BATCH, 0.0, bucketing=False)
    require_batches(loader, f"data given to {what}")
    device = trainer.place(None)
    read_targets(loader, trainer.model, trainer.require_compiled(what).names, device)
    batch = next(iter(loader)).to(device)
    trainer.build(batch.x)
    return batch


def results(logs: Logs, return_dict: bool) -> Any:
    """Keras's return value: the dict, or the loss alone without metrics, or the list
    `[loss, metric, ...]` in the order of the logs."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def train_on_batch(
    trainer: Trainer,
    x: Any,
    y: Any,
    sample_weight: Any,
    class_weight: Any,
    return_dict: bool,
) -> Any:
    """One optimizer update on the batch (see the module docstring)."""
    require_grad_mode("train_on_batch")
    compiled = trainer.require_compiled("train_on_batch")
    check_class_weight(class_weight, compiled.names)
    y = targets_by_name(y, compiled.names, "train_on_batch")
    batch = one_batch(trainer, x, y, sample_weight, "train_on_batch")
    require_targets(batch.y, "train_on_batch")
    trainer.require_trainable()
    trainer.ensure_optimizer()
    trainer.class_weight = class_weight
    trainer.totals = totals = EpochTotals(compiled.heads)
    trainer.state.batch = 0
    with training_mode(trainer.model, True):
        trainer.model.train_step(batch)
    trainer.state.step += 1
    return results(totals.logs(), return_dict)


def test_on_batch(trainer: Trainer, x: Any, y: Any, sample_weight: Any, return_dict: bool) -> Any:
    """The loss and the metrics of the batch, without gradients, in evaluation mode."""
    compiled = trainer.require_compiled("test_on_batch")
    y = targets_by_name(y, compiled.names, "test_on_batch")
    batch = one_batch(trainer, x, y, sample_weight, "test_on_batch")
    require_targets(batch.y, "test_on_batch")
    trainer.totals = totals = EpochTotals(compiled.heads)
    with training_mode(trainer.model, False), torch.no_grad():
        trainer.model.test_step(batch)
    return results(totals.logs(), return_dict)
