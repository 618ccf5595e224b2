"""Run under `torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR`.

Every process trains the same model with `DistributedDataParallel` on its share of
the same ragged data; rank 0 saves what `tests/test_distributed.py` compares with one
process: `OUT_DIR/<case>.pt`. The data and the model come from `ddp_cases`, which the
test imports too, so both sides see the same problem.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))

from ddp_cases import hand_loop

from maskwise import distributed


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    return DistributedDataParallel(model)


def main(out: Path) -> None:
    assert distributed.init_process_group()
    rank = distributed.rank()
    results = {
        "hand_global": hand_loop(wrap, normalize=True),
        "hand_naive": hand_loop(wrap, normalize=False),
    }
    gathered = distributed.all_gather_objects({k: v["seen"] for k, v in results.items()})
    if rank == 0:
        for name, result in results.items():
            result["seen_by_rank"] = [g[name] for g in gathered]
            torch.save(result, out / f"{name}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
