"""The main job end to end: ``nnunet_thrombus demo`` on a small tiny-preset cohort with a one-minute schedule."""
from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_every_stage_and_writes_the_summary(tmp_path, capsys):
    from nnunet_thrombus.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "-o", str(out), "--budget", "1", "--cases", "8", "--test-cases", "2", "--seed", "3"]
              + ["--preset", "tiny"])
    assert rc == 0
    captured = capsys.readouterr()
    printed = captured.out  # the summary table is the demo's result (stdout); progress is logged to stderr
    assert "SYNTHETIC data" in printed and "[demo 8/8] evaluate" in captured.err
    # one progress line per training epoch, from nnU-Net's own output (budget 1 -> 2 epochs per stage)
    for stage in ("ThrombusCascadeTrainer 3d_lowres fold 0", "ThrombusCascadeTrainer 3d_cascade_fullres fold 0",
                  "nnUNetTrainer_envSchedule 3d_fullres fold 0"):
        assert f"{stage}: epoch 1/2, train loss " in captured.err and f"{stage}: epoch 2/2, " in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["synthetic"] is True and summary["n_test"] == 2
    assert [r["model"].split()[0] for r in summary["table"]] == ["ours", "vanilla"]
    for row in summary["table"]:
        assert 0.0 <= row["dice_median"] <= 1.0
    assert not summary["failed_predictions"]
    cases = sorted(p.name for p in (out / "predictions").iterdir() if p.is_dir())
    assert len(cases) == 2
    for case in cases:
        for name in ("thrombus.nii.gz", "report.json", "overlay.png"):
            assert (out / "predictions" / case / name).is_file()
    assert set(summary["stage_seconds"]) == {"synth", "convert", "plan", "train coarse", "train fine",
                                             "train baseline", "predict", "evaluate"}
    assert all(math.isfinite(v) and v >= 0 for v in summary["stage_seconds"].values())
    fine = out / "nnunet" / "nnUNet_results" / "Dataset501_DemoThrombus" / \
        "ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres"
    assert (fine / "lvo_thresholds.json").is_file()
    report = json.loads((out / "predictions" / cases[0] / "report.json").read_text())
    assert "lvo_thresholds.json" in json.dumps(report)
    # post-processing chosen on validation for ours and the baseline; predict names the one it applied
    base = fine.parent / "nnUNetTrainer_envSchedule__ThrombusPlans__3d_fullres"
    pp = json.loads((fine / "postprocessing.json").read_text())
    assert (base / "postprocessing.json").is_file()
    assert report["model"]["postprocessing"] == pp["rule"]
    assert summary["schedule"]["optimizer"] == "adamw"
    # the ROI threshold was fitted on validation (fit-roi) and predict used it; the table names it and the recipes
    roi = json.loads((fine / "roi_threshold.json").read_text())
    assert report["model"]["roi_threshold"] == roi["threshold"]
    assert report["model"]["roi_threshold_source"].endswith("roi_threshold.json")
    ours, vanilla = summary["table"]
    assert ours["roi_threshold"] == roi["threshold"] and ours["roi_threshold_source"].endswith("roi_threshold.json")
    assert ours["recipe"].startswith("paper + overrides: AdamW lr 0.001 poly 0.9")
    # no test-time mirroring; augmentation mirrored the heads left-right (training/mirroring.py), ours and vanilla
    assert "optimizer=adamw" in ours["recipe"]
    assert "no test-time mirroring, left-right mirror augmentation" in ours["recipe"]
    assert vanilla["recipe"].startswith("paper + overrides: AdamW")
    assert "no test-time mirroring, left-right mirror augmentation" in vanilla["recipe"]
    assert report["model"]["recipe"]["label"] == ours["recipe"]
    assert "fine-stage ROI threshold" in printed and "recipe: paper + overrides: AdamW" in printed
    # the coarse stage's own held-out result and the fine windows the ROI ran are in the summary and the table
    coarse, windows = summary["coarse_stage"], summary["fine_windows"]
    assert sorted(coarse["dice"]) == cases and 0.0 <= coarse["dice_median"] <= 1.0
    assert coarse["clots"] == _reference_clots(out, cases)
    assert windows["total"] > 0 and 0 <= windows["run"] <= windows["total"]
    assert "coarse stage alone (3d_lowres), held-out: median Dice" in printed
    assert f"fine-stage windows run inside the coarse ROI: {windows['run']}/{windows['total']}" in printed
    assert summary["schedule"]["coarse_lr"] == 3e-3
    for sub in ("ours", "baseline"):
        assert (out / "eval" / sub / "metrics.csv").is_file()
    # refuses to overwrite a finished demo
    with pytest.raises(ValueError, match="not empty"):
        main(["demo", "-o", str(out), "--budget", "1"])


def _reference_clots(out, cases):
    """Held-out cases whose reference label holds thrombus."""
    import SimpleITK as sitk

    labels = next((out / "cohort").glob("nnUNet_raw/Dataset*/labelsTs"))
    return sum(bool(sitk.GetArrayFromImage(sitk.ReadImage(str(labels / f"{c}.nii.gz"))).any()) for c in cases)
