"""save / load / resume: one safetensors file, no pickle, atomic writes, exact resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from training_helpers import assert_same_weights, logits_loss, tagger, tagging_data, weights

import maskwise
from maskwise import ConfigError, Graph, Masked, Module, Sequential, checkpoint, layers, metrics


def trained_tagger(x: list, y: list, dropout: float = 0.0) -> Sequential:
    model = tagger(dropout)
    model.compile("adam", logits_loss(), metrics=["accuracy", metrics.TopKAccuracy(k=2)])
    model.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    return model


def test_a_sequential_round_trips_with_its_compile_state(tmp_path) -> None:
    x, y = tagging_data(24)
    model = trained_tagger(x, y)
    path = model.save(tmp_path / "tagger.safetensors")
    loaded = maskwise.load(path)
    assert isinstance(loaded, Sequential)
    assert_same_weights(model, loaded)
    for ours, theirs in zip(model.predict(x), loaded.predict(x), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert isinstance(loaded.optimizer, maskwise.optimizers.Adam)
    assert loaded.optimizer.param_groups[0]["epsilon"] == 1e-7
    for key, value in model.optimizer.state_dict()["state"][0].items():
        torch.testing.assert_close(loaded.optimizer.state_dict()["state"][0][key], value)
    assert loaded.compiled.loss.get_config() == model.compiled.loss.get_config()
    assert [m.name for m in loaded.compiled.metrics] == ["accuracy", "top_k_accuracy"]
    assert loaded.compiled.metrics[1].k == 2
    assert loaded.epochs_done == 1
    assert loaded.evaluate(x, y) == pytest.approx(model.evaluate(x, y), abs=1e-7)


def test_the_file_is_plain_safetensors_with_json_metadata(tmp_path) -> None:
    x, y = tagging_data(8)
    path = trained_tagger(x, y).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert {"model.layers.0.embeddings", "rng.cpu"} <= keys
    assert any(k.startswith("optimizer.0.m") for k in keys)
    assert meta["compile"]["optimizer"]["class"] == "Adam"
    assert meta["compile"]["loss"] == {
        "class": "SparseCategoricalCrossentropy",
        "config": {
            "from_logits": True,
            "ignore_class": None,
            "reduction": "mean",
            "name": "sparse_categorical_crossentropy",
        },
    }
    assert meta["model"]["spec"]["__layer__"] == "Sequential"
    assert meta["trainer"]["epoch"] == 1


class Tagger(Module):
    def __init__(self, units: int = 3) -> None:
        super().__init__()
        self.embed = layers.Embedding(20, 8, mask_zero=True)
        self.out = layers.Dense(units)

    def forward(self, tokens: Masked) -> Masked:
        return self.out(self.embed(tokens))


def test_a_module_loads_into_an_instance_you_construct(tmp_path) -> None:
    x, y = tagging_data(16)
    model = Tagger()
    model.compile("sgd", logits_loss())
    model.fit(x, y, batch_size=8, verbose=0)
    path = model.save(tmp_path / "tagger.safetensors")
    with pytest.raises(ConfigError, match=r"load\(path, model=Tagger\(\.\.\.\)\)"):
        maskwise.load(path)
    loaded = maskwise.load(path, model=Tagger())  # its Dense is still unbuilt
    assert_same_weights(model, loaded)
    assert isinstance(loaded.optimizer, maskwise.optimizers.SGD)
    with pytest.raises(ConfigError, match=r"(?s)weights do not fit this Tagger.*shape mismatches"):
        maskwise.load(path, model=Tagger(units=4))


def test_an_uncompiled_model_with_a_function_saves_weights_only(tmp_path) -> None:
    model = Sequential([layers.Dense(2), layers.Lambda(torch.tanh)])
    model(torch.ones(1, 3, 4))
    path = model.save(tmp_path / "m.safetensors")
    with pytest.raises(ConfigError, match="cannot be rebuilt"):
        maskwise.load(path)
    same = Sequential([layers.Dense(2), layers.Lambda(torch.tanh)])
    assert_same_weights(model, maskwise.load(path, model=same))
    assert same.optimizer is None


def test_bad_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="No checkpoint file"):
        maskwise.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable safetensors"):
        maskwise.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ConfigError, match="not written by maskwise"):
        maskwise.load(tmp_path / "plain.safetensors")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch) -> None:
    x, y = tagging_data(16)
    model = trained_tagger(x, y)
    path = model.save(tmp_path / "m.safetensors")
    first = weights(model)
    model.fit(x, y, batch_size=8, verbose=0)

    def crash_midway(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)  # half a file, then the machine "dies"
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    loaded = maskwise.load(path)
    assert all(torch.equal(v, first[k]) for k, v in weights(loaded).items())


def test_resuming_continues_exactly(tmp_path) -> None:
    """fit 4 epochs == fit 2 + save + resume 2 more (dropout included: RNG state too)."""
    x, y = tagging_data(40, seed=3)
    straight = tagger(dropout=0.3)
    halves = copy.deepcopy(straight)
    fresh = copy.deepcopy(straight)
    for model in (straight, halves):
        model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.01)
    straight.fit(x, y, epochs=4, batch_size=8, seed=3, verbose=0)

    halves.fit(x, y, epochs=2, batch_size=8, seed=3, verbose=0)
    path = halves.save(tmp_path / "half.safetensors")
    torch.manual_seed(123)  # anything in between must not matter
    history = fresh.fit(x, y, epochs=4, batch_size=8, verbose=0, resume_from=path)
    assert history.epoch == [2, 3]
    assert fresh.epochs_done == 4
    assert_same_weights(straight, fresh, atol=1e-6)
    torch.testing.assert_close(
        fresh.optimizer.state_dict()["state"][0]["m"],
        straight.optimizer.state_dict()["state"][0]["m"],
        atol=1e-6,
        rtol=0.0,
    )


def test_resume_keeps_a_reduced_learning_rate(tmp_path) -> None:
    x, y = tagging_data(16)
    model = trained_tagger(x, y)
    model.optimizer.param_groups[0]["lr"] = 1e-5
    path = model.save(tmp_path / "m.safetensors")
    assert maskwise.load(path).optimizer.param_groups[0]["lr"] == 1e-5
    resumed = tagger()
    resumed.compile("adam", logits_loss())  # compiled by hand: the saved state still loads
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0, resume_from=path)
    assert resumed.optimizer.param_groups[0]["lr"] == 1e-5


def test_a_two_input_graph_trains_saves_and_loads(tmp_path) -> None:
    x, y = tagging_data(24)
    graph = Graph(
        inputs=["a", "b"],
        nodes=[
            ("embed_a", layers.Embedding(20, 4, mask_zero=True), ["a"]),
            ("embed_b", layers.Embedding(20, 4, mask_zero=True), ["b"]),
            ("cat", layers.Concatenate(), ["embed_a", "embed_b"]),
            ("out", layers.Dense(3), ["cat"]),
        ],
        outputs="out",
    )
    graph.compile("adam", logits_loss(), metrics=["accuracy"])
    graph.fit((x, x), y, epochs=2, batch_size=8, verbose=0, seed=0)
    loaded = maskwise.load(graph.save(tmp_path / "graph.safetensors"))
    assert isinstance(loaded, Graph)
    for ours, theirs in zip(graph.predict((x, x)), loaded.predict((x, x)), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert loaded.evaluate((x, x), y) == pytest.approx(graph.evaluate((x, x), y), abs=1e-7)


def test_recurrent_weights_saved_under_their_old_names_load(tmp_path) -> None:
    # LSTM, GRU and SimpleRNN weights were the layer's own (`weight_ih`) before they
    # became their cell's (`cell.weight_ih`): files and state dicts from then still load.
    model = Sequential([layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.GRU(3)])
    x = Masked.pad([torch.randn(5, 3), torch.randn(2, 3)])
    expected = model(x).values
    path = model.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        old = {key.replace(".cell.", "."): f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    assert "model.layers.1.weight_ih" in old
    save_file(old, str(tmp_path / "old.safetensors"), metadata=metadata)
    loaded = maskwise.load(tmp_path / "old.safetensors")
    torch.testing.assert_close(loaded(x).values, expected, atol=0.0, rtol=0.0)
    fresh = Sequential([layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.GRU(3)])
    fresh(x)
    fresh.load_state_dict({k[len("model.") :]: v for k, v in old.items() if k.startswith("model.")})
    torch.testing.assert_close(fresh(x).values, expected, atol=0.0, rtol=0.0)


def test_layers_after_the_time_axis_is_consumed_reload(tmp_path) -> None:
    # A Dense after LSTM(return_sequences=False) sees (batch, units): its recorded input
    # dims must not assume a time axis, or the reloaded kernel has the wrong shape.
    model = Sequential([layers.Masking(0.0), layers.Bidirectional(layers.LSTM(4)), layers.Dense(3)])
    x = torch.randn(2, 5, 6)
    x[1, 3:] = 0.0
    expected = model(x).values
    model.save(tmp_path / "classifier.safetensors")
    loaded = maskwise.load(tmp_path / "classifier.safetensors")
    torch.testing.assert_close(loaded(x).values, expected, atol=0.0, rtol=0.0)


def plateau_callbacks(directory) -> list:
    """Callbacks that all act within 4 epochs: with min_delta=10 no epoch after the
    first improves, so the learning rate halves (with a cooldown) and training stops
    at the 4th epoch, the weights put back to the 1st epoch's."""
    return [
        maskwise.callbacks.ModelCheckpoint(directory / "e{epoch}.safetensors", monitor="loss"),
        maskwise.callbacks.ReduceLROnPlateau(
            monitor="loss", factor=0.5, patience=1, min_delta=10.0, cooldown=1
        ),
        maskwise.callbacks.EarlyStopping(
            monitor="loss", patience=3, min_delta=10.0, restore_best_weights=True
        ),
    ]


