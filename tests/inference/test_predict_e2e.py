"""Acceptance: `nnunet_thrombus predict` on 3 tiny DICOM cases with the short-trained cascade."""
from __future__ import annotations

import json
import shutil

import pytest

from dicom_checks import dciodvfy_errors
from predict_testlib import assert_case_valid, load_schema, read_image

pytestmark = pytest.mark.slow


def test_predict_three_dicom_cases_with_trained_model(tiny_cascade, tmp_path, monkeypatch, capsys):
    import highdicom as hd
    import pydicom

    from nnunet_thrombus import cli

    ws = tiny_cascade["ws"]
    for key, value in ws.env().items():
        if key.startswith("nnUNet"):
            monkeypatch.setenv(key, value)
    src = tiny_cascade["cohort"]["synth"] / "raw_dicom"
    inp = tmp_path / "in"
    ids = sorted(p.name for p in src.iterdir())[:3]
    for cid in ids:
        shutil.copytree(src / cid, inp / cid)
    out = tmp_path / "out"
    rc = cli.main(["predict", "-i", str(inp), "-o", str(out), "-d", "501", "--disable-tta", "--dicom-seg",
                   "--save-probabilities"])
    printed = capsys.readouterr().err  # progress is logged to stderr
    assert rc == 0, printed
    schema = load_schema()
    for cid in ids:
        report = assert_case_valid(out / cid, read_image(inp / cid / "CTA"), schema)
        assert report["model"]["folds"] == ["0"] and report["confidence"]["n_folds"] == 1
        assert report["input"]["preprocess_cache"] == "miss"   # the command caches by default (tests: a temp folder)
        assert all(report["timings_s"][k] >= 0 for k in ("preprocess", "coarse", "fine", "export"))
        assert (out / cid / "probabilities.npz").stat().st_size > 0
        seg = hd.seg.segread(str(out / cid / "thrombus_seg.dcm"))
        n_slices = len(list((inp / cid / "CTA").glob("*.dcm")))
        assert seg.NumberOfFrames == n_slices
        ref = pydicom.dcmread(str(sorted((inp / cid / "CTA").glob("*.dcm"))[0]), stop_before_pixels=True)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ref.SeriesInstanceUID
        errors, dciodvfy_out = dciodvfy_errors(out / cid / "thrombus_seg.dcm")  # David Clunie's validator
        assert not errors, dciodvfy_out
        assert f"{cid}:" in printed
    t = json.loads((out / ids[0] / "report.json").read_text())["timings_s"]
    print("predict timings (s), tiny preset, CPU:", {k: round(v, 2) for k, v in t.items()})
    # -m with a copied results folder gives the same masks, voxel for voxel
    import numpy as np
    import SimpleITK as sitk

    def masks(folder):
        return {cid: sitk.GetArrayFromImage(sitk.ReadImage(str(folder / cid / "thrombus.nii.gz"))) for cid in ids}

    model_copy = tmp_path / "shipped"
    shutil.copytree(tiny_cascade["fine_dir"].parent, model_copy)
    rc = cli.main(["predict", "-i", str(inp), "-o", str(tmp_path / "out_m"), "-m", str(model_copy), "--disable-tta",
                   "-q"])
    assert rc == 0
    first, shipped = masks(out), masks(tmp_path / "out_m")
    assert all(np.array_equal(first[cid], shipped[cid]) for cid in ids)
    # a second run into the first folder skips every finished case and leaves its files untouched
    stamps = {cid: (out / cid / "thrombus.nii.gz").stat().st_mtime_ns for cid in ids}
    capsys.readouterr()
    rc = cli.main(["predict", "-i", str(inp), "-o", str(out), "-d", "501", "--disable-tta"])
    assert rc == 0
    assert capsys.readouterr().err.count("already done, skipped") == len(ids)
    assert {cid: (out / cid / "thrombus.nii.gz").stat().st_mtime_ns for cid in ids} == stamps
    # a fine checkpoint swapped for the coarse one is refused before any case is read
    fold = model_copy / tiny_cascade["fine_dir"].name / "fold_0"
    shutil.copy(model_copy / tiny_cascade["coarse_dir"].name / "fold_0" / "checkpoint_final.pth",
                fold / "checkpoint_final.pth")
    rc = cli.main(["predict", "-i", str(inp), "-o", str(tmp_path / "o2"), "-m", str(model_copy), "-q"])
    assert rc == 2 and "does not match" in capsys.readouterr().err
