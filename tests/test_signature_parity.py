"""Keras's signatures, object by object: every public class and function of maskwise
with a Keras namesake (layers, losses, metrics, optimizers, callbacks, initializers,
regularizers, constraints, the model's methods) takes by position what Keras takes
there, under Keras's name, with Keras's default. A script ported line by line with
positional arguments (`LSTM(64, "tanh")`, `BinaryAccuracy("acc")`, `Adam(1e-3)`) means
the same, and a positional argument past those maskwise takes is an error, never
another parameter.

What Keras takes that maskwise does not is listed in `MISSING`, object by object, with
the reason: the test fails when the list and the signatures disagree either way.
Keras's signatures are read from the installed Keras (the oracle), not copied here."""

from __future__ import annotations

import collections
import inspect
from typing import Any

import keras
import pytest
import torch
from keras.src.backend.common import global_state
from layers.test_keras_args import _required_arguments
from training_helpers import logits_loss, tagger, tagging_data

import maskwise
from maskwise import (
    ConfigError,
    NonFiniteError,
    callbacks,
    constraints,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
)
from maskwise.layers._keras_args import COMMON_ARGS, RULES
from maskwise.losses import standard_reduction
from maskwise.optimizers.base import KERAS_OPTIONS

MODULES = {
    "layers": (layers, keras.layers),
    "losses": (losses, keras.losses),
    "metrics": (metrics, keras.metrics),
    "optimizers": (optimizers, keras.optimizers),
    "callbacks": (callbacks, keras.callbacks),
    "initializers": (initializers, keras.initializers),
    "regularizers": (regularizers, keras.regularizers),
    "constraints": (constraints, keras.constraints),
}

UNMATCHED = {
    # maskwise's public names that Keras 3 has not (under that name): nothing to compare.
    "layers.PositionEmbedding",  # keras_hub's layers, not Keras's
    "layers.TokenAndPositionEmbedding",
    "layers.TransformerEncoder",
    "losses.counted_steps",  # maskwise's denominator of the "mean" reduction
    "losses.get_loss",  # Keras's `keras.losses.get`, by name
    "metrics.ConfusionMatrix",  # no Keras metric
    "metrics.MeanMetric",  # Keras's `Mean` is a metric of values, this a base class
    "metrics.TopKAccuracy",  # Keras's two top-k classes in one (k first, as theirs)
    "metrics.get_metric",  # Keras's `keras.metrics.get`, by name
    "optimizers.check_learning_rate",
    "callbacks.MonitorCallback",  # base of EarlyStopping & co., Keras's MonitorCallback is private
}

MODEL_METHODS = [
    "compile",
    "fit",
    "evaluate",
    "predict",
    "train_on_batch",
    "test_on_batch",
    "predict_on_batch",
    "save",
    "save_weights",
    "load_weights",
    "summary",
    "get_weights",
    "set_weights",
    "get_layer",
    "build",
    "count_params",
    "get_config",
]


def _pairs() -> dict[str, tuple[Any, Any]]:
    """`"module.Name" -> (maskwise's callable, Keras's)`: the same name in the matching
    Keras module, plus the model's methods and constructors."""
    pairs = {}
    for label, (ours, theirs) in MODULES.items():
        for name in ours.__all__:
            obj = getattr(ours, name)
            if callable(obj) and not inspect.ismodule(obj) and hasattr(theirs, name):
                pairs[f"{label}.{name}"] = (obj, getattr(theirs, name))
    for method in MODEL_METHODS:
        pairs[f"Sequential.{method}"] = (
            getattr(maskwise.Sequential, method),
            getattr(keras.Sequential, method),
        )
    pairs["Sequential"] = (maskwise.Sequential, keras.Sequential)
    pairs["Sequential.add"] = (maskwise.Sequential.add, keras.Sequential.add)
    pairs["Model"] = (maskwise.Model, keras.src.models.functional.Functional)
    return pairs


