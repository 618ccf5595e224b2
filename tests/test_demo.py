"""A smoke run of the demo pipeline with tiny settings (the real run is `make demo`)."""

import json

import pytest
import torch

import maskwise
from maskwise import Masked, demo
from maskwise.datasets import load_japanese_vowels


def test_demo_smoke_run(tmp_path):
    lines: list[str] = []
    results = demo.run_demo(demo.QUICK, tmp_path, echo=lines.append)
    text = "\n".join(lines)

    assert [(r.dataset, r.variant) for r in results] == [
        ("Japanese Vowels", "masked"),
        ("Japanese Vowels", "unmasked"),
        ("Turkish Web Treebank", "masked"),
        ("Turkish Web Treebank", "unmasked"),
    ]
    for r in results:
        assert 0.0 <= r.accuracy <= 1.0
        assert r.train_seconds > 0 and r.real_steps_per_second > 0
        assert len(r.history["loss"]) == 1
    # The doctor catches the file's (features, time) layout and 0 as padding tag.
    assert "MW001" in text and "MW004" in text
    assert "test acc. (real steps)" in text
    for name in (
        "training_curves.png",
        "japanese_vowels_trace.png",
        "turkish_treebank_trace.png",
        "results.json",
    ):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["results"]) == 4 and saved["settings"]["limit"] == demo.QUICK.limit
    # The saved models load back and score the same on the (limited) test split.
    _, test = load_japanese_vowels()
    x_test = Masked.pad(test.x[: demo.QUICK.limit])
    reloaded = maskwise.load(tmp_path / "japanese_vowels_masked.safetensors")
    reloaded.eval()
    with torch.no_grad():
        predicted = reloaded(x_test).values.argmax(-1)
    accuracy = float((predicted.numpy() == test.y[: demo.QUICK.limit]).mean())
    assert accuracy == pytest.approx(results[0].accuracy, abs=1e-9)


def test_summary_table_lines_up():
    result = demo.Result("D", "t", "masked", 0.5, 1.0, 1234.5)
    table = demo.summary_table([result]).splitlines()
    assert table[0].startswith("data set") and set(table[1]) <= {"-", " "}
    assert table[2].split() == ["D", "t", "masked", "0.5000", "1.0", "1,234"]
