"""Training API mixed into `Sequential` and `Module`: compile, fit, evaluate, predict, save.

Keras's workflow on PyTorch, with the padding handled everywhere:

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(sequences, labels, epochs=10, validation_split=0.2, seed=0)
    model.evaluate(test_sequences, test_labels)    # {"loss": ..., "accuracy": ...}
    tags = maskwise.argmax(model.predict(test_sequences))  # one array per sequence

Data goes through `maskwise.data.make_loader` (padded arrays, ragged lists, several
inputs, a `SequenceDataset`, a streamed `ParquetSequences`, or a `Loader` you built).
Losses and metrics count only the real steps of the model's output (its mask).

What `fit` logs per epoch: `loss` is the mean of the batch losses weighted by each
batch's number of real output steps, i.e. for the default `"mean"` reduction exactly the
mean loss over every real step of the epoch (Keras logs the plain mean of batch means,
which over-weights short batches). Metrics are accumulated exactly over the epoch.
Both are measured on the fly while the weights change, like Keras; `evaluate` gives
the end-of-epoch figures. Metrics ignore `sample_weight`/`class_weight` (Keras's
`metrics`, not `weighted_metrics`); the loss uses them.

Every piece works from a hand-written PyTorch loop too; this gives the same weights as
`model.fit(x, y, epochs=2, batch_size=8, seed=0)` with `compile("adam", loss)`:

    loader = make_loader(x, y, batch_size=8, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        model(next(iter(loader)).x)          # build the lazy weights first
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in loader:
            out = model(batch.x)
            loss = loss_fn(batch.y, out, batch.sample_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import callbacks as callbacks_module
from . import checkpoint
from . import losses as losses_module
from . import metrics as metrics_module
from .data import Loader, ParquetSequences, SequenceDataset, make_loader
from .doctor.guards import Guard
from .errors import ConfigError, MaskwiseTypeError, ShapeError, format_error
from .layers.base import Layer
from .masked import Masked
from .numerics import NonFiniteGuard
from .progress import ProgressBar

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "sgd": (torch.optim.SGD, {"lr": 0.01}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.004, "eps": 1e-7}),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adamax": (torch.optim.Adamax, {"lr": 1e-3, "eps": 1e-7}),
    "nadam": (torch.optim.NAdam, {"lr": 1e-3, "eps": 1e-7}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}),
}
"""Optimizer names with Keras's default hyper-parameters (learning rate, epsilon, rho).

The update rules are PyTorch's (Keras's Adam folds epsilon in slightly differently)."""

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


# ---------------------------------------------------------------------- helpers
def forward(model: nn.Module, x: Masked | tuple[Masked, ...]) -> Masked | torch.Tensor:
    """Call `model` on a batch's inputs: one `Masked`, or several as separate arguments."""
    out = model(*x) if isinstance(x, tuple) else model(x)
    if not isinstance(out, Masked | torch.Tensor):
        raise MaskwiseTypeError(
            format_error(
                f"The model returned a {type(out).__name__}; training needs one output.",
                expected="a Masked (or a tensor) from forward",
                fix="return the output the loss should see; keep extra outputs (states) "
                "for a separate method.",
            )
        )
    return out


def output_steps(out: Masked | torch.Tensor) -> torch.Tensor:
    """Number of steps the loss counts in `out`: the real steps of its mask, else one per
    row of the step shape (`(batch,)` for a per-sequence output)."""
    values, mask = losses_module.split_output(out)
    if mask is not None:
        return mask.sum()
    count = values.shape[:-1].numel() if values.dim() > 1 else values.numel()
    return torch.tensor(count, device=values.device)


def real_steps(out: Masked | torch.Tensor, x: Masked | tuple[Masked, ...]) -> torch.Tensor:
    """Real steps of a batch, for the speed figure: the output mask's, else the first
    input's (every step of an input without a mask counts)."""
    if isinstance(out, Masked) and out.mask is not None:
        return out.mask.sum()
    first = x[0] if isinstance(x, tuple) else x
    if first.mask is None:
        return torch.tensor(first.values.shape[:2].numel(), device=first.device)
    return first.mask.sum()


def flatten_results(metrics: Sequence[Any]) -> dict[str, Any]:
    """`{name: result}` for every metric; dict results are merged in."""
    logs: dict[str, Any] = {}
    for metric in metrics:
        result = metric.result()
        if isinstance(result, dict):
            logs.update(result)
        else:
            logs[metric.name] = result
    return logs


