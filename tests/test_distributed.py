"""Data parallel and gradient accumulation: 2 gloo processes under torchrun, and k
micro-batches, give the weights of one process on the whole batch.

The torchrun run (`ddp_worker.py`) happens once per module; each test compares one of
its results with the same problem run here in one process (`ddp_cases.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskwise import (
    ConfigError,
    Input,
    Model,
    Module,
    Sequential,
    distributed,
    layers,
    losses,
    metrics,
)
from maskwise.masked import Masked, lengths_to_mask
from maskwise.training import trainer as trainer_module
from maskwise.training.distributed import Update, _reduce_metric, count_first
from maskwise.training.inputs import data_loader
from maskwise.training.outputs import targets_by_name

sys.path.insert(0, str(Path(__file__).parent))

import ddp_cases

WORKER = Path(__file__).parent / "ddp_worker.py"


def _torchrun(script: Path, out: Path) -> None:
    """Run `script out` on 2 processes (gloo, CPU) with this Python."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(script), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Run the worker on 2 processes once; its results' folder."""
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(WORKER, out)
    return out


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _real_steps_by_rank(result: dict, n: int = ddp_cases.N) -> list[int]:
    x, _ = ddp_cases.ragged_data(n)
    return [sum(len(x[i]) for epoch in seen for i in epoch) for seen in result["seen_by_rank"]]


def _assert_each_rank_had_its_share(result: dict, n: int = ddp_cases.N) -> None:
    """Per epoch, the ranks trained on disjoint shares that together are the data."""
    first, second = result["seen_by_rank"]
    assert len(first) == len(second) == ddp_cases.EPOCHS
    for epoch in range(ddp_cases.EPOCHS):
        assert first[epoch] and second[epoch]
        assert not set(first[epoch]) & set(second[epoch])
        assert sorted(first[epoch] + second[epoch]) == list(range(n))


