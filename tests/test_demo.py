"""A smoke run of the demo pipeline with tiny settings (the real run is `make demo`)."""

import gzip
import json
from importlib import resources

import numpy as np
import pytest
import torch

import maskwise
from maskwise import demo, layers
from maskwise.datasets import FEATURES, load_japanese_vowels, load_turkish_treebank


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    results = demo.run_demo(demo.QUICK, out, echo=lines.append)
    return out, results, "\n".join(lines)


def test_demo_results(smoke):
    _, results, text = smoke
    assert [(r.dataset, r.variant) for r in results] == [
        ("Japanese Vowels", "masked"),
        ("Japanese Vowels", "unmasked"),
        ("Turkish Web Treebank", "masked"),
        ("Turkish Web Treebank", "unmasked"),
    ]
    for r in results:
        assert 0.0 <= r.accuracy <= 1.0 and r.accuracies == [r.accuracy]
        assert r.train_seconds > 0 and r.real_steps_per_second > 0
        assert len(r.history["loss"]) == 1
    for masked in results[0::2]:
        # A masked model ignores padding: same predictions with or without it, and the
        # accuracy on the real steps is what evaluate() reports with its masked metric.
        assert masked.changed_by_padding == 0.0
        assert masked.accuracy == pytest.approx(masked.evaluate_accuracy, abs=1e-9)
    # The doctor catches the file's (features, time) layout and 0 as padding tag.
    assert "MW001" in text and "MW004" in text
    assert "test accuracy" in text and "changed by padding" in text


def test_demo_files(smoke):
    out, results, _ = smoke
    for name in (
        "training_curves.png",
        "japanese_vowels_trace.png",
        "turkish_treebank_trace.png",
        "results.json",
    ):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["results"]) == 4 and saved["settings"]["limit"] == demo.QUICK.limit
    assert saved["results"][0]["accuracy"] == results[0].accuracy


def test_saved_models_reload(smoke):
    out, results, _ = smoke
    limit = demo.QUICK.limit
    # The tagger (a Graph, per-step outputs) loads back and scores the same.
    _, _, test = load_turkish_treebank()
    inputs = [test.x[:limit]] + [test.features[name][:limit] for name in FEATURES]
    tagger = maskwise.load(out / "turkish_treebank_masked.safetensors")
    predicted = np.concatenate(demo.predict_classes(tagger, inputs, True, True, None))
    assert (predicted == np.concatenate(test.y[:limit])).mean() == results[2].accuracy
    # So does the classifier (a Sequential whose Dense reads one vector per sequence).
    _, vowels = load_japanese_vowels()
    classifier = maskwise.load(out / "japanese_vowels_masked.safetensors")
    predicted = demo.predict_classes(classifier, [vowels.x[:limit]], True, False, None)
    assert (np.array(predicted) == vowels.y[:limit]).mean() == results[0].accuracy


def test_predict_classes_padding():
    # An unmasked model reads the padding: its predictions may change with it; a masked
    # one gets the mask and gives the same predictions padded or alone.
    torch.manual_seed(0)
    model = maskwise.Sequential(
        [layers.Bidirectional(layers.GRU(4, return_sequences=True)), layers.Dense(3)]
    )
    seqs = [
        np.random.default_rng(i).normal(size=(n, 2)).astype(np.float32)
        for i, n in enumerate([2, 5, 3])
    ]
    padded = demo.predict_classes(model, [seqs], True, True, 8)
    alone = demo.predict_classes(model, [seqs], True, True, None)
    assert [len(p) for p in padded] == [2, 5, 3]
    for a, b in zip(padded, alone, strict=True):
        np.testing.assert_array_equal(a, b)


def test_summary_table_lines_up():
    result = demo.Result("D", "t", "masked", 0.5, 0.01, 0.0125, 1.0, 1234.5)
    table = demo.summary_table([result]).splitlines()
    assert table[0].startswith("data set") and set(table[1]) <= {"-", " "}
    assert table[2].split() == [
        "D",
        "t",
        "masked",
        "0.5000",
        "±",
        "0.0100",
        "1.25%",
        "1.0",
        "1,234",
    ]


def test_demo_on_own_conllu_file(tmp_path):
    source = resources.files("maskwise.datasets") / "data/turkish_web_treebank/web.conllu.gz"
    sentences = gzip.decompress(source.read_bytes()).decode().split("\n\n")[:60]
    path = tmp_path / "mine.conllu"
    path.write_text("\n\n".join(sentences) + "\n")
    out = tmp_path / "out"
    assert demo.main(["--quick", "--data", str(path), "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())["results"]
    assert [(r["dataset"], r["variant"]) for r in saved] == [
        ("mine.conllu", "masked"),
        ("mine.conllu", "unmasked"),
    ]
    assert saved[0]["changed_by_padding"] == 0.0
