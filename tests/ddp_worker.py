"""Run under `torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR`.

Every process trains the same model on its share of the same ragged data, by a
hand-written `DistributedDataParallel` loop and by `fit`; rank 0 saves what
`tests/test_distributed.py` compares with one process, `OUT_DIR/<case>.pt`. The
problems come from `ddp_cases`, which the test imports too.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch._dynamo.utils import counters
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))

from ddp_cases import (
    SUMMED,
    PerRankMeans,
    fit_parquet,
    fit_problem,
    fit_two_heads,
    fit_two_heads_in_order,
    hand_loop,
    ragged_data,
    recurrent_tagger,
    write_parquet,
)

from maskwise import ConfigError, distributed
from maskwise.callbacks import ModelCheckpoint


def cases(out: Path) -> dict[str, dict[str, Any]]:
    results = {"fit": fit_problem()}  # fit joins torchrun's process group itself
    assert distributed.is_distributed()
    rank = distributed.rank()
    results["hand_global"] = hand_loop(DistributedDataParallel, normalize=True)
    results["hand_naive"] = hand_loop(DistributedDataParallel, normalize=False)
    results["fit_accumulate"] = fit_problem(batch_size=3, steps_per_update=2, ordered=True)
    # The compiled DDP training step, through dynamo and AOTAutograd with DDP's graph
    # splitting, but without inductor's C++ code generation: minutes on a busy 2-core
    # machine with a cold cache (inductor's values are tested on one process).
    counters.clear()
    with mock.patch.object(torch, "compile", functools.partial(torch.compile, backend="aot_eager")):
        results["fit_jit"] = fit_problem(steps_per_update=2, jit_compile=True)
    results["fit_jit"]["graphs"] = counters["stats"]["unique_graphs"]
    # One epoch with a checkpoint (every rank asks for its own file: only rank 0
    # writes) and the progress lines; then the second epoch resumed from it.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        first = fit_problem(
            epochs=1,
            verbose=2,
            callbacks=[ModelCheckpoint(str(out / f"epoch1-rank{rank}.safetensors"))],
        )
    torch.distributed.barrier()
    results["resume"] = fit_problem(resume_from=out / "epoch1-rank0.safetensors")
    results["resume"]["printed"] = printed.getvalue()
    results["resume"]["first_epoch"] = first["weights"]
    parquet = out / "tags.parquet"
    if rank == 0:
        write_parquet(parquet)
    torch.distributed.barrier()
    results["parquet"] = fit_parquet(parquet)
    results["two_heads"] = fit_two_heads()
    results["two_heads_sum"] = fit_two_heads(mood_loss=SUMMED)
    with mock.patch("maskwise.training.trainer.Update", PerRankMeans):
        results["two_heads_naive"] = fit_two_heads()
    results["two_heads_accumulate"] = fit_two_heads_in_order(batch_size=3, steps_per_update=2)
    x, y = ragged_data(1)
    try:
        fit_problem_on(x, y)
    except ConfigError as error:
        results["too_few"] = {"error": str(error)}
    return results


def fit_problem_on(x: list, y: list) -> None:
    model = recurrent_tagger()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, verbose=0)


def main(out: Path) -> None:
    results = cases(out)
    # What each rank saw, printed and predicted, gathered on every rank.
    keys = ("seen", "printed", "predict", "weights")
    mine = {name: {k: r.get(k) for k in keys} for name, r in results.items()}
    gathered = distributed.all_gather_objects(mine)
    if distributed.rank() == 0:
        for name, result in results.items():
            for key in keys:
                result[f"{key}_by_rank"] = [g[name][key] for g in gathered]
            torch.save(result, out / f"{name}.pt")
    # Free the DDP wrappers (they hold the group) and tear down together: gloo can
    # abort at exit otherwise.
    del results, gathered
    gc.collect()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    # Skip the interpreter's teardown, where gloo's threads can abort the process
    # ("terminate called without an active exception") after all the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