def _assert_same_logs(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key


def test_hand_loop_with_global_normalizer_gives_one_process_weights(two_ranks):
    result = torch.load(two_ranks / "hand_global.pt")
    one = ddp_cases.hand_loop(lambda model: model, normalize=True)
    steps = _real_steps_by_rank(result)
    assert steps[0] != steps[1]  # ragged: the ranks hold different numbers of real steps
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    _assert_each_rank_had_its_share(result)


def test_accelerate_loop_with_global_normalizer_gives_one_process_weights(tmp_path):
    pytest.importorskip("accelerate")
    _torchrun(Path(__file__).parent / "ddp_accelerate_worker.py", tmp_path / "result.pt")
    result = torch.load(tmp_path / "result.pt")
    assert result["world_size"] == 2
    one = ddp_cases.hand_loop(lambda model: model, normalize=True)
    assert _max_difference(result["weights"], one["weights"]) < 1e-5


def test_hand_loop_with_per_rank_means_differs_from_one_process(two_ranks):
    # The mistake the normalizer prevents: each rank's mean over its own real steps,
    # averaged by DDP, is not the mean over the global batch.
    result = torch.load(two_ranks / "hand_naive.pt")
    one = ddp_cases.hand_loop(lambda model: model, normalize=False)
    assert _max_difference(result["weights"], one["weights"]) > 1e-3


def test_fit_on_two_ranks_gives_the_weights_logs_evaluation_and_predictions_of_one(two_ranks):
    result = torch.load(two_ranks / "fit.pt", weights_only=False)
    one = ddp_cases.fit_problem()
    steps = _real_steps_by_rank(result, ddp_cases.N_FIT)
    assert steps[0] != steps[1]
    _assert_each_rank_had_its_share(result, ddp_cases.N_FIT)
    # The last global batch holds one sequence: rank 1's share of it is empty.
    assert [len(s) for s in result["seen_by_rank"][0]] == [10, 10]
    assert [len(s) for s in result["seen_by_rank"][1]] == [9, 9]
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    for key in one["history"]:  # loss, accuracy and their val_ twins, summed exactly
        assert result["history"][key] == pytest.approx(one["history"][key], rel=1e-6), key
    _assert_same_logs(result["evaluate"], one["evaluate"])
    # predict: every sequence once, in input order, at its true length, on every rank
    # (the shares of batches of 3 over 2 ranks include an empty one).
    x_val, _ = ddp_cases.ragged_data(7, seed=5)
    for predictions in result["predict_by_rank"]:
        assert [len(p) for p in predictions] == [len(s) for s in x_val]
        for mine, theirs in zip(predictions, one["predict"], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    # steps=2: both ranks run the same 2 global batches (the first 6 sequences).
    _assert_same_logs(result["evaluate_steps"], one["evaluate_steps"])
    assert len(result["predict_steps"]) == len(one["predict_steps"]) == 6
    for mine, theirs in zip(result["predict_steps"], one["predict_steps"], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_fit_jit_compile_on_two_ranks_gives_the_weights_of_one_eager_process(two_ranks):
    """The compiled DDP training step, with accumulation (DDP's `no_sync`) too."""
    result = torch.load(two_ranks / "fit_jit.pt", weights_only=False)
    one = ddp_cases.fit_problem(steps_per_update=2)
    assert result["graphs"] > 0
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    for key in one["history"]:
        assert result["history"][key] == pytest.approx(one["history"][key], rel=1e-5), key


def test_accumulated_micro_batches_on_two_ranks_equal_one_big_batch(two_ranks):
    # Global micro-batches of 3 (shares of 2 and 1), 2 per update, against one
    # process on batches of 6.
    result = torch.load(two_ranks / "fit_accumulate.pt", weights_only=False)
    big = ddp_cases.fit_problem(batch_size=6, ordered=True)
    assert _max_difference(result["weights"], big["weights"]) < 1e-5
    _assert_same_logs(result["evaluate"], big["evaluate"])


def test_resume_under_ddp_is_exact_and_rank_0_alone_writes_and_prints(two_ranks):
    straight = torch.load(two_ranks / "fit.pt", weights_only=False)
    resumed = torch.load(two_ranks / "resume.pt", weights_only=False)
    assert _max_difference(resumed["first_epoch"], straight["weights"]) > 1e-4
    assert _max_difference(resumed["weights"], straight["weights"]) == 0.0
    assert resumed["history"]["loss"] == straight["history"]["loss"][1:]
    # Rank 0 wrote the checkpoint; rank 1 asked for its own file, which never appeared.
    assert (two_ranks / "epoch1-rank0.safetensors").exists()
    assert not (two_ranks / "epoch1-rank1.safetensors").exists()
    printed = resumed["printed_by_rank"]
    assert printed[0].startswith("Epoch 1/1") and "val_loss" in printed[0]
    assert printed[1] == ""


def test_fit_on_a_parquet_file_trains_each_rank_on_its_row_groups(two_ranks):
    from maskwise.data import ParquetSequences

    result = torch.load(two_ranks / "parquet.pt", weights_only=False)
    data = ParquetSequences(two_ranks / "tags.parquet", "seq", "step", "token", "tag")
    for rank, seen in enumerate(result["seen_by_rank"]):
        assert sorted(seen[0]) == data.shard_positions(rank, 2).tolist()
    ours, theirs = result["weights_by_rank"]
    assert _max_difference(ours, theirs) == 0.0  # DDP keeps the ranks' weights equal
    assert np.isfinite(result["history"]["loss"]).all()


def test_two_outputs_on_two_ranks_give_the_weights_logs_and_evaluation_of_one(two_ranks):
    # A tagger (real steps) and a classifier (sequences) head: two counts per batch.
    result = torch.load(two_ranks / "two_heads.pt", weights_only=False)
    one = ddp_cases.fit_two_heads()
    steps = _real_steps_by_rank(result, ddp_cases.N_FIT)
    assert steps[0] != steps[1]
    _assert_each_rank_had_its_share(result, ddp_cases.N_FIT)
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    logged = {"loss", "tags_loss", "mood_loss", "tags_accuracy", "mood_accuracy"}
    assert set(one["history"]) == logged | {f"val_{key}" for key in logged}
    for key in one["history"]:
        assert result["history"][key] == pytest.approx(one["history"][key], rel=1e-6), key
    _assert_same_logs(result["evaluate"], one["evaluate"])


def test_two_outputs_one_with_a_summed_loss_on_two_ranks_give_the_weights_of_one(two_ranks):
    result = torch.load(two_ranks / "two_heads_sum.pt", weights_only=False)
    one = ddp_cases.fit_two_heads(mood_loss=ddp_cases.SUMMED)
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    assert result["history"]["loss"] == pytest.approx(one["history"]["loss"], rel=1e-6)


def test_two_outputs_with_each_rank_s_own_means_would_differ_from_one_process(two_ranks):
    # What the per-output counts prevent (the test above can fail).
    naive = torch.load(two_ranks / "two_heads_naive.pt", weights_only=False)
    one = ddp_cases.fit_two_heads()
    assert _max_difference(naive["weights"], one["weights"]) > 1e-4


def test_two_outputs_accumulated_on_two_ranks_equal_one_process_on_the_global_batch(two_ranks):
    # Global batches of 3 (shares of 2 and 1; the last one's second share empty), 2 per
    # update, each output divided by its count over both batches and both ranks.
    result = torch.load(two_ranks / "two_heads_accumulate.pt", weights_only=False)
    one = ddp_cases.fit_two_heads_in_order(batch_size=6)
    _assert_each_rank_had_its_share(result, ddp_cases.N_FIT)
    assert _max_difference(result["weights"], one["weights"]) < 1e-5
    assert result["history"].keys() == one["history"].keys()
    for key in one["history"]:
        assert result["history"][key] == pytest.approx(one["history"][key], rel=1e-6), key
    _assert_same_logs(result["evaluate"], one["evaluate"])


def test_fit_with_fewer_sequences_than_ranks_is_refused(two_ranks):
    error = torch.load(two_ranks / "too_few.pt")["error"]
    assert "fewer sequences than the 2 processes" in error
    assert "received: 1 sequence(s)" in error


# ---------------------------------------------------------------- gradient accumulation
def test_fit_steps_per_update_equals_one_batch_of_k_times_the_size():
    big = ddp_cases.fit_problem(batch_size=6, ordered=True)
    accumulated = ddp_cases.fit_problem(batch_size=3, steps_per_update=2, ordered=True)
    assert _max_difference(accumulated["weights"], big["weights"]) < 1e-5
    # The micro-batches alone (an update each) give other weights: the test can fail.
    small = ddp_cases.fit_problem(batch_size=3, ordered=True)
    assert _max_difference(small["weights"], big["weights"]) > 1e-3


def _fit_ignoring_a_class(batch_size: int, steps_per_update: int) -> dict:
    """The tagger with every tag 2 ignored (`ignore_class=2`): each batch counts its
    real steps whose tag is another."""
    x, y = ddp_cases.ragged_data(12)
    model = ddp_cases.recurrent_tagger()
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2))
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=batch_size,
        steps_per_update=steps_per_update,
        shuffle=False,
        bucketing=False,
        verbose=0,
    )
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"weights": weights, "loss": history.history["loss"]}


