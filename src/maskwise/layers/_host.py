"""Whether the layers and the losses may read tensor values back on the host, per device.

Reading a value on the host (`int(t)`, `t.tolist()`, `bool(t.any())`) costs nothing
on CPU, where the value is already in host memory; on an accelerator it is a full
stop: the host waits until the device has run everything queued before it, so the
next kernels are not queued while the device works. The layers therefore read values
only where this says they are cheap: on CPU they use the values (the recurrent layers
plan their kernel calls from the row lengths; `Embedding` names the bad token id it
finds), elsewhere they take the path that reads nothing back (one recurrent kernel call
over the whole time axis; a device-side assertion on token ids). Tests patch
`host_reads_are_cheap` to run the second path on CPU.

Input checks (token ids, class ids, padded targets) follow `checks_read_host`: on CPU,
or inside `exact_checks()` (which `fit` and `evaluate` put around the first batch of
each epoch), they read the values and raise the library's error naming what was
received; elsewhere they queue a device-side assertion (`assert_none`) with the same
message less what was received.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_exact = False
"""Inside `exact_checks()`. A plain module global: `torch.compile` guards on its value
(a graph for each), where reading a `ContextVar` would break the graph at every check."""


def host_reads_are_cheap(device: torch.device) -> bool:
    """Whether reading a tensor's values on the host costs nothing on `device` (CPU)."""
    return device.type == "cpu"


@contextmanager
def exact_checks(enabled: bool = True) -> Iterator[None]:
    """Within this context (when `enabled`), input checks read values on every device
    and raise their exact errors, at the cost of a host read each."""
    global _exact
    before = _exact
    _exact = before or enabled
    try:
        yield
    finally:
        _exact = before


def checks_read_host(device: torch.device) -> bool:
    """Whether input checks on `device` read values on the host (see the module
    docstring): where that is cheap, or inside `exact_checks()`."""
    return host_reads_are_cheap(device) or _exact


def assert_none(bad: torch.Tensor, message: str) -> None:
    """Assert on the device, without a host read, that no entry of `bad` is True. A
    failure surfaces at the host's next read of the device (on CUDA: a device-side
    assertion, after which the process must restart), with `message` where the device
    reports it (always on CPU)."""
    torch._assert_async(~bad.any(), message)
