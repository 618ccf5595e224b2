"""Real variable-length data sets shipped with maskwise (with their licences in `data/`).

- `load_japanese_vowels()`: speaker classification, 640 utterances of 7 to 29 frames.
- `load_turkish_treebank()`: part-of-speech tagging, 2,541 sentences of 2 to 34 tokens.
"""

from .japanese_vowels import SequenceSplit, load_japanese_vowels, read_ts
from .treebank import (
    FEATURES,
    OOV_ID,
    PAD_ID,
    TaggedSentence,
    TaggingSplit,
    load_conllu,
    load_turkish_treebank,
    read_conllu,
    tagging_splits,
    word_shape,
)

__all__ = [
    "FEATURES",
    "OOV_ID",
    "PAD_ID",
    "SequenceSplit",
    "TaggedSentence",
    "TaggingSplit",
    "load_conllu",
    "load_japanese_vowels",
    "load_turkish_treebank",
    "read_conllu",
    "read_ts",
    "tagging_splits",
    "word_shape",
]
