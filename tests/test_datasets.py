import gzip
from importlib import resources

import numpy as np
import pytest

from maskwise.datasets import (
    FEATURES,
    OOV_ID,
    PAD_ID,
    load_conllu,
    load_japanese_vowels,
    load_turkish_treebank,
    read_conllu,
    read_ts,
    tagging_splits,
    word_shape,
)
from maskwise.errors import ConfigError

DATA = resources.files("maskwise.datasets") / "data"


@pytest.fixture(scope="module")
def vowels():
    return load_japanese_vowels()


@pytest.fixture(scope="module")
def treebank():
    return load_turkish_treebank()


def test_japanese_vowels_counts_and_shapes(vowels):
    train, test = vowels
    assert (len(train.x), len(test.x)) == (270, 370)
    assert (len(train.y), len(test.y)) == (270, 370)
    for split in vowels:
        assert all(a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 12 for a in split.x)
        lengths = [a.shape[0] for a in split.x]
        assert min(lengths) >= 7 and max(lengths) <= 29
    all_lengths = [a.shape[0] for split in vowels for a in split.x]
    assert (min(all_lengths), max(all_lengths)) == (7, 29)


def test_japanese_vowels_labels(vowels):
    train, test = vowels
    assert train.y.dtype == np.int64
    # 30 utterances per speaker in train; every speaker in test (24..88 each).
    assert np.bincount(train.y).tolist() == [30] * 9
    counts = np.bincount(test.y, minlength=9)
    assert len(counts) == 9 and counts.min() >= 24 and counts.max() <= 88


def test_japanese_vowels_is_transposed_from_the_file(vowels):
    # The file is dimension-major: line 1 holds 12 comma-separated series.
    text = gzip.decompress((DATA / "japanese_vowels" / "JapaneseVowels_TRAIN.ts.gz").read_bytes())
    first = next(line for line in text.decode().splitlines() if line and line[0] not in "#@")
    dims = first.split(":")[:-1]
    assert len(dims) == 12
    feature_0 = [float(v) for v in dims[0].split(",")]
    feature_11 = [float(v) for v in dims[11].split(",")]
    x0 = vowels[0].x[0]
    assert x0.shape == (len(feature_0), 12)
    np.testing.assert_allclose(x0[:, 0], feature_0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x0[:, 11], feature_11, rtol=0, atol=1e-6)
    assert int(first.split(":")[-1]) - 1 == vowels[0].y[0]


def test_read_ts_keeps_file_layout():
    text = "# comment\n@dimensions 2\n@data\n1,2,3:4,5,6:7\n0.5,1:2,3:1\n"
    series, labels = read_ts(text)
    assert labels == ["7", "1"]
    np.testing.assert_array_equal(series[0], [[1, 2, 3], [4, 5, 6]])
    assert series[1].shape == (2, 2)


def test_treebank_split_sizes(treebank):
    train, dev, test = treebank
    n = 2541
    assert len(dev.x) == sum(1 for i in range(n) if i % 10 == 8) == 254
    assert len(test.x) == sum(1 for i in range(n) if i % 10 == 9) == 254
    assert len(train.x) == n - 508
    lengths = [len(s) for split in treebank for s in split.x]
    assert (min(lengths), max(lengths)) == (2, 34)


def test_treebank_split_follows_file_order(treebank):
    text = gzip.decompress((DATA / "turkish_web_treebank" / "web.conllu.gz").read_bytes()).decode()
    sentences = read_conllu(text)
    assert len(sentences) == 2541
    train, dev, test = treebank
    assert dev.words[0] == sentences[8].forms and test.words[0] == sentences[9].forms
    assert train.words[8] == sentences[10].forms and test.words[-1] == sentences[2539].forms


