"""Stop `fit` at the first non-finite loss, gradient or weight, the weights kept finite.

A NaN or an infinity that reaches the weights never leaves them: every later step is
NaN too, and a checkpoint written afterwards is worthless. `NonFiniteGuard` watches
each training step: it copies the weights and the optimizer state just before
`optimizer.step()`, and after the step checks the loss, every gradient and every
weight together. If one holds NaN or inf (a bad batch; finite gradients times a huge
learning rate can still overflow the weights), the weights and the optimizer state
are put back as they were before the step, and `fit` ends with a `NonFiniteError`
naming the epoch and the batch (both counted from 1, as the progress bar shows), what
was not finite (the loss, a gradient, or a weight after the step), and the likely
causes.

The cost is one device synchronisation per step (a single read of one finiteness flag;
only a failed check reads more, to name the culprit) and one copy of the weights and
the optimizer state per step (into buffers reused across steps).
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

NOT_KEPT = (
    "The step was not kept: the weights and the optimizer state are those from before this batch."
)


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


def _first_bad(named: Sequence[tuple[str, torch.Tensor]]) -> tuple[str, torch.Tensor] | None:
    """The first `(name, tensor)` of `named` holding NaN or inf, or None."""
    return next(((n, t) for n, t in named if not bool(torch.isfinite(t).all())), None)


class NonFiniteGuard:
    """Checks one training step of `model` with `optimizer` (see the module docstring).

    Use, around each step (after `backward()`):

        guard.snapshot()
        optimizer.step()
        guard.check(loss, epoch, batch)

    Under a grad scaler, `check(..., gradients=False)` between `scaler.step` and
    `scaler.update`: non-finite gradients under a finite loss are a float16 overflow,
    which the scaler handles by skipping the step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params: list[torch.Tensor] = [p for _, p in self.named]
        self.optimizer = optimizer
        self._sources: list[torch.Tensor] = []  # the weights, then the state's tensors
        self._buffers: list[torch.Tensor] = []  # their copies, reused from step to step
        self._layout: list[tuple[torch.Tensor, str, Any]] = []  # (param, key, value or None)
        self._groups: list[dict[str, Any]] = []  # the groups' settings (lr, iterations)

    def _stop(self, epoch: int, batch: int, what: str, fix: str) -> NonFiniteError:
        return NonFiniteError(
            format_error(
                f"Training stopped at epoch {epoch + 1}, batch {batch + 1} (both counted "
                f"from 1, as the progress bar shows): {what}.",
                expected="a finite loss, finite gradients and finite weights at every step",
                fix=f"{fix} {CAUSES}",
            )
        )

    @torch.no_grad()
    def snapshot(self) -> None:
        """Copy the weights and the optimizer state (call just before `optimizer.step()`)."""
        state = self.optimizer.state
        self._groups = [
            {key: value for key, value in group.items() if key != "params"}
            for group in self.optimizer.param_groups
        ]
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
    def check(self, loss: torch.Tensor, epoch: int, batch: int, *, gradients: bool = True) -> None:
        """After `optimizer.step()`: if the loss, a gradient (unless `gradients` is
        False) or a weight holds NaN or inf, restore the weights and the optimizer state
        from the snapshot and raise `NonFiniteError` saying which."""
        grads = [(n, p.grad) for n, p in self.named if p.grad is not None] if gradients else []
        if _all_finite([loss, *(grad for _, grad in grads), *self.params]):
            return
        error = self._diagnose(loss, grads, epoch, batch)
        self._restore()
        raise error

    def _diagnose(
        self,
        loss: torch.Tensor,
        grads: Sequence[tuple[str, torch.Tensor]],
        epoch: int,
        batch: int,
    ) -> NonFiniteError:
        """The error naming the first non-finite thing: the loss, a gradient, a weight."""
        if not bool(torch.isfinite(loss).all()):
            return self._stop(epoch, batch, f"the loss is {float(loss.detach())}", NOT_KEPT)
        bad_grad = _first_bad(grads)
        if bad_grad is not None:
            name, grad = bad_grad
            return self._stop(
                epoch, batch, f"the gradient of {name!r}: {_count_bad(grad)}", NOT_KEPT
            )
        name, weight = next((n, p) for n, p in self.named if not bool(torch.isfinite(p).all()))
        rates = sorted({float(group["lr"]) for group in self.optimizer.param_groups})
        return self._stop(
            epoch,
            batch,
            f"the optimizer step made the weight {name!r} non-finite ({_count_bad(weight)}), "
            f"with learning rate {', '.join(map(str, rates))}",
            "The weights and the optimizer state are put back as they were before this step.",
        )

    def _restore(self) -> None:
        """Put back the weights, the optimizer state and its groups' settings as the
        snapshot holds them (a state made by the step itself is dropped)."""
        torch._foreach_copy_(self.params, self._buffers[: len(self.params)])
        state = self.optimizer.state
        for stale in [p for p in self.params if p in state]:
            del state[stale]
        saved = iter(self._buffers[len(self.params) :])
        for param, key, value in self._layout:
            state[param][key] = next(saved).clone() if value is None else value
        for group, settings in zip(self.optimizer.param_groups, self._groups, strict=True):
            group.update(settings)