def test_a_resumed_run_with_callbacks_equals_an_uninterrupted_one(tmp_path) -> None:
    x, y = tagging_data(40, seed=3)
    straight = tagger(dropout=0.3)
    straight.compile("adam", logits_loss(), learning_rate=0.01)
    resumed = copy.deepcopy(straight)
    straight_callbacks = plateau_callbacks(tmp_path / "straight")
    straight.fit(x, y, epochs=4, batch_size=8, seed=3, verbose=0, callbacks=straight_callbacks)
    assert straight_callbacks[2].stopped_epoch == 3  # the callbacks did act
    assert straight.optimizer.param_groups[0]["lr"] == 0.01 / 8

    resumed_callbacks = plateau_callbacks(tmp_path / "resumed")
    history = resumed.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        verbose=0,
        callbacks=resumed_callbacks,
        resume_from=tmp_path / "straight" / "e2.safetensors",
    )
    assert history.epoch == [2, 3]
    assert_same_weights(straight, resumed)
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for mine, theirs in zip(resumed_callbacks, straight_callbacks, strict=True):
        assert mine.get_state() == theirs.get_state()
    best = resumed_callbacks[2].get_tensors()
    assert best.keys() == straight_callbacks[2].get_tensors().keys()
    assert all(torch.equal(v, straight_callbacks[2].get_tensors()[k]) for k, v in best.items())


