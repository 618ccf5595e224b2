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
  cannot divide, so each output's N must be known before the first backward pass of
  the update: with one batch per update, each piece's counts are all-reduced after
  its forward pass; with k > 1, the update's k batches are read ahead and *counted
  first* (`count_first`): a forward pass of each in evaluation mode without
  gradients gives each output's real steps, exactly what the training pass counts,
  and one collective per update sums them. Each output's loss then gets its own
  `normalizer=N_o / W`. The cost is that extra forward pass per batch, without
  gradients (its activations are freed at once); the alternative, one gradient
  buffer per output, backpropagates the shared trunk once per output, more work for
  two outputs already, and a copy of the gradients per output. A model whose masks
  differ between the counting pass and the training pass (masks drawn at random in
  training) is a `ConfigError` at the update's end, before its optimizer step.
- `reduce_totals`: the epoch's loss and metrics are summed over the processes before
  they are read, so logs, `evaluate` and callbacks see the exact global figures, the
  same on every process.
- `gather_predictions`: every process's predictions, merged, so `predict` returns every
  sequence once, in input order, on every process.
- `wrap`: the model in `DistributedDataParallel` (the doctor's probes and evaluation run
  on the model itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..data import Batch
from ..errors import ConfigError, format_error
from ..layers import _host
from ..layers.recurrent import RNN
from ..losses import COUNTED, Loss
from .inputs import forward
from .modes import training_mode
from .outputs import Head, Output, counted, split_outputs, split_targets
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
      by it (times the world size).
    - several (`per_output` True): each output counts its own real steps, so no one
      rescale of the summed gradient can normalise them: each output's loss is divided
      by its own `N_o / W`, and `finish` rescales nothing. With one batch per update,
      `normalizers` all-reduces each piece's counts (one collective, before its
      backward pass). With several (`counts_first`), the update's pieces are counted
      before the first one trains (`count_first` calls `count_piece` for each and `prepare`
      once: one collective per update); `normalizers` checks each piece's counts
      against them, and `finish` refuses an update where they differ.

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
        self.counts_first = self.per_output and self.steps_per_update > 1
        if not self.plain:
            for loss in trained:
                self._check_reduction(loss)
        self.count: torch.Tensor | int = 0  # the update's count so far (one loss)
        self.piece: torch.Tensor = torch.ones((), dtype=torch.int64)  # the last piece's
        # The last piece's factors for the logs (`own`, `note_loss`) and the penalty.
        self.shares: list[torch.Tensor | None] = []
        self.shown_scale = self.penalty_scale = torch.ones(())
        self.shown: torch.Tensor | None = None  # see `note_loss`
        self.pieces = 0  # pieces counted (`normalizers`) or run without data (`idle`)
        # Several losses: each output's `N_o / W` and the steps the logs count, over
        # the processes (and, with `counts_first`, the update; see `_sum_counts`).
        self.global_normalizers: list[torch.Tensor | float | None] = []
        self.global_steps = torch.ones((), dtype=torch.int64)
        # With `counts_first`: each piece's counts before it trained (None: no data),
        # and whether a training pass counted otherwise (read at `finish`).
        self.counted: list[torch.Tensor | None] = []
        self.changed: torch.Tensor | bool = False

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
        several (with one batch per update, one collective: every process calls it)."""
        self.pieces += 1
        local = self._local(outputs, targets)
        normalizers: list[torch.Tensor | float | None]
        if self.per_output:
            steps = torch.as_tensor(counted(self.heads, outputs, targets))
            mine = self._vector(local, steps)
            if self.counts_first:
                self._check_counted(mine)
            else:
                self._sum_counts(mine, active=1)
            normalizers = self.global_normalizers
            self.shown_scale = self.global_steps / steps.clamp_min(1) / self.world_size
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

    def count_piece(self, outputs: Sequence[Output], targets: Sequence[Any]) -> torch.Tensor:
        """A piece's counts before it trains (`counts_first`; see `count_first`): the
        count of each output's loss on `outputs` and `targets`, then the steps the logs
        count, as one int64 vector (what `prepare` sums, and `normalizers` checks)."""
        return self._vector(
            self._local(outputs, targets), torch.as_tensor(counted(self.heads, outputs, targets))
        )

    def prepare(self, pieces: Sequence[torch.Tensor | None]) -> None:
        """Start an update of several losses whose pieces were counted first (`count_piece`;
        None for a piece without data, an empty share): sum their counts over the
        update and the processes (one collective: every process calls it), for the
        `normalizers` of each of its pieces."""
        present = [piece for piece in pieces if piece is not None]
        trained = sum(loss is not None for loss in self.losses)
        total = sum(present[1:], present[0]) if present else _zeros(trained + 1)
        self._sum_counts(total, active=len(present))
        self.counted, self.changed = list(pieces), False

    def _loss(self) -> Loss:
        """The one loss (`per_output` False)."""
        return next(loss for loss in self.losses if loss is not None)

    def _local(
        self, outputs: Sequence[Output], targets: Sequence[Any]
    ) -> list[torch.Tensor | None]:
        """Each output's count of its loss on a piece (`_piece_count`; None without)."""
        return [
            None if loss is None else _piece_count(loss, output, target)
            for loss, output, target in zip(self.losses, outputs, targets, strict=True)
        ]

    @staticmethod
    def _vector(local: Sequence[torch.Tensor | None], steps: torch.Tensor) -> torch.Tensor:
        """The counts of the outputs with a loss (`local`), then `steps`, as one vector."""
        counts = [count.to(steps.device) for count in local if count is not None]
        return torch.stack([*counts, steps])

    def _sum_counts(self, mine: torch.Tensor, active: int) -> None:
        """Each output's `N_o / W` (`global_normalizers`; `1 / W` for the `"sum"`
        reduction, which has none) and the steps the logs count (`global_steps`; see
        `note_loss`) from this process's counts `mine` (a `_vector`: of a piece, or of
        an update's pieces), all-reduced in one collective with the pieces `active`
        (those with data: they share the penalty)."""
        active_count = torch.tensor([active], device=mine.device)
        totals = distributed.all_reduce_sum(torch.cat([mine, active_count]))
        *global_counts, self.global_steps, pieces = totals  # int64: / gives floats
        counts = iter(global_counts)
        self.global_normalizers = []
        for loss in self.losses:
            if loss is None:
                self.global_normalizers.append(None)
                continue
            total = next(counts)  # a `"sum"` loss's count (1 per piece) divides nothing
            self.global_normalizers.append(
                (1 if loss.reduction == "sum" else total) / self.world_size
            )
        self.penalty_scale = self.world_size / pieces.clamp_min(1)

    def _check_counted(self, mine: torch.Tensor) -> None:
        """Note whether this piece's counts `mine` differ from those counted first."""
        index = self.pieces - 1
        expected = self.counted[index] if index < len(self.counted) else None
        if expected is None:
            raise ConfigError(
                format_error(
                    "compute_loss was called for more batches of an update than were "
                    "counted before it.",
                    received=f"a loss for batch {index + 1} of an update whose "
                    f"{len(self.counted)} batch(es) were counted, this one "
                    f"{'empty' if index < len(self.counted) else 'not among them'}",
                    fix="call `self.trainer.compute_loss(batch, out)` once per batch in "
                    "an overridden train_step.",
                )
            )
        self.changed = self.changed | (mine != expected.to(mine.device)).any()

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
        several losses with one batch per update, join the other processes' count of
        the piece with zeros (with `counts_first`, `prepare` counted it as such)."""
        self.pieces += 1
        if self.per_output and not self.counts_first:
            trained = sum(loss is not None for loss in self.losses)
            self._sum_counts(_zeros(trained + 1), active=0)

    def finish(self, parameters: Any) -> None:
        """For one loss, divide the accumulated gradients by `N / W` (see the module
        docstring; a collective: every process calls it); for several counted first,
        refuse an update whose pieces counted otherwise in training (before its
        optimizer step); start the next update.

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
            changed, self.counted, self.changed = self.changed, [], False
            if changed:  # one host read per update (`counts_first`)
                raise ConfigError(
                    format_error(
                        "The real steps that the losses count in a batch differ between "
                        "the forward pass that counted them before the update (evaluation "
                        "mode, without gradients) and the training pass: the model's masks "
                        "change with the training mode or at random (e.g. dropped steps).",
                        received=f"{sum(loss is not None for loss in self.losses)} outputs "
                        f"with a loss, steps_per_update={self.steps_per_update}",
                        fix="keep the masks the same in training and evaluation, or use "
                        "steps_per_update=1 with a batch_size k times larger (or k times "
                        "the processes under torchrun).",
                    )
                )
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


