"""Turkish Web Treebank: part-of-speech tagging, one tag per token.

2,541 sentences of 2 to 34 tokens (Kayadelen, Öztürel & Bohnet, LREC 2020; Apache-2.0,
see `data/turkish_web_treebank/`). Word ids are built for `Embedding(mask_zero=True)`:
id 0 is padding and never a real token, id 1 is an out-of-vocabulary word.

Turkish is agglutinative: much of a word's part of speech is in its last letters, so
each token also gets a suffix id (its last `SUFFIX_LENGTH` letters, lower-cased) for a
second embedding input.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

from ..errors import ConfigError, format_error

PAD_ID = 0
OOV_ID = 1
SUFFIX_LENGTH = 3
_COLUMNS = {"upos": 3, "xpos": 4}


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: word forms and their tags, as read from a CoNLL-U file."""

    forms: list[str]
    tags: list[str]


@dataclass(frozen=True)
class TaggingSplit:
    """One split of a tagging data set; the vocabularies are shared by all splits.

    Args:
        words: the word forms of each sentence, as in the file.
        x: int64 `(time_i,)` word ids per sentence (0 = padding, never used; 1 = OOV).
        suffixes: int64 `(time_i,)` suffix ids per sentence (same id conventions).
        y: int64 `(time_i,)` tag ids per sentence, `0 .. len(tags) - 1`.
        vocab: word for each word id (`vocab[0] = "<pad>"`, `vocab[1] = "<oov>"`).
        suffix_vocab: suffix for each suffix id (same first two entries).
        tags: tag name for each tag id.
    """

    words: list[list[str]]
    x: list[np.ndarray]
    suffixes: list[np.ndarray]
    y: list[np.ndarray]
    vocab: list[str]
    suffix_vocab: list[str]
    tags: list[str]


def read_conllu(text: str, tagset: Literal["upos", "xpos"] = "upos") -> list[TaggedSentence]:
    """Sentences of a CoNLL-U text: word forms (column 2) and tags (column 4 or 5).

    Comment lines (`#`), multi-word token ranges (`1-2`) and empty nodes (`1.1`) are
    skipped; a blank line ends a sentence.
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


def suffix_of(word: str) -> str:
    """The last `SUFFIX_LENGTH` letters of a word, lower-cased (the whole word if shorter)."""
    return word.lower()[-SUFFIX_LENGTH:]


def _vocabulary(items: Sequence[str], min_count: int) -> list[str]:
    counts = Counter(items)
    kept = sorted(item for item, n in counts.items() if n >= min_count)
    return ["<pad>", "<oov>", *kept]


def _ids(items: Sequence[str], index: dict[str, int]) -> np.ndarray:
    return np.array([index.get(item, OOV_ID) for item in items], dtype=np.int64)


def tagging_splits(
    splits: Sequence[Sequence[TaggedSentence]], min_count: int = 2
) -> tuple[TaggingSplit, ...]:
    """Encode sentence splits; the word and suffix vocabularies come from the first one.

    Words (lower-cased) and suffixes seen fewer than `min_count` times in the first
    (training) split map to the OOV id 1, so the model also learns an OOV embedding.
    Tag ids cover the tags of every split, sorted by name.
    """
    train = splits[0]
    vocab = _vocabulary([w.lower() for s in train for w in s.forms], min_count)
    suffix_vocab = _vocabulary([suffix_of(w) for s in train for w in s.forms], min_count)
    tags = sorted({t for split in splits for s in split for t in s.tags})
    word_index = {w: i for i, w in enumerate(vocab)}
    suffix_index = {w: i for i, w in enumerate(suffix_vocab)}
    tag_index = {t: i for i, t in enumerate(tags)}
    return tuple(
        TaggingSplit(
            words=[s.forms for s in split],
            x=[_ids([w.lower() for w in s.forms], word_index) for s in split],
            suffixes=[_ids([suffix_of(w) for w in s.forms], suffix_index) for s in split],
            y=[np.array([tag_index[t] for t in s.tags], dtype=np.int64) for s in split],
            vocab=vocab,
            suffix_vocab=suffix_vocab,
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
        min_count: a word or suffix needs this many occurrences in train to get its own id.
    """
    path = resources.files(__package__) / "data" / "turkish_web_treebank" / "web.conllu.gz"
    sentences = read_conllu(gzip.decompress(path.read_bytes()).decode("utf-8"), tagset)
    parts: tuple[list[TaggedSentence], ...] = ([], [], [])
    for i, sentence in enumerate(sentences):
        parts[{8: 1, 9: 2}.get(i % 10, 0)].append(sentence)
    train, dev, test = tagging_splits(parts, min_count)
    return train, dev, test