def test_treebank_ids(treebank):
    train, _, test = treebank
    assert len(train.tags) == 14 and "NOUN" in train.tags and "PUNCT" in train.tags
    assert train.vocab[:2] == ["<pad>", "<oov>"]
    assert set(train.features) == set(train.feature_vocabs) == set(FEATURES)
    assert all(v[:2] == ["<pad>", "<oov>"] for v in train.feature_vocabs.values())
    for split in treebank:
        assert split.vocab is train.vocab and split.tags is train.tags
        for i, (words, x, y) in enumerate(zip(split.words, split.x, split.y, strict=True)):
            assert len(words) == len(x) == len(y)
            assert x.dtype == y.dtype == np.int64
            assert (x != PAD_ID).all() and x.max() < len(train.vocab)
            assert y.min() >= 0 and y.max() < len(train.tags)
            for name, ids in split.features.items():
                assert len(ids[i]) == len(x) and (ids[i] != PAD_ID).all()
                assert ids[i].max() < len(train.feature_vocabs[name])
    # Known words map back to their lower-cased form; test has unseen words (OOV id 1).
    suffixes = train.features["suffix"][0]
    for word, i, j in zip(train.words[0], train.x[0], suffixes, strict=True):
        assert i == OOV_ID or train.vocab[i] == word.lower()
        assert j == OOV_ID or train.feature_vocabs["suffix"][j] == word.lower()[-3:]
    assert np.mean(np.concatenate(test.x) == OOV_ID) > 0.05


def test_treebank_xpos_has_more_tags():
    train, _, _ = load_turkish_treebank("xpos")
    assert len(train.tags) == 44


def test_tagging_splits_min_count_and_features():
    text = (
        "# c\n1\tEvler\t_\tNOUN\tNN\t_\t0\troot\t_\t_\n2\t.\t_\tPUNCT\t.\t_\t1\tp\t_\t_\n\n"
        "1-2\tevde\t_\t_\t_\t_\t_\t_\t_\t_\n1\tevler\t_\tNOUN\tNN\t_\t0\troot\t_\t_\n"
        "2\tgel\t_\tVERB\tVB\t_\t1\tx\t_\t_\n"
    )
    sentences = read_conllu(text)
    assert [s.forms for s in sentences] == [["Evler", "."], ["evler", "gel"]]
    (train,) = tagging_splits([sentences], min_count=2)
    assert train.vocab == ["<pad>", "<oov>", "evler"]
    assert [x.tolist() for x in train.x] == [[2, 1], [2, 1]]
    assert train.feature_vocabs["suffix"] == ["<pad>", "<oov>", "ler"]
    assert train.feature_vocabs["prefix"] == ["<pad>", "<oov>", "evl"]
    # Shapes: "Aa" (Evler) and "." once each, "a" (evler, gel) twice.
    assert train.feature_vocabs["shape"] == ["<pad>", "<oov>", "a"]
    assert [s.tolist() for s in train.features["shape"]] == [[1, 1], [2, 2]]
    assert train.tags == ["NOUN", "PUNCT", "VERB"]
    assert [y.tolist() for y in train.y] == [[0, 1], [0, 2]]


@pytest.mark.parametrize(
    ("word", "shape"),
    [("Ankara", "Aa"), ("evler", "a"), ("1.5", "9.9"), ("ABD'de", "A'a"), ("x1y2z3", "a9a9")],
)
def test_word_shape(word, shape):
    assert word_shape(word) == shape


def test_unknown_tagset_raises():
    with pytest.raises(ConfigError, match="Unknown tag set"):
        read_conllu("", tagset="lemma")


def _conllu(n: int) -> str:
    row = "1\tev{i}\t_\tNOUN\tNN\t_\t0\troot\t_\t_\n2\t.\t_\tPUNCT\t.\t_\t1\tp\t_\t_\n\n"
    return "".join(f"# sent_id = {i}\n" + row.format(i=i) for i in range(n))


@pytest.mark.parametrize("compress", [False, True])
def test_load_conllu_splits_by_tenths(tmp_path, compress):
    path = tmp_path / ("mine.conllu.gz" if compress else "mine.conllu")
    text = _conllu(12).encode()
    path.write_bytes(gzip.compress(text) if compress else text)
    train, dev, test = load_conllu(path)
    assert [w[0] for w in dev.words] == ["ev8"] and [w[0] for w in test.words] == ["ev9"]
    assert [w[0] for w in train.words] == [f"ev{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 10, 11)]
    assert train.tags == ["NOUN", "PUNCT"]


def test_load_conllu_too_small(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(_conllu(3))
    with pytest.raises(ConfigError, match="at least 10 sentences"):
        load_conllu(path)
