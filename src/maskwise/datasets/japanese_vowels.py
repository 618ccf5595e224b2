"""Japanese Vowels: speaker classification from variable-length multivariate series.

270 training and 370 test utterances; each is 7 to 29 frames of 12 LPC cepstrum
coefficients; the label is the speaker (9 classes). Shipped with maskwise (CC BY 4.0,
see `data/japanese_vowels/ATTRIBUTION.md`).

The `.ts` file stores each utterance dimension-major (12 rows of features x time): read
as it is, an utterance is a `(12, time)` array, features on the time axis. The loader
transposes it to maskwise's `(time, features)`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources

import numpy as np

NUM_FEATURES = 12
NUM_CLASSES = 9


@dataclass(frozen=True)
class SequenceSplit:
    """One split of a sequence-classification data set.

    Args:
        x: one float32 array `(time_i, features)` per sequence.
        y: int64 `(num_sequences,)` class ids, 0-based.

    Example:
        >>> train, test = load_japanese_vowels()
        >>> train.x[0].shape, int(train.y[0])  # (time, features), the speaker's class id
        ((20, 12), 0)
        >>> len(mw.data.make_loader(train.x, train.y, batch_size=32))  # 270 sequences
        9
    """

    x: list[np.ndarray]
    y: np.ndarray


def read_ts(text: str) -> tuple[list[np.ndarray], list[str]]:
    r"""Parse a multivariate `.ts` file (UEA/UCR archive format) as it is stored.

    Returns one float32 array `(dimensions, time_i)` per series (dimension-major, as in
    the file) and the label strings. Header lines (`#`, `@`) are skipped.

    Example:
        >>> series, labels = read_ts("@problemName demo\n@data\n1,2,3:4,5,6:a\n7,8:9,10:b\n")
        >>> series[0]  # 2 dimensions x 3 steps, as stored: transpose to (time, features)
        array([[1., 2., 3.],
               [4., 5., 6.]], dtype=float32)
        >>> [s.shape for s in series], labels
        ([(2, 3), (2, 2)], ['a', 'b'])
    """
    series, labels = [], []
    in_data = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if line.startswith("@") or not in_data:
            continue
        *dimensions, label = line.split(":")
        series.append(
            np.array([[float(v) for v in dim.split(",")] for dim in dimensions], np.float32)
        )
        labels.append(label)
    return series, labels


def _split(name: str) -> SequenceSplit:
    path = resources.files(__package__) / "data" / "japanese_vowels" / name
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    series, labels = read_ts(text)
    x = [np.ascontiguousarray(s.T) for s in series]  # (12, time) -> (time, 12)
    y = np.array([int(label) - 1 for label in labels], dtype=np.int64)  # speaker 1..9 -> 0..8
    return SequenceSplit(x, y)


def load_japanese_vowels() -> tuple[SequenceSplit, SequenceSplit]:
    """The Japanese Vowels data set as `(train, test)`, the archive's official split.

    Each split has `x`, a list of float32 arrays `(time, 12)` with 7 to 29 frames, and
    `y`, the speaker as a class id 0..8.

    Example:
        >>> train, test = load_japanese_vowels()
        >>> len(train.x), train.x[0].shape[1], int(train.y.max())
        (270, 12, 8)
    """
    return _split("JapaneseVowels_TRAIN.ts.gz"), _split("JapaneseVowels_TEST.ts.gz")
