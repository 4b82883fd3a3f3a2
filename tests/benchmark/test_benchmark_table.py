"""Fast tests of the benchmark's bookkeeping: variant selection, budgets, log parsing, cost columns, ratios."""
from __future__ import annotations

import math

import pytest

from nnunet_thrombus.benchmark.budgets import BUDGETS, REFERENCE, get_budget, select_variants
from nnunet_thrombus.benchmark.runner import StepCost, VariantCost, epoch_times
from nnunet_thrombus.benchmark.table import COLUMNS, COSTS, add_ratios, cost_columns, to_markdown


def test_select_variants_adds_reference_and_keeps_run_order():
    names = [v.name for v in select_variants(["noCoarseFeatures", "ours"])]
    assert names == [REFERENCE, "ours", "noCoarseFeatures"]
    assert len(select_variants()) == 6
    assert select_variants(["noCoarseFeatures"])[-1].stage1_trainer == "ThrombusCascadeTrainer"


@pytest.mark.parametrize("bad", [["nope"], ["ours", "vanilla"]])
def test_select_variants_rejects_unknown(bad):
    with pytest.raises(ValueError, match="unknown variants"):
        select_variants(bad)


def test_budgets():
    assert set(BUDGETS) == {"smoke", "cpu", "gpu"}
    assert get_budget("smoke").features == (8, 16, 32) and get_budget("smoke").patch_size == (32, 48, 48)
    assert "2 iterations" in get_budget("smoke").describe()
    cpu = get_budget("cpu")
    assert (cpu.epochs_for("3d_fullres"), cpu.epochs_for("3d_cascade_fullres"), cpu.epochs_for("3d_lowres")) == \
        (8, 8, 12)
    assert "fine stages 8 epoch(s), 3d_lowres stages 12 epoch(s) x 101 iterations" in cpu.describe()
    assert get_budget("smoke").epochs_for("3d_lowres") == 1 and "every stage 1 epoch(s)" in get_budget("smoke").describe()
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        get_budget("huge")


def test_epoch_times_reads_newest_log(tmp_path):
    fold = tmp_path / "fold_0"
    fold.mkdir()
    (fold / "training_log_2020_01_01_00_00_00.txt").write_text("x: Epoch time: 99.0 s\n")
    (fold / "training_log_2020_01_02_00_00_00.txt").write_text(
        "2020-01-02 00:00:01: Epoch time: 12.5 s \nlr 0.01\n2020-01-02 00:00:02: Epoch time: 7.25 s \n")
    assert epoch_times(tmp_path) == [12.5, 7.25]
    with pytest.raises(FileNotFoundError):
        epoch_times(tmp_path, fold=1)


def _cost():
    c = VariantCost()
    c.train_steps = [StepCost(10.0, 500.0), StepCost(2.0, 900.0), StepCost(30.0, 700.0)]
    c.predict_steps = [StepCost(6.0, 300.0), StepCost(9.0, 400.0)]
    c.epoch_seconds = [[4.0, 6.0], [10.0, 12.0]]
    return c


def test_cost_columns_sum_stages():
    cols = cost_columns(_cost(), n_cases=3)
    assert cols == {"train_epoch_s": 16.0, "train_total_s": 42.0, "train_peak_mb": 900.0, "infer_case_s": 5.0,
                    "infer_peak_mb": 400.0}
    with pytest.raises(ValueError, match="n_cases"):
        cost_columns(_cost(), 0)


def test_ratios_and_markdown():
    rows = [{"variant": REFERENCE, "label": "vanilla", "trainer": "t", **{k: 2.0 for k in COSTS}},
            {"variant": "ours", "label": "ours", "trainer": "t", **{k: 3.0 for k in COSTS}}]
    for r in rows:
        r.update(dice_median=0.5, dice_q1=0.25, dice_q3=0.75, hd95_mm=1.0, assd_mm=0.5, volume_r=float("nan"),
                 length_r=0.9, lvo_sensitivity=1.0, lvo_specificity=0.5, n_test=3)
    add_ratios(rows, REFERENCE)
    assert all(rows[0][f"{k}_ratio"] == 1.0 for k in COSTS)
    assert all(rows[1][f"{k}_ratio"] == 1.5 for k in COSTS)
    assert set(COLUMNS) <= set(rows[1])
    md = to_markdown(rows, ["# title"])
    assert "| ours | 50.0 (25.0-75.0) | 1.00 | 0.50 | n/a | 0.90 |" in md
    assert "3.0 (1.50x)" in md
    with pytest.raises(ValueError, match="reference"):
        add_ratios(rows[1:], REFERENCE)
    assert math.isnan(add_ratios([dict(rows[0], train_epoch_s=0.0)], REFERENCE)[0]["train_epoch_s_ratio"])