def test_callback_state_is_saved_as_json_and_tensors(tmp_path) -> None:
    x, y = tagging_data(16)
    model = tagger()
    model.compile("adam", logits_loss(), learning_rate=0.01)
    model.fit(
        x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=plateau_callbacks(tmp_path)
    )
    with safe_open(str(tmp_path / "e2.safetensors"), framework="pt") as f:
        saved = json.loads(f.metadata()["callbacks"])
        keys = set(f.keys())
    assert saved == {
        "ModelCheckpoint": {"monitor": "loss", "best": None},
        "ReduceLROnPlateau": {
            "monitor": "loss",
            "best": saved["ReduceLROnPlateau"]["best"],
            "wait": 0,
            "cooldown_counter": 1,
        },
        "EarlyStopping": {
            "monitor": "loss",
            "best": saved["ReduceLROnPlateau"]["best"],
            "wait": 1,
            "stopped_epoch": 0,
            "best_epoch": 0,
        },
    }
    assert isinstance(saved["EarlyStopping"]["best"], float)
    best_weights = {k for k in keys if k.startswith("callback.EarlyStopping.")}
    assert best_weights == {f"callback.EarlyStopping.{k}" for k in model.state_dict()}


def test_a_callback_with_another_monitor_starts_fresh_on_resume(tmp_path) -> None:
    x, y = tagging_data(16)
    model = tagger()
    model.compile("adam", logits_loss(), learning_rate=0.01)
    model.fit(
        x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=plateau_callbacks(tmp_path)
    )
    other = maskwise.callbacks.EarlyStopping(monitor="accuracy", patience=5)
    again = tagger()
    again.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.01)
    history = again.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[other],
        resume_from=tmp_path / "e2.safetensors",
    )
    # fresh: the saved EarlyStopping watched "loss", so its wait (1) and best are not used
    assert other.wait == 0 and other.best_epoch == 2
    assert other.best == history.history["accuracy"][0]


