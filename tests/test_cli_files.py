"""`maskwise doctor` on files that are missing, damaged, hostile or too large.

A file the doctor cannot read exits with status 2 and one line on stderr naming the
file and what was expected; 1 stays "error findings", 0 "none".
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskwise import ConfigError, cli
from maskwise.doctor import files, keras_file
from maskwise.masked import IGNORE_INDEX

ROOT = Path(__file__).resolve().parents[1]


def doctor(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = cli.main(["doctor", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(capsys: pytest.CaptureFixture, path: Path | str, pattern: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr matching `pattern`."""
    status, out, err = doctor(capsys, path)
    assert status == 2, out + err
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.match(rf"maskwise doctor: {pattern}", err), err
    return err


def truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def padded(n: int = 6) -> np.ndarray:
    x = np.ones((n, 4, 2))
    x[::2, 3:] = 0.0
    return x


def bad_npz(d: Path) -> Path:
    np.savez(d / "data.npz", x=padded())
    return truncated(d / "data.npz")


def bad_npy(d: Path) -> Path:
    np.save(d / "x.npy", padded(50))
    return truncated(d / "x.npy")


def garbage_csv(d: Path) -> Path:
    (d / "steps.csv").write_bytes(np.random.default_rng(0).bytes(3000))
    return d / "steps.csv"


def broken_csv(d: Path) -> Path:
    (d / "steps.csv").write_text('id,t,a\n1,0,2.0\n"1,1,3.0\n')
    return d / "steps.csv"


def not_a_zip(d: Path) -> Path:
    (d / "model.keras").write_text("not a zip")
    return d / "model.keras"


def random_parquet(d: Path) -> Path:
    (d / "steps.parquet").write_bytes(np.random.default_rng(1).bytes(3000))
    return d / "steps.parquet"


