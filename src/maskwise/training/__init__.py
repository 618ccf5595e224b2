"""The training engine: compile, fit, evaluate, predict, save.

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

The pieces: `Trainer` (`trainer.py`) owns the loop, one per model (`model.trainer`),
with overridable `train_step`, `test_step` and `predict_step`; `Trainable`
(`trainable.py`) gives `Sequential`, `Model` and `Module` their Keras-named methods as
thin delegates to it; `TrainingState` (`state.py`) is what checkpoints write and read;
`Compiled` (`compiled.py`) what `compile` fixed, one loss, loss weight and metrics per
output of the model (`outputs.py`: several outputs train as in Keras); `CallbackList`
(`callback_list.py`) calls the callbacks' hooks in order; `training_mode` (`modes.py`)
switches the training flag and puts it back; `EpochTotals` (`totals.py`) adds up the
loss and the metrics; `inputs.py` turns what the doors receive into loaders;
`predictions.py` gathers `predict`'s output; `on_batch.py` runs `train_on_batch`,
`test_on_batch` and `predict_on_batch`; `epochs.py` says which batches an epoch runs
(`initial_epoch`, `steps_per_epoch`); `distributed.py` makes `fit`, `evaluate` and
`predict` data parallel under torchrun and accumulates gradients (`fit(...,
steps_per_update=k)`), with the loss normalised by the real steps of the whole update;
`prefetch` (`transfer.py`) hands the loops their batches on the device, each copy issued
a batch ahead (pinned and without blocking the host on CUDA).

Every piece works from a hand-written PyTorch loop too; this gives the same weights as
`model.fit(x, y, epochs=2, batch_size=8, seed=0)` with `compile("adam", loss)`:

    loader = make_loader(x, y, batch_size=8, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        model(next(iter(loader)).x)          # build the lazy weights first
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in prefetch(loader, "cpu"):  # the batches on the model's device
            out = model(batch.x)
            loss = loss_fn(batch.y, out, batch.sample_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
"""

from .callback_list import CallbackList
from .compiled import OPTIMIZERS, Compiled, OptimizerFactory, check_learning_rate, compile_args
from .inputs import forward, require_batches, require_targets, resolve_device
from .modes import training_mode
from .predictions import Predictions, argmax
from .state import TrainingState
from .totals import EpochTotals, flatten_results, output_steps, real_steps
from .trainable import Trainable, load
from .trainer import Trainer
from .transfer import prefetch

__all__ = [
    "OPTIMIZERS",
    "CallbackList",
    "Compiled",
    "EpochTotals",
    "OptimizerFactory",
    "Predictions",
    "Trainable",
    "Trainer",
    "TrainingState",
    "argmax",
    "check_learning_rate",
    "compile_args",
    "flatten_results",
    "forward",
    "load",
    "output_steps",
    "prefetch",
    "real_steps",
    "require_batches",
    "require_targets",
    "resolve_device",
    "training_mode",
]
