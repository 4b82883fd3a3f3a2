import csv
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.evaluation.evaluate import EvaluationOptions, evaluate_folder

SPACING_XYZ = (0.5, 0.5, 1.0)  # SimpleITK order; arrays are (z, y, x) with spacing (1.0, 0.5, 0.5)


def _write(arr, path, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(SPACING_XYZ)
    img.SetOrigin(origin)
    sitk.WriteImage(img, str(path))


def _cohort(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    shape = (20, 40, 60)
    cases = {}
    a = np.zeros(shape, bool)
    a[3:7, 18:22, 34:50] = True  # low, lateral (M1 in the image-extent frame): 4*4*16 voxels = 64 mm3
    cases["case_000"] = (a, a)  # perfect
    b = np.zeros(shape, bool)
    b[3:7, 18:22, 36:50] = True  # shorter prediction: 56 mm3
    cases["case_001"] = (a, b)
    cases["case_002"] = (np.zeros(shape, bool), np.zeros(shape, bool))  # true negative
    c = np.zeros(shape, bool)
    c[8:10, 18:20, 40:44] = True  # 16 voxels = 4 mm3, missed
    cases["case_003"] = (c, np.zeros(shape, bool))
    for name, (r, p) in cases.items():
        _write(r, ref / f"{name}.nii.gz")
        _write(p, pred / f"{name}.nii.gz")
    meta = tmp_path / "metadata.csv"
    meta.write_text("case,split,site,side,lvo,volume_mm3,length_mm,ncct_density_hu,perviousness_hu,isodense,"
                    "slice_thickness_mm\n"
                    "case_000,test,M1,L,1,64,8,70,20,0,1.0\ncase_001,test,M1,L,1,64,8,70,20,1,1.0\n"
                    "case_002,test,none,,0,0,0,,,,1.0\ncase_003,test,M2,L,0,4,2,70,20,0,1.0\n")
    return pred, ref, meta


def test_evaluate_folder_end_to_end(tmp_path):
    pred, ref, meta = _cohort(tmp_path)
    out = tmp_path / "out"
    summary = evaluate_folder(pred, ref, out, EvaluationOptions(metadata_csv=meta), quiet=True)
    for name in ("metrics.csv", "summary.json", "summary.md", "dice_by_subgroup.png", "volume_scatter.png",
                 "length_scatter.png", "volume_bland_altman.png", "length_bland_altman.png"):
        assert (out / name).stat().st_size > 0, name
    assert not [f for f in os.listdir(out) if f.startswith(".tmp_")]
    rows = {r["case"]: r for r in csv.DictReader(open(out / "metrics.csv"))}
    assert float(rows["case_000"]["dice"]) == 1.0 and float(rows["case_000"]["hd95_mm"]) == 0.0
    assert float(rows["case_001"]["dice"]) == pytest.approx(2 * 56 / (64 + 56))
    assert float(rows["case_001"]["ref_volume_mm3"]) == pytest.approx(64.0)
    assert float(rows["case_001"]["pred_volume_mm3"]) == pytest.approx(56.0)
    assert float(rows["case_001"]["ref_length_mm"]) == pytest.approx(8.0, rel=0.05)
    assert float(rows["case_001"]["pred_length_mm"]) == pytest.approx(7.0, rel=0.05)
    # only the 16 voxels of the missed end face (16 of 376 pooled surface voxels, < 5%) lie 1.0 mm away;
    # the next ones (side strip) lie 0.5 mm away, so the 95th percentile is 0.5 mm
    assert float(rows["case_001"]["hd95_mm"]) == pytest.approx(0.5)
    assert float(rows["case_002"]["dice"]) == 1.0 and rows["case_002"]["hd95_mm"] == ""
    assert float(rows["case_003"]["dice"]) == 0.0
    assert [rows[c]["presence_outcome"] for c in sorted(rows)] == ["TP", "TP", "TN", "FN"]
    assert [rows[c]["lvo_outcome"] for c in sorted(rows)] == ["TP", "TP", "TN", "TN"]
    assert rows["case_001"]["density_group"] == "isodense" and rows["case_003"]["size_group"] == "<30 mm3"
    det = summary["detection"]["occlusion_vs_none"]
    assert (det["tp"], det["fn"], det["fp"], det["tn"]) == (2, 1, 0, 1)
    assert summary["metrics"]["dice"]["n"] == 3  # cases with a reference thrombus
    assert set(summary["subgroups"]["site"]) == {"M1", "M2", "none"}
    assert json.load(open(out / "summary.json"))["n_cases"] == 4
    assert "| Dice (%) |" in (out / "summary.md").read_text()


def test_missing_prediction_and_geometry_mismatch(tmp_path):
    pred, ref, _ = _cohort(tmp_path)
    os.remove(pred / "case_002.nii.gz")
    with pytest.raises(ValueError, match="case_002"):
        evaluate_folder(pred, ref, tmp_path / "o1", EvaluationOptions(plots=False), quiet=True)
    _write(np.zeros((20, 40, 60)), pred / "case_002.nii.gz", origin=(5.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="case_002.*origin"):
        evaluate_folder(pred, ref, tmp_path / "o2", EvaluationOptions(plots=False), quiet=True)


def test_rater_study_with_staple(tmp_path):
    pred, ref, _ = _cohort(tmp_path)
    raters = tmp_path / "raters" / "case_001"
    raters.mkdir(parents=True)
    base = np.zeros((20, 40, 60), bool)
    base[3:7, 18:22, 34:50] = True
    for k, shift in enumerate((0, 0, 2)):
        _write(np.roll(base, shift, axis=2), raters / f"rater_{k + 1}.nii.gz")
    options = EvaluationOptions(raters_dir=tmp_path / "raters", plots=False)
    summary = evaluate_folder(pred, ref, tmp_path / "out", options, quiet=True)
    per = summary["raters"]["per_case"]["case_001"]
    assert per["rater_1"] == 1.0 and per["rater_2"] == 1.0  # consensus = the two agreeing raters
    assert per["rater_3"] == pytest.approx(2 * 56 / 128)
    assert per["model"] == pytest.approx(2 * 56 / (64 + 56))
    assert "Rater study" in (tmp_path / "out" / "summary.md").read_text()
