"""The thrombus DICOM SR (TID 1500): valid for dciodvfy, read back by highdicom to the report's values, referencing
the SEG it sits beside; anonymized like the SEG (no source identifier, same UID mapping); written by predict with
``dicom_sr``. Each test writes its own DICOM."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from _pacs_export import PATIENT, analytic_head, tilted_grid, write_series  # noqa: E402
from dicom_checks import all_values, dciodvfy_errors  # noqa: E402
from predict_testlib import FakePredictor  # noqa: E402

from dataset_conversion.ct_reader import read_dicom_series  # noqa: E402
from nnunet_thrombus.inference.dicom_seg import write_dicom_seg  # noqa: E402
from nnunet_thrombus.inference.dicom_sr import (PRIVATE_SCHEME, read_sr_values, report_sr_values,  # noqa: E402
                                                write_case_sr)
from nnunet_thrombus.inference.options import BatchOptions, OutputOptions  # noqa: E402
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases  # noqa: E402

#: a two-component report: an LVO with every value, a second component with nulls and a NaN (left out of the SR)
REPORT = {"case_id": "case01", "total_volume_mm3": 123.4567, "n_components": 2, "call": {"call": "LVO"},
          "review": {"review": True},
          "components": [
              {"index": 1, "volume_mm3": 100.5, "length_mm": 12.25, "mean_diameter_mm": 3.1, "ncct_mean_hu": 61.2,
               "ncct_median_hu": 60.0, "relative_density": 1.42, "cta_mean_hu": 80.1, "perviousness_hu": 18.9,
               "site": "M1", "side": "L"},
              {"index": 2, "volume_mm3": 22.9567, "length_mm": None, "mean_diameter_mm": None, "ncct_mean_hu": -3.5,
               "ncct_median_hu": float("nan"), "relative_density": None, "cta_mean_hu": 10.0,
               "perviousness_hu": 13.5, "site": "other", "side": "R"}]}


def _case(tmp_path):
    grid = tilted_grid((64, 72, 30), (2.0, 2.0, 2.5))
    write_series(tmp_path / "CTA", analytic_head(grid), grid)
    image, _ = read_dicom_series(tmp_path / "CTA")
    arr = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    arr[14:18, 36:40, 30:34] = 1
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    return image, mask


@pytest.mark.parametrize("anonymize", [False, True], ids=["plain", "anonymized"])
def test_sr_valid_and_read_back(tmp_path, anonymize):
    image, mask = _case(tmp_path)
    from nnunet_thrombus.deidentify import new_key

    key = new_key() if anonymize else None  # the SR must use the key its SEG was written with
    write_dicom_seg(tmp_path / "seg.dcm", mask, image, tmp_path / "CTA", "case01", anonymize=anonymize, key=key)
    write_case_sr(tmp_path / "sr.dcm", REPORT, tmp_path / "CTA", tmp_path / "seg.dcm", anonymize=anonymize, key=key)
    errors, out = dciodvfy_errors(tmp_path / "sr.dcm")
    assert not errors, out
    got = read_sr_values(tmp_path / "sr.dcm")
    assert got == report_sr_values(REPORT)
    first = got["components"]["Thrombus component 1"]
    assert first["perviousness_hu"] == 18.9 and first["site"] == "M1" and first["side"] == "L"
    assert "length_mm" not in got["components"]["Thrombus component 2"]  # null in the report: left out
    assert got["case"] == {"total_volume_mm3": 123.4567, "n_components": 2.0, "call": "LVO", "review": True}
    sr, seg = pydicom.dcmread(tmp_path / "sr.dcm"), pydicom.dcmread(tmp_path / "seg.dcm")
    assert sr.StudyInstanceUID == seg.StudyInstanceUID and sr.PatientID == seg.PatientID
    refs = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
            for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert str(seg.SOPInstanceUID) in refs
    cta_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                for p in (tmp_path / "CTA").glob("IM*")}
    seg_sources = {str(i.ReferencedSOPInstanceUID) for r in seg.ReferencedSeriesSequence
                   for i in r.ReferencedInstanceSequence}
    per_frame = {str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
                 for fg in seg.PerFrameFunctionalGroupsSequence}
    assert per_frame == seg_sources  # the SEG's two lists of its sources agree (anonymized too)
    assert seg_sources <= refs  # the SR cites exactly the images the SEG cites
    assert bool(cta_uids & refs) is not anonymize  # anonymized: the original images' UIDs never appear
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
    if anonymize:
        secrets = {v for k, v in PATIENT.items() if k not in ("PatientSex", "StudyTime")} | {"20240611"}
        secrets |= cta_uids | {str(pydicom.dcmread(next((tmp_path / "CTA").glob("IM*"))).StudyInstanceUID)}
        leaks = sorted({s for s in secrets for v in all_values(sr) if s and s in v})
        assert not leaks, leaks
        assert sr.PatientName == "case01^" and sr.PatientIdentityRemoved == "YES"
        assert sr.ContentTime == "000000" and sr.ContentDate == seg.ContentDate  # shifted like the SEG's
    else:
        assert str(sr.PatientName) == PATIENT["PatientName"]


def test_predict_writes_sr_with_the_report_values(predict_cohort, tmp_path):
    out = tmp_path / "out"
    res = predict_cases(predict_cohort["dicom"] / "SYN_0002", out, ThrombusCasePredictor(FakePredictor()),
                        OutputOptions(dicom_sr=True), BatchOptions(quiet=True, cache_dir=tmp_path / "cache"))
    assert res["done"] == ["SYN_0002"], res
    case = out / "SYN_0002"
    report = json.loads((case / "report.json").read_text())
    assert report["n_components"] >= 1 and {"thrombus_seg.dcm", "thrombus_sr.dcm"} <= set(report["outputs"])
    for name in ("thrombus_seg.dcm", "thrombus_sr.dcm"):
        errors, text = dciodvfy_errors(case / name)
        assert not errors, text
    got, want = read_sr_values(case / "thrombus_sr.dcm"), report_sr_values(report)
    assert got == want
    big = report["components"][0]
    assert got["components"][f"Thrombus component {big['index']}"]["volume_mm3"] == pytest.approx(big["volume_mm3"])


def test_sr_of_a_clot_free_case(tmp_path):
    image, mask = _case(tmp_path)
    empty = sitk.Image(mask) * 0
    write_dicom_seg(tmp_path / "seg.dcm", empty, image, tmp_path / "CTA", "case02")
    report = {"case_id": "case02", "total_volume_mm3": 0.0, "n_components": 0, "call": {"call": "no occlusion"},
              "review": {"review": False}, "components": []}
    write_case_sr(tmp_path / "sr.dcm", report, tmp_path / "CTA", tmp_path / "seg.dcm")
    errors, out = dciodvfy_errors(tmp_path / "sr.dcm")
    assert not errors, out
    got = read_sr_values(tmp_path / "sr.dcm")
    assert got == {"case": {"total_volume_mm3": 0.0, "n_components": 0.0, "call": "no occlusion", "review": False},
                   "components": {}}
