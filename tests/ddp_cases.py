"""Data-parallel training problems shared by `ddp_worker.py` (N processes) and
`test_distributed.py` (one process), so both sides train the same model on the same
ragged data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from maskwise import Input, Model, Sequential, distributed, layers, losses
from maskwise.data import make_loader
from maskwise.training.distributed import Update

SEED = 0
BATCH = 6  # global batch
EPOCHS = 2
N = 21  # the last global batch holds 3 sequences: shares of 2 and 1
N_FIT = 19  # the last global batch holds 1 sequence: one share is empty


def ragged_data(n: int = N, seed: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token sequences of lengths 1..15 (very uneven), tags `token % 3`."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 16, size=n)
    x = [rng.integers(1, 20, size=int(length)) for length in lengths]
    return x, [t % 3 for t in x]


class Recording:
    """A model whose overridden `train_step` records the sequences it trains on
    (`seen`, one list per epoch) before the default step."""

    seen: list[list[int]]

    def train_step(self, batch: Any) -> Any:
        if self.trainer.state.batch == 0:  # type: ignore[attr-defined]
            self.seen.append([])
        self.seen[-1] += batch.index.tolist()
        return super().train_step(batch)  # type: ignore[misc]


class RecordingTagger(Recording, Sequential):
    """A recording `Sequential`."""


class RecordingModel(Recording, Model):
    """A recording functional `Model`."""


def recurrent_tagger() -> RecordingTagger:
    """Embedding(mask_zero) -> LSTM -> Dense(3 logits), weights fixed by `SEED`."""
    torch.manual_seed(SEED)
    model = RecordingTagger(
        [
            layers.Embedding(20, 6, mask_zero=True),
            layers.LSTM(8, return_sequences=True),
            layers.Dense(3),
        ]
    )
    x, _ = ragged_data()
    with torch.no_grad():
        model(next(iter(make_loader(x[:2], batch_size=2, checks="off"))).x)
    model.seen = []
    return model


def two_heads() -> RecordingModel:
    """Embedding(mask_zero) -> LSTM, then a tagger head per real step ("tags", 3 logits)
    and a classifier head per sequence on the LSTM's last state ("mood", 2
    probabilities, an L2 penalty on its kernel): the two losses count different real
    steps. Weights fixed by `SEED`."""
    torch.manual_seed(SEED)
    tokens = Input(shape=(None,), dtype="int64")
    embedded = layers.Embedding(20, 6, mask_zero=True)(tokens)
    sequence = layers.LSTM(8, return_sequences=True)(embedded)
    tags = layers.Dense(3, name="tags")(sequence)
    mood = layers.Dense(2, activation="softmax", kernel_regularizer="l2", name="mood")(
        layers.LSTM(4)(sequence)
    )
    model = RecordingModel(tokens, [tags, mood])
    x, _ = ragged_data()
    with torch.no_grad():
        model(next(iter(make_loader(x[:2], batch_size=2, checks="off"))).x)
    model.seen = []
    return model


def moods(x: list[np.ndarray]) -> np.ndarray:
    """A class per sequence: whether its tokens' mean exceeds 10."""
    return np.array([int(s.mean() > 10) for s in x])


SUMMED = losses.SparseCategoricalCrossentropy(reduction="sum")
"""A loss without a count (divided by `1 / W` under data parallel)."""


def fit_two_heads(
    batch_size: int = BATCH,
    steps_per_update: int = 1,
    mood_loss: Any = "sparse_categorical_crossentropy",
    tags_loss: Any = None,
    **fit_args: Any,
) -> dict[str, Any]:
    """`fit` of `two_heads` (Adam, loss weights, a metric per output, validation), then
    `evaluate` on other data; the weights, history, evaluation and sequences seen.
    `mood_loss` None: only the tagger head trains; `tags_loss` None: its
    `SparseCategoricalCrossentropy(from_logits=True)`."""
    x, y = ragged_data(N_FIT)
    x_val, y_val = ragged_data(7, seed=5)
    model = two_heads()
    model.compile(
        "adam",
        loss=[
            tags_loss or losses.SparseCategoricalCrossentropy(from_logits=True),
            mood_loss,
        ],
        loss_weights=[1.0, 0.5],
        metrics={"tags": ["accuracy"], "mood": ["accuracy"]},
    )
    history = model.fit(
        x,
        [y, moods(x)],
        batch_size=batch_size,
        validation_data=(x_val, [y_val, moods(x_val)]),
        seed=SEED,
        steps_per_update=steps_per_update,
        **{"epochs": EPOCHS, "verbose": 0, **fit_args},
    )
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "history": history.history,
        "evaluate": model.evaluate(x_val, [y_val, moods(x_val)], batch_size=3),
        "seen": model.seen,
    }


def fit_two_heads_in_order(
    batch_size: int, steps_per_update: int = 1, **fit_args: Any
) -> dict[str, Any]:
    """`fit_two_heads` on batches in data order (no shuffle, no bucketing), so that k
    batches of `batch_size` are exactly the batch of `k * batch_size`; each sequence
    weighted (`sample_weight`), the validation on batches of `BATCH` whatever
    `batch_size` (the `loss` of several outputs weighs each batch by its steps)."""
    weights = np.linspace(0.5, 2.0, N_FIT, dtype="float32")
    return fit_two_heads(
        batch_size,
        steps_per_update,
        shuffle=False,
        bucketing=False,
        sample_weight=weights,
        validation_batch_size=BATCH,
        **fit_args,
    )


