"""`Trainer`: the training loop of a maskwise model, composed into it (`model.trainer`).

The model's `compile`, `fit`, `evaluate`, `predict` and `save` hand over to it. It owns
what training needs besides the weights: what `compile` fixed (`compiled`), the
optimizer, the `TrainingState` (epoch, step, loader seed, ...), the callbacks of the
last `fit` and their `History`.

One batch is one call of a step, as in Keras, each one overridable:

- `train_step(batch) -> logs`: `forward`, `compute_loss`, `zero_grad`, `backward`,
  `optimizer_step` (which holds the non-finite guard) and `update_metrics`, each a
  method of its own;
- `test_step(batch) -> logs`: the loss and the metrics, without gradients;
  the loss of both includes the layers' penalties (`*_regularizer`, Keras's
  `model.losses`), and the weights' constraints (`*_constraint`) apply after each
  optimizer step;
- `predict_step(batch) -> Masked`: the model's output.

Override them on the model (`def train_step(self, batch)` in your `Module`, calling
`self.trainer`'s pieces, as a Keras user overrides `Model.train_step`), or subclass
`Trainer` and set `trainer_class = MyTrainer` on the model class.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoint, distributed
from ..callbacks import Callback, History, hook_order, require_validation
from ..data import Batch, Loader
from ..doctor.guards import Guard
from ..errors import ConfigError, NonFiniteError, format_error
from ..layers import _host
from ..layers._keras_args import apply_constraints, collect_losses, one_pass
from ..layers.base import Layer
from ..masked import Masked, as_masked
from ..numerics import NonFiniteGuard
from ..optimizers import Optimizer
from ..progress import ProgressBar, resolve_verbose
from .callback_list import CallbackList
from .compiled import Compiled, check_learning_rate, compile_args
from .distributed import (
    Update,
    count_first,
    evaluation_plan,
    gather_predictions,
    reduce_totals,
    wrap,
)
from .epochs import (
    batches_run,
    check_epochs,
    check_steps,
    check_validation_freq,
    epoch_window,
    validates,
)
from .inputs import (
    data_loader,
    forward,
    inputs_by_name,
    read_targets,
    require_batches,
    require_grad_mode,
    require_targets,
    resolve_device,
    split_validation,
    validation_inputs,
    validation_loader,
)
from .modes import training_mode
from .outputs import (
    check_class_weight,
    map_outputs,
    output_names,
    pack,
    split_outputs,
    split_targets,
    targets_by_name,
    validation_targets,
)
from .predictions import Predictions
from .state import TrainingState
from .totals import EpochTotals, real_steps
from .transfer import prefetch

if TYPE_CHECKING:
    from .trainable import Trainable

Logs = dict[str, Any]


def check_jit_compile(jit_compile: Any) -> None:
    """`fit(jit_compile=...)`: a bool."""
    if not isinstance(jit_compile, bool):
        raise ConfigError(
            format_error(
                "fit(jit_compile=...) takes True or False.",
                received=repr(jit_compile),
            )
        )


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""The dtype `fit(precision=...)` runs the forward pass in (autocast)."""


def float16_runs_on(device: torch.device) -> bool:
    """Whether float16 autocast trains on `device`: not on CPU, where PyTorch's LSTM
    kernel does not run in float16 and float16 is slower than float32 anyway."""
    return device.type != "cpu"


def check_precision(precision: Any, device: torch.device) -> None:
    """`fit(precision=...)` on `device`: None (float32), "bf16", or "fp16" off the CPU."""
    if precision == "fp16" and not float16_runs_on(device):
        raise ConfigError(
            format_error(
                "fit(precision='fp16') needs a GPU: on CPU, PyTorch's LSTM kernel does not "
                "run in float16, and float16 is slower there than float32.",
                received=f"device {device}",
                fix="on CPU use precision='bf16' (or None); train with 'fp16' on a GPU.",
            )
        )
    if precision in (None, *AUTOCAST):
        return
    raise ConfigError(
        format_error(
            "Unsupported fit(precision=...).",
            expected="None (float32), 'bf16' or 'fp16'",
            received=repr(precision),
            fix="use precision='bf16' (autocast to bfloat16) or 'fp16' (autocast to "
            "float16 with a grad scaler), or None.",
        )
    )


class Resume:
    """A checkpoint `fit` resumes from: the file, and the training state it holds."""

    def __init__(self, path: str | Path) -> None:
        self.file = checkpoint.Checkpoint(path)
        self.state = checkpoint.read_state(self.file)