def test_ignore_class_accumulates_as_one_big_batch():
    # The count of each piece leaves the ignored steps out (`Loss.denominator` with the
    # targets), as the loss of the whole batch does.
    big = _fit_ignoring_a_class(batch_size=6, steps_per_update=1)
    accumulated = _fit_ignoring_a_class(batch_size=3, steps_per_update=2)
    assert _max_difference(accumulated["weights"], big["weights"]) < 1e-5
    assert accumulated["loss"] == pytest.approx(big["loss"], rel=1e-5)


def test_several_outputs_with_one_loss_accumulate_as_one_big_batch():
    # One count per update (the tagger's real steps): accumulation is exact, the
    # untrained head's penalty counted once per update.
    big = ddp_cases.fit_two_heads(batch_size=6, mood_loss=None, shuffle=False, bucketing=False)
    accumulated = ddp_cases.fit_two_heads(
        batch_size=3, steps_per_update=2, mood_loss=None, shuffle=False, bucketing=False
    )
    assert _max_difference(accumulated["weights"], big["weights"]) < 1e-5
    _assert_same_logs(accumulated["evaluate"], big["evaluate"])


@pytest.mark.parametrize(
    "losses_of_heads",
    [
        {},
        {"tags_loss": losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)},
        {"mood_loss": ddp_cases.SUMMED},
    ],
    ids=["means", "ignore_class", "sum"],
)
def test_two_outputs_accumulate_as_one_big_batch(losses_of_heads):
    # A per-step and a per-sequence head (an L2 penalty, weighted sequences): their
    # counts differ in each micro-batch, and each output's loss is divided by its own
    # count over the update, counted before the update trains.
    big = ddp_cases.fit_two_heads_in_order(batch_size=6, **losses_of_heads)
    accumulated = ddp_cases.fit_two_heads_in_order(
        batch_size=3, steps_per_update=2, **losses_of_heads
    )
    assert _max_difference(accumulated["weights"], big["weights"]) < 1e-5
    assert accumulated["history"].keys() == big["history"].keys()
    for key in big["history"]:
        if key == "mood_loss" and "mood_loss" in losses_of_heads:
            continue  # a sum's own log is each batch's: it depends on the batch size
        assert accumulated["history"][key] == pytest.approx(big["history"][key], rel=1e-6), key
    _assert_same_logs(accumulated["evaluate"], big["evaluate"])
    # The micro-batches alone (an update each) give other weights: the test can fail.
    small = ddp_cases.fit_two_heads_in_order(batch_size=3, **losses_of_heads)
    assert _max_difference(small["weights"], big["weights"]) > 1e-3


