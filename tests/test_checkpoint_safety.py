"""Checkpoints from hostile or broken files, and saves that are interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import logits_loss, tagger, tagging_data, weights

import maskwise
from maskwise import Sequential, checkpoint, layers

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- interrupted saves
def test_ctrl_c_during_a_save_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    x, y = tagging_data(16)
    model = tagger()
    model.compile("adam", logits_loss())
    model.fit(x, y, batch_size=8, verbose=0)
    path = model.save(tmp_path / "m.safetensors")
    first = weights(model)
    model.fit(x, y, batch_size=8, verbose=0)

    def interrupted(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert all(torch.equal(v, first[k]) for k, v in weights(maskwise.load(path)).items())


def test_the_sigterm_handler_is_installed_only_during_the_write(tmp_path, monkeypatch) -> None:
    seen = []
    real = checkpoint.save_file

    def spy(tensors, filename, metadata=None):
        seen.append(signal.getsignal(signal.SIGTERM))
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", spy)
    model = Sequential([layers.Dense(2)])
    model(torch.ones(1, 3, 4))

    def own_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        model.save(tmp_path / "m.safetensors")
        assert callable(seen[0]) and seen[0] is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        signal.signal(signal.SIGTERM, own_handler)
        model.save(tmp_path / "m.safetensors")  # a program's own handler is left alone
        assert seen[1] is own_handler
        assert signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


SAVE_IN_A_LOOP = """
import sys, torch
from maskwise import Sequential, layers
model = Sequential([layers.Embedding(200_000, 64)])  # 51 MB of weights
model(torch.zeros(1, 3, dtype=torch.long))
model.save(sys.argv[1])
print("saved", flush=True)
while True:
    model.save(sys.argv[1])
"""


def test_sigterm_during_a_save_leaves_the_previous_file_and_still_terminates(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen(
        [sys.executable, "-c", SAVE_IN_A_LOOP, str(path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "saved\n"
            deadline = time.monotonic() + 60
            while not any(p.suffix == ".tmp" for p in tmp_path.iterdir()):  # mid-save
                assert time.monotonic() < deadline, "no save started"
                time.sleep(0.001)
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=60) == -signal.SIGTERM  # the default action ends it
        finally:
            child.kill()
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    loaded = maskwise.load(path)
    assert loaded.layers[0].embeddings.shape == (200_000, 64)
