"""What an epoch (or an evaluation) adds up: the loss weighted by real steps, each
output's loss and the metrics, exactly over every real step seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import losses as losses_module
from ..errors import ConfigError, format_error
from ..masked import Masked
from .outputs import Head, counted, split_outputs, split_targets


def output_steps(out: Masked | torch.Tensor) -> torch.Tensor:
    """Number of steps the loss counts in `out` (`maskwise.losses.counted_steps`).

    Example:
        >>> output_steps(Masked(torch.zeros(2, 3, 1), lengths_to_mask([3, 1], 3)))
        tensor(4)
        >>> output_steps(torch.zeros(2, 5))  # one output per sequence
        tensor(2)
    """
    return losses_module.counted_steps(out)


def real_steps(out: Masked | torch.Tensor, x: Masked | tuple[Masked, ...]) -> torch.Tensor:
    """Real steps of a batch, for the speed figure: the output mask's, else the first
    input's (every step of an input without a mask counts).

    Example:
        >>> x = Masked(torch.zeros(2, 3, 1), lengths_to_mask([3, 1], 3))
        >>> out = torch.zeros(2, 5)  # one vector per sequence (an RNN's last state)
        >>> output_steps(out), real_steps(out, x)  # what the loss counts, what was read
        (tensor(2), tensor(4))
    """
    if isinstance(out, Masked) and out.mask is not None:
        return out.mask.sum()
    first = x[0] if isinstance(x, tuple) else x
    if first.mask is None:
        return torch.tensor(first.values.shape[:2].numel(), device=first.device)
    return first.mask.sum()


def flatten_results(metrics: Sequence[Any], prefix: str = "") -> dict[str, Any]:
    """`{prefix + name: result}` for every metric; dict results are merged in (each
    key prefixed).

    Example:
        >>> accuracy, recall = mw.metrics.get_metric("accuracy"), mw.metrics.Recall()
        >>> y_pred = Masked(torch.tensor([[[0.9, 0.1], [0.2, 0.8]]]), lengths_to_mask([2], 2))
        >>> for metric in (accuracy, recall):
        ...     metric.update(torch.tensor([[0, 0]]), y_pred)
        >>> flatten_results([accuracy, recall])
        {'accuracy': 0.5, 'recall/0': 0.5, 'recall/1': 0.0, 'recall_macro': 0.25}
        >>> flatten_results([accuracy], prefix="tags_")
        {'tags_accuracy': 0.5}
    """
    logs: dict[str, Any] = {}
    for metric in metrics:
        result = metric.result()
        if isinstance(result, dict):
            logs.update({prefix + key: value for key, value in result.items()})
        else:
            logs[prefix + metric.name] = result
    return logs


class EpochTotals:
    """Exact running loss (weighted by real steps) and metrics over an epoch.

    With several outputs (`heads`, see `maskwise.training.outputs`): `loss` weighs each
    batch's total loss by the real steps of its trained outputs together; when several
    outputs have a loss, each one's own (`<output>_loss`) is its exact mean over its
    own real steps; metrics are per output (`<output>_<metric>`, in the order of their
    names, as Keras lists them).

    Example:
        >>> from maskwise.training.outputs import make_heads
        >>> totals = EpochTotals(make_heads(["output"], "mse", None, ["mae"]))
        >>> y = torch.zeros(1, 3, 1)
        >>> out = Masked(torch.ones(1, 3, 1), lengths_to_mask([3], 3))
        >>> totals.update(out, y, torch.tensor(1.0), out)  # a batch of 3 real steps, loss 1
        >>> out = Masked(torch.full((1, 3, 1), 2.0), lengths_to_mask([1], 3))
        >>> totals.update(out, y, torch.tensor(4.0), out)  # a batch of 1 real step, loss 4
        >>> totals.logs()  # loss (3 * 1 + 1 * 4) / 4, MAE (3 * 1 + 1 * 2) / 4
        {'loss': 1.75, 'mae': 1.25}
    """

    def __init__(self, heads: Sequence[Head]) -> None:
        self.heads = heads
        self.metrics = [metric for head in heads for metric in head.metrics]
        for metric in self.metrics:
            metric.reset()
        self.loss_sum: torch.Tensor | float = 0.0
        self.count: torch.Tensor | float = 0.0
        self.steps: torch.Tensor | float = 0.0
        self.names = [head.name for head in heads]
        trained = [i for i, head in enumerate(heads) if head.loss is not None]
        self.tracked = trained if len(trained) > 1 else []  # outputs whose loss is logged
        self.output_sums: list[torch.Tensor | float] = [0.0] * len(self.tracked)
        self.output_counts: list[torch.Tensor | float] = [0.0] * len(self.tracked)

    def update(
        self,
        out: Any,
        y: Any,
        loss: torch.Tensor,
        x: Masked | tuple[Masked, ...],
        output_losses: Sequence[torch.Tensor | None] | None = None,
    ) -> None:
        """Add a batch: its output(s) `out`, targets `y`, loss and inputs `x`, and each
        output's loss (`Trainer.output_losses`, needed when several are logged)."""
        outputs = split_outputs(out, self.names)
        targets = split_targets(y, self.names)
        n = counted(self.heads, outputs, targets)
        self.loss_sum = self.loss_sum + loss.detach().double() * n
        self.count = self.count + n
        self.steps = self.steps + real_steps(outputs[0], x)
        for slot, i in enumerate(self.tracked):
            part = None if output_losses is None else output_losses[i]
            if part is None:
                raise ConfigError(
                    format_error(
                        f"The loss of the output {self.names[i]!r} was not computed, so "
                        "its mean cannot be logged.",
                        fix="compute the loss with `trainer.compute_loss(batch, out)`, "
                        "which keeps each output's loss for the logs.",
                    )
                )
            steps = self.heads[i].loss.counted(targets[i], outputs[i]).sum()  # type: ignore[union-attr]
            self.output_sums[slot] = self.output_sums[slot] + part.double() * steps
            self.output_counts[slot] = self.output_counts[slot] + steps
        for head, output, target in zip(self.heads, outputs, targets, strict=True):
            for metric in head.metrics:
                metric.update(target, output)

    def logs(self) -> dict[str, Any]:
        count = float(self.count)
        logs = {"loss": float(self.loss_sum) / count if count else 0.0}
        for slot, i in enumerate(self.tracked):
            steps = float(self.output_counts[slot])
            logs[f"{self.names[i]}_loss"] = float(self.output_sums[slot]) / steps if steps else 0.0
        if len(self.heads) == 1:
            return {**logs, **flatten_results(self.metrics)}
        metrics: dict[str, Any] = {}
        for head in self.heads:
            metrics.update(flatten_results(head.metrics, f"{head.name}_"))
        return {**logs, **dict(sorted(metrics.items()))}  # Keras's order

    def read(self) -> tuple[float, dict[str, Any]]:
        return float(self.steps), self.logs()