class PerMicroBatchMeans(Update):
    """The classic mistake: each micro-batch's loss its own mean, the update the mean of
    those (gradients divided by the number of micro-batches)."""

    def normalizers(self, outputs, targets):
        super().normalizers(outputs, targets)  # notes the piece
        return [None] * len(outputs)  # the loss of each micro-batch: its own mean

    def finish(self, parameters):
        pieces, self.pieces = self.pieces, 0
        for param in parameters:
            if param.grad is not None:
                param.grad.div_(pieces)


def test_fit_accumulation_with_per_micro_batch_means_would_fail(monkeypatch):
    # The same fit as above with the update's count replaced by per-micro-batch means:
    # the weights move away from the big batch's, so the test above can fail.
    big = ddp_cases.fit_problem(batch_size=6, ordered=True)
    monkeypatch.setattr(trainer_module, "Update", PerMicroBatchMeans)
    naive = ddp_cases.fit_problem(batch_size=3, steps_per_update=2, ordered=True)
    assert _max_difference(naive["weights"], big["weights"]) > 1e-3


def test_two_outputs_accumulated_with_per_micro_batch_means_would_fail(monkeypatch):
    # Each micro-batch's losses their own means: the test above can fail.
    big = ddp_cases.fit_two_heads_in_order(batch_size=6)
    monkeypatch.setattr(trainer_module, "Update", PerMicroBatchMeans)
    naive = ddp_cases.fit_two_heads_in_order(batch_size=3, steps_per_update=2)
    assert _max_difference(naive["weights"], big["weights"]) > 1e-3


class MasksChangeInTraining(Module):
    """Two outputs, the tagger's steps dropped at random in training only: a forward
    pass in evaluation mode does not count what training does."""

    output_names = ("tags", "mood")

    def __init__(self) -> None:
        super().__init__()
        self.embed = layers.Embedding(20, 4, mask_zero=True)
        self.tags = layers.Dense(3)
        self.summary = layers.LSTM(2)

    def forward(self, tokens: Masked) -> list:
        hidden = self.embed(tokens)
        tags = self.tags(hidden)
        if self.training:
            kept = torch.rand(tags.mask.shape) < 0.5
            tags = Masked(tags.values, tags.mask & kept)
        return [tags, self.summary(hidden)]


def test_masks_that_change_in_training_cannot_be_counted_before_the_update():
    x, y = ddp_cases.ragged_data(8)
    model = MasksChangeInTraining()
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("sgd", [loss, loss])
    targets = [y, ddp_cases.moods(x)]
    model.fit(x, targets, batch_size=4, verbose=0, epochs=1)  # one batch per update
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        ConfigError,
        match=r"(?s)differ between the forward pass.*received: 2 "
        r"outputs with a loss, steps_per_update=2.*steps_per_update=1",
    ):
        model.fit(x, targets, batch_size=4, steps_per_update=2, verbose=0)
    after = model.state_dict()
    assert _max_difference(before, {k: v.detach() for k, v in after.items()}) == 0.0


def test_counting_an_update_first_leaves_stateful_layers_states():
    # The counting passes run the update's batches through the model: a stateful
    # layer's states must be those of the last training batch when the next trains.
    tokens = Input(shape=(None,), dtype="int64")
    recurrent = layers.LSTM(4, return_sequences=True, stateful=True)
    sequence = recurrent(layers.Embedding(20, 4, mask_zero=True)(tokens))
    model = Model(tokens, [layers.Dense(3)(sequence), layers.Dense(2)(layers.LSTM(2)(sequence))])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("sgd", [loss, loss])
    x, y = ddp_cases.ragged_data(4)
    targets = targets_by_name([y, ddp_cases.moods(x)], model.output_names, "fit")
    loader = data_loader(x, targets, None, 2, 0.0, shuffle=False)
    recurrent.reset_states()  # after the model's build
    with torch.no_grad():
        model(next(iter(loader)).x)  # sets the states
    kept = recurrent.states
    plan = Update(model.trainer.compiled.heads, 2)
    handed = list(count_first(enumerate(loader), plan, len(loader), model))
    assert [index for index, _ in handed] == [0, 1]
    assert recurrent.states is kept
    assert len(plan.counted) == 2 and plan.counted[0] is not None


