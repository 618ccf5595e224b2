"""Turkish Web Treebank: part-of-speech tagging, one tag per token.

2,541 sentences of 2 to 34 tokens (Kayadelen, Öztürel & Bohnet, LREC 2020; Apache-2.0,
see `data/turkish_web_treebank/`). Word ids are built for `Embedding(mask_zero=True)`:
id 0 is padding and never a real token, id 1 is an out-of-vocabulary word.

Turkish is agglutinative and a third of the test words are unseen in training, so each
token also gets sub-word feature ids (`FEATURES`), each for its own embedding input: its
first and last three letters (lower-cased) and its shape (`"Aa"`, `"9"`, `"."`, ...).
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ConfigError, format_error

PAD_ID = 0
OOV_ID = 1


def word_shape(word: str) -> str:
    """Letter classes with repeats collapsed, at most 4: `"Ankara" -> "Aa"`, `"1.5" -> "9.9"`.

    Example:
        >>> word_shape("Ankara"), word_shape("1.5"), word_shape("iPhone15")
        ('Aa', '9.9', 'aAa9')
    """
    shape: list[str] = []
    for char in word:
        kind = "A" if char.isupper() else "a" if char.isalpha() else "9" if char.isdigit() else char
        if not shape or shape[-1] != kind:
            shape.append(kind)
    return "".join(shape[:4])


FEATURES: dict[str, Callable[[str], str]] = {
    "prefix": lambda word: word.lower()[:3],
    "suffix": lambda word: word.lower()[-3:],
    "shape": word_shape,
}
"""Sub-word features of a token: name -> function of the word form."""
_COLUMNS = {"upos": 3, "xpos": 4}


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: word forms and their tags, as read from a CoNLL-U file.

    Example:
        >>> sentence = TaggedSentence(forms=["Ali", "geldi"], tags=["PROPN", "VERB"])
        >>> list(zip(sentence.forms, sentence.tags))
        [('Ali', 'PROPN'), ('geldi', 'VERB')]
    """

    forms: list[str]
    tags: list[str]


@dataclass(frozen=True)
class TaggingSplit:
    """One split of a tagging data set; the vocabularies are shared by all splits.

    Args:
        words: the word forms of each sentence, as in the file.
        x: int64 `(time_i,)` word ids per sentence (0 = padding, never used; 1 = OOV).
        features: for each of `FEATURES`, int64 `(time_i,)` ids per sentence (same id
            conventions as `x`).
        y: int64 `(time_i,)` tag ids per sentence, `0 .. len(tags) - 1`.
        vocab: word for each word id (`vocab[0] = "<pad>"`, `vocab[1] = "<oov>"`).
        feature_vocabs: for each feature, the value of each id (same first two entries).
        tags: tag name for each tag id.

    Example:
        >>> sentences = [TaggedSentence(["Ali", "geldi"], ["PROPN", "VERB"])]
        >>> (train,) = tagging_splits([sentences], min_count=1)
        >>> train.words, train.x[0].tolist(), train.y[0].tolist(), train.tags
        ([['Ali', 'geldi']], [2, 3], [0, 1], ['PROPN', 'VERB'])
        >>> train.feature_vocabs["shape"], train.features["shape"][0].tolist()
        (['<pad>', '<oov>', 'Aa', 'a'], [2, 3])
    """

    words: list[list[str]]
    x: list[np.ndarray]
    features: dict[str, list[np.ndarray]]
    y: list[np.ndarray]
    vocab: list[str]
    feature_vocabs: dict[str, list[str]]
    tags: list[str]


def read_conllu(text: str, tagset: Literal["upos", "xpos"] = "upos") -> list[TaggedSentence]:
    r"""Sentences of a CoNLL-U text: word forms (column 2) and tags (column 4 or 5).

    Comment lines (`#`), multi-word token ranges (`1-2`) and empty nodes (`1.1`) are
    skipped; a blank line ends a sentence.

    Example:
        >>> text = ("# text = Ali geldi\n"
        ...         "1\tAli\tAli\tPROPN\tNoun\t_\t2\tnsubj\t_\t_\n"
        ...         "2\tgeldi\tgel\tVERB\tVerb\t_\t0\troot\t_\t_\n")
        >>> read_conllu(text)
        [TaggedSentence(forms=['Ali', 'geldi'], tags=['PROPN', 'VERB'])]
        >>> read_conllu(text, tagset="xpos")[0].tags
        ['Noun', 'Verb']
    """
    if tagset not in _COLUMNS:
        raise ConfigError(
            format_error("Unknown tag set.", expected="'upos' or 'xpos'", received=repr(tagset))
        )
    column = _COLUMNS[tagset]
    sentences: list[TaggedSentence] = []
    forms: list[str] = []
    tags: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if forms:
                sentences.append(TaggedSentence(forms, tags))
                forms, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10 or not fields[0].isdigit():
            continue
        forms.append(fields[1])
        tags.append(fields[column])
    return sentences


def _vocabulary(items: Sequence[str], min_count: int) -> list[str]:
    counts = Counter(items)
    kept = sorted(item for item, n in counts.items() if n >= min_count)
    return ["<pad>", "<oov>", *kept]


def _index(values: list[str]) -> dict[str, int]:
    return {value: i for i, value in enumerate(values)}


