"""Reading saved Keras models: a Lambda that drops a mask, a second Masking."""

from __future__ import annotations

from pathlib import Path

import keras  # the conftest selects the torch backend
import pytest

from maskwise.doctor import check_keras_file
from maskwise.errors import ConfigError

from .helpers import codes


def save(model: keras.Model, tmp_path: Path, name: str = "model.keras") -> Path:
    path = tmp_path / name
    model.save(path)
    return path


def seed001_model(mask: bool, return_sequences: bool = True) -> keras.Model:
    crop = {"mask": lambda inputs, mask: mask[:, 2:]} if mask else {}
    return keras.Sequential(
        [
            keras.Input((12, 3)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(4, return_sequences=return_sequences),
            keras.layers.Lambda(lambda x: x[:, 2:] if return_sequences else x, **crop),
            keras.layers.Dense(1),
        ]
    )


def test_lambda_without_mask_after_masking(tmp_path: Path) -> None:
    (finding,) = check_keras_file(save(seed001_model(mask=False), tmp_path))
    assert finding.code == "MW006" and finding.severity == "error"
    assert "Lambda layer 'lambda" in finding.message
    assert "mask=lambda inputs, mask: mask" in finding.fix


def test_lambda_with_mask_or_after_a_consumer_is_clean(tmp_path: Path) -> None:
    assert check_keras_file(save(seed001_model(mask=True), tmp_path, "a.keras")) == []
    consumed = seed001_model(mask=False, return_sequences=False)
    assert check_keras_file(save(consumed, tmp_path, "b.keras")) == []


def test_masking_after_embedding_in_a_functional_model(tmp_path: Path) -> None:
    tokens = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    numbers = keras.Input((6, 2))
    masked = keras.layers.Masking(0.0)(numbers)
    merged = keras.layers.Concatenate()([keras.layers.Masking(0.0)(embedded), masked])
    outputs = keras.layers.Dense(2)(keras.layers.GRU(3)(merged))
    findings = check_keras_file(save(keras.Model([tokens, numbers], outputs), tmp_path))
    assert codes(findings) == ["MW007"]
    assert "the output of an Embedding" in findings[0].message


def test_single_masking_per_branch_is_clean(tmp_path: Path) -> None:
    tokens = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    numbers = keras.Input((6, 2))
    merged = keras.layers.Concatenate()([embedded, keras.layers.Masking(0.0)(numbers)])
    outputs = keras.layers.Dense(2)(keras.layers.GRU(3)(merged))
    assert check_keras_file(save(keras.Model([tokens, numbers], outputs), tmp_path)) == []


def test_not_a_keras_archive(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_text("not a zip")
    with pytest.raises(ConfigError, match=r"not a readable \.keras archive"):
        check_keras_file(path)