def test_hand_accumulation_needs_the_count_of_the_whole_update():
    big = ddp_cases.hand_accumulation("big")
    assert _max_difference(ddp_cases.hand_accumulation("global"), big) < 1e-5
    # Per-micro-batch means, averaged: the micro-batches' real steps differ, so wrong.
    assert _max_difference(ddp_cases.hand_accumulation("naive"), big) > 1e-3


def test_an_update_steps_every_k_batches_and_at_the_end_of_an_epoch():
    x, y = ddp_cases.ragged_data(9)
    model = ddp_cases.recurrent_tagger()
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=2, steps_per_update=2, epochs=2, verbose=0, seed=0)
    assert model.trainer.state.step == 6  # 5 batches per epoch: updates after 2, 4, 5


def test_an_overridden_step_that_bypasses_compute_loss_cannot_accumulate():
    class OwnLoss(Sequential):
        def train_step(self, batch):
            trainer = self.trainer
            out = trainer.forward(batch.x)
            loss = trainer.require_compiled("fit").loss(batch.y, out)  # its own mean
            trainer.zero_grad()
            trainer.backward(loss)
            trainer.optimizer_step(loss)
            return {"loss": loss.detach()}

    x, y = ddp_cases.ragged_data(8)
    model = OwnLoss([layers.Embedding(20, 4, mask_zero=True), layers.Dense(3)])
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=4, verbose=0)  # one batch per update: its own mean is right
    with pytest.raises(ConfigError, match=r"(?s)without Trainer.compute_loss.*compute_loss"):
        model.fit(x, y, batch_size=4, steps_per_update=2, verbose=0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_steps_per_update_must_be_a_positive_integer(value):
    x, y = ddp_cases.ragged_data(4)
    model = ddp_cases.recurrent_tagger()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match=r"(?s)steps_per_update must be a positive integer"):
        model.fit(x, y, steps_per_update=value, verbose=0)


@pytest.mark.parametrize("reduction", ["keras2", "mean_with_sample_weight"])
def test_per_batch_reductions_cannot_be_accumulated(reduction):
    x, y = ddp_cases.ragged_data(4)
    model = Sequential([layers.Embedding(20, 4, mask_zero=True), layers.Dense(3)])
    model.compile("sgd", losses.SparseCategoricalCrossentropy(reduction=reduction))
    with pytest.raises(ConfigError, match=rf"(?s)'{reduction}' reduction.*steps_per_update=2"):
        model.fit(x, y, steps_per_update=2, verbose=0)


# ---------------------------------------------------------------- without a process group
def test_one_process_helpers_return_their_own_values():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    out = Masked(torch.zeros(2, 4, 3), lengths_to_mask([4, 1], 4))
    assert int(distributed.global_real_steps(out)) == 5
    assert int(distributed.global_real_steps(out.mask)) == 5
    assert int(distributed.global_real_steps(7)) == 7
    assert int(distributed.global_real_steps(torch.zeros(2, 3, 1))) == 6  # every step
    total = distributed.all_reduce_sum(torch.tensor([0.1, 0.2], dtype=torch.float32))
    assert total.dtype == torch.float64
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]


def test_global_real_steps_refuses_what_is_not_a_count():
    with pytest.raises(ConfigError, match=r"(?s)output, mask or count.*received: str"):
        distributed.global_real_steps("5")


def test_not_launched_by_torchrun_initialises_nothing(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched()
    assert distributed.init_process_group() is False
    assert not torch.distributed.is_initialized()


def test_backend_follows_the_device():
    assert distributed.default_backend("cpu") == "gloo"
    assert distributed.default_backend(torch.device("cuda", 0)) == "nccl"
    assert distributed.default_backend(None) == "gloo"


def test_a_metric_without_running_sums_cannot_be_reduced_across_processes():
    class Median(metrics.Metric):
        def reset(self):
            self.values = []

        def accumulate(self, values, y_true, mask, sample_weight):
            self.values.append(values)

        def result(self):
            return 0.0

    with pytest.raises(ConfigError, match=r"(?s)'metric' \(Median\) keeps no running sums"):
        _reduce_metric(Median())
