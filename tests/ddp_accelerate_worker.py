"""Run under `torchrun --standalone --nproc-per-node 2 tests/ddp_accelerate_worker.py
OUT_FILE`: the hand-written loop of `ddp_cases.hand_loop`, its model prepared by Hugging
Face Accelerate (DDP on gloo, the process group Accelerate's), the loss normalised by
`maskwise.distributed.global_real_steps`; rank 0 saves the result to OUT_FILE."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).parent))

from ddp_cases import hand_loop

if __name__ == "__main__":
    accelerator = Accelerator(cpu=True)
    result = hand_loop(accelerator.prepare_model, normalize=True)
    result["world_size"] = accelerator.num_processes
    if accelerator.is_main_process:
        torch.save(result, sys.argv[1])
    accelerator.wait_for_everyone()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the teardown, as ddp_worker.py does