PAIRS = _pairs()

MISSING = {
    # Keras's arguments maskwise does not take (besides the Keras arguments every layer
    # takes: input_shape, dtype, trainable, <weight>_initializer, ...). Passing one is a
    # ConfigError for a layer (it lists the arguments taken), a TypeError elsewhere.
    "layers.Layer": {"autocast"},  # maskwise computes in the layer's dtype
    "layers.Dropout": {"noise_shape"},  # SpatialDropout1D drops whole features
    "layers.AlphaDropout": {"noise_shape"},
    "layers.BatchNormalization": {
        "moving_mean_initializer",  # the running statistics start at 0 and 1
        "moving_variance_initializer",
        "renorm",  # batch renormalization
        "renorm_clipping",
        "renorm_momentum",
        "synchronized",  # statistics are per device (DDP: use SyncBatchNorm)
    },
    "layers.Bidirectional": {"weights"},  # Keras 2's initial weights: set_weights
    "layers.Embedding": {"weights", "lora_rank", "lora_alpha", "quantization_config"},
    "layers.Dense": {"lora_rank", "lora_alpha", "quantization_config"},  # no LoRA/quantization
    "layers.GlobalAveragePooling1D": {"data_format", "keepdims"},  # (batch, time, features)
    "layers.GlobalMaxPooling1D": {"data_format", "keepdims"},
    "layers.MultiHeadAttention": {
        "attention_axes",  # attention over the time axis only
        "sliding_window",
        "flash_attention",  # PyTorch's scaled_dot_product_attention chooses
        "use_gate",
    },
    "layers.GroupQueryAttention": {"sliding_window", "flash_attention", "use_gate"},
    "layers.Input": {"sparse", "ragged", "tensor", "optional"},  # dense padded tensors
    "layers.Lambda": {"output_shape", "arguments"},  # shapes are inferred; use a closure
    "metrics.AUC": {"thresholds", "multi_label", "num_labels", "label_weights"},
    "metrics.CategoricalCrossentropy": {"axis"},  # the classes are the last axis
    "metrics.SparseCategoricalCrossentropy": {"axis"},
    "initializers.VarianceScaling": {"input_axes", "output_axes"},  # Keras 3.15's fans
    "initializers.GlorotNormal": {"input_axes", "output_axes"},
    "initializers.GlorotUniform": {"input_axes", "output_axes"},
    "initializers.HeNormal": {"input_axes", "output_axes"},
    "initializers.HeUniform": {"input_axes", "output_axes"},
    "initializers.LecunNormal": {"input_axes", "output_axes"},
    "initializers.LecunUniform": {"input_axes", "output_axes"},
    # compile takes these through **keras_options, checked by check_keras_options
    "Sequential.compile": {
        "weighted_metrics",
        "run_eagerly",
        "steps_per_execution",
        "jit_compile",
        "auto_scale_loss",
    },
    "Sequential.save": {"overwrite", "zipped"},  # always overwrites, one safetensors file
    "Sequential.save_weights": {"overwrite", "max_shard_size"},
    "Sequential.load_weights": {"skip_mismatch"},  # strict
    "Sequential.summary": {"positions", "expand_nested", "show_trainable", "layer_range"},
    "Sequential.add": {"rebuild"},
}

DEFAULTS_DIFFER = {
    # Keras's default -> maskwise's, on purpose (docs/coming-from-keras.md says each).
    ("Sequential.compile", "optimizer"): "adam, where Keras's is rmsprop",
    ("Sequential.evaluate", "verbose"): "0: quiet, where Keras's 'auto' prints a bar",
    ("Sequential.predict", "verbose"): "0: quiet, where Keras's 'auto' prints a bar",
    ("Sequential.evaluate", "return_dict"): "True: a dict of the logs, not a list",
    ("Sequential.fit", "initial_epoch"): "None: resume_from's epoch, else 0 as Keras",
}


