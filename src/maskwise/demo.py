"""The maskwise demo (`make demo`, `python -m maskwise.demo`, `maskwise demo`).

On the two real data sets shipped with maskwise:

- Japanese Vowels, sequence classification (who speaks? 9 speakers, 7 to 29 frames of
  12 features): `Bidirectional(LSTM) -> Dense(9, softmax)`.
- Turkish Web Treebank, per-step tagging (14 part-of-speech tags, 2 to 34 tokens): word
  ids and word-suffix ids through `Embedding(mask_zero=True)`, `Concatenate`,
  `Bidirectional(GRU, return_sequences=True) -> Dense(14, softmax)`.

For each data set it first runs the doctor on the data as a user might load it wrongly
and as maskwise loads it; then trains the masked model and the same model WITHOUT a mask
(the data padded to the longest sequence and read as data, as Keras does when the mask
is missing); evaluates both on the official test split counting the real steps only;
prints a summary table; and writes to `demo_output/` the training curves, the mask trace
of each masked model (`trace(...).plot(...)`) and the saved models.
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
from .datasets import load_japanese_vowels, load_turkish_treebank
from .doctor import check
from .masked import Masked
from .metrics import SparseCategoricalAccuracy
from .models import Graph, Sequential
from .trace import trace

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """What the demo trains; the defaults take about 2 minutes per data set on 2 cores.

    Args:
        seed: seeds the weights and the batch order (the run is reproducible).
        vowels_epochs, treebank_epochs: training epochs per data set.
        units: recurrent units per direction.
        batch_size: sequences per batch (bucketed by length).
        learning_rate: Adam's learning rate.
        limit: use only the first `limit` sequences of each split (smoke runs).
        threads: `torch.set_num_threads`.
    """

    seed: int = 0
    vowels_epochs: int = 30
    treebank_epochs: int = 8
    units: int = 64
    batch_size: int = 32
    learning_rate: float = 0.005
    limit: int | None = None
    threads: int = 2


QUICK = Settings(vowels_epochs=1, treebank_epochs=1, units=8, limit=40)
"""Tiny settings for a smoke run (a few seconds)."""


@dataclass
class Result:
    """One trained model: accuracy on the real test steps and training speed."""

    dataset: str
    task: str
    variant: str  # "masked" or "unmasked"
    accuracy: float
    train_seconds: float
    real_steps_per_second: float
    history: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------------- helpers
def _pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """Post-pad sequences `(time_i, ...)` with zeros to `(N, length, ...)`."""
    out = np.zeros((len(sequences), length, *sequences[0].shape[1:]), sequences[0].dtype)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = seq
    return out


def _real_mask(sequences: list[np.ndarray], length: int) -> torch.Tensor:
    lengths = torch.tensor([len(s) for s in sequences])
    return torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)


def _accuracy(out: Masked, y: Any, real: torch.Tensor | None) -> float:
    """Accuracy on the real steps: `real` replaces whatever mask the output has."""
    metric = SparseCategoricalAccuracy()
    metric.update(out if real is None else Masked(out.values, real), torch.as_tensor(y))
    return float(metric.result())


def _train(
    model: Any, x: Any, y: Any, epochs: int, settings: Settings, real_steps: int, **fit_args: Any
) -> tuple[dict[str, list[float]], float, float]:
    """Fit `model`; return its history, the training time and the real steps per second."""
    model.compile(
        "adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        learning_rate=settings.learning_rate,
    )
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        verbose=0,
        **fit_args,
    )
    seconds = time.perf_counter() - start
    return dict(history.history), seconds, real_steps * epochs / seconds


def _doctor(echo: Echo, title: str, findings: list[Any]) -> list[str]:
    echo(f"  doctor, {title}:" + ("" if findings else " no findings"))
    for finding in findings:
        echo("    " + str(finding).replace("\n", "\n    "))
    return [f.code for f in findings]


def _limit(items: list[Any] | np.ndarray, settings: Settings) -> Any:
    return items if settings.limit is None else items[: settings.limit]


# ---------------------------------------------------------------------- Japanese Vowels
def vowels_model(units: int) -> Sequential:
    return Sequential([layers.Bidirectional(layers.LSTM(units)), layers.Dense(9, "softmax")])


def run_vowels(settings: Settings, out: Path, echo: Echo) -> list[Result]:
    train, test = load_japanese_vowels()
    x_train, y_train = _limit(train.x, settings), _limit(train.y, settings)
    x_test, y_test = _limit(test.x, settings), _limit(test.y, settings)
    longest = max(len(s) for s in x_train + x_test)
    echo(
        f"Japanese Vowels: {len(x_train)} train / {len(x_test)} test utterances, "
        f"12 features, {min(len(s) for s in x_train)} to {longest} frames, 9 speakers"
    )

    # The .ts file stores each utterance as (12 features, time): stacked as they are,
    # the batch is (N, 12, time), and Masking would mask nothing.
    as_stored = np.stack([np.pad(s.T, ((0, 0), (0, longest - len(s)))) for s in x_train])
    _doctor(echo, "utterances stacked as stored in the file, (N, 12, time)", check(as_stored))
    _doctor(echo, "as maskwise loads them, (time, 12)", check(x_train, y_train))

    real_steps = sum(len(s) for s in x_train)
    results = []
    for variant in ("masked", "unmasked"):
        torch.manual_seed(settings.seed)
        model = vowels_model(settings.units)
        if variant == "masked":  # ragged lists: every batch carries its mask
            fit_x, test_x = x_train, Masked.pad(x_test)
            fit_args: dict[str, Any] = {}
        else:  # padded to the longest utterance, zeros read as data
            fit_x, test_x = _pad(x_train, longest), Masked(torch.from_numpy(_pad(x_test, longest)))
            fit_args = {"mask_value": None}
        history, seconds, speed = _train(
            model, fit_x, y_train, settings.vowels_epochs, settings, real_steps, **fit_args
        )
        model.eval()
        with torch.no_grad():
            accuracy = _accuracy(model(test_x), y_test, None)
        results.append(
            Result(
                "Japanese Vowels", "classify sequences", variant, accuracy, seconds, speed, history
            )
        )
        model.save(out / f"japanese_vowels_{variant}.safetensors")
        if variant == "masked":
            _save_trace(model, (Masked.pad(x_test[:8]),), out / "japanese_vowels_trace.png")
    return results


# ---------------------------------------------------------------------- Turkish treebank
def tagger(vocab: int, suffixes: int, tags: int, units: int, masked: bool) -> Graph:
    """Word ids and suffix ids, each embedded, concatenated, a BiGRU, a tag per token.

    With `masked=False` the embeddings do not mask id 0, so the padding is read as data,
    and the model has one more output class: the padding "tag" it must then learn.
    """
    return Graph(
        inputs=["words", "suffixes"],
        nodes=[
            ("word_vectors", layers.Embedding(vocab, 64, mask_zero=masked), ["words"]),
            ("suffix_vectors", layers.Embedding(suffixes, 32, mask_zero=masked), ["suffixes"]),
            ("concatenate", layers.Concatenate(), ["word_vectors", "suffix_vectors"]),
            (
                "bigru",
                layers.Bidirectional(layers.GRU(units, return_sequences=True)),
                ["concatenate"],
            ),
            ("dropout", layers.Dropout(0.25), ["bigru"]),
            ("tags", layers.Dense(tags if masked else tags + 1, "softmax"), ["dropout"]),
        ],
        outputs="tags",
    )


def run_treebank(settings: Settings, out: Path, echo: Echo) -> list[Result]:
    train, _, test = load_turkish_treebank()
    words, suffixes, tags = (_limit(s, settings) for s in (train.x, train.suffixes, train.y))
    test_words, test_suffixes, test_tags = (
        _limit(s, settings) for s in (test.x, test.suffixes, test.y)
    )
    longest = max(len(s) for s in words + test_words)
    num_tags = len(train.tags)
    echo(
        f"Turkish Web Treebank: {len(words)} train / {len(test_words)} test sentences, "
        f"{len(train.vocab)} words, {len(train.suffix_vocab)} suffixes, {num_tags} tags, "
        f"2 to {longest} tokens"
    )

    # The usual first try: pad tag ids with 0, although tag 0 is a real tag (ADJ).
    _doctor(
        echo, "word ids and tags padded with 0", check(_pad(words, longest), _pad(tags, longest))
    )
    _doctor(echo, "as maskwise loads them (ragged lists)", check(words, tags))

    real_steps = sum(len(s) for s in words)
    test_real = _real_mask(test_words, longest)
    y_test = torch.from_numpy(_pad(test_tags, longest))
    results = []
    for variant in ("masked", "unmasked"):
        torch.manual_seed(settings.seed)
        model = tagger(
            len(train.vocab),
            len(train.suffix_vocab),
            num_tags,
            settings.units,
            masked=variant == "masked",
        )
        if variant == "masked":  # ragged lists: id 0 never occurs, the embeddings mask
            fit_x: Any = (words, suffixes)
            fit_y: Any = tags
            fit_args: dict[str, Any] = {}
        else:  # padded to the longest sentence; the padding gets its own tag
            fit_x = (_pad(words, longest), _pad(suffixes, longest))
            fit_y = np.where(_real_mask(words, longest).numpy(), _pad(tags, longest), num_tags)
            fit_args = {"mask_value": None}
        history, seconds, speed = _train(
            model, fit_x, fit_y, settings.treebank_epochs, settings, real_steps, **fit_args
        )
        test_x = [torch.from_numpy(_pad(s, longest)) for s in (test_words, test_suffixes)]
        model.eval()
        with torch.no_grad():
            accuracy = _accuracy(model(*[Masked(t) for t in test_x]), y_test, test_real)
        results.append(
            Result(
                "Turkish Web Treebank",
                "tag tokens (UPOS)",
                variant,
                accuracy,
                seconds,
                speed,
                history,
            )
        )
        model.save(out / f"turkish_treebank_{variant}.safetensors")
        if variant == "masked":
            sample = tuple(Masked.pad(s[:8]) for s in (test_words, test_suffixes))
            _save_trace(model, sample, out / "turkish_treebank_trace.png")
    return results


# ---------------------------------------------------------------------- output
def _save_trace(model: Any, inputs: tuple[Masked, ...], path: Path) -> None:
    model.eval()
    with torch.no_grad():
        trace(model, *inputs).plot(path)


def plot_curves(results: list[Result], path: Path) -> None:
    """Training loss and accuracy per epoch, masked vs unmasked, one row per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in results))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.5 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        for r in results:
            if r.dataset != dataset:
                continue
            for ax, key in zip(row, ("loss", "accuracy"), strict=True):
                values = r.history.get(key, [])
                ax.plot(range(1, len(values) + 1), values, marker=".", label=r.variant)
                ax.set_title(f"{dataset}: training {key}")
                ax.set_xlabel("epoch")
                ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_table(results: list[Result]) -> str:
    """The results as an aligned text table."""
    head = ("data set", "task", "model", "test acc. (real steps)", "train s", "real steps/s")
    rows = [
        (
            r.dataset,
            r.task,
            r.variant,
            f"{r.accuracy:.4f}",
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
    settings: Settings = Settings(), out: Path | str = "demo_output", echo: Echo = print
) -> list[Result]:
    """Run the whole demo; return the results (also written to `out/results.json`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    results = run_vowels(settings, out, echo) + run_treebank(settings, out, echo)
    plot_curves(results, out / "training_curves.png")
    (out / "results.json").write_text(
        json.dumps(
            {"settings": asdict(settings), "results": [asdict(r) for r in results]}, indent=1
        )
    )
    echo("\n" + summary_table(results))
    echo(f"\ntotal {time.perf_counter() - start:.0f} s; plots, traces and saved models in {out}/")
    return results


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder (demo_output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")


def run(args: argparse.Namespace) -> int:
    """`maskwise demo`: run the demo with the command line's arguments."""
    settings = QUICK if args.quick else Settings()
    run_demo(replace(settings, seed=args.seed), args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskwise.demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