def count_first(
    batches: Iterable[tuple[int, Batch]], plan: Update, num_batches: int, model: nn.Module
) -> Iterator[tuple[int, Batch]]:
    """An epoch's `(index, batch)` pairs, as `batches` gives them, each update's read
    ahead and counted before its first batch trains when `plan.counts_first` (several
    outputs with a loss, several batches per update; otherwise handed on as they come,
    of `num_batches` in all).

    A forward pass of each of the update's batches through `model`, in evaluation mode
    and without gradients, gives its counts (`Update.count_piece`: what the training
    pass's `Update.normalizers` counts, from the same masks and targets), and
    `Update.prepare` sums them over the update and the processes. The batches are then
    handed out one by one, so that the callbacks see each in Keras's order. The
    counting passes leave the stateful recurrent layers' states as they found them.
    """
    if not plan.counts_first:
        yield from batches
        return
    update: list[tuple[int, Batch]] = []
    for index, batch in batches:
        update.append((index, batch))
        if plan.last(index, num_batches):
            with _host.exact_checks(update[0][0] == 0):  # as the epoch's first step
                plan.prepare(_counts(plan, model, [batch for _, batch in update]))
            yield from update
            update = []


def _counts(plan: Update, model: nn.Module, batches: list[Batch]) -> list[torch.Tensor | None]:
    """Each batch's `Update.count_piece` (None for an empty share, see `count_first`)."""
    names = [head.name for head in plan.heads]
    counts: list[torch.Tensor | None] = []
    with training_mode(model, False), torch.no_grad(), _states_kept(model):
        for batch in batches:
            if not batch.size:
                counts.append(None)
                continue
            outputs = split_outputs(forward(model, batch.x), names)
            counts.append(plan.count_piece(outputs, split_targets(batch.y, names)))
    return counts


@contextmanager
def _states_kept(model: nn.Module) -> Iterator[None]:
    """Put the states of `model`'s stateful recurrent layers back as they were."""
    stateful = [layer for layer in model.modules() if isinstance(layer, RNN) and layer.stateful]
    states = [layer.states for layer in stateful]
    try:
        yield
    finally:
        for layer, kept in zip(stateful, states, strict=True):
            layer.states = kept


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


def _zeros(size: int) -> torch.Tensor:
    """The counts (a `_vector`) of a piece without data."""
    return torch.zeros(size, dtype=torch.int64)


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
