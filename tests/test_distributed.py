"""Data parallel: 2 gloo processes under torchrun give the weights of one process.

The torchrun run (`ddp_worker.py`) happens once per module; each test compares one of
its results with the same problem run here in one process (`ddp_cases.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maskwise import ConfigError, distributed
from maskwise.masked import Masked, lengths_to_mask

sys.path.insert(0, str(Path(__file__).parent))

import ddp_cases

WORKER = Path(__file__).parent / "ddp_worker.py"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Run the worker on 2 processes (gloo, CPU) once; its results' folder."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(WORKER), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _real_steps_by_rank(result: dict) -> list[int]:
    x, _ = ddp_cases.ragged_data()
    return [sum(len(x[i]) for epoch in seen for i in epoch) for seen in result["seen_by_rank"]]


def _assert_each_rank_had_its_share(result: dict) -> None:
    """Per epoch, the ranks trained on disjoint shares that together are the data."""
    first, second = result["seen_by_rank"]
    for epoch in range(ddp_cases.EPOCHS):
        assert first[epoch] and second[epoch]
        assert not set(first[epoch]) & set(second[epoch])
        assert sorted(first[epoch] + second[epoch]) == list(range(ddp_cases.N))


def test_hand_loop_with_global_normalizer_gives_one_process_weights(two_ranks):
    result = torch.load(two_ranks / "hand_global.pt")
    one = ddp_cases.hand_loop(lambda model: model, normalize=True)
    steps = _real_steps_by_rank(result)
    assert steps[0] != steps[1]  # ragged: the ranks hold different numbers of real steps
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    _assert_each_rank_had_its_share(result)


def test_hand_loop_with_per_rank_means_differs_from_one_process(two_ranks):
    # The mistake the normalizer prevents: each rank's mean over its own real steps,
    # averaged by DDP, is not the mean over the global batch.
    result = torch.load(two_ranks / "hand_naive.pt")
    one = ddp_cases.hand_loop(lambda model: model, normalize=False)
    assert _max_difference(result["weights"], one["weights"]) > 1e-3


# ---------------------------------------------------------------- without a process group
def test_one_process_helpers_return_their_own_values():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    out = Masked(torch.zeros(2, 4, 3), lengths_to_mask([4, 1], 4))
    assert int(distributed.global_real_steps(out)) == 5
    assert int(distributed.global_real_steps(out.mask)) == 5
    assert int(distributed.global_real_steps(7)) == 7
    assert int(distributed.global_real_steps(torch.zeros(2, 3, 1))) == 6  # every step
    total = distributed.all_reduce_sum(torch.tensor([0.1, 0.2], dtype=torch.float32))
    assert total.dtype == torch.float64
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]


def test_global_real_steps_refuses_what_is_not_a_count():
    with pytest.raises(ConfigError, match=r"(?s)output, mask or count.*received: str"):
        distributed.global_real_steps("5")


def test_not_launched_by_torchrun_initialises_nothing(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched()
    assert distributed.init_process_group() is False
    assert not torch.distributed.is_initialized()


def test_backend_follows_the_device():
    assert distributed.default_backend("cpu") == "gloo"
    assert distributed.default_backend(torch.device("cuda", 0)) == "nccl"
    assert distributed.default_backend(None) == "gloo"