def _parameters(obj: Any) -> list[inspect.Parameter]:
    function = obj.__init__ if isinstance(obj, type) else obj
    return [p for p in inspect.signature(function).parameters.values() if p.name != "self"]


def _positional(obj: Any) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in _parameters(obj) if p.kind in kinds]


def _named(obj: Any) -> dict[str, inspect.Parameter]:
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {p.name: p for p in _parameters(obj) if p.kind not in variadic}


def _keras_args_by_keyword(obj: Any) -> set[str]:
    """The Keras arguments a class takes besides its signature's: a layer's
    (`_keras_args`), an optimizer's (`KERAS_OPTIONS`, through `**options`)."""
    if isinstance(obj, type) and issubclass(obj, layers.Layer):
        return set(COMMON_ARGS) | {f"{w}_{rule}" for w in obj.weight_names for rule in RULES}
    if isinstance(obj, type) and issubclass(obj, optimizers.Optimizer):
        return set(KERAS_OPTIONS)
    return set()


EQUIVALENT = {
    ("batch_size", 32, None),  # Keras's None means 32
    ("verbose", 1, "auto"),  # fit: Keras's "auto" prints a bar, 1
    ("layers", (), None),  # Sequential(): no layers
}


def _same_default(name: str, ours: Any, theirs: Any) -> bool:
    if name == "reduction":
        return standard_reduction(ours) == standard_reduction(theirs)
    if isinstance(ours, str) and isinstance(theirs, str):
        return ours.lower() == theirs.lower()  # "zeros" and "Zeros" name one initializer
    if (name, ours, theirs) in EQUIVALENT:
        return True
    same_type = type(ours) is type(theirs) or {type(ours), type(theirs)} <= {int, float}
    return same_type and ours == theirs


def test_every_public_name_with_no_keras_namesake_is_listed() -> None:
    unpaired = {
        f"{label}.{name}"
        for label, (ours, theirs) in MODULES.items()
        for name in ours.__all__
        if callable(getattr(ours, name))
        and not inspect.ismodule(getattr(ours, name))
        and not hasattr(theirs, name)
    }
    assert unpaired == UNMATCHED


@pytest.mark.parametrize("key", sorted(PAIRS))
def test_what_maskwise_takes_by_position_is_keras_s_at_that_position(key: str) -> None:
    """`Dense(5, "softmax")`, `AUC(200, "ROC", "interpolation", "auc", "float32")`:
    each argument maskwise takes by position has Keras's name for that position."""
    ours, theirs = (_positional(obj) for obj in PAIRS[key])
    assert ours == theirs[: len(ours)], f"{key}: maskwise {ours}, Keras {theirs}"


@pytest.mark.parametrize("key", sorted(PAIRS))
def test_defaults_are_keras_s(key: str) -> None:
    ours, theirs = (_named(obj) for obj in PAIRS[key])
    for name, param in ours.items():
        if name not in theirs or name == "name":  # names: see the next test
            continue
        mine, keras_default = param.default, theirs[name].default
        if inspect.Parameter.empty in (mine, keras_default):
            continue  # required on one side: leaving it out fails there, loudly
        if (key, name) in DEFAULTS_DIFFER:
            assert not _same_default(name, mine, keras_default), f"{key}.{name} is Keras's now"
            continue
        assert _same_default(name, mine, keras_default), (
            f"{key}({name}=...): maskwise's default {mine!r}, Keras's {keras_default!r}"
        )


def compiled_model() -> maskwise.Sequential:
    model = tagger()
    model.compile("adam", logits_loss(), metrics=["accuracy"], learning_rate=0.01)
    return model


def _without_arguments(cls: type) -> bool:
    return all(p.default is not p.empty for p in _named(cls).values())