class PerRankMeans(Update):
    """The mistake `Update` avoids for several outputs: each process's loss of each
    output its own mean (DDP then averages the processes' gradients)."""

    def normalizers(self, outputs: Any, targets: Any) -> list[Any]:
        super().normalizers(outputs, targets)  # joins the count's collective, notes the piece
        return [None] * len(outputs)

    def own(self, parts: Any) -> list[Any]:
        return [None if part is None else part.detach() for part in parts]


def hand_loop(
    wrap: Callable[[torch.nn.Module], torch.nn.Module], normalize: bool
) -> dict[str, Any]:
    """A hand-written loop: SGD on the global batches, this process's share of each.

    `normalize`: divide the loss by the real steps of the global batch (`normalizer=`),
    else by this share's own (the per-process mean). Returns the final weights and the
    indices of the sequences this process trained on, per epoch.
    """
    x, y = ragged_data()
    model = recurrent_tagger()
    net = wrap(model)
    loader = make_loader(x, y, batch_size=BATCH, seed=SEED)
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen: list[list[int]] = []
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        seen.append([])
        for batch in loader:
            assert batch.size > 0, "the shares of this problem are never empty"
            out = net(batch.x)
            normalizer = None
            if normalize:
                normalizer = distributed.global_real_steps(out) / distributed.world_size()
            loss = loss_fn(batch.y, out, normalizer=normalizer)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen[-1] += batch.index.tolist()
    return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()}, "seen": seen}


def fit_problem(
    batch_size: int = BATCH,
    steps_per_update: int = 1,
    epochs: int = EPOCHS,
    ordered: bool = False,
    **fit_args: Any,
) -> dict[str, Any]:
    """`fit` (Adam, with validation), then `evaluate` and `predict` on other data (all
    of it, and its first 2 batches of 3: `steps=2`).

    `ordered`: batches in data order (no shuffle, no bucketing), so that k batches of
    `batch_size` are exactly the batch of `k * batch_size`. Returns the weights, the
    history, the evaluation, the predictions and the sequences trained on per epoch.
    """
    x, y = ragged_data(N_FIT)
    x_val, y_val = ragged_data(7, seed=5)
    model = recurrent_tagger()
    metrics = ["accuracy", "f1_score"]  # running sums, and a confusion matrix
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=metrics)
    order = {"shuffle": False, "bucketing": False} if ordered else {}
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_val, y_val),
        seed=SEED,
        steps_per_update=steps_per_update,
        **{"verbose": 0, **order, **fit_args},
    )
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "history": history.history,
        "evaluate": model.evaluate(x_val, y_val, batch_size=3),
        "predict": model.predict(x_val, batch_size=3),
        "evaluate_steps": model.evaluate(x_val, y_val, batch_size=3, steps=2),
        "predict_steps": model.predict(x_val, batch_size=3, steps=2),
        "seen": model.seen,
    }


def hand_accumulation(mode: str) -> dict[str, torch.Tensor]:
    """A hand-written loop, SGD, batches in data order; the final weights.

    `mode`: `"big"` one batch of 6 per update; `"global"` two micro-batches of 3 per
    update, each normalised by the real steps of both (`normalizer=`); `"naive"` two
    micro-batches, each its own mean, halved (the per-micro-batch mean).
    """
    x, y = ragged_data()
    model = recurrent_tagger()
    size, k = (6, 1) if mode == "big" else (3, 2)
    loader = make_loader(x, y, batch_size=size, shuffle=False, bucketing=False)
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(EPOCHS):
        batches = list(loader)
        for start in range(0, len(batches), k):
            update = batches[start : start + k]
            count = sum(int(b.x.mask.sum()) for b in update)  # the real steps of the update
            opt.zero_grad()
            for batch in update:
                out = model(batch.x)
                if mode == "naive":
                    loss = loss_fn(batch.y, out) / len(update)
                else:
                    loss = loss_fn(batch.y, out, normalizer=count)
                loss.backward()
            opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_parquet(path: Any, n: int = 40) -> None:
    """The ragged tagging data of `ragged_data(n)` as a long-format Parquet file, in
    row groups of 25 rows (so sequences cross row-group boundaries)."""
    import pandas as pd

    x, y = ragged_data(n)
    rows = [
        {"seq": s, "step": t, "token": int(x[s][t]), "tag": int(y[s][t])}
        for s in range(n)
        for t in range(len(x[s]))
    ]
    pd.DataFrame(rows).to_parquet(path, row_group_size=25, index=False)


def fit_parquet(path: Any) -> dict[str, Any]:
    """One epoch of `fit` on the streamed file (sharded by row group under DDP)."""
    from maskwise.data import ParquetSequences

    model = recurrent_tagger()
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    data = ParquetSequences(path, "seq", "step", "token", "tag", window=16)
    history = model.fit(data, batch_size=BATCH, seed=SEED, verbose=0)
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "history": history.history,
        "seen": model.seen,
    }
