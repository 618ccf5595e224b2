"""The maskwise demo (`make demo`, `python -m maskwise.demo`, `maskwise demo`).

On the two real data sets shipped with maskwise:

- Japanese Vowels, sequence classification (who speaks? 9 speakers, 7 to 29 frames of
  12 features, standardized): `Bidirectional(LSTM) -> Dropout -> Dense(9, softmax)`.
- Turkish Web Treebank, per-step tagging (14 part-of-speech tags, 2 to 34 tokens): word
  ids and three sub-word feature ids (first and last three letters, word shape), each
  through `Embedding(mask_zero=True)`, `Concatenate`, then three taggers:
  `Bidirectional(GRU, return_sequences=True)`; `Conv1D(padding="same") ->
  Bidirectional(LSTM, return_sequences=True)`; and, the word ids through a
  `TokenAndPositionEmbedding`, a `TransformerEncoder`; each `-> Dense(14, softmax)`.

For each data set it first runs the doctor on the data as a user might load it wrongly
and as maskwise loads it; then trains each masked model and the same model WITHOUT a mask
(the data padded to the longest sequence and read as data, as Keras does when the mask
is missing); evaluates both on the official test split counting the real steps only,
and counts how many predictions change when a sequence runs without padding (a masked
model's cannot); prints a summary table; and writes to `demo_output/` the training
curves, the mask trace of each masked model (`trace(...).plot(...)`) and the saved
models.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import layers
from .datasets import FEATURES, load_conllu, load_japanese_vowels, load_turkish_treebank
from .doctor import check
from .masked import Masked, lengths_to_mask
from .models import Graph, Sequential
from .trace import trace

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """What the demo trains; the defaults take about three minutes in all on one core.

    Args:
        seed, seeds: each model is trained from seeds `seed, seed + 1, ...` (`seeds` of
            them), which fix the weights and the batch order: the run is reproducible.
        vowels_epochs, vowels_units, vowels_batch_size, vowels_learning_rate: the
            Japanese Vowels classifier's training epochs, LSTM units per direction,
            sequences per batch and Adam's learning rate.
        treebank_epochs, conv_epochs, transformer_epochs: training epochs of the
            treebank's BiGRU, convolution + BiLSTM and Transformer taggers.
        units: the BiGRU tagger's units per direction.
        conv_units: the convolution + BiLSTM tagger's filters and units per direction.
        batch_size: the taggers' sequences per batch (bucketed by length).
        learning_rate, transformer_learning_rate: Adam's learning rate for the
            recurrent taggers and for the Transformer tagger.
        limit: use only the first `limit` sequences of each split (smoke runs).
        threads: `torch.set_num_threads`; 1 is fastest for these small recurrent
            models (with 2 threads, the cores spin-wait on each other, and a busy
            machine makes that 10 times slower).
    """

    seed: int = 0
    seeds: int = 3
    vowels_epochs: int = 40
    vowels_units: int = 128
    vowels_batch_size: int = 16
    vowels_learning_rate: float = 0.001
    treebank_epochs: int = 7
    conv_epochs: int = 6
    transformer_epochs: int = 6
    units: int = 100
    conv_units: int = 64
    batch_size: int = 32
    learning_rate: float = 0.005
    transformer_learning_rate: float = 0.004
    limit: int | None = None
    threads: int = 1


QUICK = Settings(
    seeds=1,
    vowels_epochs=1,
    vowels_units=8,
    treebank_epochs=1,
    conv_epochs=1,
    transformer_epochs=1,
    units=8,
    conv_units=8,
    limit=40,
)
"""Tiny settings for a smoke run (a few seconds)."""


@dataclass(frozen=True)
class Architecture:
    """One model of a task: its name in the table, its builder, how it trains.

    Args:
        name: shown in the table's "model" column.
        slug: names its files in the output folder.
        build: `build(masked)` makes the model; `masked=False` gives the same
            architecture reading the padding as data.
        epochs, batch_size, learning_rate: its training run, with Adam.
    """

    name: str
    slug: str
    build: Callable[[bool], Any]
    epochs: int
    batch_size: int
    learning_rate: float


@dataclass
class Task:
    """A data set, a task, and its models; `inputs` hold one list per model input."""

    dataset: str
    task: str
    slug: str
    train_inputs: list[list[np.ndarray]]
    train_y: Any
    test_inputs: list[list[np.ndarray]]
    test_y: Any
    per_step: bool
    architectures: list[Architecture]
    num_classes: int


@dataclass
class Result:
    """A model trained from each seed, evaluated on the real steps of the test split.

    Args:
        accuracy, accuracy_std: mean and standard deviation over the seeds of the
            accuracy over the real test steps, the test split padded to its longest
            sequence (the masked model ignores the padding, the unmasked one reads it).
        changed_by_padding: share of the real test steps whose prediction differs when
            every sequence is run alone, without padding (0 for a masked model); mean
            over the seeds.
        train_seconds, real_steps_per_second: training time (mean over the seeds) and
            real training steps (not padding) per second.
        evaluate_accuracy: `model.evaluate`'s masked accuracy (masked models only).
        accuracies: the accuracy from each seed.
        history: the first seed's training history.
    """

    dataset: str
    task: str
    model: str  # the architecture's name
    variant: str  # "masked" or "unmasked"
    accuracy: float
    accuracy_std: float
    changed_by_padding: float
    train_seconds: float
    real_steps_per_second: float
    evaluate_accuracy: float | None = None
    accuracies: list[float] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------------- helpers
def _pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """Post-pad sequences `(time_i, ...)` with zeros to an array `(N, length, ...)`."""
    return Masked.pad(sequences, max_len=length).values.numpy()


def _inputs(model_inputs: list[Any]) -> Any:
    """What `fit` takes: one input as it is, several as a tuple."""
    return model_inputs[0] if len(model_inputs) == 1 else tuple(model_inputs)


def predict_classes(
    model: Any, inputs: list[list[np.ndarray]], masked: bool, per_step: bool, length: int | None
) -> list[np.ndarray]:
    """Predicted class of every real step (or of every sequence), one array per sequence.

    The sequences are padded to `length`; with `length=None` each one runs without any
    padding (sequences of one length together). The masked model gets the mask; the
    unmasked one reads the padding as data.
    """
    lengths = [len(s) for s in inputs[0]]
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n if length is None else length, []).append(i)
    predictions: list[np.ndarray] = [np.empty(0)] * len(lengths)
    model.eval()
    for steps, rows in groups.items():
        real = lengths_to_mask([lengths[i] for i in rows], steps)
        args = [
            Masked(torch.from_numpy(_pad([seqs[i] for i in rows], steps)), real if masked else None)
            for seqs in inputs
        ]
        with torch.no_grad():
            classes = model(*args).values.argmax(-1).numpy()
        for row, i in enumerate(rows):
            predictions[i] = classes[row, : lengths[i]] if per_step else classes[row]
    return predictions


@dataclass
class Run:
    """One model trained from one seed."""

    model: Any
    accuracy: float
    changed_by_padding: float
    seconds: float
    evaluate_accuracy: float | None
    history: dict[str, list[float]]


def train_and_evaluate(task: Task, architecture: Architecture, masked: bool, seed: int) -> Run:
    """Train the masked or the unmasked `architecture` of `task` from `seed`; test it."""
    lengths = [len(s) for s in task.train_inputs[0]]
    longest = max(lengths + [len(s) for s in task.test_inputs[0]])
    torch.manual_seed(seed)
    model = architecture.build(masked)
    if masked:  # ragged lists: each batch is padded to its own longest, with its mask
        x, y, fit_args = _inputs(task.train_inputs), task.train_y, {}
    else:  # padded to the longest sequence, no mask: the padding is data
        x = _inputs([_pad(seqs, longest) for seqs in task.train_inputs])
        y = task.train_y
        if task.per_step:  # the padding needs a label: one more class
            real = lengths_to_mask(lengths, longest).numpy()
            y = np.where(real, _pad(task.train_y, longest), task.num_classes)
        fit_args = {"mask_value": None}
    model.compile(
        "adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        learning_rate=architecture.learning_rate,
    )
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=architecture.epochs,
        batch_size=architecture.batch_size,
        seed=seed,
        verbose=0,
        **fit_args,
    )
    seconds = time.perf_counter() - start

    flat = np.concatenate if task.per_step else np.asarray
    padded = flat(predict_classes(model, task.test_inputs, masked, task.per_step, longest))
    alone = flat(predict_classes(model, task.test_inputs, masked, task.per_step, None))
    evaluated = None
    if masked:
        metrics = model.evaluate(_inputs(task.test_inputs), task.test_y, mask_value=None)
        evaluated = float(metrics["accuracy"])
    return Run(
        model,
        accuracy=float((padded == flat(task.test_y)).mean()),
        changed_by_padding=float((padded != alone).mean()),
        seconds=seconds,
        evaluate_accuracy=evaluated,
        history=dict(history.history),
    )


def run_task(task: Task, settings: Settings, out: Path, echo: Echo) -> list[Result]:
    """Train and test the masked and the unmasked model of each architecture of `task`
    from each seed; save the first seed's models (and the masked one's mask trace)."""
    return [
        result
        for architecture in task.architectures
        for result in run_architecture(task, architecture, settings, out, echo)
    ]


def run_architecture(
    task: Task, architecture: Architecture, settings: Settings, out: Path, echo: Echo
) -> list[Result]:
    """Train and test the masked and the unmasked `architecture` from each seed."""
    real_steps = sum(len(s) for s in task.train_inputs[0]) * architecture.epochs
    seeds = [settings.seed + i for i in range(settings.seeds)]
    slug = f"{task.slug}_{architecture.slug}"
    results = []
    for variant in ("masked", "unmasked"):
        runs = []
        for seed in seeds:
            runs.append(train_and_evaluate(task, architecture, variant == "masked", seed))
            echo(
                f"  {architecture.name}, {variant:8s} seed {seed}: test accuracy "
                f"{runs[-1].accuracy:.4f}, {runs[-1].seconds:.1f} s"
            )
        accuracies = [r.accuracy for r in runs]
        evaluated = [r.evaluate_accuracy for r in runs if r.evaluate_accuracy is not None]
        results.append(
            Result(
                task.dataset,
                task.task,
                architecture.name,
                variant,
                accuracy=float(np.mean(accuracies)),
                accuracy_std=float(np.std(accuracies)),
                changed_by_padding=float(np.mean([r.changed_by_padding for r in runs])),
                train_seconds=float(np.mean([r.seconds for r in runs])),
                real_steps_per_second=real_steps / float(np.mean([r.seconds for r in runs])),
                evaluate_accuracy=float(np.mean(evaluated)) if evaluated else None,
                accuracies=accuracies,
                history=runs[0].history,
            )
        )
        model = runs[0].model
        model.save(out / f"{slug}_{variant}.safetensors")
        if variant == "masked":
            sample = [Masked.pad(seqs[:8]) for seqs in task.test_inputs]
            model.eval()
            with torch.no_grad():
                trace(model, *sample).plot(out / f"{slug}_trace.png")
    return results


def _doctor(echo: Echo, title: str, findings: list[Any]) -> list[str]:
    echo(f"  doctor, {title}:" + ("" if findings else " no findings"))
    for finding in findings:
        echo("    " + str(finding).replace("\n", "\n    "))
    return [f.code for f in findings]


def _limit(items: Any, settings: Settings) -> Any:
    return items if settings.limit is None else items[: settings.limit]


# ---------------------------------------------------------------------- Japanese Vowels
def standardize(sequences: list[np.ndarray], train: list[np.ndarray]) -> list[np.ndarray]:
    """Each feature shifted and scaled to mean 0 and standard deviation 1 over the
    frames of the `train` sequences (the LPC coefficients' scales differ)."""
    frames = np.concatenate(train)
    mean, std = frames.mean(0), frames.std(0)
    return [((s - mean) / std).astype(s.dtype) for s in sequences]


def vowels_model(units: int) -> Sequential:
    """`Bidirectional(LSTM(units)) -> Dropout -> Dense(9, softmax)`: one speaker per
    utterance."""
    return Sequential(
        [
            layers.Bidirectional(layers.LSTM(units), name="bilstm"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(9, "softmax", name="speaker"),
        ]
    )


def vowels_task(settings: Settings, echo: Echo) -> Task:
    train, test = load_japanese_vowels()
    x_train, y_train = _limit(train.x, settings), _limit(train.y, settings)
    x_test, y_test = _limit(test.x, settings), _limit(test.y, settings)
    longest = max(len(s) for s in x_train + x_test)
    echo(
        f"Japanese Vowels: {len(x_train)} train / {len(x_test)} test utterances, 12 features, "
        f"{min(len(s) for s in x_train + x_test)} to {longest} frames, 9 speakers"
    )
    # The .ts file stores each utterance as (12 features, time). Read as stored, the
    # sequences are transposed; stacked, the batch is (N, 12, time) and a Masking layer
    # would mask nothing.
    as_stored = [s.T for s in x_train]
    stacked = np.stack([np.pad(s, ((0, 0), (0, longest - s.shape[1]))) for s in as_stored])
    _doctor(echo, "utterances as stored in the file, (12, time) each", check(as_stored))
    _doctor(echo, "the same, zero-padded and stacked, (N, 12, time)", check(stacked))
    _doctor(echo, "as maskwise loads them, (time, 12)", check(x_train, y_train))
    return Task(
        "Japanese Vowels",
        "classify sequences",
        "japanese_vowels",
        [standardize(x_train, x_train)],
        y_train,
        [standardize(x_test, x_train)],
        y_test,
        per_step=False,
        architectures=[
            Architecture(
                "BiLSTM",
                "bilstm",
                lambda masked: vowels_model(settings.vowels_units),
                settings.vowels_epochs,
                settings.vowels_batch_size,
                settings.vowels_learning_rate,
            )
        ],
        num_classes=9,
    )


# ---------------------------------------------------------------------- Turkish treebank
Node = tuple[str, Any, list[str]]


def _node(layer: Any, *inputs: str) -> Node:
    """A `Graph` node named after its layer."""
    return (layer.name, layer, list(inputs))


def _embedded(
    vocab: int, features: dict[str, int], masked: bool, positions: int | None = None
) -> tuple[list[str], list[Node]]:
    """The taggers' inputs: word ids and sub-word feature ids, each through an
    `Embedding` (`mask_zero=masked`), concatenated, then `Dropout`; the word ids through a
    `TokenAndPositionEmbedding` of `positions` positions if given. Returns the input
    names and the nodes, the last one named "input_dropout"."""
    sizes = {"words": (vocab, 64)} | {
        name: (n, 8 if name == "shape" else 64) for name, n in features.items()
    }
    embeddings = [
        _node(
            layers.TokenAndPositionEmbedding(
                n, positions, dim, mask_zero=masked, name=f"{name}_vectors"
            )
            if positions is not None and name == "words"
            else layers.Embedding(n, dim, mask_zero=masked, name=f"{name}_vectors"),
            name,
        )
        for name, (n, dim) in sizes.items()
    ]
    return list(sizes), [
        *embeddings,
        _node(layers.Concatenate(name="concatenate"), *[name for name, _, _ in embeddings]),
        _node(layers.Dropout(0.4, name="input_dropout"), "concatenate"),
    ]


def _tagger(inputs: list[str], nodes: list[Node], tags: int, masked: bool) -> Graph:
    """`nodes`, then `Dense(tags, softmax)` on the last one; with `masked=False` one more
    output class: the padding "tag" the unmasked model must then learn."""
    head = layers.Dense(tags if masked else tags + 1, "softmax", name="tags")
    return Graph(inputs=inputs, nodes=[*nodes, _node(head, nodes[-1][0])], outputs="tags")


def tagger(vocab: int, features: dict[str, int], tags: int, units: int, masked: bool) -> Graph:
    """Word ids and sub-word feature ids, each embedded, concatenated, a BiGRU, a tag per
    token: `Embedding(mask_zero=True)` x (1 + features) -> Concatenate -> Dropout ->
    Bidirectional(GRU(units, return_sequences=True)) -> Dropout -> Dense(tags, softmax)`.

    With `masked=False` the embeddings do not mask id 0, so the padding is read as data,
    and the model has one more output class: the padding "tag" it must then learn.
    """
    inputs, nodes = _embedded(vocab, features, masked)
    rnn = layers.Bidirectional(layers.GRU(units, return_sequences=True), name="bigru")
    return _tagger(
        inputs,
        [*nodes, _node(rnn, "input_dropout"), _node(layers.Dropout(0.4, name="dropout"), "bigru")],
        tags,
        masked,
    )


def conv_tagger(vocab: int, features: dict[str, int], tags: int, units: int, masked: bool) -> Graph:
    """The same inputs, a convolution over each token's neighbours, then a BiLSTM:
    `... -> Dropout -> Conv1D(units, 3, padding="same", relu) ->
    Bidirectional(LSTM(units, return_sequences=True)) -> Dropout -> Dense(tags, softmax)`.

    Masked, the convolution reads the padding as zeros, so the window at a sentence's
    last token sees what it sees with the sentence alone; unmasked, it reads the
    padding's embedding.
    """
    inputs, nodes = _embedded(vocab, features, masked)
    conv = layers.Conv1D(units, 3, padding="same", activation="relu", name="conv")
    rnn = layers.Bidirectional(layers.LSTM(units, return_sequences=True), name="bilstm")
    return _tagger(
        inputs,
        [
            *nodes,
            _node(conv, "input_dropout"),
            _node(rnn, "conv"),
            _node(layers.Dropout(0.4, name="dropout"), "bilstm"),
        ],
        tags,
        masked,
    )


def transformer_tagger(
    vocab: int,
    features: dict[str, int],
    tags: int,
    positions: int,
    masked: bool,
    blocks: int = 1,
    width: int = 64,
    intermediate_dim: int = 128,
) -> Graph:
    """The same inputs, the word ids through a `TokenAndPositionEmbedding` of
    `positions` positions (the longest sentence), then Transformer blocks: `... ->
    Dropout -> Dense(width) -> TransformerEncoder(intermediate_dim, 4 heads) x blocks ->
    Dense(tags, softmax)`.

    Masked, a token attends to the real tokens of its sentence only; unmasked, to the
    padding as well, and the padding tokens get positions too.
    """
    inputs, nodes = _embedded(vocab, features, masked, positions)
    nodes.append(_node(layers.Dense(width, name="projection"), "input_dropout"))
    previous = "projection"
    for block in range(blocks):
        encoder = layers.TransformerEncoder(
            intermediate_dim, 4, dropout=0.1, name=f"encoder_{block}"
        )
        nodes.append(_node(encoder, previous))
        previous = encoder.name
    return _tagger(inputs, nodes, tags, masked)


def treebank_task(settings: Settings, echo: Echo, path: Path | None = None) -> Task:
    """The Turkish Web Treebank, or your own CoNLL-U file at `path`."""
    if path is None:
        dataset, slug = "Turkish Web Treebank", "turkish_treebank"
        train, _, test = load_turkish_treebank()
    else:
        dataset, slug = Path(path).name, "conllu"
        train, _, test = load_conllu(path)

    def inputs(split: Any) -> list[list[np.ndarray]]:
        return [_limit(split.x, settings)] + [
            _limit(split.features[name], settings) for name in FEATURES
        ]

    train_inputs, test_inputs = inputs(train), inputs(test)
    tags, test_tags = _limit(train.y, settings), _limit(test.y, settings)
    words = train_inputs[0]
    longest = max(len(s) for s in words + test_inputs[0])
    echo(
        f"\n{dataset}: {len(words)} train / {len(test_tags)} test sentences, "
        f"{len(train.vocab)} words + features {', '.join(FEATURES)}, {len(train.tags)} tags, "
        f"{min(len(s) for s in words + test_inputs[0])} to {longest} tokens"
    )
    # The usual first try: pad tag ids with 0, although tag 0 is a real tag.
    _doctor(
        echo, "word ids and tags padded with 0", check(_pad(words, longest), _pad(tags, longest))
    )
    _doctor(echo, "as maskwise loads them (ragged lists)", check(words, tags))
    features = {name: len(train.feature_vocabs[name]) for name in FEATURES}
    vocab, classes = len(train.vocab), len(train.tags)
    return Task(
        dataset,
        "tag tokens (UPOS)",
        slug,
        train_inputs,
        tags,
        test_inputs,
        test_tags,
        per_step=True,
        architectures=[
            Architecture(
                "BiGRU",
                "bigru",
                lambda masked: tagger(vocab, features, classes, settings.units, masked),
                settings.treebank_epochs,
                settings.batch_size,
                settings.learning_rate,
            ),
            Architecture(
                "Conv1D + BiLSTM",
                "conv_bilstm",
                lambda masked: conv_tagger(vocab, features, classes, settings.conv_units, masked),
                settings.conv_epochs,
                settings.batch_size,
                settings.learning_rate,
            ),
            Architecture(
                "Transformer",
                "transformer",
                lambda masked: transformer_tagger(vocab, features, classes, longest, masked),
                settings.transformer_epochs,
                settings.batch_size,
                settings.transformer_learning_rate,
            ),
        ],
        num_classes=classes,
    )


# ---------------------------------------------------------------------- output
def plot_curves(results: list[Result], path: Path) -> None:
    """Training loss and accuracy per epoch, masked vs unmasked, one row per data set."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI

    datasets = list(dict.fromkeys(r.dataset for r in results))
    fig = Figure(figsize=(12, 4.5 * len(datasets)))
    axes = fig.subplots(len(datasets), 2, squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        for r in results:
            if r.dataset != dataset:
                continue
            for ax, key in zip(row, ("loss", "accuracy"), strict=True):
                values = r.history.get(key, [])
                label = f"{r.model}, {r.variant}"
                if r.variant == "unmasked" and r.task.startswith("tag"):
                    label += " (padding tag counted)"
                ax.plot(range(1, len(values) + 1), values, marker=".", label=label)
                ax.set_title(f"{dataset}: training {key}")
                ax.set_xlabel("epoch")
                ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def summary_table(results: list[Result]) -> str:
    """The results as an aligned text table."""
    head = (
        "data set",
        "task",
        "model",
        "variant",
        "test accuracy",
        "changed by padding",
        "train s",
        "real steps/s",
    )
    rows = [
        (
            r.dataset,
            r.task,
            r.model,
            r.variant,
            f"{r.accuracy:.4f} ± {r.accuracy_std:.4f}",
            f"{r.changed_by_padding:.2%}",
            f"{r.train_seconds:.1f}",
            f"{r.real_steps_per_second:,.0f}",
        )
        for r in results
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
        for line in (head, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(
    settings: Settings = Settings(),
    out: Path | str = "demo_output",
    echo: Echo = print,
    data: Path | str | None = None,
) -> list[Result]:
    """Run the whole demo; return the results (also written to `out/results.json`).

    With `data` (a CoNLL-U file, plain or `.gz`), run the tagging comparison on it
    instead of on the shipped data sets.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    # The first optimizer imports torch._dynamo (seconds): not part of any model's time.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    if data is None:
        tasks = [vowels_task(settings, echo), treebank_task(settings, echo)]
    else:
        tasks = [treebank_task(settings, echo, Path(data))]
    results = []
    for task in tasks:
        results += run_task(task, settings, out, echo)
    plot_curves(results, out / "training_curves.png")
    (out / "results.json").write_text(
        json.dumps(
            {"settings": asdict(settings), "results": [asdict(r) for r in results]}, indent=1
        )
    )
    echo(
        f"\nTest accuracy over the real steps of the official test split, mean ± sd over "
        f"{settings.seeds} seed(s);\nchanged by padding: real test steps whose prediction "
        "differs when each sequence runs alone, unpadded."
    )
    echo(summary_table(results))
    echo(f"\ntotal {time.perf_counter() - start:.0f} s; plots, traces and saved models in {out}/")
    return results


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder (demo_output)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed (0)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model (3)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="your own CoNLL-U file (plain or .gz): compare masked and unmasked taggers on it "
        "(split: sentence i to dev when i %% 10 == 8, to test when i %% 10 == 9)",
    )


def run(args: argparse.Namespace) -> int:
    """`maskwise demo`: run the demo with the command line's arguments."""
    settings = QUICK if args.quick else Settings()
    settings = replace(settings, seed=args.seed)
    if args.seeds is not None:
        settings = replace(settings, seeds=args.seeds)
    run_demo(settings, args.out, data=args.data)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskwise.demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