@pytest.mark.parametrize(
    "key",
    sorted(
        key
        for key, (ours, _) in PAIRS.items()
        if key.split(".")[0] in ("losses", "metrics")
        and isinstance(ours, type)
        and _without_arguments(ours)
        and "name" in _named(ours)
        and ours.__name__ not in ("Loss", "Metric")
    ),
)
def test_default_names_are_keras_s(key: str) -> None:
    ours, theirs = PAIRS[key]
    assert ours().name == _first_keras_name(theirs)


def _first_keras_name(cls: Any) -> str:
    """The name Keras gives the first object of `cls` made in a session: Keras numbers
    the later ones (`precision_1`, ...) from a count kept across the whole process."""
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        return str(cls().name)
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


@pytest.mark.parametrize("key", sorted(PAIRS))
def test_keras_arguments_maskwise_lacks_are_the_listed_ones(key: str) -> None:
    ours, theirs = PAIRS[key]
    lacking = set(_named(theirs)) - set(_named(ours)) - _keras_args_by_keyword(ours)
    assert lacking == MISSING.get(key, set())


# ------------------------------------------------------------------ past the positions
LAYER_KEYS = sorted(key for key in PAIRS if key.startswith("layers.") and key != "layers.Input")


@pytest.mark.parametrize("key", LAYER_KEYS)
def test_a_layer_given_more_positional_arguments_than_it_takes_says_so(key: str) -> None:
    cls = PAIRS[key][0]
    positional = _positional(cls)
    required = _required_arguments().get(cls.__name__, {})
    args = [
        required[name] if name in required else _named(cls)[name].default for name in positional
    ]
    with pytest.raises(ConfigError) as error:
        cls(*args, "extra")
    message = str(error.value)
    assert message.startswith(f"{cls.__name__} takes {len(positional)} argument(s) by position")
    assert f"argument {len(positional) + 1}: 'extra'" in message
    assert "pass the others by keyword under Keras's names" in message


@pytest.mark.parametrize(
    ("name", "args", "keras_next"),  # Keras's argument at the first refused position
    [
        ("Dense", (5, "softmax", True, "glorot_uniform"), "kernel_initializer"),
        ("LSTM", (4, "tanh", "sigmoid", True, "glorot_uniform"), "kernel_initializer"),
        ("GRU", (4, "tanh", "sigmoid", True, "zeros"), "kernel_initializer"),
        ("Dropout", (0.5, (None, 1, 3)), "noise_shape"),
        ("Embedding", (10, 4, "uniform"), "embeddings_initializer"),
        ("Lambda", (torch.relu, (None, 3)), "output_shape"),
    ],
)
def test_keras_positional_calls_past_maskwise_s_positions_are_refused(
    name: str, args: tuple, keras_next: str
) -> None:
    """Each was another parameter before (LSTM's unit_forget_bias="glorot_uniform",
    Dropout's name=(None, 1, 3), Embedding's mask_zero="uniform", Lambda's mask)."""
    assert _positional(getattr(keras.layers, name))[len(args) - 1] == keras_next
    with pytest.raises(ConfigError, match=rf"{name} takes {len(args) - 1} argument"):
        getattr(layers, name)(*args)


