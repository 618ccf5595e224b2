"""Data parallel and gradient accumulation in the `Trainer`.

Under `torchrun --nproc-per-node N`, `fit`, `evaluate` and `predict` join the process
group (`maskwise.distributed.init_process_group`), and each process works on its share
of every global batch (`batch_size` is the global batch, as in Keras). What keeps the
results those of one process:

- `Update`: one optimizer update is made of pieces: this process's share of a batch,
  for each of the `steps_per_update` batches it accumulates. Each output's loss must
  be divided by `N / W`: N its count (`Loss.denominator`: the real steps for
  `"mean"`) over every piece of the update on every process, W the number of
  processes, since `DistributedDataParallel` averages the gradients. The result is
  the gradient of one process on the whole update's batch, whatever the real steps of
  each piece. (Dividing each piece by its own count, the per-piece mean, is the
  classic mistake: pieces with fewer real steps would weigh more.) With one loss, each
  piece's loss is backpropagated as a *sum* (`normalizer=1`) and the gradients are
  divided by `N / W` before the optimizer step. With several (a model with several
  outputs), each output has its own N, which one rescale of the summed gradient
  cannot divide: each piece's counts are all-reduced before its backward pass and
  each output's loss gets its own `normalizer=N_o / W`, one batch per update.
- `reduce_totals`: the epoch's loss and metrics are summed over the processes before
  they are read, so logs, `evaluate` and callbacks see the exact global figures, the
  same on every process.
- `gather_predictions`: every process's predictions, merged, so `predict` returns every
  sequence once, in input order, on every process.
- `wrap`: the model in `DistributedDataParallel` (the doctor's probes and evaluation run
  on the model itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..errors import ConfigError, format_error
from ..losses import COUNTED, Loss
from .outputs import Head, Output, counted
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
    """The pieces of one optimizer update, and how their losses are normalised.

    `plain` (one process, one batch per update): each batch's loss is its own mean and
    nothing here is used. Otherwise `compute_loss` asks for each output's `normalizers`
    (which count the piece), the loss of each output divided by its own, and
    `optimizer_step` calls `finish` at the update's last piece; `zero_grad` clears the
    gradients at its first piece only. Two ways, by the outputs with a loss:

    - one (`per_output` False): each piece's loss is its sum (normalizer 1), and
      `finish` all-reduces the count of the update's pieces and divides the gradients
      by it (times the world size). Several batches may make an update.
    - several (`per_output` True): each output counts its own real steps, so no one
      rescale of the summed gradient can normalise them. Each piece's counts are
      all-reduced at once (one collective, before its backward pass) and each output's
      loss is divided by its own `N_o / W`; `finish` rescales nothing. A later batch's
      counts are known only after its forward pass, when the earlier batches'
      gradients are already summed: such a model takes one batch per update.

    For the logs, `own` gives each output's loss on the piece as its own and
    `note_loss` the piece's loss, figures that the epoch's totals add up to one
    process's.

    Args:
        heads: the compiled outputs (`Compiled.heads`; the losses are theirs).
        steps_per_update: batches per optimizer update.
    """

    def __init__(self, heads: Sequence[Head], steps_per_update: int) -> None:
        self.steps_per_update = check_steps_per_update(steps_per_update)
        self.world_size = distributed.world_size()
        self.plain = self.steps_per_update == 1 and self.world_size == 1
        self.heads = heads
        self.losses = [head.loss for head in heads]
        trained = [loss for loss in self.losses if loss is not None]
        self.per_output = len(trained) > 1
        if not self.plain:
            for loss in trained:
                self._check_reduction(loss)
        if not self.plain and self.per_output and self.steps_per_update > 1:
            raise ConfigError(
                format_error(
                    f"A model with {len(trained)} outputs with a loss cannot accumulate "
                    "batches into one update: each output's loss is divided by its own "
                    "count of real steps over the whole update, and the counts of its "
                    "later batches are known only after their forward passes, once the "
                    "first batch's gradients are summed. (Data parallel works: each "
                    "batch's counts are summed across the processes before its backward "
                    "pass.)",
                    received=f"steps_per_update={self.steps_per_update}, "
                    f"{self.world_size} process(es)",
                    fix="use steps_per_update=1 with a batch_size k times larger, or k "
                    "times the processes under torchrun.",
                )
            )
        self.count: torch.Tensor | int = 0  # the update's count so far (one loss)
        self.piece: torch.Tensor = torch.ones((), dtype=torch.int64)  # the last piece's
        # The last piece's factors for the logs (`own`, `note_loss`) and the penalty.
        self.shares: list[torch.Tensor | None] = []
        self.shown_scale = self.penalty_scale = torch.ones(())
        self.shown: torch.Tensor | None = None  # see `note_loss`
        self.pieces = 0  # pieces counted (`normalizers`) or run without data (`idle`)

    def _check_reduction(self, loss: Loss) -> None:
        """Refuse a reduction that has no count of the whole update."""
        if loss.reduction in COUNTED:
            return
        raise ConfigError(
            format_error(
                f"{loss.name}: the {loss.reduction!r} reduction divides each batch by its "
                "own fraction of real steps or sum of weights, so it cannot be split "
                "across processes or accumulated over batches.",
                received=f"reduction={loss.reduction!r}, {self.world_size} process(es), "
                f"steps_per_update={self.steps_per_update}",
                fix="use reduction='mean' (Keras 3's), or train in one process with "
                "steps_per_update=1.",
            )
        )

    def first(self, index: int) -> bool:
        """Whether batch `index` of the epoch starts an update (clear the gradients)."""
        return index % self.steps_per_update == 0

    def last(self, index: int, num_batches: int) -> bool:
        """Whether batch `index` ends an update (step the optimizer): every
        `steps_per_update` batches, and the epoch's last batch."""
        return (index + 1) % self.steps_per_update == 0 or index + 1 == num_batches

    def normalizers(
        self, outputs: Sequence[Output], targets: Sequence[Any]
    ) -> list[torch.Tensor | float | None]:
        """Count one piece, its outputs `outputs` and their `targets` (one per head; the
        steps a loss counts may depend on them, `Loss.counted`), and give each output's
        loss `normalizer` (None for an output without a loss): 1 (the sum) for one
        loss, whose count stays on the output's device until `finish`; `N_o / W` for
        several (one collective: every process calls it)."""
        self.pieces += 1
        local = [
            None if loss is None else _piece_count(loss, output, target)
            for loss, output, target in zip(self.losses, outputs, targets, strict=True)
        ]
        normalizers: list[torch.Tensor | float | None]
        if self.per_output:
            steps = torch.as_tensor(counted(self.heads, outputs, targets))
            normalizers = self._global_normalizers(local, steps, active=1)
        else:
            normalizers = [None if count is None else 1.0 for count in local]
            self.piece = next(count for count in local if count is not None)
            self.shown_scale = 1 / self.piece.clamp_min(1)
            if self._loss().reduction != "sum":
                self.count = self.count + self.piece
        self.shares = [
            None if count is None else torch.as_tensor(n) / count.clamp_min(1)
            for n, count in zip(normalizers, local, strict=True)
        ]
        return normalizers

    def _loss(self) -> Loss:
        """The one loss (`per_output` False)."""
        return next(loss for loss in self.losses if loss is not None)

    def _global_normalizers(
        self, local: list[torch.Tensor | None], steps: torch.Tensor, active: int
    ) -> list[torch.Tensor | float | None]:
        """Each output's `N_o / W` from this piece's counts `local` (`1 / W` for the
        `"sum"` reduction, which has none), all-reduced in one collective with the
        processes `active` (1 with data, 0 without: they share the penalty) and the
        steps the logs count (`steps`, this piece's; see `note_loss`)."""
        counts = {
            i: count
            for i, (loss, count) in enumerate(zip(self.losses, local, strict=True))
            if loss is not None and count is not None and loss.reduction != "sum"
        }
        mine = [*counts.values(), torch.tensor(active), steps]
        totals = distributed.all_reduce_sum(torch.stack([c.to(steps.device) for c in mine]))
        *global_counts, processes, global_steps = totals  # int64: / gives floats
        normalizers: list[torch.Tensor | float | None] = [
            None if count is None else 1.0 / self.world_size for count in local
        ]
        for i, total in zip(counts, global_counts, strict=True):
            normalizers[i] = total / self.world_size
        self.penalty_scale = self.world_size / processes.clamp_min(1)
        self.shown_scale = global_steps / steps.clamp_min(1) / self.world_size
        return normalizers

    def own(self, parts: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Each output's loss on the last piece as its own (its mean over its own
        real steps; its sum for `"sum"`), from the normalised `parts`, detached: what
        the logs add up, as without pieces."""
        return [
            None if part is None or share is None else part.detach() * share.to(part)
            for part, share in zip(parts, self.shares, strict=True)
        ]

    def note_loss(self, total: torch.Tensor, penalty: torch.Tensor | None) -> None:
        """Note the last piece's loss for the logs (`shown`), from its normalised loss
        `total` (before the penalty) and the penalty: one loss's own mean (its sum for
        `"sum"`), as without pieces. Several losses' own means, weighted and summed,
        would not add up to the epoch's `loss` of one process (it weighs each batch's
        loss by the steps of all its outputs together); the piece's share of the
        global batch's loss per step it counts, `(total / W) * (global steps / its
        steps)`, does."""
        shown = total.detach() * self.shown_scale.to(total)
        self.shown = shown if penalty is None else shown + penalty.detach()

    def penalty(self, penalty: torch.Tensor) -> torch.Tensor:
        """The layers' penalty as the piece's loss adds it, so that the update's
        gradient holds it once: times the piece's count for one loss (`finish` divides
        the update by its count); for several, times `W / A`, A the processes with
        data (DDP averages the W processes' gradients, and those without add none)."""
        if self.per_output:
            return penalty * self.penalty_scale.to(penalty)
        return penalty * self.piece

    def idle(self) -> None:
        """Note a piece without data (an empty share, run with a zero loss); for
        several losses, join the other processes' count of the piece with zeros."""
        self.pieces += 1
        if self.per_output:
            nothing = [None if loss is None else _ZERO for loss in self.losses]
            self._global_normalizers(nothing, _ZERO, active=0)

    def finish(self, parameters: Any) -> None:
        """For one loss, divide the accumulated gradients by `N / W` (see the module
        docstring; a collective: every process calls it); start the next update.

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
        if self.per_output:
            return
        if self._loss().reduction == "sum":
            scale = torch.tensor(float(self.world_size), dtype=torch.float64)
        else:
            total = distributed.all_reduce_sum(torch.as_tensor(self.count))
            scale = self.world_size / total.clamp_min(1).to(torch.float64)
        self.count = 0
        for param in parameters:
            if param.grad is not None:
                param.grad.mul_(scale.to(param.grad.device, param.grad.dtype))


def evaluation_plan(heads: Sequence[Head]) -> Update | None:
    """The `Update` an evaluation under data parallel follows when several outputs have
    a loss (None otherwise): each batch's counts are summed across the processes, so
    that the logged `loss`, which weighs each batch's loss by the steps of all its
    outputs together, is one process's (`Update.note_loss`). One loss needs none (each
    share's own mean, weighted by its steps, adds up exactly), nor does a reduction
    without a global count (`"keras2"`, `"mean_with_sample_weight"`)."""
    losses = [head.loss for head in heads if head.loss is not None]
    if distributed.world_size() == 1 or len(losses) < 2:
        return None
    if any(loss.reduction not in COUNTED for loss in losses):
        return None
    return Update(heads, 1)


_ZERO = torch.zeros((), dtype=torch.int64)
"""The count of a piece without data."""


def _piece_count(loss: Loss, output: Output, target: Any) -> torch.Tensor:
    """One piece's count of `loss` on its output and target (`Loss.denominator`,
    detached; 1 for the `"sum"` reduction, which divides by none: its logs show each
    piece's sum)."""
    if loss.reduction == "sum":
        return torch.ones((), dtype=torch.int64, device=output.device)
    return loss.denominator(output, target).detach()


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
