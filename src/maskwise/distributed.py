"""Data parallelism across processes: the process group, ranks, and exact reductions.

Under `torchrun --nproc-per-node N script.py` every process runs the same script on
its share of each batch. `init_process_group()` joins the group from torchrun's
environment (gloo on CPU, nccl on CUDA) unless the script did it already. Outside
torchrun nothing is distributed: `world_size()` is 1, `rank()` 0, and every helper
here returns its argument's own value, so one script runs either way.

The helpers keep masked results exact across processes:
- `global_real_steps(y_pred)`: the real steps of the whole batch (all-reduced), the
  `normalizer=` of a masked loss (see `maskwise.losses`): under DDP, which averages
  gradients over the W processes, `loss(y, out, normalizer=global_real_steps(out) /
  world_size())` gives the gradient of one process on the whole batch;
- `all_reduce_sum(tensor)`: a sum over processes, in float64/int64 so metric sums and
  counts add up exactly;
- `all_gather_objects(obj)`: every process's object, in rank order (predictions).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError, format_error
from .losses import counted_steps
from .masked import Masked

__all__ = [
    "all_gather_objects",
    "all_reduce_sum",
    "default_backend",
    "global_real_steps",
    "init_process_group",
    "is_distributed",
    "launched",
    "rank",
    "world_size",
]

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""The environment torchrun sets for every process."""


def launched() -> bool:
    """Whether this process was started by torchrun (its environment is set).

    Example:
        >>> launched()  # run with python, not torchrun
        False
    """
    return all(name in os.environ for name in LAUNCH_VARIABLES)


def is_distributed() -> bool:
    """Whether a process group of more than one process is initialised.

    Example:
        >>> is_distributed()  # no process group: one process
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of processes (1 without a process group).

    Example:
        >>> world_size()  # without torchrun
        1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank, 0 to `world_size() - 1` (0 without a process group).

    Example:
        >>> rank()  # without torchrun
        0
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def default_backend(device: torch.device | str | None = None) -> str:
    """`"nccl"` for a CUDA device, else `"gloo"` (CPU).

    Example:
        >>> default_backend("cuda:0"), default_backend("cpu"), default_backend()
        ('nccl', 'gloo', 'gloo')
    """
    return "nccl" if torch.device(device or "cpu").type == "cuda" else "gloo"


def init_process_group(device: torch.device | str | None = None) -> bool:
    """Join torchrun's process group unless it is joined already; True when distributed.

    Outside torchrun (no `RANK`/`WORLD_SIZE` in the environment) it does nothing and
    returns False. Under torchrun with a CUDA `device`, the process uses the GPU of its
    `LOCAL_RANK` and nccl; otherwise gloo.

    Example:
        >>> init_process_group()  # run with python: nothing to join
        False
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise ConfigError(
            format_error(
                "This process was launched by torchrun, but this PyTorch build has no "
                "torch.distributed.",
                fix="install a PyTorch build with distributed support, or run the script "
                "with python instead of torchrun.",
            )
        )
    backend = default_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return dist.get_world_size() > 1


def device_for(device: torch.device) -> torch.device:
    """The device collectives run on: CUDA tensors for nccl, the CPU for gloo."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return (
            device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
        )
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over every process (itself without a process group).

    Floats are summed in float64 and integers in int64, so sums of metric totals and
    counts are exact; the result keeps the input's device and widened dtype.

    Example:
        >>> all_reduce_sum(torch.tensor([1, 2], dtype=torch.int32))  # one process: itself
        tensor([1, 2])
        >>> all_reduce_sum(torch.tensor([0.5])).dtype
        torch.float64
    """
    wide = tensor.detach().to(torch.float64 if tensor.is_floating_point() else torch.int64)
    if not is_distributed():
        return wide
    work = wide.to(device_for(tensor.device)).clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def global_real_steps(mask_or_count: Masked | torch.Tensor | int) -> torch.Tensor:
    """The real steps of the whole batch, summed over every process (an int64 scalar).

    `mask_or_count` is this process's share: the model's output (a `Masked` or a float
    tensor: the steps a loss counts, `maskwise.losses.counted_steps`), a boolean mask,
    or a count (an int or an integer tensor, e.g. summed over micro-batches). Every
    process must call it at the same point (it is a collective). Pass the result,
    divided by `world_size()` under DDP, as the loss's `normalizer=`.

    Example:
        >>> out = Masked(torch.zeros(2, 3, 1), lengths_to_mask([3, 1], 3))
        >>> n = global_real_steps(out)  # without torchrun: this process's 4 real steps
        >>> n
        tensor(4)
        >>> loss_fn = mw.losses.MeanSquaredError()
        >>> float(loss_fn(torch.ones(2, 3, 1), out, normalizer=n / world_size()))  # 4 / 4
        1.0
    """
    count: torch.Tensor | None = None
    if isinstance(mask_or_count, Masked):
        count = counted_steps(mask_or_count)
    elif isinstance(mask_or_count, torch.Tensor):
        if mask_or_count.is_floating_point():
            count = counted_steps(mask_or_count)
        elif not mask_or_count.is_complex():
            count = mask_or_count.sum()
    elif isinstance(mask_or_count, int) and not isinstance(mask_or_count, bool):
        count = torch.tensor(mask_or_count)
    if count is None:
        raise ConfigError(
            format_error(
                "global_real_steps takes this process's output, mask or count of real steps.",
                expected="a Masked or float output, a boolean mask, or an integer count",
                received=type(mask_or_count).__name__
                + (f" {mask_or_count.dtype}" if isinstance(mask_or_count, torch.Tensor) else ""),
                fix="pass the model's output (`global_real_steps(model(batch.x))`).",
            )
        )
    return all_reduce_sum(count)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj` (picklable), in rank order; `[obj]` without a group.

    Example:
        >>> all_gather_objects({"rank": rank(), "lines": 3})
        [{'rank': 0, 'lines': 3}]
    """
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
