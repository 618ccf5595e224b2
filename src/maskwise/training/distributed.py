"""Data parallel and gradient accumulation in the `Trainer`.

Under `torchrun --nproc-per-node N`, `fit`, `evaluate` and `predict` join the process
group (`maskwise.distributed.init_process_group`), and each process works on its share
of every global batch (`batch_size` is the global batch, as in Keras). What keeps the
results those of one process:

- `Update`: one optimizer update is made of pieces: this process's share of a batch,
  for each of the `steps_per_update` batches it accumulates. Each piece's loss is
  backpropagated as a *sum* (`normalizer=1`), and before the optimizer step the
  gradients are divided by `N / W`: N the loss's count (`Loss.denominator`: the real
  steps for `"mean"`) over every piece of the update on every process (all-reduced),
  W the number of processes, since `DistributedDataParallel` averages the gradients.
  The result is the gradient of one process on the whole update's batch, whatever the
  real steps of each piece. (Dividing each piece by its own count, the per-piece mean,
  is the classic mistake: pieces with fewer real steps would weigh more.)
- `reduce_totals`: the epoch's loss and metrics are summed over the processes before
  they are read, so logs, `evaluate` and callbacks see the exact global figures, the
  same on every process.
- `gather_predictions`: every process's predictions, merged, so `predict` returns every
  sequence once, in input order, on every process.
- `wrap`: the model in `DistributedDataParallel` (the doctor's probes and evaluation run
  on the model itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..errors import ConfigError, format_error
from ..losses import COUNTED, Loss
from ..masked import Masked
from .predictions import Predictions
from .totals import EpochTotals

METRIC_STATE = ("total", "count", "matrix")
"""The attributes that hold a built-in metric's running sums (summed across processes)."""


def check_steps_per_update(steps_per_update: Any) -> int:
    """`steps_per_update` checked to be a positive integer."""
    if (
        isinstance(steps_per_update, bool)
        or not isinstance(steps_per_update, int)
        or steps_per_update < 1
    ):
        raise ConfigError(
            format_error(
                "steps_per_update must be a positive integer.",
                expected="1 (an update per batch) or k > 1 (k batches per update)",
                received=repr(steps_per_update),
            )
        )
    return steps_per_update


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel | None:
    """`model` in `DistributedDataParallel` when a process group of several processes
    is initialised (None otherwise). It broadcasts rank 0's weights to the others."""
    if not distributed.is_distributed():
        return None
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


class Update:
    """The pieces of one optimizer update, and the count that normalises their sum.

    `plain` (one process, one batch per update): each batch's loss is its own mean and
    nothing here is used. Otherwise `compute_loss` asks for `normalizer` (1: the loss
    as a sum) and adds the piece's count (`add`); `optimizer_step` calls `finish` at the
    update's last piece, which all-reduces the count and divides the gradients by it
    (times the world size); `zero_grad` clears the gradients at its first piece only.

    Args:
        loss: the compiled loss (None for a model with several outputs, which trains
            with plain updates only).
        steps_per_update: batches per optimizer update.
    """

    def __init__(self, loss: Loss | None, steps_per_update: int) -> None:
        self.steps_per_update = check_steps_per_update(steps_per_update)
        self.world_size = distributed.world_size()
        self.plain = self.steps_per_update == 1 and self.world_size == 1
        self.loss = loss
        if not self.plain and (reduction := self._loss().reduction) not in COUNTED:
            raise ConfigError(
                format_error(
                    f"{self._loss().name}: the {reduction!r} reduction divides each batch "
                    "by its own fraction of real steps or sum of weights, so it cannot be "
                    "split across processes or accumulated over batches.",
                    received=f"reduction={reduction!r}, {self.world_size} process(es), "
                    f"steps_per_update={self.steps_per_update}",
                    fix="use reduction='mean' (Keras 3's), or train in one process "
                    "with steps_per_update=1.",
                )
            )
        self.count: torch.Tensor | int = 0
        self.piece: torch.Tensor | int = 0
        self.pieces = 0  # pieces counted (`add`) or run without data (`idle`)

    def _loss(self) -> Loss:
        """The loss whose count normalises the update; a model with several outputs
        (`loss` None) has one per output, each with its own count: a `ConfigError`."""
        if self.loss is None:
            raise ConfigError(
                format_error(
                    "A model with several outputs trains in one process, one batch per "
                    "update: its outputs' losses count different real steps, which one "
                    "normaliser of the update cannot divide.",
                    received=f"{self.world_size} process(es), steps_per_update="
                    f"{self.steps_per_update}",
                    fix="train with steps_per_update=1 in one process.",
                )
            )
        return self.loss

    normalizer = 1.0
    """What `compute_loss` passes as the loss's `normalizer`: 1, the loss as a sum."""

    def first(self, index: int) -> bool:
        """Whether batch `index` of the epoch starts an update (clear the gradients)."""
        return index % self.steps_per_update == 0

    def last(self, index: int, num_batches: int) -> bool:
        """Whether batch `index` ends an update (step the optimizer): every
        `steps_per_update` batches, and the epoch's last batch."""
        return (index + 1) % self.steps_per_update == 0 or index + 1 == num_batches

    def add(self, out: Masked | torch.Tensor) -> None:
        """Add one piece's count: `Loss.denominator` of its output (one per piece for
        the `"sum"` reduction, whose logs show each piece's sum). It stays on the
        output's device: no wait for the device here."""
        self.pieces += 1
        if self._loss().reduction == "sum":
            self.piece = 1
            return
        self.piece = self._loss().denominator(out).detach()
        self.count = self.count + self.piece

    def idle(self) -> None:
        """Note a piece without data (an empty share, run with a zero loss)."""
        self.pieces += 1

    def piece_loss(self, total: torch.Tensor) -> torch.Tensor:
        """The last piece's loss for the logs, from its sum: its own mean (its sum for
        the `"sum"` reduction), as without pieces."""
        piece = torch.as_tensor(self.piece, device=total.device)
        return total.detach() / piece.clamp_min(1).to(total.dtype)

    def finish(self, parameters: Any) -> None:
        """Divide the accumulated gradients by `N / W` (see the module docstring) and
        start counting the next update. A collective: every process calls it.

        An update none of whose pieces went through `Trainer.compute_loss` (a
        `train_step` override computing its own loss) is a `ConfigError`: its loss is
        a mean that this division would scale wrong."""
        if not self.pieces:
            raise ConfigError(
                format_error(
                    "train_step computed its loss without Trainer.compute_loss, so the "
                    "loss of the whole update cannot be normalised.",
                    received=f"{self.world_size} process(es), steps_per_update="
                    f"{self.steps_per_update}, no piece counted",
                    fix="compute the loss with `self.trainer.compute_loss(batch, out)` in "
                    "an overridden train_step (it sums the pieces and counts their real "
                    "steps), or train in one process with steps_per_update=1.",
                )
            )
        self.pieces = 0
        if self._loss().reduction == "sum":
            scale = torch.tensor(float(self.world_size), dtype=torch.float64)
        else:
            total = distributed.all_reduce_sum(torch.as_tensor(self.count))
            scale = self.world_size / total.clamp_min(1).to(torch.float64)
        self.count = 0
        for param in parameters:
            if param.grad is not None:
                param.grad.mul_(scale.to(param.grad.device, param.grad.dtype))


