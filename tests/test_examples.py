"""Run every seed example and check the results it shows."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_seed_000_zero_predictions():
    example = load("seed_000_zero_predictions")
    results = [example.main(seed=seed) for seed in range(5)]
    first = results[0]
    # The user's code is stopped by fit, first on the layout, then on the padding class.
    assert first["layout_error_code"] == "MW001"
    assert "fit() stopped before the first step" in first["layout_error"]
    assert "transpose instead: `X.T`" in first["layout_error"]
    assert first["label_error_code"] == "MW004"
    assert "relabel the real classes 1->0, 2->1 and use 2 output units" in first["label_error"]
    assert first["fixed_codes"] == []
    assert first["test_real_steps"] == 30
    # The bar: at least 95 % mean accuracy over 5 seeds on the 30 real test steps.
    accuracies = [r["test_accuracy"] for r in results]
    assert np.mean(accuracies) >= 0.95, accuracies
    # The accuracy is counted on the real steps only, and agrees with evaluate().
    for r in results:
        assert r["test_accuracy"] == pytest.approx(r["evaluate_accuracy"], abs=1e-6)
        assert len(set(r["predicted_classes"])) == 2  # not one class everywhere


def test_seed_001_lambda_mask():
    r = load("seed_001_lambda_mask").main()
    assert "Lambda" in r["error"] and "mask=lambda inputs, mask: mask[:, N:]" in r["error"]
    assert r["real_steps"] < r["all_steps"]
    assert r["loss"] == pytest.approx(r["masked_mae_by_hand"], rel=1e-5)
    assert r["evaluate_loss"] == pytest.approx(r["masked_mae_by_hand"], rel=1e-5)
    assert abs(r["loss"] - r["unmasked_mae_by_hand"]) > 1e-3
    assert math.isfinite(r["nan_padding_loss"]) and r["nan_padding_grads_finite"]
    assert r["nan_padding_loss"] == pytest.approx(r["loss"], rel=1e-5)
    assert len(r["fit_losses"]) == 3 and r["fit_losses"][-1] < r["fit_losses"][0]


def test_seed_002_masked_loss():
    r = load("seed_002_masked_loss").main()
    assert r["real_steps"] == 16 and r["all_steps"] == 32
    assert r["mean_loss"] == pytest.approx(r["mean_by_hand"], rel=1e-5)
    assert r["scrambled_padding_labels"] == r["mean_loss"]
    assert r["nan_padding_labels"] == r["mean_loss"]
    assert r["keras2_loss"] == pytest.approx(r["keras2_by_hand"], rel=1e-5)
    assert r["keras2_weighted"] == pytest.approx(r["keras2_weighted_by_hand"], rel=1e-5)
    # Per batch, Keras 2's reduction is the mean over the real steps (up to eps).
    assert r["keras2_loss"] == pytest.approx(r["mean_loss"], rel=1e-5)
    assert abs(r["unmasked_mean_by_hand"] - r["mean_loss"]) > 1e-3


def test_seed_003_multi_input():
    r = load("seed_003_multi_input").main()
    seed_mask = [False, True, False, True, False]  # masked steps [0, 2, 4]
    assert r["input_masks"]["numeric"] == [seed_mask, [True] * 5]
    assert r["input_masks"]["version"] == [seed_mask, [True, True, True, True, False]]
    assert r["input_masks"]["missing"] == [seed_mask, [False, True, True, True, True]]
    assert r["merged_mask"] == [seed_mask, [False, True, True, True, False]]
    assert r["dense_same_at_real_steps"] is True
    assert r["dense_padded_steps_read_as_zeros"] is True
    assert r["dense_passes_mask"] is True
    assert r["gru_carries_state_over_masked_steps"] is True
    assert "already has a mask" in r["second_masking_warning"]
    assert r["second_masking_mask"] == [[True] * 5] * 2
    assert r["output_shape"] == [2, 2]
    assert r["probabilities_sum_to_one"]
    table = r["trace_table"]
    for name in ("M_num", "M_version", "M_missing", "concatenate", "gru_1", "gru_3"):
        assert name in table
    # 50 % of the 10 steps are real after the merge; gru_3 returns one vector per sequence.
    assert "50.0%" in table and "consumed" in table and "dropped" not in table