class EpochTotals:
    """Exact running loss (weighted by real steps) and metrics over an epoch."""

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


def _split_tail(data: Any, keep: int) -> tuple[Any, Any]:
    """(first `keep` rows, the rest) of arrays, lists, tensors, or tuples of them."""
    if data is None:
        return None, None
    if isinstance(data, tuple):
        pairs = [_split_tail(d, keep) for d in data]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return data[:keep], data[keep:]


def _num_rows(x: Any) -> int:
    return len(x[0]) if isinstance(x, tuple) else len(x)


def _json_options(options: dict[str, Any], cls: type) -> dict[str, Any]:
    accepted = inspect.signature(cls).parameters
    out = {}
    for key, value in options.items():
        if key not in accepted:
            continue
        if isinstance(value, torch.Tensor):
            value = value.item()
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _metric_config(metric: Any, identifier: Any) -> Any:
    if isinstance(identifier, str):
        return identifier
    params = inspect.signature(type(metric)).parameters
    config = {
        key: getattr(metric, key)
        for key in params
        if key != "self"
        and isinstance(getattr(metric, key, None), str | int | float | bool | type(None))
    }
    return {"class": type(metric).__name__, "config": config}


def _metric_from_config(config: Any) -> Any:
    if isinstance(config, str):
        return metrics_module.get_metric(config)
    classes = {cls.__name__: cls for cls in metrics_module.METRICS.values()}
    return classes[config["class"]](**config["config"])


def argmax(predictions: np.ndarray | Sequence[np.ndarray]) -> Any:
    """Class ids from `predict`'s output: per sequence (a list of int arrays) or stacked.

    The highest-scoring class at each step; with a single output unit (a sigmoid),
    `1` where the score is above 0.5, like Keras's `predict_classes`.

    Example:
        >>> argmax([np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0.3, 0.7]])])
        [array([1, 0]), array([1])]
    """

    def classes(scores: np.ndarray) -> np.ndarray:
        if scores.shape[-1] == 1:
            return (scores[..., 0] > 0.5).astype(np.int64)
        return scores.argmax(-1)

    if isinstance(predictions, np.ndarray):
        return classes(predictions)
    return [classes(np.asarray(p)) for p in predictions]