def test_two_callbacks_of_one_class_keep_their_own_best_weights(tmp_path) -> None:
    x, y = tagging_data(16)
    model = tagger()
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.01)
    stops = [
        maskwise.callbacks.EarlyStopping(monitor=m, patience=5, restore_best_weights=True)
        for m in ("loss", "accuracy")
    ]
    model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=stops)
    path = model.save(tmp_path / "m.safetensors")
    saved = checkpoint.Checkpoint(path)
    assert set(saved.metadata["callbacks"]) == {"EarlyStopping", "EarlyStopping:1"}
    for key, stop in zip(["EarlyStopping", "EarlyStopping:1"], stops, strict=True):
        tensors = saved.tensors(f"callback.{key}.")
        assert tensors.keys() == model.state_dict().keys()
        assert all(torch.equal(v, stop.best_weights[k]) for k, v in tensors.items())
    again = [
        maskwise.callbacks.EarlyStopping(monitor=m, patience=5, restore_best_weights=True)
        for m in ("loss", "accuracy")
    ]
    resumed = tagger()
    resumed.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=again, resume_from=path)
    assert resumed.epochs_done == 3  # each restored its own weights: both loaded strictly
    assert all(torch.equal(v, again[1].best_weights[k]) for k, v in weights(resumed).items())


# ------------------------------------------------------------------ save_weights / load_weights
def test_save_weights_round_trip_into_a_model_not_built_yet(tmp_path) -> None:
    model = maskwise.Sequential([maskwise.layers.Masking(0.0), maskwise.layers.LSTM(3)])
    model.compile("adam", "mse")
    x = torch.randn(2, 4, 5)
    expected = model(x)
    path = model.save_weights(tmp_path / "m.weights.safetensors")
    fresh = maskwise.Sequential([maskwise.layers.Masking(0.0), maskwise.layers.LSTM(3)])
    fresh.load_weights(path)  # built from the saved shapes, then loaded
    torch.testing.assert_close(fresh(x).values, expected.values, rtol=0, atol=0)
    assert maskwise.load(path).compiled is None  # the weights, no compile state


def test_load_weights_reads_the_weights_of_a_full_save(tmp_path) -> None:
    model = maskwise.Sequential([maskwise.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    path = model.save(tmp_path / "m.safetensors")
    fresh = maskwise.Sequential([maskwise.layers.Dense(2, input_shape=(3,))])
    fresh.load_weights(path)
    assert torch.equal(fresh.layers[0].kernel, model.layers[0].kernel)
    assert fresh.compiled is None  # load_weights leaves the compile state alone


@pytest.mark.parametrize("name", ["m.weights.h5", "m.keras"])
def test_weights_under_a_keras_name_say_what_maskwise_writes(tmp_path, name: str) -> None:
    model = maskwise.Sequential([maskwise.layers.Dense(2, input_shape=(3,))])
    stem = name.rsplit(".", 1)[0]
    match = rf"(?s)Keras's \.\w+ format.*safetensors.*'{stem}.safetensors'.*load_weights"
    with pytest.raises(ConfigError, match=match):
        model.save_weights(tmp_path / name)
    with pytest.raises(ConfigError, match=match):
        model.load_weights(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_load_weights_of_another_architecture_is_a_config_error(tmp_path) -> None:
    model = maskwise.Sequential([maskwise.layers.Dense(2, input_shape=(3,))])
    path = model.save_weights(tmp_path / "m.safetensors")
    other = maskwise.Sequential([maskwise.layers.Dense(4, input_shape=(3,))])
    with pytest.raises(ConfigError, match=str(path)):
        other.load_weights(path)
