"""predict on a patient exported as a PACS does: the CTA folder holds the primary series plus a MIP, a
localizer, a dose report and a README; the NCCT was acquired with 12 deg gantry tilt. The report names the series
read and every one skipped with its reason, flags the tilt, and the SEG (plain and anonymized) passes dciodvfy."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from _pacs_export import mip_of, tilted_copy, write_dose_report, write_localizer, write_series  # noqa: E402
from dicom_checks import dciodvfy_errors  # noqa: E402
from predict_testlib import FakePredictor, load_schema  # noqa: E402

from dataset_conversion.ct_reader import read_dicom_series  # noqa: E402
from nnunet_thrombus.inference.json_schema import schema_errors  # noqa: E402
from nnunet_thrombus.inference.options import BatchOptions, OutputOptions  # noqa: E402
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases  # noqa: E402

TILT = 12.0


def test_predict_on_a_pacs_style_export(predict_cohort, tmp_path):
    src = predict_cohort["dicom"] / "SYN_0001"
    case = tmp_path / "in" / "SYN_0001"
    shutil.copytree(src / "CTA", case / "CTA")
    cta_files = sorted((case / "CTA").rglob("*.dcm"))
    first = pydicom.dcmread(cta_files[0], stop_before_pixels=True)
    cta, _ = read_dicom_series(src / "CTA")
    arr = sitk.GetArrayFromImage(cta)
    positions = np.array([[*cta.GetOrigin()[:2], cta.GetOrigin()[2] + k * cta.GetSpacing()[2]]
                          for k in range(arr.shape[0])])
    grid = {"orientation": np.array([1.0, 0, 0, 0, 1, 0]), "positions": positions, "rows": arr.shape[1],
            "cols": arr.shape[2], "spacing_rc": cta.GetSpacing()[1::-1]}
    mip, mgrid = mip_of(arr, grid, slab=6)
    write_series(case / "CTA" / "recon", mip, mgrid, number=int(first.SeriesNumber) + 100, description="MIP",
                 image_type=("DERIVED", "SECONDARY", "AXIAL", "MIP"), thickness=9.0, acq_time="101500")
    write_localizer(case / "CTA", number=1)
    write_dose_report(case / "CTA")
    (case / "CTA" / "README.TXT").write_text("Exported by a PACS viewer\n")
    ncct, _ = read_dicom_series(src / "NCCT")
    tilted, tgrid = tilted_copy(ncct, TILT, ncct.GetSpacing()[2])
    write_series(case / "NCCT", tilted, tgrid, number=2, description="NCCT tilted", tilt_tag=TILT)

    out = tmp_path / "out"
    cache = tmp_path / "cache"
    res = predict_cases(case, out, ThrombusCasePredictor(FakePredictor()), OutputOptions(dicom_seg=True),
                        BatchOptions(quiet=True, cache_dir=cache))
    assert res["done"] == ["SYN_0001"], res
    report = json.loads((out / "SYN_0001" / "report.json").read_text())
    assert schema_errors(report, load_schema()) == []
    s_cta, s_ncct = report["input"]["series"]["cta"], report["input"]["series"]["ncct"]
    assert s_cta["chosen"]["series_number"] == int(first.SeriesNumber)
    reasons = {s["series_number"]: s["reason"] for s in s_cta["skipped"]}
    assert set(reasons) == {1, int(first.SeriesNumber) + 100, 999}
    assert "localizer" in reasons[1] and "mip" in reasons[int(first.SeriesNumber) + 100]
    assert "Dose" in reasons[999] and s_cta["stray_files"] == ["README.TXT"]
    assert s_ncct["tilt_corrected"] and abs(s_ncct["gantry_tilt_deg"] - TILT) < 0.05
    assert "gantry_tilt" in {w["code"] for w in report["warnings"]}
    assert report["registration"].get("reg_qc_pass") is not False  # the tilt-corrected NCCT registers
    errors, text = dciodvfy_errors(out / "SYN_0001" / "thrombus_seg.dcm")
    assert not errors, text
    seg = pydicom.dcmread(out / "SYN_0001" / "thrombus_seg.dcm")
    assert int(seg.NumberOfFrames) == len(cta_files)
    print("registration of the tilt-corrected NCCT:", {k: report["registration"].get(k)
                                                       for k in ("ncc_brain", "reg_qc_pass")})
    anon = tmp_path / "anon"
    res = predict_cases(case, anon, ThrombusCasePredictor(FakePredictor()),
                        OutputOptions(dicom_seg=True, anonymize_seg=True), BatchOptions(quiet=True, cache_dir=cache))
    assert res["done"] == ["SYN_0001"]
    errors, text = dciodvfy_errors(anon / "SYN_0001" / "thrombus_seg.dcm")
    assert not errors, text
    raw = (anon / "SYN_0001" / "thrombus_seg.dcm").read_bytes()
    secrets = [str(first.PatientName), str(first.PatientID), str(first.StudyDate), str(first.StudyInstanceUID),
               str(first.SeriesInstanceUID), str(first.FrameOfReferenceUID), str(first.AccessionNumber)]
    assert not [v for v in secrets if v and v.encode() in raw]
