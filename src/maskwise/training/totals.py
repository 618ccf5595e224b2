"""What an epoch (or an evaluation) adds up: the loss weighted by real steps, and the
metrics, exactly over every real step seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import losses as losses_module
from ..masked import Masked


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


def flatten_results(metrics: Sequence[Any]) -> dict[str, Any]:
    """`{name: result}` for every metric; dict results are merged in.

    Example:
        >>> accuracy, recall = mw.metrics.get_metric("accuracy"), mw.metrics.Recall()
        >>> y_pred = Masked(torch.tensor([[[0.9, 0.1], [0.2, 0.8]]]), lengths_to_mask([2], 2))
        >>> for metric in (accuracy, recall):
        ...     metric.update(torch.tensor([[0, 0]]), y_pred)
        >>> flatten_results([accuracy, recall])
        {'accuracy': 0.5, 'recall/0': 0.5, 'recall/1': 0.0, 'recall_macro': 0.25}
    """
    logs: dict[str, Any] = {}
    for metric in metrics:
        result = metric.result()
        if isinstance(result, dict):
            logs.update(result)
        else:
            logs[metric.name] = result
    return logs


class EpochTotals:
    """Exact running loss (weighted by real steps) and metrics over an epoch.

    Example:
        >>> totals = EpochTotals([mw.metrics.MeanAbsoluteError()])
        >>> y = torch.zeros(1, 3, 1)
        >>> out = Masked(torch.ones(1, 3, 1), lengths_to_mask([3], 3))
        >>> totals.update(out, y, torch.tensor(1.0), out)  # a batch of 3 real steps, loss 1
        >>> out = Masked(torch.full((1, 3, 1), 2.0), lengths_to_mask([1], 3))
        >>> totals.update(out, y, torch.tensor(4.0), out)  # a batch of 1 real step, loss 4
        >>> totals.logs()  # loss (3 * 1 + 1 * 4) / 4, MAE (3 * 1 + 1 * 2) / 4
        {'loss': 1.75, 'mean_absolute_error': 1.25}
    """

    def __init__(self, metrics: Sequence[Any]) -> None:
        self.metrics = metrics
        for metric in metrics:
            metric.reset()
        self.loss_sum: torch.Tensor | float = 0.0
        self.count: torch.Tensor | float = 0.0
        self.steps: torch.Tensor | float = 0.0

    def update(
        self,
        out: Masked | torch.Tensor,
        y: torch.Tensor,
        loss: torch.Tensor,
        x: Masked | tuple[Masked, ...],
    ) -> None:
        n = output_steps(out)
        self.loss_sum = self.loss_sum + loss.detach().double() * n
        self.count = self.count + n
        self.steps = self.steps + real_steps(out, x)
        for metric in self.metrics:
            metric.update(y, out)

    def logs(self) -> dict[str, Any]:
        count = float(self.count)
        return {
            "loss": float(self.loss_sum) / count if count else 0.0,
            **flatten_results(self.metrics),
        }

    def read(self) -> tuple[float, dict[str, Any]]:
        return float(self.steps), self.logs()
