"""The demo's two coarse-stage lines: the coarse stage's held-out Dice / clots found, and the share of fine windows
the ROI ran (read from the reports that predict wrote)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.demo import coarse_heldout, fine_window_share, format_summary


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(arr.astype(np.uint8)), str(path))


def test_coarse_heldout_scores_each_case_and_counts_found_clots(tmp_path):
    ref = np.zeros((3, 8, 8, 8), np.uint8)
    ref[0, 2:4, 2:4, 2:4] = 1          # 8 voxels, found by 4 of them: Dice 2*4/(8+4) = 0.667
    ref[1, 5:7, 5:7, 5:7] = 1          # 8 voxels, missed (mask elsewhere): Dice 0
    pred = np.zeros_like(ref)           # case 2: empty reference, empty mask: Dice 1
    pred[0, 2:3, 2:4, 2:4] = 1
    pred[1, 0:1, 0:1, 0:2] = 1
    for i in range(3):
        _write(tmp_path / "ref" / f"C{i}.nii.gz", ref[i])
        _write(tmp_path / "pred" / f"C{i}.nii.gz", pred[i])
    res = coarse_heldout(tmp_path / "pred", tmp_path / "ref", ["C0", "C1", "C2"])
    assert res["dice"] == {"C0": 0.6667, "C1": 0.0, "C2": 1.0}
    assert res["dice_median"] == 0.6667
    assert (res["clots_found"], res["clots"]) == (1, 2)


def test_fine_window_share_sums_the_reports_tiles(tmp_path):
    for case, tiles in (("A", [12, 60]), ("B", [60, 60]), ("C", [0, 60])):
        (tmp_path / case).mkdir()
        (tmp_path / case / "report.json").write_text(json.dumps({"model": {"fine_tiles": tiles}}))
    res = fine_window_share(tmp_path, ["A", "B", "C", "missing"])
    assert (res["run"], res["total"]) == (72, 180)
    assert abs(res["share"] - 0.4) < 1e-12
    assert fine_window_share(tmp_path, ["missing"])["share"] is None


def test_summary_prints_both_lines():
    summary = {"n_train": 18, "n_test": 6, "stage_seconds": {"a": 60.0},
               "schedule": {"epochs": 8, "iterations_per_epoch": 100, "coarse_epochs": 7,
                            "coarse_iterations_per_epoch": 43},
               "table": [], "paths": {"predictions": "p", "evaluation": "e", "models": "m"},
               "coarse_stage": {"dice_median": 0.4125, "clots_found": 3, "clots": 4},
               "fine_windows": {"run": 72, "total": 180, "share": 0.4}}
    text = format_summary(summary)
    assert "coarse stage alone (3d_lowres), held-out: median Dice 0.412, clots found 3/4" in text
    assert "fine-stage windows run inside the coarse ROI: 72/180 (40%)" in text


def test_train_passes_the_learning_rate_as_a_flag(tmp_path, monkeypatch):
    from nnunet_thrombus.training.workflow import NnunetWorkspace, short_schedule, train

    seen = []
    ws = NnunetWorkspace.under(tmp_path)
    monkeypatch.setattr(NnunetWorkspace, "run",
                        lambda self, args, log_name, on_line=None, **env: seen.append((args, env)) or 0.0)
    train(ws, 501, "3d_lowres", 0, schedule=short_schedule(7, 43, optimizer="adamw", lr=3e-3))
    args, env = seen[-1]

    def flag(name):
        return args[args.index(name) + 1]

    assert args[:3] == ["nnunet_thrombus", "train", 501] and env == {}  # no THROMBUS_* in the environment
    assert (flag("--optimizer"), flag("--lr"), flag("--epochs"), flag("--iters")) == ("adamw", "0.003", "7", "43")
    train(ws, 501, "3d_fullres", 0, schedule=short_schedule(optimizer="adamw"))
    assert "--lr" not in seen[-1][0]


def test_default_budget_gives_the_coarse_stage_about_the_measured_301_iterations():
    from nnunet_thrombus.demo import DEFAULT_BUDGET_MINUTES, DemoSchedule

    s = DemoSchedule.for_budget(DEFAULT_BUDGET_MINUTES)
    assert DEFAULT_BUDGET_MINUTES == 20.0
    assert (s.coarse_epochs, s.coarse_iters) == (7, 44)     # 308 iterations; 301 were measured at lr 3e-3
    assert (s.epochs, s.iters) == (8, 98)
    # the schedule's own time estimate is the budget: fixed minutes plus iterations x measured seconds
    est = DemoSchedule.FIXED_MINUTES + (s.coarse_epochs * s.coarse_iters * DemoSchedule.SECONDS["coarse"]
                                        + s.epochs * s.iters * (DemoSchedule.SECONDS["fine"]
                                                                + DemoSchedule.SECONDS["baseline"])) / 60
    assert abs(est - DEFAULT_BUDGET_MINUTES) < 0.2


def test_a_zero_budget_is_refused_not_replaced_by_the_default(tmp_path):
    from nnunet_thrombus.cli import main

    with pytest.raises(ValueError, match="budget must be positive"):
        main(["demo", "-o", str(tmp_path / "demo"), "--budget", "0", "--device", "cpu"])
    assert not (tmp_path / "demo").exists()