def reduce_totals(totals: EpochTotals) -> None:
    """Sum an epoch's (or an evaluation's) loss, counts and metrics over the processes,
    in place, so that every process reads the global figures (nothing in one process).

    Built-in metrics keep their running sums in `total`/`count` or a confusion
    `matrix`; a metric with other state cannot be summed exactly: a `ConfigError`.
    """
    if not distributed.is_distributed():
        return
    values = (totals.loss_sum, totals.count, *totals.output_sums, *totals.output_counts)
    sums = torch.stack([torch.as_tensor(v, dtype=torch.float64).cpu() for v in values])
    sums = distributed.all_reduce_sum(sums)
    tracked = len(totals.output_sums)
    totals.loss_sum, totals.count = sums[0], sums[1]
    totals.output_sums = list(sums[2 : 2 + tracked])
    totals.output_counts = list(sums[2 + tracked :])
    totals.steps = distributed.all_reduce_sum(torch.as_tensor(totals.steps).cpu())
    for metric in totals.metrics:
        _reduce_metric(metric)


def _reduce_metric(metric: Any) -> None:
    names = [name for name in METRIC_STATE if hasattr(metric, name)]
    if not names:
        raise ConfigError(
            format_error(
                f"The metric {metric.name!r} ({type(metric).__name__}) keeps no running "
                "sums that can be added across processes.",
                expected="a metric that accumulates `total` and `count` (a MeanMetric) or a "
                "confusion `matrix`",
                fix="derive custom metrics from maskwise.metrics.MeanMetric, or compute "
                "them after `predict`.",
            )
        )
    states = distributed.all_gather_objects({name: _cpu(getattr(metric, name)) for name in names})
    for name in names:
        # A process without a batch has 0.0 sums, or no matrix (None).
        present = [state[name] for state in states if state[name] is not None]
        total = sum(present[1:], present[0]) if present else None
        mine = getattr(metric, name)
        if isinstance(total, torch.Tensor) and isinstance(mine, torch.Tensor):
            total = total.to(mine.device)  # where the next update adds to it
        setattr(metric, name, total)


def _cpu(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def gather_predictions(predictions: Predictions) -> None:
    """Merge every process's predictions into `predictions`, in place (each sequence
    was predicted by exactly one process)."""
    if not distributed.is_distributed():
        return
    for rows, masked in distributed.all_gather_objects((predictions.rows, predictions.masked)):
        predictions.rows.update(rows)
        predictions.masked = predictions.masked or masked
