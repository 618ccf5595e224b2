"""The `maskwise` command: `maskwise doctor FILE`, exit codes and output."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from maskwise import cli
from maskwise.masked import IGNORE_INDEX

ROOT = Path(__file__).resolve().parents[1]
SEED000 = ROOT / "data" / "seed000.npz"


def clean_arrays() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SEED000) as data:
        x = np.stack([data[f"X_batches_train_{i}"].T for i in range(10)])
        y = np.stack([data[f"y_batches_train_{i}"] for i in range(10)])
    return x, np.where(y == 0, IGNORE_INDEX, y - 1)


def long_frame() -> pd.DataFrame:
    rows = []
    for seq, length in enumerate([4, 2, 3]):
        for t in range(4):
            real = t < length
            rows.append(
                {"id": seq, "t": t, "f1": 1.0 + t if real else 0.0,
                 "f2": -1.0 - seq if real else 0.0, "label": t % 2 if real else -100}
            )  # fmt: skip
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows out of order


def test_seed000_file_fails_with_the_layout_error(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["doctor", str(SEED000)]) == 1
    out = capsys.readouterr().out
    assert "x = X_batches_train_* (10 arrays like (5, 20)); y = y_batches_train_*" in out
    assert "MW001 error" in out and "[s.T for s in x]" in out
    assert "MW004 warning" in out
    assert out.rstrip().endswith("1 error, 1 warning, 0 info")


def test_globs_pick_the_test_split(capsys: pytest.CaptureFixture) -> None:
    argv = ["doctor", str(SEED000), "--x", "X_batches_test_*", "--y", "y_batches_test_*"]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "X_batches_test_* (2 arrays" in out and "MW004 warning" in out


def test_clean_npz_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, y = clean_arrays()
    np.savez(tmp_path / "clean.npz", x=x, y=y)
    assert cli.main(["doctor", str(tmp_path / "clean.npz")]) == 0
    assert "no masking problem found." in capsys.readouterr().out


def test_targets_read_per_step_without_a_model_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`y` (N, T) beside inputs padded to T steps could be one row of T labels per
    sequence: the command has no model to tell, and its MW011 says how it read `y`."""
    x = np.zeros((6, 5, 2), "float32")
    for row, length in enumerate([2, 3, 4, 2, 3, 5]):
        x[row, :length] = 1.0 + row
    y = np.tile([0, 0, 0, 1, 1], (6, 1))  # 5 labels per sequence, the first three 0
    np.savez(tmp_path / "labels.npz", x=x, y=y)
    assert cli.main(["doctor", str(tmp_path / "labels.npz")]) == 1
    out = capsys.readouterr().out
    assert "MW011 error" in out and "if it holds one row of values per sequence" in out


def test_npy_with_nan_and_mask_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, _ = clean_arrays()
    x[3, 2, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["doctor", str(tmp_path / "x.npy")]) == 1
    assert "sequence 3, step 2, feature 1" in capsys.readouterr().out
    x, _ = clean_arrays()
    np.save(tmp_path / "shifted.npy", np.where(x == 0, -1.0, x))
    assert cli.main(["doctor", str(tmp_path / "shifted.npy"), "--mask-value", "-1"]) == 0


def test_long_format_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    frame = long_frame()
    frame.to_csv(tmp_path / "steps.csv", index=False)
    assert cli.main(["doctor", str(tmp_path / "steps.csv")]) == 0
    out = capsys.readouterr().out
    assert "3 sequences from column 'id' (order 't', features ['f1', 'f2'])" in out
    assert "y = column 'label'" in out and "no masking problem found." in out
    frame.rename(columns={"id": "patient"}).to_parquet(tmp_path / "steps.parquet")
    argv = ["doctor", str(tmp_path / "steps.parquet"), "--sequence-col", "patient",
            "--feature-cols", "f1"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "features ['f1']" in capsys.readouterr().out


def test_unreadable_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    long_frame().rename(columns={"id": "who"}).to_csv(tmp_path / "x.csv", index=False)
    assert cli.main(["doctor", str(tmp_path / "x.csv")]) == 2
    assert "--sequence-col" in capsys.readouterr().err
    assert cli.main(["doctor", str(SEED000), "--x", "nothing_*"]) == 2
    assert "no array in the .npz matches 'nothing_*'" in capsys.readouterr().err
    assert cli.main(["doctor", str(tmp_path / "data.txt")]) == 2
    assert cli.main(["doctor", str(tmp_path / "missing.npz")]) == 2


def test_keras_model_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = keras.Sequential(
        [keras.Input((6, 2)), keras.layers.Masking(0.0),
         keras.layers.Masking(0.0, name="second"), keras.layers.Dense(1)]
    )  # fmt: skip
    model.save(tmp_path / "m.keras")
    assert cli.main(["doctor", str(tmp_path / "m.keras")]) == 1
    assert "MW007 error: Keras model: Masking layer 'second'" in capsys.readouterr().out


def test_registered_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_command")

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int)

    module.add_arguments = add_arguments
    module.run = lambda args: args.n
    monkeypatch.setitem(sys.modules, "fake_command", module)
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))
    cli.register_command("fake", "fake_command", "a test command")
    assert cli.main(["fake", "--n", "7"]) == 7


@pytest.mark.parametrize("module", ["maskwise.cli", "maskwise"])
def test_module_entry_point_runs_in_a_subprocess(module: str) -> None:
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-m", module, "doctor", str(SEED000)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "MW001 error" in result.stdout
