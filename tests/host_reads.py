"""Count the places where code reads tensor values back on the host (a stall of the
host on an accelerator), and run the layers' path for devices where such reads cost."""

from __future__ import annotations

import collections
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch

from maskwise.layers import _host

READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__index__", "__float__")
"""The `Tensor` methods that hand values to Python (or to host memory)."""


@contextmanager
def counting_host_reads() -> Iterator[collections.Counter[str]]:
    """Count calls of `READS` on tensors, keyed `"method at file:line"` (the caller)."""
    counts: collections.Counter[str] = collections.Counter()

    def counted(name: str) -> Any:
        real = getattr(torch.Tensor, name)

        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            caller = traceback.extract_stack(limit=2)[0]
            counts[f"{name} at {caller.filename}:{caller.lineno}"] += 1
            return real(self, *args, **kwargs)

        return read

    with mock.patch.multiple(torch.Tensor, **{name: counted(name) for name in READS}):
        yield counts


def off_the_cpu() -> Any:
    """A context in which the layers take their path for devices where host reads cost
    (as on a GPU), here on CPU."""
    return mock.patch.object(_host, "host_reads_are_cheap", lambda device: False)
