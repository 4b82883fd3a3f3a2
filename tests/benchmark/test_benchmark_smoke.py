"""``nnunet_thrombus benchmark --budget smoke`` end to end on the tiny cohort: every row runs and the table is
complete (accuracy with CIs, paired differences with ours, subgroups, seed spread, costs).

All eleven rows run (1 epoch x 1 iteration per stage), two independent chains at a time (``jobs=2``): rows that
share a stage 1 (ours, its patch-context and no-coarse-feature fine stages) run in one chain. Our cascades are
predicted with ``nnunet_thrombus predict`` (the global-context fine stage refuses ``nnUNetv2_predict``), the
vanilla rows with ``nnUNetv2_predict``. The plans come from the session's ``tiny_plans`` (same features and patch
as the smoke budget; no trained model needed, so this module can run beside the trained-cascade tests under xdist),
copied so that the vessel-window plans this test preprocesses do not land in the shared folder.

Cost, measured 2026-12-01 on the shared 2-core machine: under pytest at load about 5, 14.3 min for this file
(tiny cascade fixture 2.7 min, which CI pays anyway; the benchmark 11.6 min wall, 37 subprocesses; 14.2 min CPU
for the whole file). The four rows this test ran before took 14 subprocesses, about 5 min of CPU (about 23 s per
nnU-Net subprocess either way). So CI grows by roughly 5-7 minutes, more than the few minutes aimed at.
"""
from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

from nnunet_thrombus.benchmark.budgets import OURS, REFERENCE, VARIANTS, VESSEL_PLANS
from nnunet_thrombus.benchmark.table import COMPARISON, COSTS

pytestmark = pytest.mark.slow
RUN = list(VARIANTS)
DATASET = "Dataset501_SynthThrombus"


@pytest.fixture(scope="module")
def smoke_run(tiny_plans, tmp_path_factory):
    from nnunet_thrombus.benchmark.benchmark import BenchmarkRequest, run_benchmark

    out = tmp_path_factory.mktemp("bench_smoke")
    pre = out / "preprocessed"
    src = tiny_plans["ws"].preprocessed / DATASET
    shutil.copytree(src, pre / DATASET, ignore=shutil.ignore_patterns(f"{VESSEL_PLANS}*"))
    rows = run_benchmark(BenchmarkRequest(501, "smoke", out, raw=tiny_plans["cohort"]["raw"], preprocessed=pre,
                                          command="pytest smoke", progress=False, jobs=2))
    return out, rows


def _num(x: str) -> float:
    return float(x) if x not in ("", "nan") else math.nan


def test_every_row_and_statistics_column(smoke_run):
    out, _ = smoke_run
    with open(out / "benchmark.csv", newline="") as f:
        reader = csv.DictReader(f)
        # the columns docs/benchmark.md and its readers use, written here, in this order, each once
        need = ["variant", "label", "trainer", "plans", "seed", "dice_median", "dice_ci_low", "dice_ci_high",
                "hd95_mm", "fp_components_per_case", "lvo_sensitivity", "lvo_specificity", "n_test", "dice_diff",
                "dice_diff_p", "train_epoch_s", "train_epoch_s_ratio", "infer_case_s", "infer_case_s_ratio"]
        assert [c for c in reader.fieldnames if c in need] == need
        assert len(set(reader.fieldnames)) == len(reader.fieldnames)
        table = list(reader)
    assert [r["variant"] for r in table] == RUN
    n_clot = int(table[0]["n_with_clot"])
    assert int(table[0]["n_test"]) == 3 and n_clot + int(table[0]["n_clot_free"]) == 3 and n_clot >= 1
    for r in table:
        assert 0.0 <= _num(r["dice_median"]) <= 1.0, r
        assert _num(r["dice_ci_low"]) <= _num(r["dice_median"]) <= _num(r["dice_ci_high"]), r
        for k in ("lvo_sensitivity", "lvo_sens_ci_low", "lvo_sens_ci_high", "fp_components_per_case"):
            assert r[k] != "", (r["variant"], k)
        assert _num(r["fp_components_per_case"]) >= 0
        for k in COSTS:
            assert math.isfinite(_num(r[k])) and _num(r[k]) > 0, (r["variant"], k, r[k])
        if r["variant"] == OURS:
            assert all(math.isnan(_num(r[k])) for k in COMPARISON if k != "beyond_seed_spread")
        else:  # paired with ours over every test clot; a p-value in [0, 1]
            assert int(float(r["dice_diff_n"])) == n_clot and 0.0 <= _num(r["dice_diff_p"]) <= 1.0, r
            assert _num(r["dice_diff_ci_low"]) <= _num(r["dice_diff"]) <= _num(r["dice_diff_ci_high"])
            assert r["beyond_seed_spread"] in ("yes", "no")
    assert all(_num(table[0][f"{k}_ratio"]) == 1.0 for k in COSTS) and table[0]["variant"] == REFERENCE
    md = (out / "benchmark.md").read_text()
    assert "Command: `pytest smoke`" in md and all(VARIANTS[v].label in md for v in RUN)
    for title in ("Paired per-case differences", "Seed-to-seed spread", "Median Dice % by site",
                  "Median Dice % by clot volume", "Cost (ratio"):
        assert title in md


