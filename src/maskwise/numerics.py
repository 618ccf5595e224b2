"""Stop `fit` at the first non-finite loss, gradient or weight, the weights kept finite.

A NaN or an infinity that reaches the weights never leaves them: every later step is
NaN too, and a checkpoint written afterwards is worthless. `NonFiniteGuard` watches
each training step:

- before `optimizer.step()`, the loss and every gradient must be finite; otherwise the
  step is not taken, so the weights and the optimizer state stay those of the last
  good batch;
- after the step, every weight must be finite (finite gradients times a huge learning
  rate can still overflow); otherwise the weights and the optimizer state are put
  back as they were before the step, from a copy taken just before it.

Either way `fit` ends with a `NonFiniteError` naming the epoch and the batch (both
counted from 1, as the progress bar shows), what was not finite, and the likely causes.
The cost is one device synchronisation before and one after each step, and one copy
of the weights and the optimizer state per step (into buffers reused across steps).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import NonFiniteError, format_error

CAUSES = (
    "Likely causes: NaN or inf in real steps of the inputs, the targets or the "
    "sample_weight (`maskwise doctor` reports them as MW005; fit's data checks too); "
    "a learning rate too high (try one 10x smaller); log, sqrt or division of "
    "zero or negative values in the model or a custom loss (add an epsilon or clamp)."
)


def _copy_into(buffer: Any, value: Any) -> Any:
    """`value` copied into `buffer` when it fits (no allocation), else a fresh copy."""
    if not isinstance(value, torch.Tensor):
        return value
    if (
        isinstance(buffer, torch.Tensor)
        and buffer.shape == value.shape
        and buffer.dtype == value.dtype
        and buffer.device == value.device
    ):
        return buffer.copy_(value)
    return value.detach().clone()


def _count_bad(tensor: torch.Tensor) -> str:
    bad = ~torch.isfinite(tensor)
    kinds = []
    if torch.isnan(tensor).any():
        kinds.append("NaN")
    if torch.isinf(tensor).any():
        kinds.append("inf")
    return f"{int(bad.sum())} of {tensor.numel()} values are {' and '.join(kinds)}"


class NonFiniteGuard:
    """Checks one training step of `model` with `optimizer` (see the module docstring).

    Use, around each step:

        guard.check_gradients(loss, epoch, batch)   # after backward()
        guard.snapshot()
        optimizer.step()
        guard.check_weights(epoch, batch)
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.optimizer = optimizer
        self._weights: list[torch.Tensor] = []
        self._state: dict[torch.Tensor, dict[str, Any]] = {}

    def _stop(self, epoch: int, batch: int, what: str, fix: str) -> NonFiniteError:
        return NonFiniteError(
            format_error(
                f"Training stopped at epoch {epoch + 1}, batch {batch + 1} (both counted "
                f"from 1, as the progress bar shows): {what}.",
                expected="a finite loss, finite gradients and finite weights at every step",
                fix=f"{fix} {CAUSES}",
            )
        )

    def check_gradients(self, loss: torch.Tensor, epoch: int, batch: int) -> None:
        """Raise `NonFiniteError` if the loss or a gradient holds NaN or inf
        (call after `backward()`, before `optimizer.step()`)."""
        grads = [(name, p.grad) for name, p in self.named if p.grad is not None]
        flags = [torch.isfinite(loss.detach()).all()]
        flags += [torch.isfinite(grad).all() for _, grad in grads]
        if bool(torch.stack(flags).all()):
            return
        kept = "The step was not taken: the weights are those from before this batch."
        if not bool(flags[0]):
            raise self._stop(epoch, batch, f"the loss is {float(loss.detach())}", kept)
        name, grad = next((n, g) for (n, g), ok in zip(grads, flags[1:], strict=True) if not ok)
        raise self._stop(epoch, batch, f"the gradient of {name!r}: {_count_bad(grad)}", kept)

    @torch.no_grad()
    def snapshot(self) -> None:
        """Copy the weights and the optimizer state (call just before `optimizer.step()`)."""
        params = [p for _, p in self.named]
        if len(self._weights) != len(params):
            self._weights = [p.detach().clone() for p in params]
        else:
            for buffer, param in zip(self._weights, params, strict=True):
                buffer.copy_(param)
        state = self.optimizer.state
        self._state = {
            param: {
                key: _copy_into(self._state.get(param, {}).get(key), value)
                for key, value in state[param].items()
            }
            for param in params
            if param in state
        }

    @torch.no_grad()
    def check_weights(self, epoch: int, batch: int) -> None:
        """After `optimizer.step()`: if a weight is not finite, restore the weights and
        the optimizer state from the snapshot and raise `NonFiniteError`."""
        flags = [torch.isfinite(p).all() for _, p in self.named]
        if not flags or bool(torch.stack(flags).all()):
            return
        name, bad = next((n, p) for (n, p), ok in zip(self.named, flags, strict=True) if not ok)
        what = f"the optimizer step made the weight {name!r} non-finite ({_count_bad(bad)})"
        rates = sorted({float(group["lr"]) for group in self.optimizer.param_groups})
        for (_, param), saved in zip(self.named, self._weights, strict=True):
            param.copy_(saved)
        state = self.optimizer.state
        for stale in [p for _, p in self.named if p in state]:
            del state[stale]
        for key, entries in self._state.items():
            state[key] = {
                key: value.clone() if isinstance(value, torch.Tensor) else value
                for key, value in entries.items()
            }
        raise self._stop(
            epoch,
            batch,
            f"{what}, with learning rate {', '.join(map(str, rates))}",
            "The weights and the optimizer state are put back as they were before this step.",
        )
