"""`Trainable`: the training API of maskwise models, as thin delegates to a `Trainer`.

`Sequential`, `Model` (and `Graph`) and `Module` inherit it. Each model holds its `Trainer`
(`model.trainer`, made at first use from the class's `trainer_class`); `compile`, `fit`,
`evaluate`, `predict`, `predict_classes` and `save` hand over to it, with Keras's
signatures. `train_step`, `test_step` and `predict_step` do too, and a model overrides
them as in Keras:

    class Penalised(maskwise.Module):
        ...
        def train_step(self, batch):
            trainer = self.trainer
            out = trainer.forward(batch.x)
            loss = trainer.compute_loss(batch, out, trainer.class_weight)
            loss = loss + 1e-3 * sum(p.square().sum() for p in self.parameters())
            trainer.zero_grad()
            trainer.backward(loss)
            trainer.optimizer_step(loss)
            trainer.update_metrics(batch, out.detach(), loss)
            return {"loss": loss.detach()}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import checkpoint
from ..callbacks import Callback, History
from ..data import Batch
from ..errors import MaskwiseTypeError, format_error
from ..masked import Masked
from ..optimizers import Optimizer
from . import on_batch
from .compiled import Compiled, OptimizerFactory, check_keras_options, check_loss_weights
from .predictions import argmax
from .trainer import Logs, Trainer

DEFAULT_BATCH_SIZE = 32


def keras_batch_size(batch_size: int | None) -> int:
    """Keras's `batch_size=None`: the default batch of 32 sequences."""
    return DEFAULT_BATCH_SIZE if batch_size is None else batch_size


