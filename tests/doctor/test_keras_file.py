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


DROPPERS = {
    "Conv1D": lambda: keras.layers.Conv1D(4, 3, padding="same", name="dropper"),
    "MaxPooling1D": lambda: keras.layers.MaxPooling1D(2, name="dropper"),
    "AveragePooling1D": lambda: keras.layers.AveragePooling1D(2, name="dropper"),
    "Reshape": lambda: keras.layers.Reshape((6, 4), name="dropper"),
    "Flatten": lambda: keras.layers.Flatten(name="dropper"),
}


@pytest.mark.parametrize("kind", DROPPERS)
def test_layers_that_do_not_support_masking_drop_it(tmp_path: Path, kind: str) -> None:
    model = keras.Sequential(
        [keras.Input((12, 2)), keras.layers.Masking(0.0), DROPPERS[kind](), keras.layers.Dense(1)]
    )
    (finding,) = check_keras_file(save(model, tmp_path))
    assert finding.code == "MW006" and finding.severity == "error"
    assert f"{kind} layer 'dropper' receives a mask but does not support masking" in finding.message
    fix = "GlobalAveragePooling1D" if kind in ("Reshape", "Flatten") else "mask-aware layers"
    assert fix in finding.fix


def test_a_dropper_without_a_mask_before_it_is_clean(tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((12, 2)), keras.layers.Conv1D(4, 3), keras.layers.Flatten(),
         keras.layers.Dense(1)]
    )  # fmt: skip
    assert check_keras_file(save(model, tmp_path)) == []


def inner(*layers: keras.layers.Layer) -> keras.Sequential:
    return keras.Sequential(list(layers), name="inner")


def test_a_sequential_inside_a_sequential_is_walked(tmp_path: Path) -> None:
    nested = inner(keras.layers.Dense(3), keras.layers.Conv1D(2, 3, name="conv"))
    model = keras.Sequential(
        [keras.Input((6, 2)), keras.layers.Masking(0.0), nested, keras.layers.Dense(1)]
    )
    (finding,) = check_keras_file(save(model, tmp_path))
    assert finding.code == "MW006"
    assert "Conv1D layer 'conv' inside 'inner' receives a mask" in finding.message


def test_a_sequential_inside_a_functional_model_is_walked(tmp_path: Path) -> None:
    tokens = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    nested = inner(keras.layers.Dense(3), keras.layers.Lambda(lambda x: x * 2, name="double"))
    outputs = keras.layers.Dense(2)(nested(embedded))
    (finding,) = check_keras_file(save(keras.Model(tokens, outputs), tmp_path))
    assert "Lambda layer 'double' inside 'inner' receives a mask" in finding.message


def test_the_mask_flows_through_a_nested_model_that_keeps_it(tmp_path: Path) -> None:
    keeps = inner(keras.layers.Dense(3), keras.layers.Dropout(0.1))
    model = keras.Sequential(
        [keras.Input((6, 2)), keras.layers.Masking(0.0), keeps,
         keras.layers.Flatten(name="flat"), keras.layers.Dense(1)]
    )  # fmt: skip
    (finding,) = check_keras_file(save(model, tmp_path))
    assert "Flatten layer 'flat' receives a mask" in finding.message
    consumed = inner(keras.layers.LSTM(3))  # consumes the mask: nothing to lose after it
    model = keras.Sequential(
        [keras.Input((6, 2)), keras.layers.Masking(0.0), consumed,
         keras.layers.Reshape((3, 1)), keras.layers.Dense(1)]
    )  # fmt: skip
    assert check_keras_file(save(model, tmp_path, "b.keras")) == []
