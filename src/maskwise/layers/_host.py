"""Whether the layers may read tensor values back on the host, per device.

Reading a value on the host (`int(t)`, `t.tolist()`, `bool(t.any())`) costs nothing
on CPU, where the value is already in host memory; on an accelerator it is a full
stop: the host waits until the device has run everything queued before it, so the
next kernels are not queued while the device works. The layers therefore read values
only where this says they are cheap: on CPU they use the values (the recurrent layers
plan their kernel calls from the row lengths; `Embedding` names the bad token id it
finds), elsewhere they take the path that reads nothing back (one recurrent kernel call
over the whole time axis; a device-side assertion on token ids). Tests patch this
function to run the second path on CPU.
"""

from __future__ import annotations

import torch


def host_reads_are_cheap(device: torch.device) -> bool:
    """Whether reading a tensor's values on the host costs nothing on `device` (CPU)."""
    return device.type == "cpu"