def strings_npy(d: Path) -> Path:
    np.save(d / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    return d / "words.npy"


def unsupported(d: Path) -> Path:
    (d / "data.txt").write_text("1 2 3")
    return d / "data.txt"


def directory(d: Path) -> Path:
    (d / "data.npz").mkdir()
    return d / "data.npz"


def link_to(device: str, name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).symlink_to(device)
        return d / name

    return make


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda d: d / "missing.npz", r"missing.npz: no such file\."),
    "truncated npz": (
        bad_npz,
        r"data.npz cannot be read: it is damaged .* expected: a NumPy .npz archive .*"
        r"received: BadZipFile",
    ),
    "truncated npy": (
        bad_npy,
        r"x.npy is truncated: its header says \(50, 4, 2\) float64, the data ends early\.",
    ),
    "garbage csv": (garbage_csv, r"steps.csv cannot be read: .* received: UnicodeDecodeError"),
    "broken csv": (broken_csv, r"steps.csv cannot be read: .*a CSV table.* ParserError"),
    "non-zip keras": (not_a_zip, r"model.keras: it is not a readable .keras archive\."),
    "random parquet": (random_parquet, r"steps.parquet cannot be read: .* ArrowInvalid"),
    "strings": (strings_npy, r"words.npy holds <U1 values\. expected: numbers"),
    "unsupported": (unsupported, r"maskwise doctor cannot read 'data.txt'\. expected: a .npz"),
    "directory": (directory, r"data.npz is not a regular file.* received: a directory"),
    "link to /dev/zero": (
        link_to("/dev/zero", "zero.csv"),
        r"zero.csv \(a link to /dev/zero\) is not a regular file: .* a character device",
    ),
    "link to /dev/urandom": (
        link_to("/dev/urandom", "random.npy"),
        r"random.npy \(a link to /dev/urandom\) is not a regular file",
    ),
    "keras link to /dev/zero": (
        link_to("/dev/zero", "model.keras"),
        r"model.keras \(a link to /dev/zero\) is not a regular file",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_unreadable_files_exit_2_with_one_line(tmp_path, capsys, case) -> None:
    make, pattern = CASES[case]
    assert_refused(capsys, make(tmp_path), pattern)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused(capsys, device) -> None:
    name = device.rsplit("/", 1)[1]
    assert_refused(capsys, device, rf"{name} is not a regular file: .* a character device")


def test_a_file_without_read_permission(tmp_path, capsys, monkeypatch) -> None:
    np.savez(tmp_path / "data.npz", x=padded())
    (tmp_path / "data.npz").chmod(0)
    if os.geteuid() == 0:  # root reads files whatever their mode: refuse the open instead
        real_open = io.open

        def no_permission(file, *args, **kwargs):
            if str(file).endswith("data.npz"):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", no_permission)
        monkeypatch.setattr(io, "open", no_permission)
    assert_refused(capsys, tmp_path / "data.npz", r"data.npz cannot be read: .*PermissionError")


def test_findings_still_exit_1_and_clean_data_0(tmp_path, capsys) -> None:
    np.save(tmp_path / "x.npy", padded())
    assert doctor(capsys, tmp_path / "x.npy")[0] == 0
    x = padded()
    x[1, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    assert doctor(capsys, tmp_path / "nan.npy")[0] == 1


def test_a_damaged_file_in_a_real_process(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-m", "maskwise.cli", "doctor", str(bad_npz(tmp_path))],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("maskwise doctor: data.npz cannot be read")


def valid_files(d: Path) -> dict[str, bytes]:
    """The bytes of a small valid file of each kind the doctor reads."""
    np.savez(d / "v.npz", x=padded(), y=np.ones((6, 4)))
    np.save(d / "v.npy", padded())
    frame = pd.DataFrame({"id": [0, 0, 1], "t": [0, 1, 0], "a": [1.0, 2.0, 3.0]})
    frame.to_csv(d / "v.csv", index=False)
    frame.to_parquet(d / "v.parquet")
    with zipfile.ZipFile(d / "v.keras", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        layers = [{"class_name": "Masking", "config": {"name": "m"}},
                  {"class_name": "Lambda", "config": {"name": "f"}}]  # fmt: skip
        archive.writestr("config.json", json.dumps({"class_name": "Sequential",
                                                     "config": {"layers": layers}}))  # fmt: skip
    return {p.suffix: p.read_bytes() for p in d.iterdir() if p.stem == "v"}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.sampled_from([".npz", ".npy", ".csv", ".parquet", ".keras"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
    noise=st.binary(max_size=64),
)
def test_damaged_files_give_a_report_or_one_line(tmp_path, capsys, suffix, cut, flips, noise):
    data = bytearray(valid_files(tmp_path)[suffix])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: int(cut * len(data))] + noise  # truncated, with bytes of noise appended
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(bytes(data))
    status, out, err = doctor(capsys, path)
    assert status in (0, 1, 2)
    if status == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("maskwise doctor: fuzz")
    else:
        assert err == "" and out.startswith("maskwise doctor:")


# ---------------------------------------------------------------------- size caps
def peak_bytes(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_npy_is_sampled_from_its_first_rows(tmp_path, capsys, monkeypatch) -> None:
    x = np.ones((4000, 50, 2))
    x[:, 40:] = 0.0
    np.save(tmp_path / "x.npy", x)  # 3.2 MB
    monkeypatch.setattr(files, "MAX_SEQUENCES", 100)
    loaded = files.load(tmp_path / "x.npy")
    assert loaded.x.shape == (100, 50, 2)
    assert "(4000, 50, 2), the first 100 sequences checked" in loaded.description
    assert peak_bytes(lambda: files.load(tmp_path / "x.npy")) < 300_000
    assert doctor(capsys, tmp_path / "x.npy")[0] == 0


def test_numbered_arrays_are_sampled_whole(tmp_path, monkeypatch) -> None:
    arrays = {f"X_{i}": np.ones((5, 2)) for i in range(40)}
    arrays |= {f"y_{i}": np.ones(5) for i in range(40)}
    np.savez(tmp_path / "seq.npz", **arrays)
    monkeypatch.setattr(files, "MAX_SEQUENCES", 10)
    loaded = files.load(tmp_path / "seq.npz")
    assert len(loaded.x) == len(loaded.y) == 10
    assert "X_* (40 arrays like (5, 2)), the first 10 checked" in loaded.description
    monkeypatch.setattr(files, "MAX_VALUES", 35)  # 3 whole sequences of 10 values, not 4
    loaded = files.load(tmp_path / "seq.npz")
    assert [x.shape for x in loaded.x] == [(5, 2)] * 3 and len(loaded.y) == 3
    monkeypatch.setattr(files, "MAX_VALUES", 8)
    with pytest.raises(ConfigError, match=r"X_0 \(5, 2\) is too large for the doctor to sample"):
        files.load(tmp_path / "seq.npz")


def zeros_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...]) -> None:
    """A compressed `.npy` member of zeros, written without holding it in memory."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f8", "fortran_order": False, "shape": shape}
        )
        block = bytes(1 << 20)
        for _ in range(int(np.prod(shape)) * 8 // len(block)):
            member.write(block)


def test_a_zip_bomb_npz_is_read_only_as_far_as_the_sample(tmp_path, monkeypatch) -> None:
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        zeros_member(archive, "x", (20_000, 100, 20))  # 320 MB of zeros
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr(files, "MAX_VALUES", 200_000)
    loaded = files.load(path)
    assert loaded.x.shape == (100, 100, 20)
    assert peak_bytes(lambda: files.load(path)) < 5_000_000


def csv_of_sequences(path: Path, n: int, steps: int = 10) -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(n), steps)
    frame = pd.DataFrame(
        {"id": ids, "t": np.tile(np.arange(steps), n), "a": rng.normal(size=n * steps),
         "b": rng.normal(size=n * steps), "label": rng.integers(0, 3, n * steps)}
    )  # fmt: skip
    frame.to_csv(path, index=False)


def test_a_large_csv_is_streamed_and_sampled(tmp_path, monkeypatch) -> None:
    path = tmp_path / "steps.csv"
    csv_of_sequences(path, 20_000)  # 200,000 rows
    whole = peak_bytes(lambda: pd.read_csv(path))
    monkeypatch.setattr(files, "MAX_SEQUENCES", 200)
    monkeypatch.setattr(files, "CHUNK_VALUES", 20_000)
    seen: list[int] = []
    chunks = files._Table.chunks

    def spy(self, columns):
        for chunk in chunks(self, columns):
            seen.append(chunk.size)
            yield chunk

    monkeypatch.setattr(files._Table, "chunks", spy)
    loaded = files.load(path)
    assert len(loaded.x) == 200 and all(x.shape == (10, 2) for x in loaded.x)
    assert "the first 200 sequences checked" in loaded.description
    assert max(seen) <= 20_000 and sum(seen) > 1_000_000  # the whole file, a chunk at a time
    assert peak_bytes(lambda: files.load(path)) < whole / 4


def test_a_parquet_file_is_streamed_and_sampled(tmp_path, monkeypatch) -> None:
    csv_of_sequences(tmp_path / "steps.csv", 5_000)
    table = pa.Table.from_pandas(pd.read_csv(tmp_path / "steps.csv"), preserve_index=False)
    pq.write_table(table, tmp_path / "steps.parquet", row_group_size=2_000)
    monkeypatch.setattr(files, "MAX_SEQUENCES", 30)
    monkeypatch.setattr(files, "CHUNK_VALUES", 5_000)
    loaded = files.load(tmp_path / "steps.parquet")
    assert len(loaded.x) == 30 and "the first 30 sequences checked" in loaded.description
    assert pa.total_allocated_bytes() < table.nbytes


def test_rows_of_a_sampled_sequence_are_kept_wherever_they_are(tmp_path, monkeypatch) -> None:
    path = tmp_path / "steps.csv"
    csv_of_sequences(path, 50)
    frame = pd.read_csv(path).sample(frac=1.0, random_state=0)  # rows in any order
    frame.to_csv(path, index=False)
    monkeypatch.setattr(files, "MAX_SEQUENCES", 5)
    monkeypatch.setattr(files, "CHUNK_VALUES", 100)
    loaded = files.load(path)
    assert len(loaded.x) == 5 and all(len(x) == 10 for x in loaded.x)


def test_sequences_too_long_to_sample(tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "steps.csv"
    csv_of_sequences(path, 3, steps=2_000)
    monkeypatch.setattr(files, "MAX_VALUES", 5_000)
    monkeypatch.setattr(files, "CHUNK_VALUES", 1_000)
    assert_refused(capsys, path, r"steps.csv: the first 1 sequences hold more than 5000 values")


def test_a_csv_whose_first_line_is_not_a_header(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(files, "MAX_HEADER_BYTES", 1_000)
    (tmp_path / "long.csv").write_text("a," * 2_000 + "\n1\n")
    assert_refused(capsys, tmp_path / "long.csv", r"long.csv: the first line is longer than 1000")


def keras_bomb(path: Path, megabytes: int) -> Path:
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("config.json", "w") as member,
    ):
        block = b" " * (1 << 20)
        for _ in range(megabytes):
            member.write(block)
    return path


def refusal_peak(path: Path) -> int:
    """The peak memory of `check_keras_file(path)`, which must refuse the file."""

    def refuse() -> None:
        with pytest.raises(ConfigError):
            keras_file.check_keras_file(path)

    return peak_bytes(refuse)


def test_a_zip_bomb_keras_file_is_refused_unread(tmp_path, capsys) -> None:
    path = keras_bomb(tmp_path / "bomb.keras", 300)
    assert path.stat().st_size < 1_000_000
    assert refusal_peak(path) < 1_000_000
    assert_refused(
        capsys, path, r"bomb.keras: its config.json is too large to be a model config .*"
        r"received: 314572800 bytes \(\d+x compressed\)"
    )  # fmt: skip


def test_a_keras_file_lying_about_its_size_is_read_only_to_the_size_it_claims(tmp_path) -> None:
    path = keras_bomb(tmp_path / "liar.keras", 300)
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the central directory entry
    struct.pack_into("<I", data, central + 24, 1_000)  # its uncompressed size: claim 1 KB
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo("config.json").file_size == 1_000
    with pytest.raises(ConfigError, match=r"(?s)liar.keras: it is not a readable .* CRC"):
        keras_file.check_keras_file(path)
    assert refusal_peak(path) < 1_000_000


@pytest.mark.parametrize("order", [["y_test", "X_train", "X_test", "y_train"],
                                   ["X_train", "X_test", "y_train", "y_test"]])  # fmt: skip
def test_train_and_test_arrays_check_x_train_with_y_train(tmp_path, capsys, order) -> None:
    # One array per name (not a numbered group): X_train pairs with y_train, whatever
    # the order in the archive.
    labels = np.where(padded(6)[..., 0] > 0, 1, IGNORE_INDEX)
    arrays = {"X_train": padded(6), "y_train": labels, "X_test": padded(3), "y_test": labels[:3]}
    np.savez(tmp_path / "split.npz", **{name: arrays[name] for name in order})
    status, out, err = doctor(capsys, tmp_path / "split.npz")
    assert status == 0, out + err
    assert "x = X_train (6, 4, 2); y = y_train (6, 4)" in out