def test_positional_calls_in_keras_s_order_configure_what_keras_configures() -> None:
    """The calls a previous maskwise misread, against Keras's own reading."""
    acc = metrics.BinaryAccuracy("acc", None, 0.7)
    assert (acc.name, acc.threshold) == (
        "acc",
        keras.metrics.BinaryAccuracy("acc", None, 0.7).threshold,
    )
    auc = metrics.AUC(50, "PR", "minoring", "pr_auc", "float32")
    theirs = keras.metrics.AUC(50, "PR", "minoring", "pr_auc", "float32")
    assert (auc.name, auc.dtype, auc.from_logits) == (theirs.name, theirs.dtype, False)
    with pytest.raises(TypeError, match="positional"):
        metrics.AUC(50, "PR", "minoring", "pr_auc", "float32", None)  # Keras's thresholds
    loss = losses.CategoricalCrossentropy(False, 0.1, -1, "sum", "cce")
    keras_loss = keras.losses.CategoricalCrossentropy(False, 0.1, -1, "sum", "cce")
    assert (loss.reduction, loss.name) == (keras_loss.reduction, keras_loss.name)
    sparse = losses.SparseCategoricalCrossentropy(True, None, "sum", -1, "scce")
    keras_sparse = keras.losses.SparseCategoricalCrossentropy(True, None, "sum", -1, "scce")
    assert (sparse.reduction, sparse.name) == (keras_sparse.reduction, keras_sparse.name)
    hooks = []
    ours = callbacks.LambdaCallback(lambda epoch, logs: hooks.append(("epoch", epoch)))
    ours.on_epoch_begin(3)
    ours.on_train_begin()
    assert hooks == [("epoch", 3)]
    assert keras.callbacks.LambdaCallback(print).on_epoch_begin is print  # Keras's first
    assert layers.Attention(False, "dot", 0.0, 7).get_config()["seed"] == 7  # Keras's seed
    assert layers.GaussianNoise(0.1, 7).get_config()["seed"] == 7


def test_compile_s_third_argument_is_keras_3_s_loss_weights() -> None:
    model = compiled_model()
    with pytest.raises(ConfigError, match=r"(?s)loss_weights must be numbers.*metrics=\['mae'\]"):
        model.compile("adam", "mse", ["mae"])  # Keras 2's order
    model.compile("adam", logits_loss(), None, ["accuracy"])
    x, y = tagging_data(8)
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}


# ------------------------------------------------------------------ dtype and axis
def test_a_loss_computes_in_its_dtype_as_keras_s() -> None:
    y = torch.tensor([[0, 1]])
    probs = torch.tensor([[[0.7, 0.3], [0.2, 0.8]]])
    ours = losses.SparseCategoricalCrossentropy(dtype="float64")(y, probs)
    theirs = keras.losses.SparseCategoricalCrossentropy(dtype="float64")(y, probs)
    assert ours.dtype == torch.float64  # Keras's torch backend hands back float32
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    with pytest.raises(ConfigError, match="dtype 'int32' is not a float dtype"):
        losses.BinaryCrossentropy(dtype="int32")
    assert losses.MeanSquaredError(dtype=torch.float16).get_config()["dtype"] == "float16"


def test_a_metric_computes_in_its_dtype_as_keras_s() -> None:
    y_true, y_pred = torch.zeros(1, 3), torch.tensor([[0.1, 0.2, 0.3]])
    results = []
    for module in (metrics, keras.metrics):
        metric = module.MeanSquaredError("mse", "float16")
        metric.update_state(y_true, y_pred)
        results.append(float(metric.result()))
    assert results[0] == pytest.approx(results[1], rel=1e-3)
    assert results[0] != pytest.approx(float((y_pred**2).mean()), rel=1e-5)  # not float32's
    with pytest.raises(ConfigError, match="is not a float dtype"):
        metrics.Accuracy(dtype="int64")


@pytest.mark.parametrize("make", [losses.CategoricalCrossentropy, losses.BinaryCrossentropy])
def test_a_class_axis_other_than_the_last_is_refused(make) -> None:
    make(axis=-1)
    with pytest.raises(ConfigError, match=r"(?s)reads the classes on the last axis.*Permute"):
        make(axis=1)


def test_terminate_on_nan_raise_error_makes_fit_raise() -> None:
    x, y = tagging_data(16)
    model = compiled_model()

    def blow_up(epoch: int, logs: dict) -> None:
        model.optimizer.param_groups[0]["lr"] = float("inf")

    stop = callbacks.TerminateOnNaN(True)  # Keras's raise_error
    with pytest.raises(NonFiniteError):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LambdaCallback(blow_up), stop])
    with pytest.raises(ConfigError, match="raise_error must be True or False"):
        callbacks.TerminateOnNaN("yes")
