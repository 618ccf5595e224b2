"""Random bad input at every door: only a correct result or a maskwise error/warning.

Hypothesis draws malformed data for `fit`, `evaluate` and `predict`, malformed targets
and predictions for every loss, plain modules and odd tensors for the containers, and
random bytes for the `maskwise doctor` command. Whatever it draws, the library must
either give a correct answer (finite losses, outputs at true lengths) or raise a
`MaskwiseError` (warnings may only be `MaskWarning`s). A bare `IndexError` or
`RuntimeError` from inside PyTorch, a NaN loss or a silently wrong shape fails the test.
Set `HOSTILE_EXAMPLES` (default 60 per test) for a longer hunt, e.g. 400.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maskwise as mw
from maskwise import cli, layers, losses

SETTINGS = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SPECIAL = st.sampled_from([0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e30])


def accept_only_maskwise(call):
    """Run `call`; return its result, or None when it raised a MaskwiseError.

    Any other exception, and any warning other than a MaskWarning, fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except mw.MaskwiseError:
            result = None
    strangers = [w for w in caught if not issubclass(w.category, mw.MaskWarning)]
    assert not strangers, [str(w.message) for w in strangers]
    return result


@st.composite
def ragged(draw, dtype=np.float32):
    n = draw(st.integers(0, 5))
    features = draw(st.integers(1, 3))
    seqs = []
    for _ in range(n):
        length = draw(st.integers(0, 6))
        seq = np.asarray(
            draw(
                st.lists(
                    SPECIAL | st.floats(-3, 3),
                    min_size=length * features,
                    max_size=length * features,
                )
            ),
            dtype=dtype,
        ).reshape(length, features)
        seqs.append(seq)
    return seqs


@st.composite
def data(draw):
    """(x, y): ragged lists or padded arrays, with targets that may not fit them."""
    seqs = draw(ragged())
    kind = draw(st.sampled_from(["ragged", "padded", "transposed", "int", "rank"]))
    if kind == "ragged":
        x = seqs
    elif kind == "int":
        x = [s.astype(np.int64) if (np.abs(s) < 1e9).all() else s for s in seqs]
    elif seqs and kind in ("padded", "transposed"):
        x = (
            mw.Masked.pad([torch.as_tensor(s) for s in seqs]).values.numpy()
            if all(len(s) for s in seqs)
            else np.zeros((len(seqs), 3, seqs[0].shape[1]), "float32")
        )
        if kind == "transposed":
            x = x.transpose(0, 2, 1).copy()
    else:
        x = np.zeros(draw(st.lists(st.integers(0, 3), min_size=1, max_size=4)), "float32")
    target = draw(
        st.sampled_from(["per_step", "per_sequence", "wrong_length", "negative", "float", "none"])
    )
    lengths = [len(s) for s in seqs]
    if target == "per_step":
        y = [
            np.asarray(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.int64)
            for n in lengths
        ]
    elif target == "per_sequence":
        y = np.asarray(
            draw(st.lists(st.integers(0, 1), min_size=len(seqs), max_size=len(seqs))), np.int64
        )
    elif target == "wrong_length":
        y = [np.zeros(n + 1, np.int64) for n in lengths]
    elif target == "negative":
        y = [np.full(n, -3, np.int64) for n in lengths]
    elif target == "float":
        y = [np.full(n, draw(SPECIAL), np.float32) for n in lengths]
    else:
        y = None
    return x, y