def test_subgroups_and_seed_spread(smoke_run):
    out, _ = smoke_run
    with open(out / "subgroups.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:3] == ["variant", "group_by", "group"]
        assert {"n", "dice_median", "dice_ci_low", "dice_ci_high"} <= set(reader.fieldnames)
        sub = list(reader)
    for v in RUN:
        mine = [s for s in sub if s["variant"] == v]
        assert {s["group_by"] for s in mine} == {"site", "size_group"}, v
    info = json.loads((out / "benchmark.json").read_text())
    assert set(info["seed_spread"]) == {"vanilla_3d_fullres", "vanilla_cascade", "ours"}
    assert info["seed_spread"]["ours"]["rows"] == ["ours_seed0", "ours_seed1"]
    assert info["bootstrap"]["resamples"] == 10_000


def test_stages_seeds_and_plans(smoke_run):
    out, _ = smoke_run
    steps = json.loads((out / "benchmark.json").read_text())["steps"]
    cascade = [v for v in RUN if VARIANTS[v].cascade]
    ours_predict = [v for v in RUN if VARIANTS[v].thrombus_predict]
    vanilla_cascades = {"vanilla_cascade_seed0", "vanilla_cascade_seed1"}
    assert set(ours_predict) == set(cascade) - vanilla_cascades
    assert all(len(steps[v]["epoch_seconds"]) == (2 if v in cascade else 1) for v in RUN)
    # train + export-next-stage + train for cascades
    assert all(len(steps[v]["train"]) == (3 if v in cascade else 1) for v in RUN)
    # nnUNetv2_predict: coarse + fine for the vanilla cascade; nnunet_thrombus predict (one call) for our cascades
    assert all(len(steps[v]["predict"]) == (2 if v in vanilla_cascades else 1) for v in RUN)
    # the patch-context and no-coarse-feature rows reuse the stage 1 of ours (seed 0): the very same measurements
    for v in ("ours_patchContext_seed0", "noCoarseFeatures_seed0"):
        assert steps[v]["epoch_seconds"][0] == steps[OURS]["epoch_seconds"][0]
        assert steps[v]["train"][:2] == steps[OURS]["train"][:2]
    assert steps["ours_seed1"]["train"][0] != steps[OURS]["train"][0]
    # our cascades were predicted by nnunet_thrombus predict: one report.json per test case, read by evaluate
    for v in ours_predict:
        assert len(list((out / "predictions" / f"{v}_reports").glob("*/report.json"))) == 3, v
        with open(out / "evaluation" / v / "metrics.csv", newline="") as f:
            assert all(r["uncertainty"] != "" for r in csv.DictReader(f)), v
    # one results root per seed: the seed-1 replicates did not overwrite the seed-0 models
    results = out / "work" / "nnUNet_results"
    for seed in (0, 1):
        for folder in ("nnUNetTrainer_envSchedule__ThrombusPlans__3d_fullres",
                       "ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres"):
            assert (results / f"seed{seed}" / DATASET / folder / "fold_0" / "checkpoint_final.pth").is_file()
    for seed in (0, 1):  # the trainer ran with the row's seed (training_recipe.json records the overrides)
        recipe = results / f"seed{seed}" / DATASET / "ThrombusCascadeTrainer__ThrombusPlans__3d_lowres" / "fold_0"
        assert json.loads((recipe / "training_recipe.json").read_text())["overrides"]["seed"] == seed
    # the vessel-window plans differ from ThrombusPlans only in the CT normalisation window
    pre = out / "preprocessed" / DATASET
    plans, vessel = (json.loads((pre / f"{p}.json").read_text()) for p in ("ThrombusPlans", VESSEL_PLANS))
    assert vessel["thrombus_plans"]["ct_window"] == "vessel"
    for c in ("3d_fullres", "3d_lowres"):
        a, b = plans["configurations"][c], vessel["configurations"][c]
        assert (a["architecture"], a["patch_size"], a["spacing"]) == (b["architecture"], b["patch_size"], b["spacing"])
    assert plans["foreground_intensity_properties_per_channel"] != vessel["foreground_intensity_properties_per_channel"]
    assert (results / "seed0" / DATASET / f"ThrombusCascadeTrainer__{VESSEL_PLANS}__3d_cascade_fullres").is_dir()
