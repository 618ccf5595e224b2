"""Ragged data pipeline: padded batches from the data users have.

Padded arrays, lists of per-sequence arrays, token sequences, several inputs, pandas
long-format tables and streamed Parquet files become `Batch`es padded to their own
longest sequence, bucketed by length, with targets padded by `IGNORE_INDEX` / NaN.
"""

from .batch import Batch
from .datasets import SequenceDataset
from .loader import Loader, make_loader
from .padding import fill_after, pad_targets, target_fill
from .sampler import DistributedBatchSampler, LengthBucketSampler, RandomBatchSampler
from .tables import ParquetSequences, from_dataframe

__all__ = [
    "Batch",
    "DistributedBatchSampler",
    "LengthBucketSampler",
    "Loader",
    "ParquetSequences",
    "RandomBatchSampler",
    "SequenceDataset",
    "fill_after",
    "from_dataframe",
    "make_loader",
    "pad_targets",
    "target_fill",
]