def check_learning_rate(value: Any, where: str) -> None:
    """Refuse a learning rate that is not a finite number >= 0 (0 is allowed, as in
    Keras and PyTorch: the weights then stay put, e.g. to measure a model as is)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MaskwiseTypeError(
            format_error(
                f"The learning rate of {where} must be a number.",
                received=f"{type(value).__name__}: {value!r}",
                fix="e.g. `learning_rate=1e-3`.",
            )
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            format_error(
                f"The learning rate of {where} must be a finite number >= 0.",
                expected="e.g. 1e-3 (Adam, RMSprop) or 1e-2 (SGD); 0 freezes the weights",
                received=repr(value),
                fix="a NaN or infinite rate makes every weight NaN at the first step, and a "
                "negative one climbs the loss: pass a small positive rate.",
            )
        )


def resolve_device(device: torch.device | str) -> torch.device:
    """`device` as a `torch.device`, after checking that a tensor can live there."""
    try:
        resolved = torch.device(device)
        torch.empty(0, device=resolved)
    except (RuntimeError, AssertionError, TypeError, ValueError) as error:
        available = ["cpu"]
        if torch.cuda.is_available():
            available += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            available.append("mps")
        raise ConfigError(
            format_error(
                f"Device {device!r} is not available on this machine.",
                expected="one of " + ", ".join(available),
                received=f"{device!r}: {(str(error) or type(error).__name__).split('. ')[0]}",
                fix="pass an available device, or leave device=None to use the model's.",
            )
        ) from error
    return resolved


def require_batches(loader: Any, what: str) -> None:
    """Refuse data that yields no batch (e.g. `drop_last=True` with fewer sequences than
    `batch_size`): `fit` would stop at once, `evaluate` report a loss of 0 on nothing."""
    if len(loader) > 0:
        return
    raise ConfigError(
        format_error(
            f"The {what} yields no batch.",
            received=f"{loader.num_sequences} sequences, batch_size={loader.batch_size}, "
            f"drop_last={loader.drop_last}",
            fix="pass more sequences, a smaller batch_size, or drop_last=False.",
        )
    )


def _resolve_optimizer(optimizer: Any, learning_rate: float | None) -> tuple[Any, Any]:
    """(factory or instance, JSON spec or None)."""
    if learning_rate is not None:
        check_learning_rate(learning_rate, "compile(learning_rate=...)")
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ConfigError(
                format_error(
                    f"Unknown optimizer {optimizer!r}.",
                    expected="one of " + ", ".join(sorted(OPTIMIZERS)),
                    received=repr(optimizer),
                    fix="or pass a callable that takes the parameters, e.g. "
                    "`functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)`.",
                )
            )
        cls, options = OPTIMIZERS[key]
        options = {**options, **({} if learning_rate is None else {"lr": learning_rate})}
        return functools.partial(cls, **options), {"class": cls.__name__, "options": options}
    if learning_rate is not None:
        raise ConfigError(
            format_error(
                "compile(learning_rate=...) applies to optimizer names only.",
                received=f"optimizer={optimizer!r}",
                fix="set the learning rate in your optimizer, e.g. "
                "`functools.partial(torch.optim.SGD, lr=0.1)`.",
            )
        )
    if isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer):
        return optimizer, None
    raise MaskwiseTypeError(
        format_error(
            "compile(optimizer=...) takes a name, a callable or a torch optimizer.",
            received=type(optimizer).__name__,
            fix="e.g. 'adam', or `functools.partial(torch.optim.SGD, lr=0.1)`.",
        )
    )


class Compiled:
    """What `compile` fixed: the loss, the metrics, and how to make the optimizer."""

    def __init__(self, optimizer: Any, loss: Any, metrics: Any, learning_rate: Any) -> None:
        self.optimizer, self.optimizer_spec = _resolve_optimizer(optimizer, learning_rate)
        if loss is None:
            raise ConfigError(
                format_error(
                    "compile needs a loss.",
                    fix="e.g. `loss='sparse_categorical_crossentropy'` for class ids per "
                    "step, `loss='mse'` for regression.",
                )
            )
        self.loss = losses_module.get_loss(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, str | metrics_module.Metric):
            metrics = [metrics]
        self.metrics = [metrics_module.get_metric(m) for m in metrics]
        self.metric_configs = [
            _metric_config(m, i) for m, i in zip(self.metrics, metrics, strict=True)
        ]

    def config(self, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
        spec = self.optimizer_spec
        if optimizer is not None and hasattr(torch.optim, type(optimizer).__name__):
            cls = type(optimizer)
            spec = {"class": cls.__name__, "options": _json_options(optimizer.defaults, cls)}
        loss = None
        if type(self.loss).__name__ in losses_module.LOSSES:
            loss = {"class": type(self.loss).__name__, "config": self.loss.get_config()}
        return {"optimizer": spec, "loss": loss, "metrics": self.metric_configs}


def compile_args(config: dict[str, Any]) -> dict[str, Any] | None:
    """`compile` keyword arguments from a saved compile config (None if incomplete)."""
    spec, loss = config.get("optimizer"), config.get("loss")
    if spec is None or loss is None:
        return None
    cls = getattr(torch.optim, spec["class"])
    return {
        "optimizer": functools.partial(cls, **spec["options"]),
        "loss": losses_module.LOSSES[loss["class"]](**loss["config"]),
        "metrics": [_metric_from_config(m) for m in config["metrics"]],
    }


# ---------------------------------------------------------------------- the mixin
class TrainingMixin:
    """compile / fit / evaluate / predict / save for maskwise models.

    Attributes set by training: `optimizer` (a `torch.optim.Optimizer`, created at the
    first `fit` once the model is built), `history` (the last `fit`'s `History`),
    `stop_training` (set it in a callback to stop after the current epoch),
    `epochs_done` (epochs trained so far, saved in checkpoints), `compiled` (what
    `compile` chose: `compiled.loss`, `compiled.metrics`; None before `compile`).
    """

    optimizer: torch.optim.Optimizer | None = None
    stop_training: bool = False
    epochs_done: int = 0
    history: Any = None
    compiled: Compiled | None = None
    _loader_seed: int | None = None
    _callbacks: dict[str, callbacks_module.Callback] | None = None

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: str | OptimizerFactory | torch.optim.Optimizer = "adam",
        loss: str | losses_module.Loss | None = None,
        metrics: Sequence[str | metrics_module.Metric] | None = None,
        *,
        learning_rate: float | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics.

        Args:
            optimizer: a name (`"adam"`, `"sgd"`, `"rmsprop"`, `"adamw"`, `"adagrad"`,
                `"adamax"`, `"nadam"`, `"adadelta"`, with Keras's defaults), a callable
                taking the parameters and returning a `torch.optim.Optimizer` (e.g.
                `functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9,
                nesterov=True)`), or an optimizer already made on this model's
                parameters. The optimizer is created at the first `fit`, after the
                model's lazy weights are built.
            loss: a Keras loss name or a `maskwise.losses.Loss`.
            metrics: Keras metric names (`"accuracy"`, ...) or `maskwise.metrics.Metric`s.
            learning_rate: the learning rate, with an optimizer name: a finite number
                >= 0 (0 leaves the weights as they are, as in Keras). NaN, inf or a
                negative rate is a `ConfigError` here; `fit` checks the rate of an
                optimizer you made the same way before the first step.
        """
        self.compiled = Compiled(optimizer, loss, metrics, learning_rate)
        self.optimizer = None

    def _require_compiled(self, what: str) -> Compiled:
        if self.compiled is None:
            raise ConfigError(
                format_error(
                    f"{what}() needs a compiled model: call compile() first.",
                    fix="e.g. `model.compile(optimizer='adam', "
                    "loss='sparse_categorical_crossentropy', metrics=['accuracy'])`.",
                )
            )
        return self.compiled

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        compiled = self._require_compiled("fit")
        if self.optimizer is None:
            made = compiled.optimizer
            if not isinstance(made, torch.optim.Optimizer):
                made = made(self.parameters())  # type: ignore[attr-defined]
            if not isinstance(made, torch.optim.Optimizer):
                raise MaskwiseTypeError(
                    format_error(
                        "The optimizer callable given to compile did not return a "
                        "torch.optim.Optimizer.",
                        received=type(made).__name__,
                    )
                )
            self.optimizer = made
        for group in self.optimizer.param_groups:
            check_learning_rate(group["lr"], f"the optimizer {type(self.optimizer).__name__}")
        return self.optimizer

    # ------------------------------------------------------------------ plumbing
    def _device(self, device: torch.device | str | None) -> torch.device:
        if device is not None:
            resolved = resolve_device(device)
            self.to(resolved)  # type: ignore[attr-defined]
            return resolved
        for param in self.parameters():  # type: ignore[attr-defined]
            return param.device
        return torch.device("cpu")

    def _build(self, x: Masked | tuple[Masked, ...]) -> None:
        """Build lazy layers with one forward pass (eval mode, no grad)."""
        if not any(
            isinstance(m, Layer) and not m.built
            for m in self.modules()  # type: ignore[attr-defined]
        ):
            return
        was_training = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        with torch.no_grad():
            forward(self, x)  # type: ignore[arg-type]
        self.train(was_training)  # type: ignore[attr-defined]

    def _loader(
        self,
        x: Any,
        y: Any,
        sample_weight: Any,
        batch_size: int,
        mask_value: float | None,
        shuffle: bool = False,
        bucketing: bool = True,
        seed: int = 0,
    ) -> Any:
        return make_loader(
            x,
            y,
            batch_size=batch_size,
            shuffle=shuffle,
            bucketing=bucketing,
            seed=seed,
            sample_weight=sample_weight,
            mask_value=mask_value,
            checks="off",  # the door that called checked the data
        )

    def _validation_loader(self, data: Any, batch_size: int, mask_value: float | None) -> Any:
        if data is None:
            return None
        if isinstance(data, Loader | SequenceDataset | ParquetSequences):
            return self._loader(data, None, None, batch_size, mask_value)
        if isinstance(data, tuple | list) and len(data) in (2, 3):
            weight = data[2] if len(data) == 3 else None
            return self._loader(data[0], data[1], weight, batch_size, mask_value)
        raise ConfigError(
            format_error(
                "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight), "
                "or a Loader / SequenceDataset / ParquetSequences.",
                received=type(data).__name__,
            )
        )

    def _run_eval(self, loader: Any, device: torch.device, compiled: Compiled) -> dict[str, Any]:
        was_training = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        totals = EpochTotals(compiled.metrics)
        with torch.no_grad():
            for batch in loader:
                batch = batch.to(device)
                _require_targets(batch.y, "evaluate")
                out = forward(self, batch.x)  # type: ignore[arg-type]
                loss = compiled.loss(batch.y, out, sample_weight=batch.sample_weight)
                totals.update(out, batch.y, loss, batch.x)
        self.train(was_training)  # type: ignore[attr-defined]
        return totals.logs()

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Any = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        bucketing: bool = True,
        callbacks: Sequence[callbacks_module.Callback] | None = None,
        verbose: int = 1,
        sample_weight: Any = None,
        class_weight: Any = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        resume_from: str | Path | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
    ) -> callbacks_module.History:
        """Train for `epochs` epochs; returns a `History` (`history.history[key]` per epoch).

        Args:
            x: inputs: a padded array `(N, time, ...)`, a list of per-sequence arrays, a
                tuple of those for several inputs (passed to the model as separate
                arguments), a `SequenceDataset`, a `ParquetSequences` (streamed: memory
                stays flat whatever the file size) or a `Loader` (see `make_loader`).
            y: targets, per step or per sequence (None when `x` holds them).
            epochs: the index of the last epoch, like Keras: a resumed fit continues from
                the checkpoint's epoch up to `epochs`.
            batch_size: sequences per batch.
            validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight)`, or a
                Loader / SequenceDataset / ParquetSequences; evaluated after every epoch
                (`val_*` logs).
            validation_split: the fraction of the data, taken from its end before any
                shuffling, kept for validation (Keras's rule: the first
                `floor(N * (1 - validation_split))` sequences train; a `ConfigError` if
                that leaves no training or no validation sequence).
            shuffle: reshuffle the batches every epoch.
            bucketing: batch sequences of similar length together (less padding).
            callbacks: `maskwise.callbacks.Callback`s.
            verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
            sample_weight: per sequence `(N,)` or per step; weighs the loss.
            class_weight: `{class_id: weight}`; weighs the loss of class targets.
            seed: seeds PyTorch (weight initialisation, dropout) and the batch order:
                the same seed gives the same weights.
            device: train there (`"cpu"`, `"cuda"`); default: where the model is. A
                device this machine lacks (or a malformed name) is a `ConfigError`.
            resume_from: a checkpoint (`model.save` / `ModelCheckpoint`): its weights,
                optimizer state, epoch and random state are restored first, and the
                saved state of `EarlyStopping`, `ReduceLROnPlateau` and
                `ModelCheckpoint` goes into the same callbacks passed here (matched by
                class, order and monitored value), so training continues exactly where
                it stopped.
            mask_value: the padding value of padded-array inputs, used to find their
                lengths (give the same value as the model's `Masking`; NaN allowed).
            checks: the doctor's checks before the first step (`maskwise.doctor.guards`):
                on a bounded sample of `x`, `y`, `sample_weight` and `validation_data`
                (layout, NaN/inf at real steps, targets, several inputs), then on the
                first batch once the model is built (the padding label against its
                output units, per-step vs per-sequence targets, and the leak probe:
                padding that changes a real step's output). `"raise"` raises a
                `DoctorError` naming each mistake's code and fix, and warns on probable
                ones; `"warn"` warns on both; `"off"` skips the checks.

        Raises:
            DoctorError: when `checks="raise"` and the checks find a masking mistake.
            NonFiniteError: at the first NaN or infinite loss, gradient or weight; the
                weights and the optimizer state are left as after the last good batch.
        """
        saved = None if resume_from is None else checkpoint.Checkpoint(resume_from)
        if saved is not None and self.compiled is None:
            args = compile_args(saved.metadata.get("compile", {}))
            if args is not None:
                self.compile(**args)
        compiled = self._require_compiled("fit")
        checker = Guard(checks, "fit", mask_value)
        checker.data(x, y, sample_weight)
        if validation_data is not None:
            checker.validation(validation_data)
        if seed is not None:
            torch.manual_seed(seed)
        trainer = {} if saved is None else saved.metadata.get("trainer", {})
        loader_seed = seed if seed is not None else trainer.get("loader_seed")
        if loader_seed is None:
            loader_seed = int(torch.randint(2**31 - 1, ()).item())
        if validation_split:
            if (
                not 0.0 < validation_split < 1.0
                or validation_data is not None
                or isinstance(x, Loader | SequenceDataset | ParquetSequences)
            ):
                raise ConfigError(
                    format_error(
                        "validation_split must be in (0, 1), without validation_data, "
                        "and x must be arrays or lists (it splits off their tail).",
                        received=f"validation_split={validation_split!r}, x: {type(x).__name__}",
                        fix="for a Loader or a data set, pass validation_data instead.",
                    )
                )
            n = _num_rows(x)
            keep = math.floor(n * (1.0 - validation_split))  # Keras's rule
            if keep in (0, n):
                raise ConfigError(
                    format_error(
                        f"validation_split={validation_split!r} of {n} sequences leaves no "
                        f"{'training' if keep == 0 else 'validation'} sequence.",
                        expected=f"{n} * (1 - validation_split) rounded down between 1 and "
                        f"{n - 1} (the training sequences)",
                        fix="pass more sequences or another validation_split, or pass "
                        "validation_data.",
                    )
                )
            x, x_val = _split_tail(x, keep)
            y, y_val = _split_tail(y, keep)
            sample_weight, weight_val = _split_tail(sample_weight, keep)
            validation_data = (x_val, y_val, weight_val)
        loader = self._loader(
            x, y, sample_weight, batch_size, mask_value, shuffle, bucketing, loader_seed
        )
        val_loader = self._validation_loader(validation_data, batch_size, mask_value)
        require_batches(loader, "training data")
        if val_loader is not None:
            require_batches(val_loader, "validation data")
        device = self._device(device)
        initial_epoch = int(trainer.get("epoch", 0))
        loader.set_epoch(initial_epoch)
        first = next(iter(loader)).to(device)
        _require_targets(first.y, "fit")
        self._build(first.x)
        checker.model(self, first, probe=True)  # type: ignore[arg-type]
        if saved is not None:
            checkpoint.load_weights(self, saved)  # type: ignore[arg-type]
            self.restore_training_state(saved)
            checkpoint.restore_rng(saved)
        optimizer = self._ensure_optimizer()
        guard = NonFiniteGuard(self, optimizer)  # type: ignore[arg-type]
        self._loader_seed = loader_seed
        self.epochs_done = initial_epoch

        history = callbacks_module.History()
        # History last, like Keras: it sees every log.
        callback_list = [*callbacks_module.hook_order(callbacks or []), history]
        for callback in callback_list:
            callback.set_model(self)
        self._callbacks = callbacks_module.keyed(callback_list)
        batch_logs = [c for c in callback_list if callbacks_module.wants_batch_logs(c)]
        self.history = history
        self.stop_training = False
        was_training = self.training  # type: ignore[attr-defined]
        logs: dict[str, Any] = {}
        for callback in callback_list:
            callback.on_train_begin(logs)
        if saved is not None:
            checkpoint.restore_callbacks(saved, self._callbacks)
        for epoch in range(initial_epoch, epochs):
            for callback in callback_list:
                callback.on_epoch_begin(epoch, logs)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = ProgressBar(len(loader), verbose)
            totals = EpochTotals(compiled.metrics)
            self.train()  # type: ignore[attr-defined]
            loader.set_epoch(epoch)
            for index, batch in enumerate(loader):
                batch = batch.to(device)
                out = forward(self, batch.x)  # type: ignore[arg-type]
                loss = compiled.loss(batch.y, out, batch.sample_weight, class_weight)
                optimizer.zero_grad()
                loss.backward()
                guard.check_gradients(loss, epoch, index)
                guard.snapshot()
                optimizer.step()
                guard.check_weights(epoch, index)
                totals.update(out.detach(), batch.y, loss, batch.x)
                for callback in batch_logs:
                    callback.on_batch_end(index, {"loss": loss.item(), "size": batch.size})
                bar.update(index + 1, totals.read)
            logs = totals.logs()
            if val_loader is not None:
                val = self._run_eval(val_loader, device, compiled)
                logs.update({f"val_{key}": value for key, value in val.items()})
            self.epochs_done = epoch + 1
            bar.finish(float(totals.steps), logs)
            for callback in callback_list:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        self.train(was_training)  # type: ignore[attr-defined]
        for callback in callback_list:
            callback.on_train_end(logs)
        return history

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int = 32,
        sample_weight: Any = None,
        device: torch.device | str | None = None,
        verbose: int = 0,
        mask_value: float | None = 0.0,
        checks: str = "raise",
    ) -> dict[str, Any]:
        """The loss and the metrics over every real step of the data: `{"loss": ...,
        "<metric>": ...}`.

        The loss is the mean over real steps (default reduction; weighted by each
        batch's real steps), exactly as if the whole data set were one batch.
        Arguments as in `fit` (`checks`: the same checks, run on one batch made from
        the sample of `x`).
        """
        compiled = self._require_compiled("evaluate")
        checker = Guard(checks, "evaluate", mask_value)
        checker.data(x, y, sample_weight)
        loader = self._loader(x, y, sample_weight, batch_size, mask_value)
        require_batches(loader, "data given to evaluate")
        device = self._device(device)
        checker.model(self, device=device)  # type: ignore[arg-type]
        results = self._run_eval(loader, device, compiled)
        if verbose:
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
    ) -> list[np.ndarray] | np.ndarray:
        """The model's outputs, in the order of `x`, without padding.

        Returns:
            when the output has a mask (per-step outputs): a list with one array per
            sequence holding only the steps its output mask marks as real, `(length_i,
            units)`. When it has none (per-sequence outputs, e.g. after pooling or an
            RNN without `return_sequences`): one stacked array `(N, ...)` (or a list of
            per-sequence arrays if their shapes differ).

        Arguments as in `fit` (`checks`: the data checks on a sample of `x`).
        """
        Guard(checks, "predict", mask_value).data(x)
        device = self._device(device)
        loader = self._loader(x, None, None, batch_size, mask_value)
        require_batches(loader, "data given to predict")
        rows: dict[int, np.ndarray] = {}
        masked = False
        was_training = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        with torch.no_grad():
            for batch in loader:
                out = forward(self, batch.to(device).x)  # type: ignore[arg-type]
                out = out if isinstance(out, Masked) else Masked(out)
                masked = masked or out.mask is not None
                for i, row in zip(batch.index.tolist(), out.unpad(), strict=True):
                    rows[i] = row.cpu().numpy()
        self.train(was_training)  # type: ignore[attr-defined]
        ordered = [rows[i] for i in range(len(rows))]
        if not masked and len({r.shape for r in ordered}) == 1:
            return np.stack(ordered)
        return ordered

    def predict_classes(
        self, x: Any, *, batch_size: int = 32, device: torch.device | str | None = None
    ) -> Any:
        """`argmax(model.predict(x))`: class ids per real step (or per sequence)."""
        return argmax(self.predict(x, batch_size=batch_size, device=device))

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> Path:
        """Save the model, and its compile and training state, to one file (atomic).

        The training state includes the state of the last `fit`'s callbacks
        (`EarlyStopping`, `ReduceLROnPlateau`, `ModelCheckpoint`), restored by a
        `fit(..., resume_from=path)` given the same callbacks.

        See `maskwise.checkpoint`; load with `maskwise.load(path)` or resume training
        with `fit(..., resume_from=path)`.
        """
        return checkpoint.save(self, path, self._callbacks)  # type: ignore[arg-type]

    def trainer_state(self) -> tuple[dict[str, Any], torch.optim.Optimizer | None, dict] | None:
        """(compile config, optimizer, trainer JSON) for a checkpoint; None if not compiled."""
        if self.compiled is None:
            return None
        state = {"epoch": self.epochs_done, "loader_seed": self._loader_seed}
        return self.compiled.config(self.optimizer), self.optimizer, state

    def restore_training_state(self, saved: checkpoint.Checkpoint) -> None:
        """Compile (unless compiled already) and restore the optimizer and epoch count."""
        config = saved.metadata.get("compile")
        if config is None:
            return
        if self.compiled is None:
            args = compile_args(config)
            if args is None:
                return
            self.compile(**args)
        state = checkpoint.optimizer_state(saved)
        if state is not None:
            self._ensure_optimizer().load_state_dict(state)
        trainer = saved.metadata.get("trainer", {})
        self.epochs_done = int(trainer.get("epoch", 0))
        self._loader_seed = trainer.get("loader_seed")


def _require_targets(y: torch.Tensor | None, what: str) -> None:
    if y is None:
        raise ShapeError(
            format_error(
                f"{what}() needs targets, and the data holds none.",
                expected="y: per-step targets (a list of (T_i,) arrays or a padded array) "
                "or per-sequence targets (N,)",
                received="y=None",
                fix=f"call `model.{what}(x, y, ...)`, or build the data set with its targets.",
            )
        )