def _ids(items: Sequence[str], index: dict[str, int]) -> np.ndarray:
    return np.array([index.get(item, OOV_ID) for item in items], dtype=np.int64)


def tagging_splits(
    splits: Sequence[Sequence[TaggedSentence]], min_count: int = 2
) -> tuple[TaggingSplit, ...]:
    """Encode sentence splits; the vocabularies come from the first (training) split.

    Words (lower-cased) and feature values seen fewer than `min_count` times in the
    training split map to the OOV id 1, so the model also learns an OOV embedding. Tag
    ids cover the tags of every split, sorted by name.

    Example:
        >>> train = [TaggedSentence(["Ali", "geldi"], ["PROPN", "VERB"]),
        ...          TaggedSentence(["Ali", "gitti"], ["PROPN", "VERB"])]
        >>> test = [TaggedSentence(["Ayşe", "geldi", "."], ["PROPN", "VERB", "PUNCT"])]
        >>> train_split, test_split = tagging_splits([train, test])
        >>> train_split.vocab, train_split.x[0].tolist()  # only "ali" is seen twice
        (['<pad>', '<oov>', 'ali'], [2, 1])
        >>> test_split.x[0].tolist(), test_split.tags, test_split.y[0].tolist()
        ([1, 1, 1], ['PROPN', 'PUNCT', 'VERB'], [0, 2, 1])
    """
    train_words = [w for s in splits[0] for w in s.forms]
    vocab = _vocabulary([w.lower() for w in train_words], min_count)
    feature_vocabs = {
        name: _vocabulary([f(w) for w in train_words], min_count) for name, f in FEATURES.items()
    }
    tags = sorted({t for split in splits for s in split for t in s.tags})
    word_index = _index(vocab)
    feature_index = {name: _index(v) for name, v in feature_vocabs.items()}
    tag_index = _index(tags)
    return tuple(
        TaggingSplit(
            words=[s.forms for s in split],
            x=[_ids([w.lower() for w in s.forms], word_index) for s in split],
            features={
                name: [_ids([f(w) for w in s.forms], feature_index[name]) for s in split]
                for name, f in FEATURES.items()
            },
            y=[_ids(s.tags, tag_index) for s in split],
            vocab=vocab,
            feature_vocabs=feature_vocabs,
            tags=tags,
        )
        for split in splits
    )


def load_turkish_treebank(
    tagset: Literal["upos", "xpos"] = "upos", min_count: int = 2
) -> tuple[TaggingSplit, TaggingSplit, TaggingSplit]:
    """The Turkish Web Treebank as `(train, dev, test)`, with the authors' split.

    Sentence i (file order, from 0) goes to dev when `i % 10 == 8`, to test when
    `i % 10 == 9`, and to train otherwise: 2,033 / 254 / 254 sentences.

    Example:
        >>> train, dev, test = load_turkish_treebank()
        >>> len(train.x), len(dev.x), len(test.x), len(train.tags)
        (2033, 254, 254, 14)

    Args:
        tagset: `"upos"` (14 coarse tags) or `"xpos"` (fine tags).
        min_count: a word or feature value needs this many occurrences in train to get
            its own id.
    """
    path = resources.files(__package__) / "data" / "turkish_web_treebank" / "web.conllu.gz"
    return _split_tenths(path.read_bytes(), tagset, min_count)


def load_conllu(
    path: str | os.PathLike[str], tagset: Literal["upos", "xpos"] = "upos", min_count: int = 2
) -> tuple[TaggingSplit, TaggingSplit, TaggingSplit]:
    r"""Your own CoNLL-U file (plain or `.gz`) as `(train, dev, test)`, split like
    `load_turkish_treebank`: sentence i to dev when `i % 10 == 8`, to test when
    `i % 10 == 9`, to train otherwise.

    Example:
        >>> import os, tempfile
        >>> sentence = "1\tAli\tAli\tPROPN\t_\t_\t0\troot\t_\t_\n\n"
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "mine.conllu")
        ...     with open(path, "w", encoding="utf-8") as file:
        ...         _ = file.write(sentence * 20)
        ...     train, dev, test = load_conllu(path)
        >>> len(train.x), len(dev.x), len(test.x)  # sentences 8, 18 to dev; 9, 19 to test
        (16, 2, 2)
    """
    return _split_tenths(Path(path).read_bytes(), tagset, min_count)


def _split_tenths(
    data: bytes, tagset: Literal["upos", "xpos"], min_count: int
) -> tuple[TaggingSplit, TaggingSplit, TaggingSplit]:
    if data[:2] == b"\x1f\x8b":  # gzip magic number
        data = gzip.decompress(data)
    sentences = read_conllu(data.decode("utf-8"), tagset)
    if len(sentences) < 10:
        raise ConfigError(
            format_error(
                "A CoNLL-U file needs at least 10 sentences for a train/dev/test split.",
                received=f"{len(sentences)} sentence(s)",
                fix="check the file: sentences are separated by blank lines, tokens have "
                "10 tab-separated columns.",
            )
        )
    parts: tuple[list[TaggedSentence], ...] = ([], [], [])
    for i, sentence in enumerate(sentences):
        parts[{8: 1, 9: 2}.get(i % 10, 0)].append(sentence)
    train, dev, test = tagging_splits(parts, min_count)
    return train, dev, test
