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


MODELS = [
    ("Japanese Vowels", "BiLSTM"),
    ("Turkish Web Treebank", "BiGRU"),
    ("Turkish Web Treebank", "Conv1D + BiLSTM"),
    ("Turkish Web Treebank", "Transformer"),
]
TRACES = [
    "japanese_vowels_bilstm",
    "turkish_treebank_bigru",
    "turkish_treebank_conv_bilstm",
    "turkish_treebank_transformer",
]


def test_demo_results(smoke):
    _, results, text = smoke
    assert [(r.dataset, r.model, r.variant) for r in results] == [
        (dataset, model, variant) for dataset, model in MODELS for variant in ("masked", "unmasked")
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
    # Each unmasked tagger reads the padding: a sentence batched with longer ones is
    # tagged differently from the same sentence alone.
    for unmasked in results[3::2]:
        assert unmasked.changed_by_padding > 0.0, unmasked.model
    # The doctor catches the file's (features, time) layout and 0 as padding tag.
    assert "MW001" in text and "MW004" in text
    assert "test accuracy" in text and "changed by padding" in text


def test_demo_files(smoke):
    out, results, _ = smoke
    for name in ("training_curves.png", "results.json", *[f"{t}_trace.png" for t in TRACES]):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["results"]) == 8 and saved["settings"]["limit"] == demo.QUICK.limit
    assert saved["results"][0]["accuracy"] == results[0].accuracy


def test_saved_models_reload(smoke):
    out, results, _ = smoke
    limit = demo.QUICK.limit
    # The taggers (Graphs, per-step outputs; recurrent, convolution, Transformer) load
    # back and score the same.
    _, _, test = load_turkish_treebank()
    inputs = [test.x[:limit]] + [test.features[name][:limit] for name in FEATURES]
    for slug, result in zip(TRACES[1:], results[2::2], strict=True):
        tagger = maskwise.load(out / f"{slug}_masked.safetensors")
        predicted = np.concatenate(demo.predict_classes(tagger, inputs, True, True, None))
        assert (predicted == np.concatenate(test.y[:limit])).mean() == result.accuracy, slug
    # So does the classifier (a Sequential whose Dense reads one vector per sequence),
    # on the utterances standardized with the training frames' statistics.
    train, vowels = load_japanese_vowels()
    classifier = maskwise.load(out / "japanese_vowels_bilstm_masked.safetensors")
    x = demo.standardize(vowels.x[:limit], train.x[:limit])
    predicted = demo.predict_classes(classifier, [x], True, False, None)
    assert (np.array(predicted) == vowels.y[:limit]).mean() == results[0].accuracy


@pytest.mark.parametrize("build", [demo.tagger, demo.conv_tagger])
def test_unmasked_tagger_is_the_same_architecture(build):
    # The unmasked variant differs only in reading id 0 as data and in its extra
    # output class, the padding "tag"; the masked one masks id 0 from the embeddings on.
    args = (50, {"prefix": 20, "suffix": 20, "shape": 8}, 4, 6)
    check_same_architecture(build(*args, True), build(*args, False))


def test_unmasked_transformer_tagger_is_the_same_architecture():
    args = (50, {"prefix": 20, "suffix": 20, "shape": 8}, 4, 12)
    check_same_architecture(
        demo.transformer_tagger(*args, True), demo.transformer_tagger(*args, False)
    )


def check_same_architecture(masked, unmasked):
    ids = [torch.tensor([[3, 4, 0], [5, 0, 0]])] * 4
    masked_out, unmasked_out = masked(*ids), unmasked(*ids)
    assert masked_out.lengths.tolist() == [2, 1]
    assert unmasked_out.mask is None
    assert (masked_out.values.shape[-1], unmasked_out.values.shape[-1]) == (4, 5)
    # The same weights but the output layer's (the last two: its kernel and bias).
    masked_shapes = [tuple(p.shape) for p in masked.parameters()]
    unmasked_shapes = [tuple(p.shape) for p in unmasked.parameters()]
    assert masked_shapes[:-2] == unmasked_shapes[:-2]
    assert [s[-1] for s in masked_shapes[-2:]] == [4, 4]
    assert [s[-1] for s in unmasked_shapes[-2:]] == [5, 5]


def test_standardize_uses_the_training_frames():
    train = [np.array([[1.0, 10.0], [3.0, 30.0]]), np.array([[2.0, 20.0]])]
    test = [np.array([[2.0, 20.0], [4.0, 40.0]])]
    std = np.sqrt(2 / 3)
    np.testing.assert_allclose(demo.standardize(test, train)[0], [[0, 0], [2 / std, 2 / std]])
    scaled = np.concatenate(demo.standardize(train, train))
    np.testing.assert_allclose(scaled.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(0), 1)


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
    result = demo.Result("D", "t", "BiGRU", "masked", 0.5, 0.01, 0.0125, 1.0, 1234.5)
    table = demo.summary_table([result]).splitlines()
    assert table[0].startswith("data set") and set(table[1]) <= {"-", " "}
    assert table[2].split() == [
        "D",
        "t",
        "BiGRU",
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
    assert [(r["dataset"], r["model"], r["variant"]) for r in saved] == [
        ("mine.conllu", model, variant)
        for _, model in MODELS[1:]
        for variant in ("masked", "unmasked")
    ]
    assert [r["changed_by_padding"] for r in saved[0::2]] == [0.0] * 3