def tagger() -> mw.Sequential:
    model = mw.Sequential(
        [layers.Masking(0.0), layers.GRU(3, return_sequences=True), layers.Dense(2)]
    )
    model.compile(
        "adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


WEIGHTS = st.none() | st.builds(
    lambda n, fill: np.full(n, fill, np.float32), st.integers(0, 6), SPECIAL
)
CLASS_WEIGHTS = st.none() | st.sampled_from(
    [{0: 1.0, 1: 2.0}, {-1: 1.0}, {5: 1.0}, {0: math.nan}, {0: -1.0}, {"a": 1.0}, [1.0]]
)


@SETTINGS
@given(data(), st.integers(1, 4), WEIGHTS, CLASS_WEIGHTS)
def test_fit_evaluate_predict_on_bad_data(example, batch_size, sample_weight, class_weight):
    x, y = example
    model = tagger()
    history = accept_only_maskwise(
        lambda: model.fit(
            x,
            y,
            epochs=1,
            batch_size=batch_size,
            verbose=0,
            seed=0,
            sample_weight=sample_weight,
            class_weight=class_weight,
        )
    )
    if history is not None:
        assert all(math.isfinite(v) for v in history.history["loss"])
        scores = accept_only_maskwise(lambda: model.evaluate(x, y, batch_size=batch_size))
        if scores is not None:
            assert math.isfinite(scores["loss"])
    predictions = accept_only_maskwise(lambda: model.predict(x, batch_size=batch_size))
    if predictions is not None and isinstance(x, list):
        # Masking(0.0) may mask real steps that are all zeros (it warns): never more.
        assert len(predictions) == len(x)
        assert all(len(p) <= len(s) for p, s in zip(predictions, x, strict=True))


LOSSES = [
    losses.SparseCategoricalCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(),
    losses.BinaryCrossentropy(),
    losses.MeanSquaredError(),
    losses.MeanAbsoluteError(),
    losses.Huber(),
]


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 3), min_size=0, max_size=4))
    dtype = draw(st.sampled_from([torch.float32, torch.int64, torch.bool]))
    fill = draw(SPECIAL)
    values = torch.full(shape, fill) if shape else torch.tensor(fill)
    return values.to(dtype) if dtype is torch.float32 or math.isfinite(fill) else values


@st.composite
def maybe_masked(draw):
    values = draw(tensors())
    if values.dim() >= 2 and draw(st.booleans()):
        steps = values.shape[:2].numel()
        flags = draw(st.lists(st.booleans(), min_size=steps, max_size=steps))
        mask = torch.as_tensor(flags, dtype=torch.bool)
        return mw.Masked(values, mask.reshape(values.shape[:2]))
    return values


@SETTINGS
@given(st.sampled_from(LOSSES), tensors(), maybe_masked(), st.none() | tensors())
def test_losses_on_bad_tensors(loss, y_true, y_pred, sample_weight):
    result = accept_only_maskwise(lambda: loss(y_true, y_pred, sample_weight=sample_weight))
    if result is not None:
        assert isinstance(result, torch.Tensor) and result.dim() == 0


PLAIN_MODULES = [
    lambda: torch.nn.ReLU(),
    lambda: torch.nn.Softmax(),
    lambda: torch.nn.Softmax(dim=1),
    lambda: torch.nn.LayerNorm([3, 2]),
    lambda: torch.nn.LSTM(2, 2),
    lambda: torch.nn.Linear(2, 2),
    lambda: torch.nn.Flatten(),
    lambda: layers.Dense(2),
    lambda: layers.LSTM(2, return_sequences=True),
    lambda: layers.GlobalMaxPooling1D(),
    lambda: layers.Lambda(lambda v: v[:, 1:]),
]


@SETTINGS
@given(st.lists(st.sampled_from(PLAIN_MODULES), min_size=1, max_size=3), maybe_masked())
def test_containers_on_plain_modules_and_odd_tensors(makers, inputs):
    def run():
        model = mw.Sequential([make() for make in makers])
        return model(inputs)

    out = accept_only_maskwise(run)
    if out is not None:
        assert isinstance(out, mw.Masked)
        if out.mask is not None:
            assert out.mask.shape == out.values.shape[:2]


@SETTINGS
@given(
    st.binary(max_size=512),
    st.sampled_from([".npz", ".npy", ".csv", ".parquet", ".keras", ".txt", ""]),
)
def test_doctor_command_on_random_bytes(tmp_path: Path, capsys, content, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    status = accept_only_maskwise(lambda: cli.main(["doctor", str(path)]))
    assert status in (0, 1, 2)
    err = capsys.readouterr().err
    if status == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