class Trainer:
    """The loop that trains, evaluates and predicts with `model` (see the module
    docstring).

    Example:
        >>> class CountingTrainer(Trainer):
        ...     steps = 0
        ...     def train_step(self, batch):
        ...         self.steps += 1
        ...         return super().train_step(batch)
        >>> class Tagger(mw.Sequential):
        ...     trainer_class = CountingTrainer
        >>> model = Tagger([layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = y = np.ones((4, 3, 1), dtype="float32")
        >>> _ = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
        >>> model.trainer.steps, model.trainer.state.epoch  # 2 epochs of 2 batches
        (4, 2)

    Attributes:
        model: the model trained.
        compiled: what `compile` fixed (None before `compile`).
        optimizer: the `torch.optim.Optimizer`, made at the first `fit` once the
            model's lazy weights are built (None before).
        state: the `TrainingState`.
        callbacks: the last `fit`'s `CallbackList` (None before `fit`).
        history: the last `fit`'s `History`.
        stop_training: set to True (e.g. by a callback, through `model.stop_training`)
            to stop `fit` after the current epoch.
        totals: the running loss and metrics of the epoch or evaluation in progress,
            which `update_metrics` adds to.
        class_weight: the last `fit`'s `class_weight` (`train_step` weighs the loss
            with it).
        output_losses: each output's loss in the last `compute_loss` (detached; None
            for an output without a loss), which `update_metrics` adds to `totals`.
        parallel: during a data-parallel `fit`, the model in `DistributedDataParallel`
            (`forward` calls it where gradients flow); None otherwise.
        plan: during `fit`, its `Update` (how many batches make an optimizer update,
            on how many processes); None otherwise.
        update: `plan` while `fit` runs training batches; during an evaluation under
            data parallel of several outputs with a loss, its `evaluation_plan`; None
            otherwise. `compute_loss`, `zero_grad` and `optimizer_step` follow it.
        num_batches: the batches of the epoch in progress.
        spare: a batch of this process's data, run with a zero loss when its share of a
            global batch is empty (see `train_step`).
    """

    def __init__(self, model: Trainable) -> None:
        self.model = model
        self.compiled: Compiled | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.state = TrainingState()
        self.callbacks: CallbackList | None = None
        self.history: History | None = None
        self.stop_training = False
        self.totals: EpochTotals | None = None
        self.class_weight: Any = None
        self.output_losses: list[torch.Tensor | None] | None = None
        self.guard: NonFiniteGuard | None = None
        self.parallel: DistributedDataParallel | None = None
        # During `fit(jit_compile=True)`: the torch.compile of the model (under data
        # parallel, of `parallel`: its training steps; evaluation runs eagerly there).
        self.jitted: Callable[..., Any] | None = None
        self.precision: str | None = None  # "bf16" or "fp16" during such a fit
        self.scaler: torch.amp.GradScaler | None = None  # of the last fp16 fit
        self.plan: Update | None = None
        self.update: Update | None = None
        self.num_batches = 0
        self.steps_per_epoch: int | None = None
        self.validation_freq = 1  # during fit, its validation_freq
        self.validation_steps: int | None = None  # and its validation_steps
        self.spare: Batch | None = None

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: Any,
        loss: Any,
        *,
        metrics: Any,
        learning_rate: Any,
        loss_weights: Any = None,
    ) -> None:
        """Fix the optimizer, the loss and the metrics of each of the model's outputs
        (see `Trainable.compile`); the optimizer is made again at the next `fit`. The
        arguments after `loss` are keyword-only: Keras 3's `compile` takes
        `loss_weights` third, Keras 2's `metrics`."""
        names = output_names(self.model)
        self.compiled = Compiled(optimizer, loss, metrics, learning_rate, loss_weights, names)
        self.optimizer = None

    def require_compiled(self, what: str) -> Compiled:
        """`compiled`, or a `ConfigError` saying that `what` needs `compile` first."""
        if self.compiled is None:
            raise ConfigError(
                format_error(
                    f"{what}() needs a compiled model: call compile() first.",
                    fix="e.g. `model.compile(optimizer='adam', "
                    "loss='sparse_categorical_crossentropy', metrics=['accuracy'])`.",
                )
            )
        return self.compiled

    def require_trainable(self) -> None:
        """Refuse to train a model with no weight to train (PyTorch's backward pass would
        stop at "element 0 of tensors does not require grad")."""
        if not any(param.requires_grad for param in self.model.parameters()):
            raise ConfigError(
                format_error(
                    f"{type(self.model).__name__} has no weight to train: every weight is "
                    "frozen (`trainable = False` or `requires_grad_(False)`), or it has none.",
                    expected="at least one weight with requires_grad=True",
                    fix="unfreeze the layers to train (`model.get_layer(name).trainable = "
                    "True`, `layer.requires_grad_(True)`); to score a frozen model use "
                    "evaluate() or predict().",
                )
            )

    def ensure_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, made on the model's parameters if needed, its rates checked."""
        if self.optimizer is None:
            self.optimizer = self.require_compiled("fit").make_optimizer(self.model.parameters())
        for group in self.optimizer.param_groups:
            check_learning_rate(group["lr"], f"the optimizer {type(self.optimizer).__name__}")
        return self.optimizer

    def follow_weights(self, moved: dict[int, torch.Tensor]) -> None:
        """After the model's weights moved or changed dtype (`model.to(...)`; `moved`:
        each weight before the move, by `id`, to the weight after it, a new tensor
        where `nn.Module` could not move it in place): the optimizer then steps the
        weights after the move, its state tensors where they are, by the optimizer's
        own rule (its `load_state_dict`: moment buffers take the weight's device and
        dtype, Adam's `step` count stays a float32 CPU scalar unless the optimizer is
        `fused` or `capturable`). The non-finite guard's copies are made anew."""
        self.guard = None
        optimizer = self.optimizer
        if optimizer is None:
            return
        state = optimizer.state_dict()  # the state by position, read before the swap
        for group in optimizer.param_groups:
            group["params"] = [moved.get(id(p), p) for p in group["params"]]
        optimizer.load_state_dict(state)

    def make_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """The grad scaler of `fit(precision="fp16")`: the last fp16 fit's, else a new
        one on `device`'s kind, set to a resumed run's state (`TrainingState.grad_scaler`)
        when there is one."""
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler(device.type)
            if self.state.grad_scaler is not None:
                self.scaler.load_state_dict(self.state.grad_scaler)
        return self.scaler

    def _scaling(self) -> torch.amp.GradScaler | None:
        """The grad scaler while a `fit(precision="fp16")` runs; None otherwise."""
        return self.scaler if self.precision == "fp16" else None

    def _optimizer(self) -> torch.optim.Optimizer:
        """The optimizer in use (its rates were checked when `fit` began)."""
        return self.optimizer if self.optimizer is not None else self.ensure_optimizer()

    # ------------------------------------------------------------------ state
    def snapshot(self) -> TrainingState | None:
        """The training state as a checkpoint keeps it (None when not compiled): the
        counters, the compile config, the optimizer's and the last `fit`'s callbacks'."""
        if self.compiled is None:
            return None
        callbacks, tensors = self.callbacks.states() if self.callbacks else ({}, {})
        return TrainingState(
            epoch=self.state.epoch,
            step=self.state.step,
            batch=self.state.batch,
            loader_seed=self.state.loader_seed,
            compile=self.compiled.config(self.optimizer),
            optimizer=None if self.optimizer is None else self.optimizer.state_dict(),
            grad_scaler=self.state.grad_scaler if self.scaler is None else self.scaler.state_dict(),
            callbacks=callbacks,
            callback_tensors=tensors,
        )

    def compile_from(self, state: TrainingState) -> None:
        """Compile as `state` says, unless compiled already (or its config is
        incomplete, e.g. a custom loss: then compile by hand before resuming)."""
        if self.compiled is not None or state.compile is None:
            return
        args = compile_args(state.compile)
        if args is not None:
            self.compile(
                args["optimizer"],
                args["loss"],
                metrics=args["metrics"],
                learning_rate=None,
                loss_weights=args["loss_weights"],
            )

    def restore(self, state: TrainingState) -> None:
        """Put `state` back: compile (see `compile_from`), then the optimizer's state and
        the counters. The model must be built (the optimizer is made on its weights).
        The callbacks' state goes back in `fit`, into the callbacks passed to it."""
        self.compile_from(state)
        if self.compiled is None:
            return
        if state.optimizer is not None:
            self.ensure_optimizer().load_state_dict(state.optimizer)
        self.state.epoch = state.epoch
        self.state.step = state.step
        self.state.batch = state.batch
        self.state.loader_seed = state.loader_seed
        self.state.grad_scaler = state.grad_scaler
        self.scaler = None  # made again from this state by the next fp16 fit

    def save(self, path: str | Path, weights_only: bool = False) -> Path:
        """`checkpoint.save` of the model with its training state (atomic; without it
        when `weights_only`). Under data parallel only rank 0 writes (every process
        holds the same weights and state); the others return the path without writing,
        and nothing waits for them, so `if rank() == 0: model.save(path)` works too
        (call `torch.distributed.barrier()` before the others read the file)."""
        if weights_only:
            checkpoint.check_suffix(Path(path), weights_only=True)
        if distributed.rank() != 0:
            return Path(path)
        return checkpoint.save(self.model, path, None if weights_only else self.snapshot())

    # ------------------------------------------------------------------ the steps
    def forward(self, x: Masked | tuple[Masked, ...]) -> Any:
        """The model's output on a batch's inputs: a `Masked` or a tensor, or a list or
        dict of them for several outputs. It goes through `DistributedDataParallel`
        during a data-parallel `fit`, where gradients flow; under `fit(precision=
        "bf16" | "fp16")` it is computed in bfloat16 or float16 autocast and returned in
        float32, so losses and metrics keep full precision."""
        if self.precision is None:
            with one_pass(self.model):
                return self._forward(x)
        device = next(self.model.parameters()).device.type
        with (
            torch.autocast(device_type=device, dtype=AUTOCAST[self.precision]),
            one_pass(self.model),
        ):
            out = self._forward(x)
        return map_outputs(
            out, lambda o: Masked(o.values.float(), o.mask) if isinstance(o, Masked) else o.float()
        )

    def _forward(self, x: Masked | tuple[Masked, ...]) -> Any:
        parallel, jitted = self.parallel, self.jitted
        if parallel is None:
            return forward(self.model if jitted is None else jitted, x)
        if not torch.is_grad_enabled():  # each process on its own, eagerly
            return forward(self.model, x)
        model = parallel if jitted is None else jitted
        update = self.update
        if update is not None and not update.last(self.state.batch, self.num_batches):
            # Within an update, gradients add up locally; its last piece all-reduces.
            with parallel.no_sync():
                return forward(model, x)
        return forward(model, x)

    def compute_loss(self, batch: Batch, out: Any, class_weight: Any = None) -> torch.Tensor:
        """The compiled loss of `out` against the batch's targets and sample weights:
        the batch's own mean; while `fit` trains in pieces (data parallel or
        `steps_per_update`), each output's loss divided by its count over the whole
        update (`maskwise.training.distributed.Update`: a piece's sum, which
        `optimizer_step` normalises, for one loss; each output's global mean for
        several). With several outputs, the weighted sum of each output's loss (kept,
        detached, in `output_losses` for the logs: each one's own on the batch).

        The layers' penalties (`Layer.losses`) are added, once per batch as in Keras;
        to a piece's loss as `Update.penalty` scales it, so that the update's
        gradient holds each penalty once."""
        compiled = self.require_compiled("fit")
        penalty = self.penalty()
        update = self.update
        if update is None or update.plain:
            parts = compiled.output_losses(batch.y, out, batch.sample_weight, class_weight)
            self.output_losses = [None if part is None else part.detach() for part in parts]
            total = compiled.total(parts)
            return total if penalty is None else total + penalty
        names = compiled.names
        normalizers = update.normalizers(split_outputs(out, names), split_targets(batch.y, names))
        parts = compiled.output_losses(batch.y, out, batch.sample_weight, class_weight, normalizers)
        self.output_losses = update.own(parts)
        total = compiled.total(parts)
        update.note_loss(total, penalty)
        return total if penalty is None else total + update.penalty(penalty)

    def penalty(self) -> torch.Tensor | None:
        """The sum of the model's layers' penalties (`Layer.losses`), None without any."""
        losses = collect_losses(self.model)
        return sum(losses[1:], losses[0]) if losses else None

    def batch_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The batch's loss for the logs from what `compute_loss` returned, detached:
        the batch's own mean; for a piece, whose loss is normalised by the whole
        update's count, what `compute_loss` noted (`Update.note_loss`: its own mean
        for one loss; for several, its share of the global batch's loss per step it
        counts, which the epoch's totals add up to one process's `loss`)."""
        update = self.update
        if update is None or update.plain or update.shown is None:
            return loss.detach()
        return update.shown

    def zero_grad(self) -> None:
        """Clear the gradients before a backward pass (when several batches make an
        update, `steps_per_update`, only before its first)."""
        if self.update is None or self.update.first(self.state.batch):
            self._optimizer().zero_grad()

    def backward(self, loss: torch.Tensor) -> None:
        """Add the gradients of `loss` to the weights' `.grad` (under `fit(precision=
        "fp16")`, of the loss times the grad scaler's scale, so that small float16
        gradients do not flush to zero; `optimizer_step` divides it out)."""
        scaler = self._scaling()
        (loss if scaler is None else scaler.scale(loss)).backward()

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """One optimizer step, guarded: after it, the loss, the gradients and the new
        weights must be finite (one check, one host read), else the step is undone and
        `NonFiniteError` raised (`numerics.NonFiniteGuard`).

        When `fit` trains in pieces, only the last piece of an update steps, after the
        gradients are divided by the update's global count (`Update.finish`).

        Under `fit(precision="fp16")` the grad scaler first divides the gradients by
        its scale (`unscale_`), so the optimizer sees true gradients. Then non-finite
        gradients under a finite loss are a float16 overflow of the scaled backward
        pass, not an error: the scaler skips that step and lowers its scale
        (`GradScaler.step`, `update`), and the guard checks the loss and the weights
        only. A non-finite loss still stops `fit` (the scaler has lowered its scale
        for that step, as for an overflow)."""
        update = self.update
        if update is not None and not update.plain:
            if not update.last(self.state.batch, self.num_batches):
                return
            update.finish(self.model.parameters())
        optimizer = self._optimizer()
        guard = self.guard
        if guard is None or guard.optimizer is not optimizer:
            guard = self.guard = NonFiniteGuard(self.model, optimizer)
        scaler = self._scaling()
        guard.snapshot()
        if scaler is None:
            optimizer.step()
        else:
            scaler.unscale_(optimizer)
            scaler.step(optimizer)
        apply_constraints(self.model)
        try:
            guard.check(loss, self.state.epoch, self.state.batch, gradients=scaler is None)
        finally:  # even after a refused step, so that the scaler can step again
            if scaler is not None:
                scaler.update()

    def update_metrics(self, batch: Batch, out: Any, loss: torch.Tensor) -> None:
        """Add the batch's loss (`batch_loss`), its outputs' losses (`output_losses`)
        and metrics to `totals` (the loss needed targets)."""
        if self.totals is not None and batch.y is not None:
            self.totals.update(out, batch.y, self.batch_loss(loss), batch.x, self.output_losses)
        self.output_losses = None  # used once: a step without compute_loss leaves none

    def train_step(self, batch: Batch) -> Logs:
        """Train on one batch; returns `{"loss": the batch's loss}` (a tensor).

        Under data parallel, this process's share of a global batch holding fewer
        sequences than processes is empty (`batch.size == 0`): the step then runs
        `spare` with a zero loss, so that the gradients' all-reduce (and, for several
        losses, the counts', `Update.idle`) meets every process.
        """
        if batch.size == 0:
            return self._idle_step()
        out = self.forward(batch.x)
        loss = self.compute_loss(batch, out, self.class_weight)
        self.zero_grad()
        self.backward(loss)
        self.optimizer_step(loss)
        self.update_metrics(batch, map_outputs(out, lambda o: o.detach()), loss)
        return {"loss": self.batch_loss(loss)}

    def _idle_step(self) -> Logs:
        """A step without data: a zero loss on `spare` (see `train_step`)."""
        spare = self.spare
        if spare is None:
            raise ConfigError(
                format_error(
                    "train_step got an empty batch outside a data-parallel fit.",
                    fix="skip batches with `batch.size == 0`, or call it from fit.",
                )
            )
        out = self.forward(spare.x)
        if self.update is not None:
            self.update.idle()  # after the forward pass, as the others count theirs
        compiled = self.require_compiled("fit")
        ones = [1.0] * len(compiled.heads)
        parts = compiled.output_losses(spare.y, out, spare.sample_weight, None, ones)
        loss = compiled.total(parts) * 0
        self.zero_grad()
        self.backward(loss)
        self.optimizer_step(loss)
        return {"loss": loss.detach()}

    def test_step(self, batch: Batch) -> Logs:
        """Measure one batch (called without gradients, in evaluation mode); returns
        `{"loss": the batch's loss}`."""
        require_targets(batch.y, "evaluate")
        out = self.forward(batch.x)
        loss = self.compute_loss(batch, out)
        self.update_metrics(batch, out, loss)
        return {"loss": self.batch_loss(loss)}

    def predict_step(self, batch: Batch) -> Any:
        """The model's output on one batch (called without gradients, in evaluation
        mode), as a `Masked` (a list or dict of them for several outputs)."""
        return map_outputs(self.forward(batch.x), as_masked)

    # ------------------------------------------------------------------ plumbing
    def place(self, device: torch.device | str | None) -> torch.device:
        """Move the model to `device` (checked) and return it; None: where it is."""
        if device is not None:
            resolved = resolve_device(device)
            self.model.to(resolved)
            return resolved
        for param in self.model.parameters():
            return param.device
        return torch.device("cpu")

    def build(self, x: Masked | tuple[Masked, ...]) -> None:
        """Build lazy layers with one forward pass (evaluation mode, no gradients)."""
        if not any(isinstance(m, Layer) and not m.built for m in self.model.modules()):
            return
        with training_mode(self.model, False), torch.no_grad():
            self.forward(x)

    def run_eval(
        self,
        loader: Loader,
        device: torch.device,
        callbacks: CallbackList | None = None,
        steps: int | None = None,
    ) -> Logs:
        """The loss and the metrics over the first `steps` batches of `loader` (None:
        all), calling the `on_test_*` hooks of `callbacks` as Keras does. Under data
        parallel every process runs the same global batches (its share of each)."""
        heads = self.require_compiled("evaluate").heads
        self.totals = totals = EpochTotals(heads)
        self.update = plan = evaluation_plan(heads)
        batch_logs = callbacks is not None and callbacks.wants("on_test_batch_end")
        if callbacks is not None:
            callbacks.on_test_begin({})
        try:
            with training_mode(self.model, False), torch.no_grad():
                batches = itertools.islice(loader, steps)
                for index, batch in enumerate(prefetch(batches, device)):
                    if callbacks is not None:
                        callbacks.on_test_batch_begin(index, {})
                    if batch.size:  # under data parallel, a share may be empty
                        with _host.exact_checks(index == 0):
                            self.model.test_step(batch)
                    elif plan is not None:
                        plan.idle()  # the others sum their counts with this share's
                    if callbacks is not None:
                        callbacks.on_test_batch_end(index, totals.logs() if batch_logs else {})
        finally:
            self.update = None
        reduce_totals(totals)
        logs = totals.logs()
        if callbacks is not None:
            callbacks.on_test_end(logs)
        return logs

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Any = None,
        validation_batch_size: int | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        bucketing: bool = True,
        callbacks: Sequence[Callback] | None = None,
        verbose: int | str = 1,
        sample_weight: Any = None,
        class_weight: Any = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        resume_from: str | Path | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
        steps_per_update: int = 1,
        jit_compile: bool = False,
        precision: str | None = None,
        initial_epoch: int | None = None,
        steps_per_epoch: int | None = None,
        validation_freq: int = 1,
        validation_steps: int | None = None,
    ) -> History:
        """Train for `epochs` epochs (see `Trainable.fit` for the arguments)."""
        require_grad_mode("fit")
        distributed.init_process_group(device or self.place(None))
        check_jit_compile(jit_compile)
        check_precision(precision, self.place(None) if device is None else resolve_device(device))
        check_epochs(initial_epoch, epochs, steps_per_epoch)
        check_validation_freq(validation_freq)
        check_steps(validation_steps, "fit", "validation_steps")
        verbose = resolve_verbose(verbose)
        resume = None if resume_from is None else Resume(resume_from)
        saved = None if resume is None else resume.state
        if resume is not None and saved is not None:
            with checkpoint.reading(resume.file, "compiling as the checkpoint says"):
                self.compile_from(saved)
        compiled = self.require_compiled("fit")
        plan = Update(compiled.heads, steps_per_update)
        check_class_weight(class_weight, compiled.names)
        x, y = inputs_by_name(x, self.model, "fit"), targets_by_name(y, compiled.names, "fit")
        validation_data = validation_targets(validation_data, compiled.names)
        validation_data = validation_inputs(validation_data, self.model)
        guard = Guard(checks, "fit", mask_value)
        guard.data(x, y, sample_weight)
        if validation_data is not None:
            guard.validation(validation_data)
        if seed is not None:
            torch.manual_seed(seed)
        loader_seed = self._loader_seed(seed, saved)
        x, y, sample_weight, validation_data = split_validation(
            x, y, sample_weight, validation_data, validation_split
        )
        loader = data_loader(
            x, y, sample_weight, batch_size, mask_value, shuffle, bucketing, loader_seed
        )
        val_batch_size = batch_size if validation_batch_size is None else validation_batch_size
        val_loader = validation_loader(
            validation_data, val_batch_size, mask_value, bucketing=validation_steps is None
        )  # with validation_steps, the first batches hold the first sequences, as in Keras
        require_batches(loader, "training data")
        if val_loader is not None:
            require_batches(val_loader, "validation data")
        else:
            require_validation(hook_order(callbacks or []))
        placed = self.place(device)
        for data in (loader, val_loader):  # per step or per sequence: the output says
            if data is not None:
                read_targets(data, self.model, compiled.names, placed)
        if initial_epoch is None:
            initial_epoch = 0 if saved is None else saved.epoch
        first = self._first_batch(loader, initial_epoch, placed)
        self.build(first.x)
        guard.model(self.model, first, probe=True)  # on the model itself, not its wrapper
        if resume is not None:
            self._resume(resume)
        params = {"verbose": verbose, "epochs": epochs, "steps": steps_per_epoch or len(loader)}
        callback_list = self._begin(loader_seed, initial_epoch, class_weight, callbacks, params)
        if saved is not None:
            callback_list.restore(saved.callbacks, saved.callback_tensors)
        self.plan, self.spare = plan, first
        self.parallel = wrap(self.model, placed)
        if jit_compile:  # ragged batches: one graph for every batch size and length
            model = self.model if self.parallel is None else self.parallel
            self.jitted = torch.compile(model, dynamic=True)
        self.precision = precision
        if precision == "fp16":
            self.make_scaler(placed)
        self.steps_per_epoch = steps_per_epoch
        self.validation_freq, self.validation_steps = validation_freq, validation_steps
        try:
            return self._run_epochs(
                callback_list,
                loader,
                val_loader,
                placed,
                range(initial_epoch, epochs),
                verbose if distributed.rank() == 0 else 0,
            )
        finally:
            self.parallel = self.plan = self.spare = self.jitted = self.precision = None
            self.steps_per_epoch = None
            self.validation_freq, self.validation_steps = 1, None

    def _loader_seed(self, seed: int | None, saved: TrainingState | None) -> int:
        """The seed of the batch order: `seed`, else the resumed run's, else a new one."""
        if seed is not None:
            return seed
        if saved is not None and saved.loader_seed is not None:
            return saved.loader_seed
        # Under data parallel every process must draw the same batches: rank 0's seed.
        return int(distributed.all_gather_objects(int(torch.randint(2**31 - 1, ())))[0])

    def _first_batch(self, loader: Loader, epoch: int, device: torch.device) -> Batch:
        """The first non-empty batch of `epoch`, on `device` (it builds the model and is
        checked). Under data parallel, a process needs a sequence of its own."""
        world = distributed.world_size()
        if loader.num_sequences < world:
            raise ConfigError(
                format_error(
                    f"The training data holds fewer sequences than the {world} processes.",
                    expected=f"at least {world} sequences (one per process)",
                    received=f"{loader.num_sequences} sequence(s)",
                    fix="train on more data, or on fewer processes.",
                )
            )
        loader.set_epoch(epoch)
        first = next(batch for batch in loader if batch.size).to(device)
        require_targets(first.y, "fit")
        return first

    def _resume(self, resume: Resume) -> None:
        """Load the checkpoint's weights, its training state and its random state."""
        checkpoint.load_weights(self.model, resume.file)
        if resume.state is not None:
            with checkpoint.reading(resume.file, "restoring the compile and training state"):
                self.restore(resume.state)
        checkpoint.restore_rng(resume.file)

    def _begin(
        self,
        loader_seed: int,
        initial_epoch: int,
        class_weight: Any,
        callbacks: Sequence[Callback] | None,
        params: dict[str, Any],
    ) -> CallbackList:
        """Make the optimizer and the callback list (its `on_train_begin` called), and
        set the counters."""
        self.require_trainable()
        self.ensure_optimizer()
        self.guard = None
        self.state.loader_seed = loader_seed
        self.state.epoch = initial_epoch
        self.state.batch = 0
        self.class_weight = class_weight
        self.callbacks = CallbackList(callbacks, self.model, params)
        self.history = self.callbacks.history
        self.stop_training = False
        self.callbacks.on_train_begin({})
        return self.callbacks

    def _run_epochs(
        self,
        callbacks: CallbackList,
        loader: Loader,
        val_loader: Loader | None,
        device: torch.device,
        epochs: range,
        verbose: int | str,
    ) -> History:
        """The epochs (until one sets `stop_training`), then `on_train_end`; the
        model's training flag is put back as it was before them."""
        logs: Logs = {}
        with training_mode(self.model, True):
            for epoch in epochs:
                callbacks.on_epoch_begin(epoch, {})  # empty, as in Keras
                try:
                    logs = self.run_epoch(epoch, epochs.stop, loader, val_loader, device, verbose)
                except NonFiniteError as error:  # the step was not kept (NonFiniteGuard)
                    if not callbacks.stop_on_non_finite(error):
                        raise
                    break
                callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        if isinstance(self.optimizer, Optimizer) and len(epochs):
            self.optimizer.finalize_variable_values()  # use_ema: the averaged weights
        callbacks.on_train_end(logs)
        return callbacks.history

    def run_epoch(
        self,
        epoch: int,
        epochs: int,
        loader: Loader,
        val_loader: Loader | None,
        device: torch.device,
        verbose: int | str,
    ) -> Logs:
        """One epoch of training steps, then the validation (on the epochs `validates`
        picks); returns the epoch's logs. With several outputs with a loss and several
        batches per update, each update's batches are read ahead and counted before it
        trains (`maskwise.training.distributed.count_first`)."""
        compiled = self.require_compiled("fit")
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        window = epoch_window(epoch, len(loader), self.steps_per_epoch)
        bar = ProgressBar(window.batches, verbose)
        self.totals = totals = EpochTotals(compiled.heads)
        self.model.train()
        loader.set_epoch(window.seed)
        self.num_batches = window.batches
        self.update = self.plan
        batches: Iterable[tuple[int, Batch]] = enumerate(
            prefetch(itertools.islice(loader, window.start, window.start + window.batches), device)
        )
        if self.plan is not None:  # several losses accumulated: each update counted first
            batches = count_first(batches, self.plan, window.batches, self.model)
        try:
            for index, batch in batches:
                self.state.batch = index
                if self.callbacks is not None:
                    self.callbacks.on_train_batch_begin(index)
                with _host.exact_checks(index == 0):  # later batches: checked on the device
                    step_logs = self.model.train_step(batch)
                self.state.batch = index + 1
                if self.plan is None or self.plan.last(index, self.num_batches):
                    self.state.step += 1
                if self.callbacks is not None and self.callbacks.has_batch_hooks:
                    logs = {"loss": float(step_logs["loss"]), "size": batch.size}
                    self.callbacks.on_batch_end(index, logs)
                bar.update(index + 1, totals.read)  # this process's share so far
        finally:
            self.update = None
        reduce_totals(totals)
        logs = totals.logs()
        if val_loader is not None and validates(epoch, self.validation_freq):
            val = self.run_eval(val_loader, device, self.callbacks, self.validation_steps)
            logs.update({f"val_{key}": value for key, value in val.items()})
        self.state.epoch = epoch + 1
        self.state.batch = 0
        bar.finish(float(totals.steps), logs)
        return logs

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int = 32,
        sample_weight: Any = None,
        device: torch.device | str | None = None,
        verbose: int | str = 0,
        mask_value: float | None = 0.0,
        checks: str = "raise",
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> Logs:
        """The loss and the metrics over the data (see `Trainable.evaluate`)."""
        distributed.init_process_group(device or self.place(None))
        y = targets_by_name(y, self.require_compiled("evaluate").names, "evaluate")
        x = inputs_by_name(x, self.model, "evaluate")
        verbose = resolve_verbose(verbose)
        check_steps(steps, "evaluate")
        guard = Guard(checks, "evaluate", mask_value)
        guard.data(x, y, sample_weight)
        # With steps, the first batches hold the first sequences, as in Keras.
        loader = data_loader(x, y, sample_weight, batch_size, mask_value, bucketing=steps is None)
        require_batches(loader, "data given to evaluate")
        placed = self.place(device)
        names = self.require_compiled("evaluate").names
        read_targets(loader, self.model, names, placed)  # per step or per sequence
        guard.model(self.model, device=placed)
        num_batches = batches_run(len(loader), steps)
        params = {"verbose": verbose, "epochs": 1, "steps": num_batches}
        callback_list = None if callbacks is None else CallbackList(callbacks, self.model, params)
        results = self.run_eval(loader, placed, callback_list, steps)
        if verbose and distributed.rank() == 0:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in results.items() if isinstance(v, float)))
        return results

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        x: Any,
        *,
        batch_size: int = 32,
        device: torch.device | str | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
        verbose: int | str = 0,
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> Any:
        """The model's outputs without padding, in the order of `x` (a list or dict of
        them for several outputs; see `Trainable.predict`)."""
        distributed.init_process_group(device or self.place(None))
        x = inputs_by_name(x, self.model, "predict")
        check_steps(steps, "predict")
        guard = Guard(checks, "predict", mask_value)
        guard.data(x)
        placed = self.place(device)
        guard.model(self.model, device=placed)
        loader = data_loader(x, None, None, batch_size, mask_value, bucketing=steps is None)
        require_batches(loader, "data given to predict")
        names = output_names(self.model)
        predictions = [Predictions() for _ in names]
        num_batches = batches_run(len(loader), steps)
        verbose = resolve_verbose(verbose)
        params = {"verbose": verbose, "epochs": 1, "steps": num_batches}
        hooks = CallbackList(callbacks, self.model, params)
        bar = ProgressBar(num_batches, verbose if distributed.rank() == 0 else 0)
        predicted = torch.zeros((), device=placed)  # real steps predicted, for the speed
        out: Any = None
        hooks.on_predict_begin({})
        with training_mode(self.model, False), torch.no_grad():
            batches = itertools.islice(loader, num_batches)
            for index, batch in enumerate(prefetch(batches, placed)):
                hooks.on_predict_batch_begin(index, {})
                batch_out = None
                if batch.size:  # under data parallel, a share may be empty
                    out = batch_out = self.model.predict_step(batch)
                    outputs = split_outputs(out, names)
                    for collected, output in zip(predictions, outputs, strict=True):
                        collected.add(batch.index.tolist(), as_masked(output))
                    predicted.add_(real_steps(outputs[0], batch.x))
                hooks.on_predict_batch_end(index, {"outputs": batch_out})
                bar.update(index + 1, lambda: (float(predicted), {}))
        bar.finish(float(predicted), {})
        hooks.on_predict_end({})
        for collected in predictions:
            gather_predictions(collected)
        return pack(out, [collected.result() for collected in predictions], names)
