"""Batches to the training device: `prefetch` (each copy issued a batch ahead) and
`to_device` (one batch).

Copying a batch from ordinary (pageable) host memory to a GPU blocks the host until
the copy is done; from page-locked ("pinned") memory with `non_blocking=True` it is
only queued, and the host goes on. `prefetch` pins each batch and queues its copy
before it hands over the batch before it, so the host prepares and queues batch
`i + 1` while the device still runs the steps queued before, and step `i + 1` finds
its data on the device. On CPU (or any device that is not CUDA) the batches are
moved as they are, with nothing to pin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ..data import Batch


def to_device(batch: Batch, device: torch.device) -> Batch:
    """`batch` on `device`: pinned and copied without blocking the host to CUDA,
    moved as it is elsewhere."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def prefetch(batches: Iterable[Batch], device: torch.device | str) -> Iterator[Batch]:
    """The batches of `batches` on `device`, in order; the copy of each next batch is
    issued before the current one is handed over (see the module docstring).

    Example:
        >>> import numpy as np
        >>> from maskwise.data import make_loader
        >>> loader = make_loader([np.array([1, 2]), np.array([3])], [0, 1], batch_size=1)
        >>> [batch.size for batch in prefetch(loader, "cpu")]
        [1, 1]
    """
    device = torch.device(device)
    upcoming = iter(batches)
    ahead = next(upcoming, None)
    if ahead is None:
        return
    ready = to_device(ahead, device)
    for batch in upcoming:
        following = to_device(batch, device)
        yield ready
        ready = following
    yield ready
