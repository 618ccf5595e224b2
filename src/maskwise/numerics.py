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

from collections.abc import Sequence
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

NOT_TAKEN = "The step was not taken: the weights are those from before this batch."


def _all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether every value of `tensors` is finite, in one cheap pass and one sync.

    A sum holding a NaN or an inf is NaN or inf, so a finite total proves every value
    finite; only a non-finite total (or an overflowing one) needs the exact check.
    """
    if not tensors:
        return True
    if bool(
        torch.isfinite(torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors]).sum())
    ):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


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
        self.params: list[torch.Tensor] = [p for _, p in self.named]
        self.optimizer = optimizer
        self._sources: list[torch.Tensor] = []  # the weights, then the state's tensors
        self._buffers: list[torch.Tensor] = []  # their copies, reused from step to step
        self._layout: list[tuple[torch.Tensor, str, Any]] = []  # (param, key, value or None)

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
        if _all_finite([loss, *(grad for _, grad in grads)]):
            return
        self.check_loss(loss, epoch, batch)
        name, grad = next((n, g) for n, g in grads if not bool(torch.isfinite(g).all()))
        raise self._stop(epoch, batch, f"the gradient of {name!r}: {_count_bad(grad)}", NOT_TAKEN)

    def check_loss(self, loss: torch.Tensor, epoch: int, batch: int) -> None:
        """Raise `NonFiniteError` if the loss holds NaN or inf (before `optimizer.step()`;
        alone under a grad scaler, which skips the steps whose gradients overflow)."""
        if not bool(torch.isfinite(loss).all()):
            raise self._stop(epoch, batch, f"the loss is {float(loss.detach())}", NOT_TAKEN)

    @torch.no_grad()
    def snapshot(self) -> None:
        """Copy the weights and the optimizer state (call just before `optimizer.step()`)."""
        state = self.optimizer.state
        self._layout = [
            (param, key, None if isinstance(value, torch.Tensor) else value)
            for param in self.params
            if param in state
            for key, value in state[param].items()
        ]
        sources = self.params + [
            state[param][key] for param, key, value in self._layout if value is None
        ]
        if len(sources) == len(self._sources) and all(
            a is b for a, b in zip(sources, self._sources, strict=True)
        ):
            torch._foreach_copy_(self._buffers, sources)
        else:  # first step, or the optimizer made new state tensors: new buffers
            self._sources = sources
            self._buffers = [t.detach().clone() for t in sources]

    @torch.no_grad()
    def check_weights(self, epoch: int, batch: int) -> None:
        """After `optimizer.step()`: if a weight is not finite, restore the weights and
        the optimizer state from the snapshot and raise `NonFiniteError`."""
        if _all_finite(self.params):
            return
        name, bad = next((n, p) for n, p in self.named if not bool(torch.isfinite(p).all()))
        what = f"the optimizer step made the weight {name!r} non-finite ({_count_bad(bad)})"
        rates = sorted({float(group["lr"]) for group in self.optimizer.param_groups})
        torch._foreach_copy_(self.params, self._buffers[: len(self.params)])
        state = self.optimizer.state
        for stale in [p for p in self.params if p in state]:
            del state[stale]
        saved = iter(self._buffers[len(self.params) :])
        for param, key, value in self._layout:
            state[param][key] = next(saved).clone() if value is None else value
        raise self._stop(
            epoch,
            batch,
            f"{what}, with learning rate {', '.join(map(str, rates))}",
            "The weights and the optimizer state are put back as they were before this step.",
        )