class Trainable(nn.Module):
    """compile / fit / evaluate / predict / save for maskwise models, handed to the
    model's `Trainer` (see the module docstring).

    Attributes (the trainer's, read and set through the model): `optimizer` (a
    `torch.optim.Optimizer`, created at the first `fit` once the model is built),
    `history` (the last `fit`'s `History`), `stop_training` (set it in a callback to
    stop after the current epoch), `epochs_done` (epochs trained so far, saved in
    checkpoints), `compiled` (what `compile` chose: `compiled.loss`,
    `compiled.metrics`; None before `compile`).

    Example:
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(1)])
        >>> isinstance(model, Trainable)
        True
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = [np.ones((3, 1)), np.ones((1, 1))]  # two sequences, 3 and 1 steps
        >>> y = [np.zeros((3, 1)), np.zeros((1, 1))]
        >>> _ = model.fit(x, y, epochs=1, verbose=0, seed=0)
        >>> [p.shape for p in model.predict(x, verbose=0)], model.epochs_done
        ([(3, 1), (1, 1)], 1)
    """

    trainer_class: ClassVar[type[Trainer]] = Trainer
    """The `Trainer` (sub)class a model of this class trains with."""
    _trainer: Trainer | None = None

    @property
    def trainer(self) -> Trainer:
        """This model's `Trainer` (made at first use)."""
        if self._trainer is None:
            self._trainer = self.trainer_class(self)
        return self._trainer

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.trainer.optimizer

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Any:
        """`model.to(device)`, `.double()`, `.cuda()`, ...: the weights move (as in
        `nn.Module`), and the optimizer's state follows them (`Trainer.follow_weights`),
        so training goes on where the weights are."""
        before = list(self.parameters())
        super()._apply(fn, recurse)
        if self._trainer is not None:
            self._trainer.follow_weights(dict(zip(map(id, before), self.parameters(), strict=True)))
        return self

    @property
    def compiled(self) -> Compiled | None:
        return self.trainer.compiled

    @property
    def history(self) -> History | None:
        return self.trainer.history

    @property
    def epochs_done(self) -> int:
        return self.trainer.state.epoch

    @property
    def stop_training(self) -> bool:
        return self.trainer.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.trainer.stop_training = value

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: str | OptimizerFactory | torch.optim.Optimizer | Optimizer = "adam",
        loss: Any = None,
        loss_weights: Sequence[float] | dict[str, float] | None = None,
        metrics: Any = None,
        *,
        learning_rate: float | None = None,
        **keras_options: Any,
    ) -> None:
        """Choose the optimizer, the loss and the metrics, in Keras 3's order
        (`compile(optimizer, loss, loss_weights, metrics)`: Keras 2's third argument was
        `metrics`, and metric names given there are a `ConfigError` saying so).

        Args:
            optimizer: a name (`"adam"`, `"sgd"`, `"rmsprop"`, `"adamw"`, `"adagrad"`,
                `"adamax"`, `"nadam"`, `"adadelta"`, `"lion"`: that `maskwise.optimizers`
                class with Keras's defaults), a `maskwise.optimizers` optimizer (Keras's
                classes and update rules, e.g. `maskwise.optimizers.Adam(learning_rate=1e-3,
                clipnorm=1.0)`, built on the weights at the first `fit`), a callable
                taking the parameters and returning a `torch.optim.Optimizer` (e.g.
                `functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9,
                nesterov=True)`), or an optimizer already made on this model's
                parameters. The optimizer is created at the first `fit`, after the
                model's lazy weights are built.
            loss: a Keras loss name or a `maskwise.losses.Loss`; for a model with
                several outputs, one for all, or a list (one per output, None: not
                trained) or a dict keyed by output name (`maskwise.training.outputs`).
            loss_weights: for several outputs, each loss's weight in the loss trained
                (a list in output order, or a dict keyed by output name; 1 by default).
            metrics: Keras metric names (`"accuracy"`, ...) or `maskwise.metrics.Metric`s;
                for several outputs, a list with one entry per output (a metric, a list
                of them, or None) or a dict keyed by output name.
            learning_rate: the learning rate, with an optimizer name: a finite number
                >= 0 (0 leaves the weights as they are, as in Keras). NaN, inf or a
                negative rate is a `ConfigError` here; `fit` checks the rate of an
                optimizer you made the same way before the first step.
            **keras_options: Keras's `run_eagerly`, `auto_scale_loss` (no effect:
                maskwise runs eagerly, and scales the loss with `fit(precision="fp16")`),
                Keras 2's `sample_weight_mode="temporal"` (per-step weights are read
                from their shape),
                and `weighted_metrics`, `jit_compile`, `steps_per_execution` at their
                defaults; other values are a `ConfigError` naming the maskwise way
                (`maskwise.training.compiled.check_keras_options`).
        """
        check_keras_options(keras_options)
        check_loss_weights(loss_weights)
        self.trainer.compile(
            optimizer,
            loss,
            metrics=metrics,
            learning_rate=learning_rate,
            loss_weights=loss_weights,
        )

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: Batch) -> Logs:
        """Train on one batch (`Trainer.train_step`); override it as in Keras."""
        return self.trainer.train_step(batch)

    def test_step(self, batch: Batch) -> Logs:
        """Measure one batch (`Trainer.test_step`); override it as in Keras."""
        return self.trainer.test_step(batch)

    def predict_step(self, batch: Batch) -> Masked:
        """The output on one batch (`Trainer.predict_step`); override it as in Keras."""
        return self.trainer.predict_step(batch)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any,
        y: Any = None,
        batch_size: int | None = 32,
        epochs: int = 1,
        verbose: int | str = 1,
        callbacks: Sequence[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: Any = None,
        sample_weight: Any = None,
        initial_epoch: int | None = None,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        *,
        bucketing: bool = True,
        seed: int | None = None,
        device: torch.device | str | None = None,
        resume_from: str | Path | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
        steps_per_update: int = 1,
        jit_compile: bool = False,
        precision: str | None = None,
    ) -> History:
        """Train for `epochs` epochs; returns a `History` (`history.history[key]` per epoch).

        The arguments up to `validation_freq` may be given by position, in Keras's
        order (`model.fit(x, y, 32, 10)` is `batch_size=32, epochs=10`).

        Args:
            x: inputs: a padded array `(N, time, ...)`, a list of per-sequence arrays, a
                tuple of those for several inputs (passed to the model as separate
                arguments), a `SequenceDataset`, a `ParquetSequences` (streamed: memory
                stays flat whatever the file size) or a `Loader` (see `make_loader`).
            y: targets, per step or per sequence (None when `x` holds them); for a
                model with several outputs, a list of them in output order or a dict
                keyed by output name (`maskwise.training.outputs`).
            epochs: the index of the last epoch, like Keras: a resumed fit continues from
                the checkpoint's epoch up to `epochs`.
            batch_size: sequences per batch (None: 32, as in Keras). Under `torchrun`,
                the global batch: each of the processes trains on its share of every
                batch (see below).
            validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight)`, or a
                Loader / SequenceDataset / ParquetSequences; evaluated after every epoch
                (`val_*` logs).
            validation_batch_size: sequences per validation batch (None: `batch_size`);
                the validation figures, over every real step, do not depend on it.
            validation_split: the fraction of the data, taken from its end before any
                shuffling, kept for validation (Keras's rule: the first
                `floor(N * (1 - validation_split))` sequences train; a `ConfigError` if
                that leaves no training or no validation sequence).
            shuffle: reshuffle the batches every epoch.
            bucketing: batch sequences of similar length together (less padding).
            callbacks: `maskwise.callbacks.Callback`s; the validation calls their
                `on_test_*` hooks, as in Keras.
            verbose: 0 silent, 1 a progress line (redrawn on a terminal, fitted to its
                width; one plain line per epoch in a log file), 2 one line per epoch,
                `"auto"` 1 (Keras's default). The line counts batches (`12/50`) and real
                time steps per second (`real steps/s`, padding excluded).
            sample_weight: per sequence `(N,)` or per step; weighs the loss.
            class_weight: `{class_id: weight}`; weighs the loss of class targets.
            seed: seeds PyTorch (weight initialisation, dropout) and the batch order:
                the same seed gives the same weights.
            device: train there (`"cpu"`, `"cuda"`); default: where the model is. A
                device this machine lacks (or a malformed name) is a `ConfigError`.
                On a GPU the batches are pinned and copied a batch ahead without
                blocking (`maskwise.training.transfer`), and token ids and targets are
                checked exactly on each epoch's first batch, on the device after it
                (`maskwise.losses`: a bad one then stops the process).
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
            steps_per_update: gradient accumulation: the optimizer steps once every
                `steps_per_update` batches (and at the end of an epoch), on the
                gradient of those batches taken as one: k batches give the update of
                one batch of k times the size (the loss is normalised by the real steps
                of all k, not batch by batch). A model with several outputs with a
                loss counts each output's real steps of the k batches first (a
                forward pass of each without gradients), then trains on them.
            jit_compile: run the model's forward and backward through
                `torch.compile(model, dynamic=True)` (Keras's name): one compilation
                serves every batch size and length; the recurrent kernels stay eager
                (see the `torch.compile` page of the docs). Under data parallel the
                `DistributedDataParallel` model's training steps compile (its gradient
                all-reduce stays DDP's), and validation runs eagerly.
            precision: `"bf16"`: the forward and backward run in bfloat16 autocast (weights,
                optimizer, losses and metrics stay float32); `"fp16"` (on a GPU): the
                same in float16, with a `torch.amp.GradScaler` that scales the loss,
                skips the steps whose gradients overflow and lowers its scale (its
                state is checkpointed); None: float32.
            initial_epoch: the index of the first epoch to run, as in Keras (`epochs=10,
                initial_epoch=5` runs epochs 6 to 10, seeding each epoch's batch order as
                a run from 0 would); None: 0, or the checkpoint's epoch with
                `resume_from`.
            steps_per_epoch: batches per epoch, as in Keras: each epoch runs the next
                `steps_per_epoch` batches of the current pass over the data; the one
                that reaches the end of the data stops there and the next starts a new
                pass (`maskwise.training.epochs`). None: one pass per epoch.
            validation_freq: validate after every `validation_freq`-th epoch (epochs
                2, 4, ... for 2), as in Keras 3 (an integer); the other epochs' logs
                hold no `val_*` entries, and a callback monitoring one skips them
                with a warning, as Keras's do.
            validation_steps: validate on the first `validation_steps` batches of the
                validation data only, as in Keras (batched in data order then, so they
                hold its first sequences); None: all of them.

        Data parallel: run the script with `torchrun --nproc-per-node N`; `fit` joins
        the process group (gloo on CPU, nccl on CUDA) unless the script has, wraps the
        model in `DistributedDataParallel`, gives each process its share of every
        global batch, normalises the loss by the real steps of the global batch, and
        sums the logged loss and metrics over the processes, so N processes give the
        weights and logs of one (`maskwise.training.distributed`). Every process must
        call `fit` with the same arguments; a checkpoint is written by rank 0 only, the
        progress bar shows on rank 0 only (with its share's running figures).

        Raises:
            DoctorError: when `checks="raise"` and the checks find a masking mistake.
            NonFiniteError: at the first NaN or infinite loss, gradient or weight; the
                weights and the optimizer state are left as after the last good batch.
        """
        return self.trainer.fit(
            x,
            y,
            epochs=epochs,
            batch_size=keras_batch_size(batch_size),
            validation_data=validation_data,
            validation_batch_size=validation_batch_size,
            validation_split=validation_split,
            shuffle=shuffle,
            bucketing=bucketing,
            callbacks=callbacks,
            verbose=verbose,
            sample_weight=sample_weight,
            class_weight=class_weight,
            seed=seed,
            device=device,
            resume_from=resume_from,
            mask_value=mask_value,
            checks=checks,
            steps_per_update=steps_per_update,
            jit_compile=jit_compile,
            precision=precision,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_freq=validation_freq,
            validation_steps=validation_steps,
        )

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        x: Any,
        y: Any = None,
        batch_size: int | None = 32,
        verbose: int | str = 0,
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
        return_dict: bool = True,
        *,
        device: torch.device | str | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
    ) -> Any:
        """The loss and the metrics over every real step of the data: `{"loss": ...,
        "<metric>": ...}`; with `return_dict=False`, Keras's list `[loss, metric, ...]`
        (the loss alone without metrics). Keras's default is False, maskwise's True.
        With several outputs, Keras's names: `loss` (the weighted sum),
        `<output>_loss` and `<output>_<metric>`.

        The loss is the mean over real steps (default reduction; weighted by each
        batch's real steps), exactly as if the whole data set were one batch.
        Arguments as in `fit`, and by position in Keras's order (`x, y, batch_size,
        verbose, sample_weight, steps, callbacks, return_dict`); `checks`: the same
        checks, run on one batch made from the sample of `x`; `steps`: measure the
        first `steps` batches only (None: all), as in Keras; `callbacks`: their
        `on_test_begin`, `on_test_batch_begin`, `on_test_batch_end` (logs: the loss and
        metrics so far) and `on_test_end` (logs: the results) are called, as in Keras.
        Under `torchrun`, each process measures its share of the batches and the sums
        are added up across processes: every process gets the figures of the whole data.
        """
        logs = self.trainer.evaluate(
            x,
            y,
            batch_size=keras_batch_size(batch_size),
            sample_weight=sample_weight,
            device=device,
            verbose=verbose,
            mask_value=mask_value,
            checks=checks,
            steps=steps,
            callbacks=callbacks,
        )
        return on_batch.results(logs, return_dict)

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        x: Any,
        batch_size: int | None = 32,
        verbose: int | str = 0,
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
        *,
        device: torch.device | str | None = None,
        mask_value: float | None = 0.0,
        checks: str = "raise",
    ) -> Any:
        """The model's outputs, in the order of `x`, without padding.

        Returns:
            When the output has a mask (per-step outputs): a list with one array per
            sequence holding only the steps its output mask marks as real, `(length_i,
            units)`. When it has none (per-sequence outputs, e.g. after pooling or an
            RNN without `return_sequences`): one stacked array `(N, ...)` (or a list of
            per-sequence arrays if their shapes differ). For a model with several
            outputs: a list (or a dict, as the model returns them) of each output's
            results, each as above.

        Arguments as in `fit`, and by position in Keras's order (`x, batch_size,
        verbose, steps, callbacks`); `checks`: the data checks on a sample of `x`;
        `verbose`: as `fit`'s, over the batches of `x`; `steps`: predict the first
        `steps` batches only (None: all), as in Keras (the sequences of the other
        batches are left out of the result); `callbacks`: their `on_predict_begin`,
        `on_predict_batch_begin`, `on_predict_batch_end` (logs: `{"outputs": the
        batch's output}`) and `on_predict_end` are called, as in Keras. Under `torchrun`, each
        process predicts its share of the batches and every process gets all the
        outputs, each sequence once, in the order of `x`.
        """
        return self.trainer.predict(
            x,
            batch_size=keras_batch_size(batch_size),
            device=device,
            mask_value=mask_value,
            checks=checks,
            verbose=verbose,
            steps=steps,
            callbacks=callbacks,
        )

    # ------------------------------------------------------------------ one batch
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        return_dict: bool = False,
    ) -> Any:
        """One optimizer update on `x`, `y` taken as one batch (Keras's method).

        Returns the batch's loss (over its real steps, before the update), or `[loss,
        metric, ...]` when compiled with metrics, or the dict with `return_dict=True`.
        The data is taken as `fit` takes it; see `maskwise.training.on_batch`.
        """
        return on_batch.train_on_batch(self.trainer, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """The loss (and metrics) of `x`, `y` taken as one batch, as `train_on_batch`
        returns them, without training."""
        return on_batch.test_on_batch(self.trainer, x, y, sample_weight, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """`predict(x)` with `x` taken as one batch, without the data checks."""
        return self.predict(x, batch_size=on_batch.ONE_BATCH, checks="off")

    def predict_classes(
        self, x: Any, *, batch_size: int = 32, device: torch.device | str | None = None
    ) -> Any:
        """`argmax(model.predict(x))`: class ids per real step (or per sequence)."""
        return argmax(self.predict(x, batch_size=batch_size, device=device))

    # ------------------------------------------------------------------ checkpoints
    def save(self, filepath: str | Path) -> Path:
        """Save the model, and its compile and training state, to one file (atomic).

        The training state includes the state of the last `fit`'s callbacks
        (`EarlyStopping`, `ReduceLROnPlateau`, `ModelCheckpoint`), restored by a
        `fit(..., resume_from=path)` given the same callbacks.

        See `maskwise.checkpoint`; load with `maskwise.load(path)` (or Keras's name,
        `maskwise.models.load_model(path)`) or resume training with `fit(...,
        resume_from=path)`. The file is safetensors, not Keras's format: a `.keras`,
        `.h5` or `.hdf5` name is a `ConfigError` naming the `.safetensors` name to use.
        """
        return self.trainer.save(filepath)

    def save_weights(self, filepath: str | Path) -> Path:
        """Save the model's weights to one safetensors file (atomic), Keras's
        `save_weights`: no compile or training state. Returns the path written.

        The file also holds the model's config, so `maskwise.load(path)` can rebuild a
        `Sequential` or `Model` from it. A Keras name (`.weights.h5`, `.keras`, ...) is
        a `ConfigError` naming the `.safetensors` name to use.

        Example:
            >>> import os, tempfile
            >>> model = Sequential([layers.Dense(2, input_shape=(3,))])
            >>> twin = Sequential([layers.Dense(2, input_shape=(3,))])
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     path = model.save_weights(os.path.join(folder, "m.weights.safetensors"))
            ...     twin.load_weights(path)
            >>> torch.equal(twin.layers[0].kernel, model.layers[0].kernel)
            True
        """
        return self.trainer.save(filepath, weights_only=True)

    def load_weights(self, filepath: str | Path) -> None:
        """Load weights saved by `save_weights` (or the weights of a `save` file) into
        this model, Keras's `load_weights`: the names and shapes must match (strict),
        and layers not built yet are built from the shapes saved with the file. The
        compile and training state are left as they are. A Keras name
        (`.weights.h5`, ...) is a `ConfigError`: `maskwise.from_keras` converts a Keras
        model with its weights."""
        checkpoint.check_suffix(Path(filepath), weights_only=True)
        checkpoint.load_weights(self, checkpoint.Checkpoint(filepath))


def load(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    device: torch.device | str | None = None,
) -> Any:
    """Load a model saved with `model.save(path)`, compiled if it was.

    Example:
        >>> import os, tempfile
        >>> model = Sequential([layers.Masking(0.0), layers.Dense(2)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = torch.ones(1, 3, 4)
        >>> _ = model(x)  # build the weights
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = model.save(os.path.join(folder, "tagger.safetensors"))  # returns the path
        ...     same = mw.load(os.path.join(folder, "tagger.safetensors"))
        >>> torch.equal(same(x).values, model(x).values), same.compiled.loss.name
        (True, 'mean_squared_error')

    Args:
        path: the checkpoint file.
        model: an instance to load into (needed for `Module` subclasses, which cannot
            be rebuilt from JSON); None rebuilds a `Sequential` (or any `Layer`) from the
            saved config.
        device: move the model there (default: CPU, or where `model` already is).

    Returns:
        The model, with its weights, and, if it was compiled when saved, its loss,
        metrics, optimizer (and the optimizer's state) restored, ready for `fit`.
    """
    file = checkpoint.Checkpoint(path)
    if model is None:
        model = checkpoint.rebuild_model(file)
    elif not isinstance(model, nn.Module):
        raise MaskwiseTypeError(
            format_error(
                "load(path, model=...) takes a model instance.",
                received=type(model).__name__,
            )
        )
    checkpoint.load_weights(model, file)
    if device is not None:
        model.to(device)
    state = checkpoint.read_state(file)
    if state is not None and isinstance(model, Trainable):
        with checkpoint.reading(file, "restoring the compile and training state"):
            model.trainer.restore(state)
    return model
