"""Checkpoints from hostile or broken files, and saves that are interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from training_helpers import logits_loss, tagger, tagging_data, weights

import maskwise
from maskwise import ConfigError, Sequential, checkpoint, layers

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


# ---------------------------------------------------------------------- hostile metadata
def tiny_checkpoint(directory: Path, compiled: bool = False) -> Path:
    model = Sequential([layers.Dense(2, name="dense")], name="tiny")  # names fixed: the
    model(torch.ones(1, 5, 3))  # metadata is the same for every example of a test
    if compiled:
        model.compile("adam", "mse", metrics=["mae"])
    return model.save(directory / "tiny.safetensors")


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The checkpoint at `path` with `change` applied to its parsed metadata."""
    tensors, text = read_checkpoint(path)
    metadata = {k: json.loads(v) for k, v in text.items()}
    change(metadata)
    save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in metadata.items()})
    return path


def ask_for_a_huge_dense(metadata: dict[str, Any]) -> None:
    dense = metadata["model"]["spec"]["config"]["layers"][0]["config"]
    dense.update(units=2048, input_dim=250_000)


def peak_memory_growth_kib(script: str, path: Path) -> int:
    """How much the peak memory of a fresh process grows while `script` loads `path`."""
    script = (
        "import resource, sys, maskwise\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"{script}\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    return int(result.stdout)


def test_a_config_asking_for_huge_layers_fails_before_allocating(tmp_path) -> None:
    path = rewrite(tiny_checkpoint(tmp_path), ask_for_a_huge_dense)
    assert path.stat().st_size < 1000
    pattern = (
        r"(?s)weights do not fit this Sequential.*tiny.safetensors.*"
        r"layers.0.kernel: saved \(3, 2\), model \(250000, 2048\)"
    )
    with pytest.raises(ConfigError, match=pattern):
        maskwise.load(path)
    load = "try:\n    maskwise.load(sys.argv[1])\nexcept maskwise.ConfigError:\n    pass"
    assert peak_memory_growth_kib(load, path) < 100_000  # 2 GB without the check


class Head(maskwise.Module):
    """A Module subclass with a lazy layer: built from the shape saved in the file."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = layers.Dense(2048, name="dense")

    def forward(self, x: Any) -> Any:
        return self.dense(x)


def test_a_huge_saved_input_shape_fails_before_building_your_model(tmp_path) -> None:
    model = Head()
    model(torch.ones(1, 2, 3))
    path = rewrite(
        model.save(tmp_path / "head.safetensors"),
        lambda m: m["model"]["build_shapes"].update(dense=[2, 250_000]),
    )
    with pytest.raises(
        ConfigError, match=r"dense.kernel: saved \(3, 2048\), model \(250000, 2048\)"
    ):
        maskwise.load(path, model=Head())
    load = (
        "from test_checkpoint_safety import Head\n"
        "try:\n    maskwise.load(sys.argv[1], model=Head())\nexcept maskwise.ConfigError:\n    pass"
    )
    assert peak_memory_growth_kib(load, path) < 100_000


def test_a_model_that_cannot_be_copied_still_loads(tmp_path) -> None:
    model = Head()
    model(torch.ones(1, 2, 3))
    path = model.save(tmp_path / "head.safetensors")
    fresh = Head()
    fresh.lock = threading.Lock()  # deepcopy refuses it: checked after building instead
    loaded = maskwise.load(path, model=fresh)
    torch.testing.assert_close(loaded.dense.kernel, model.dense.kernel, rtol=0, atol=0)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def set_in_dense(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["model"]["spec"]["config"]["layers"][0]["config"][key] = value

    return change


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no model": (lambda m: m.pop("model"), "has no 'model' entry"),
    "model is a list": (lambda m: m.update(model=[1, 2]), "'model' entry is not a mapping"),
    "no class": (lambda m: m["model"].pop("class"), r"'model.class' is not a class name"),
    "no build shapes": (
        lambda m: m["model"].pop("build_shapes"),
        r"'model.build_shapes' is not a mapping",
    ),
    "a string shape": (
        lambda m: m["model"]["build_shapes"].update({"layers.0": "5,3"}),
        r"input shape of layer 'layers.0' is not a shape.*received: '5,3'",
    ),
    "a negative dim": (
        lambda m: m["model"]["spec"]["config"]["layers"][0].update(build_shape=[5, -3]),
        r"model.spec.layers\[0\] \(Dense\) has an invalid build shape",
    ),
    "no layer config": (
        lambda m: m["model"]["spec"]["config"]["layers"][0].pop("config"),
        r"model.spec.layers\[0\] \(Dense\) has no config mapping",
    ),
    "unknown layer": (
        lambda m: m["model"]["spec"]["config"]["layers"][0].update(__layer__="Conv9D"),
        r"model.spec.layers\[0\] names an unknown layer class.*received: 'Conv9D'",
    ),
    "deep nesting": (set_in_dense("units", nested(200)), r"nested more than 64 levels deep"),
    "negative units": (
        set_in_dense("units", -5),
        r"rebuilding the saved model from its config failed.*Dense units must be a positive",
    ),
    "units as text": (set_in_dense("units", "2"), r"Dense units must be a positive"),
    "huge units": (set_in_dense("units", 10**12), r"model \(3, 1000000000000\)"),
    "an unknown argument": (
        set_in_dense("kernel", 1),
        r"config failed.\nDense does not take the argument kernel=.\n  expected: one of",
    ),
    "compile is a list": (lambda m: m.update(compile=[]), "'compile' entry is not a mapping"),
    "unknown optimizer": (
        lambda m: m["compile"]["optimizer"].update({"class": "Nope"}),
        r"restoring the compile and training state failed",
    ),
    "no metrics": (
        lambda m: m["compile"].pop("metrics"),
        r"restoring the compile and training state failed.*KeyError",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_metadata_is_a_config_error_naming_the_file(tmp_path, case) -> None:
    change, pattern = MALFORMED[case]
    path = rewrite(tiny_checkpoint(tmp_path, compiled=True), change)
    with pytest.raises(ConfigError, match=rf"(?s)tiny.safetensors.*{pattern}"):
        maskwise.load(path)


@pytest.mark.parametrize("case", ["unknown optimizer", "no metrics"])
def test_resuming_from_a_malformed_compile_config_is_a_config_error(tmp_path, case) -> None:
    change, _ = MALFORMED[case]
    path = rewrite(tiny_checkpoint(tmp_path, compiled=True), change)
    model = Sequential([layers.Dense(2, name="dense")], name="tiny")
    x, y = torch.ones(4, 5, 3), torch.zeros(4, 5, 2)
    expected = r"(?s)tiny.safetensors.*compiling as the checkpoint says failed.*cannot be rebuilt"
    with pytest.raises(ConfigError, match=expected):
        model.fit(x, y, epochs=1, verbose=0, resume_from=path, mask_value=None)


def test_a_saved_optimizer_that_is_not_an_optimizer_is_refused(tmp_path) -> None:
    change = lambda m: m["compile"]["optimizer"].update({"class": "lr_scheduler"})  # noqa: E731
    path = rewrite(tiny_checkpoint(tmp_path, compiled=True), change)
    with pytest.raises(ConfigError, match=r"(?s)tiny.safetensors.*is not an optimizer"):
        maskwise.load(path)


@pytest.mark.parametrize(
    ("text", "error"),
    [('{"class": "Sequential"', "JSONDecodeError"), ("[" * 100_000 + "]" * 100_000, "Recursion")],
)
def test_metadata_that_is_not_json(tmp_path, text, error) -> None:
    path = tiny_checkpoint(tmp_path)
    tensors, metadata = read_checkpoint(path)
    save_file(tensors, str(path), metadata={**metadata, "model": text})
    with pytest.raises(
        ConfigError, match=rf"(?s)tiny.safetensors.*'model' is not valid JSON.*{error}"
    ):
        maskwise.load(path)


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    )


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) to a value inside parsed JSON."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_in(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_in(item, (*prefix, index))
    return found


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_mutation_of_the_metadata_loads_or_is_a_config_error(tmp_path, data) -> None:
    path = tiny_checkpoint(tmp_path, compiled=True)
    tensors, text = read_checkpoint(path)
    metadata = {k: json.loads(text[k]) for k in sorted(text) if k != "format"}
    where = data.draw(st.sampled_from(paths_in(metadata)[1:]))
    parent = metadata
    for step in where[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(json_values())
    raw = {k: json.dumps(v) for k, v in metadata.items()}
    if data.draw(st.integers(0, 3)) == 0:  # or damage one entry's text
        key = data.draw(st.sampled_from(sorted(raw)))
        cut = data.draw(st.integers(0, len(raw[key])))
        raw[key] = raw[key][:cut] + data.draw(st.text(max_size=3))
    save_file(tensors, str(path), metadata={**raw, "format": text["format"]})
    try:
        model = maskwise.load(path)
    except ConfigError as error:
        assert str(path) in str(error)
    else:
        assert isinstance(model, torch.nn.Module)
