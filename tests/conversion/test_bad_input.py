"""Bad input: each problem gives a clear per-patient error, other cases still convert, nothing half-written."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _pacs_export import tilted_copy, write_multiframe, write_series
from _phantom import make_case, write_dicom_series, write_patient

from dataset_conversion.ct_reader import read_dicom_series
from dataset_conversion.dicom_scan import ScanError


@pytest.fixture(scope="module")
def phantom():
    return make_case(5)


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory, phantom) -> Path:
    root = tmp_path_factory.mktemp("bad input") / "trial ø"
    case = phantom
    write_patient(root, "Patiënt 01 good", case, fmt="dicom")              # non-ASCII + spaces: must work
    write_patient(root, "ncct_masks", case, fmt="nifti", masks_on="ncct")   # masks drawn on NCCT
    p = write_patient(root, "missing_ncct", case, fmt="nifti")
    (p / "ncct.nii.gz").unlink()
    p = root / "non_ct"
    write_dicom_series(case["ncct"], p / "NCCT", modality="MR")
    write_dicom_series(case["cta"], p / "CTA")
    p = root / "missing_slice"
    write_dicom_series(case["ncct"], p / "NCCT", drop_slices=(20,))
    write_dicom_series(case["cta"], p / "CTA")
    p = root / "duplicate_slice"
    write_dicom_series(case["ncct"], p / "NCCT")
    write_dicom_series(case["cta"], p / "CTA", duplicate_slice=7)
    p = root / "nonuniform_tilt"  # the shear changes halfway: cannot be resampled safely
    write_dicom_series(case["ncct"], p / "NCCT", tilt=0.2)
    for f in sorted((p / "NCCT").iterdir())[37:]:
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 4.0, *ds.ImagePositionPatient[1:]]
        ds.save_as(f)
    write_dicom_series(case["cta"], p / "CTA")
    p = write_patient(root, "tilted_ncct", case, fmt="dicom")  # NCCT re-acquired with 12 deg gantry tilt: converts
    shutil.rmtree(p / "NCCT")
    tilted, grid = tilted_copy(case["ncct"], 12.0, case["ncct"].GetSpacing()[2])
    write_series(p / "NCCT", tilted, grid, number=2, tilt_tag=12.0)
    p = write_patient(root, "multiframe_cta", case, fmt="dicom")  # CTA as one enhanced multi-frame CT file
    shutil.rmtree(p / "CTA")
    cta = sitk.GetArrayFromImage(case["cta"])
    org, sp = np.array(case["cta"].GetOrigin()), case["cta"].GetSpacing()
    write_multiframe(p / "CTA" / "enhanced.dcm", cta, {
        "orientation": np.array([1.0, 0, 0, 0, 1, 0]), "rows": cta.shape[1], "cols": cta.shape[2],
        "spacing_rc": (sp[1], sp[0]), "positions": np.array([org + [0, 0, k * sp[2]] for k in range(cta.shape[0])])})
    p = write_patient(root, "stray_files", case, fmt="dicom")  # README, DICOMDIR-like junk beside the slices
    (p / "CTA" / "README.TXT").write_text("exported by viewer")
    (p / "NCCT" / "Thumbs.db").write_bytes(b"\0" * 300)
    p = write_patient(root, "bad_mask", case, fmt="nifti")
    sitk.WriteImage(sitk.Image(10, 10, 10, sitk.sitkUInt8), str(p / "masks" / "thrombus.nii.gz"))
    p = write_patient(root, "empty_image", case, fmt="nifti")
    sitk.WriteImage(sitk.Image(case["ncct"].GetSize(), sitk.sitkInt16), str(p / "ncct.nii.gz"))
    p = root / "corrupt_file"
    write_dicom_series(case["ncct"], p / "NCCT")
    write_dicom_series(case["cta"], p / "CTA")
    good = (p / "CTA" / "im0003.dcm").read_bytes()
    (p / "CTA" / "im0003.dcm").write_bytes(good[:400])  # a DICOM file cut short: fails, named
    p = write_patient(root, "diverges", case, fmt="nifti")
    rng = np.random.default_rng(0)
    junk = np.full(sitk.GetArrayFromImage(case["ncct"]).shape, -1000, np.int16)
    junk[10:40, 5:30, 50:80] = rng.normal(300, 400, (30, 25, 30)).astype(np.int16)
    img = sitk.GetImageFromArray(junk)
    img.CopyInformation(case["ncct"])
    sitk.WriteImage(img, str(p / "ncct.nii.gz"))
    return root


EXPECTED = {
    "missing_ncct": "missing NCCT",
    "non_ct": "modality is 'MR'",
    "missing_slice": "missing slice",
    "duplicate_slice": "duplicate slice",
    "nonuniform_tilt": "non-uniform gantry tilt",
    "bad_mask": "matches neither the CTA",
    "empty_image": "empty image",
    "corrupt_file": "im0003.dcm: corrupt DICOM",
    "diverges": "diverged",
}


def test_bad_cases_fail_cleanly_and_good_ones_convert(bad_root, tmp_path, phantom):
    from nnunet_thrombus.cli import main

    out = tmp_path / "nnUNet raw é"
    rc = main(["convert", "-i", str(bad_root), "-o", str(out), "-q"])
    assert rc == 1
    ds = out / "Dataset501_Thrombus"
    rows = {r["case_id"]: r for r in csv.DictReader((ds / "qc.csv").open(encoding="utf-8"))}
    assert rows["Patient_01_good"]["status"] in ("ok", "flagged") and rows["Patient_01_good"]["patient"] == \
        "Patiënt 01 good"
    assert rows["ncct_masks"]["status"] in ("ok", "flagged")
    assert rows["stray_files"]["status"] in ("ok", "flagged")
    assert rows["stray_files"]["cta_stray_files"] == "README.TXT"
    assert rows["stray_files"]["ncct_stray_files"] == "Thumbs.db"
    assert rows["stray_files"]["cta_series"] == "11" and rows["stray_files"]["cta_series_skipped"] == ""
    assert rows["multiframe_cta"]["status"] == "ok", rows["multiframe_cta"]
    mf = sitk.ReadImage(str(ds / "imagesTr" / "multiframe_cta_0000.nii.gz"))
    assert mf.GetSize() == phantom["cta"].GetSize()
    assert np.allclose(mf.GetOrigin(), phantom["cta"].GetOrigin(), atol=1e-3)
    tilted = rows["tilted_ncct"]
    assert tilted["status"] == "flagged" and "NCCT gantry tilt 12.0 deg resampled" in tilted["error"], tilted["error"]
    assert tilted["ncct_tilt_corrected"] == "True" and abs(float(tilted["ncct_gantry_tilt_deg"]) - 12.0) < 0.05
    assert tilted["reg_qc_pass"] == "True", tilted  # the tilt-corrected NCCT registers to the CTA
    meta = {r["case_id"]: r for r in csv.DictReader((ds / "metadata.csv").open(encoding="utf-8"))}
    assert meta["stray_files"]["cta_stray_files"] == "README.TXT"
    assert meta["stray_files"]["cta_series_reason"] == "the only qualifying series"
    for case_id, needle in EXPECTED.items():
        assert rows[case_id]["status"] == "failed", case_id
        assert needle in rows[case_id]["error"], (case_id, rows[case_id]["error"])
        assert not list(ds.rglob(f"{case_id}*.nii.gz")), case_id  # nothing half-written
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        "Patient_01_good.nii.gz", "multiframe_cta.nii.gz", "ncct_masks.nii.gz", "stray_files.nii.gz",
        "tilted_ncct.nii.gz"]
    assert not list(ds.rglob(".tmp-*"))


def test_label_drawn_on_ncct_matches_truth(bad_root, tmp_path, phantom):
    from dataset_conversion.conversion_options import ConversionOptions
    from dataset_conversion.convert_trial import convert_trial_dataset
    from nnunet_thrombus.masks import dice

    root = tmp_path / "one"
    shutil.copytree(bad_root / "ncct_masks", root / "ncct_masks")
    res = convert_trial_dataset(root, tmp_path / "out", ConversionOptions(masks_on="ncct", quiet=True))
    lab = sitk.ReadImage(str(Path(res["dataset_dir"]) / "labelsTr" / "ncct_masks.nii.gz"))
    assert dice(sitk.GetArrayFromImage(lab) > 0, sitk.GetArrayFromImage(phantom["label"]) > 0) >= 0.8


def test_thick_slices_refused_unless_allowed(phantom):
    from dataset_conversion.preprocess import check_slice_thickness

    thick = sitk.Resample(phantom["cta"], [80, 96, 22], sitk.Transform(), sitk.sitkLinear, phantom["cta"].GetOrigin(),
                          (1.6, 1.6, 5.0))
    with pytest.raises(ValueError, match="thickness 5.00 mm > 2.5"):
        check_slice_thickness(thick, 5.0, "CTA", allow_thick=False)
    out, flagged = check_slice_thickness(thick, 5.0, "CTA", allow_thick=True)
    assert flagged and out.GetSpacing()[2] == 1.0 and out.GetSize()[2] == 110


def test_multiphase_cta_picks_phase_two_by_acquisition_time(tmp_path, phantom):
    write_patient(tmp_path, "mp", phantom, fmt="dicom", n_phases=3)
    img, info = read_dicom_series(tmp_path / "mp" / "CTA")
    assert info["phase"] == 2 and info["n_series"] == 3 and info["series_number"] == 12
    img1, info1 = read_dicom_series(tmp_path / "mp" / "CTA", phase=1)
    assert info1["series_number"] == 11
    with pytest.raises(ScanError, match="phase 4 requested"):
        read_dicom_series(tmp_path / "mp" / "CTA", phase=4)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(phantom["cta"]))  # rescale applied


def test_uneven_spacing_and_non_hu_values_are_refused(tmp_path, phantom):
    from dataset_conversion.ct_reader import read_image

    write_dicom_series(phantom["cta"], tmp_path / "uneven", z_shift={30: 0.6})
    with pytest.raises(ScanError, match="inconsistent slice spacing"):
        read_dicom_series(tmp_path / "uneven")
    raw = sitk.Cast(sitk.Cast(phantom["cta"], sitk.sitkFloat32) + 1024, sitk.sitkInt16)  # rescale not applied
    sitk.WriteImage(raw, str(tmp_path / "raw.nii.gz"))
    with pytest.raises(ScanError, match="do not look like HU"):
        read_image(tmp_path / "raw.nii.gz")
