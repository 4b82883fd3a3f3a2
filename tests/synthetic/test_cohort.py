"""A written synthetic cohort: nnU-Net raw layout, metadata, DICOM round trip, overwrite refusal, CLI."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from nnunet_thrombus.synthetic.cohort import CohortSpec, site_quota, write_cohort
from nnunet_thrombus.synthetic.dicom_io import read_series

N = 8


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    summary = write_cohort(out, CohortSpec(N, seed=0, n_raters=2, thick_fraction=0.25), progress=False)
    return out, summary


def _ds(out):
    return out / "nnUNet_raw" / "Dataset501_SynthThrombus"


def test_site_quota_class_balance_40_cases():
    sites = site_quota(40, np.random.default_rng(0))
    counts = {s: sites.count(s) for s in ("none", "ICA", "M1", "M2", "ACA")}
    assert counts == {"none": 8, "ICA": 6, "M1": 13, "M2": 8, "ACA": 5}
    assert counts["none"] / 40 >= 0.15 and (counts["ICA"] + counts["M1"]) / 40 == pytest.approx(0.475)
    assert sites != sorted(sites)  # shuffled


def test_nnunet_raw_layout(cohort):
    out, summary = cohort
    ds = _ds(out)
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT", "1": "CT"} and meta["labels"] == {"background": 0, "thrombus": 1}
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz"
    assert len(list((ds / "imagesTr").glob("*_0000.nii.gz"))) == 6 and len(list((ds / "imagesTr").glob("*_0001.nii.gz"))) == 6
    assert len(list((ds / "labelsTs").glob("*.nii.gz"))) == 2 and summary["n_test"] == 2
    rows = list(csv.DictReader(open(ds / "metadata.csv")))
    assert [r["case"] for r in rows] == [f"SYN_{i:04d}" for i in range(N)]
    assert list(rows[0]) == ["case", "split", "stratum", "site", "side", "lvo", "volume_mm3", "label_volume_mm3",
                             "size_class", "length_mm", "ncct_density_hu", "cta_density_hu", "perviousness_hu",
                             "isodense", "calcification", "n_calcifications", "calcification_max_hu",
                             "clot_free_calcified", "calcifications", "slice_thickness_mm", "seed"]
    assert [r["site"] for r in rows] == site_quota(N, np.random.default_rng([0, N]))
    occluded = [r for r in rows if r["site"] != "none"]
    assert sum(int(r["isodense"]) for r in occluded) >= 0.1 * len(occluded)
    assert sum(float(r["slice_thickness_mm"]) == 5.0 for r in rows) == 2
    for r in rows:
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / f"labels{'Ts' if r['split'] == 'test' else 'Tr'}" / f"{r['case']}.nii.gz")))
        assert (lab.sum() > 0) == (r["site"] != "none")


def test_skull_stripped_channels_on_cta_grid(cohort):
    out, _ = cohort
    ds = _ds(out)
    cta_raw = sitk.ReadImage(str(out / "raw_nifti" / "SYN_0001" / "cta.nii.gz"))
    ch0 = sitk.ReadImage(str(ds / "imagesTr" / "SYN_0001_0000.nii.gz"))
    ch1 = sitk.ReadImage(str(ds / "imagesTr" / "SYN_0001_0001.nii.gz"))
    for img in (ch0, ch1):
        assert img.GetSize() == cta_raw.GetSize() and np.allclose(img.GetOrigin(), cta_raw.GetOrigin())
    a0, a1, raw = (sitk.GetArrayFromImage(i) for i in (ch0, ch1, cta_raw))
    outside = a0 == -1024
    assert 0.2 < outside.mean() < 0.9 and np.all(a1[outside] == -1024)
    assert np.array_equal(a0[~outside], raw[~outside]) and raw[outside].max() > 700  # the skull was removed


def test_dicom_reads_back_with_nifti_geometry(cohort):
    out, _ = cohort
    thick = [r["case"] for r in csv.DictReader(open(_ds(out) / "metadata.csv")) if r["slice_thickness_mm"] == "5.0"][0]
    for case in ("SYN_0003", thick):
        for mod in ("NCCT", "CTA"):
            dcm = read_series(out / "raw_dicom" / case / mod)
            nii = sitk.ReadImage(str(out / "raw_nifti" / case / f"{mod.lower()}.nii.gz"))
            assert dcm.GetSize() == nii.GetSize()
            assert np.allclose(dcm.GetSpacing(), nii.GetSpacing(), atol=1e-4)
            assert np.allclose(dcm.GetOrigin(), nii.GetOrigin(), atol=1e-3)
            assert np.allclose(dcm.GetDirection(), nii.GetDirection())
            assert np.array_equal(sitk.GetArrayFromImage(dcm), sitk.GetArrayFromImage(nii))
    files = sorted((out / "raw_dicom" / "SYN_0003" / "CTA").glob("*.dcm"))
    d = pydicom.dcmread(files[0])
    assert d.Modality == "CT" and str(d.PatientName) == "SYNTH^PATIENT0003" and d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert d.StudyInstanceUID == pydicom.dcmread(next((out / "raw_dicom" / "SYN_0003" / "NCCT").glob("*.dcm"))).StudyInstanceUID
    assert d.AccessionNumber and d.InstitutionName and d.PatientBirthDate and float(d.RescaleSlope) == 1.0
    t_dcm = json.loads((out / "raw_dicom" / "SYN_0003" / "truth.json").read_text())
    assert t_dcm == json.loads((out / "raw_nifti" / "SYN_0003" / "truth.json").read_text())
    assert (out / "raw_dicom" / "SYN_0003" / "masks" / "rater_2.nii.gz").exists()


def test_refuses_non_empty_output_unless_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="overwrite"):
        write_cohort(tmp_path, CohortSpec(2), progress=False)
    s = write_cohort(tmp_path, CohortSpec(2, n_test=0), formats=("nifti",), overwrite=True, progress=False)
    assert (tmp_path / "keep.txt").exists() and s["n_train"] == 2 and not (tmp_path / "raw_dicom").exists()
    assert not list(tmp_path.rglob(".tmp_*"))
    with pytest.raises(ValueError, match="n_test"):
        write_cohort(tmp_path / "new", CohortSpec(2, n_test=2), progress=False)


def test_cli_synth(tmp_path, capsys):
    from nnunet_thrombus.cli import main

    assert main(["synth", "-o", str(tmp_path / "c"), "-n", "2", "-f", "nifti", "-t", "0"]) == 0
    text = capsys.readouterr().err  # the summary lines are log records (stderr)
    assert "2 cases" in text and "no occlusion" in text and "s per case" in text
    assert main(["synth", "-o", str(tmp_path / "c"), "-n", "2", "-q"]) == 2


@pytest.mark.slow
def test_nnunet_plan_and_preprocess_accepts_dataset(cohort, tmp_path):
    out, _ = cohort
    env = dict(os.environ, nnUNet_raw=str(out / "nnUNet_raw"), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"), nnUNet_def_n_proc="1")
    exe = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_plan_and_preprocess")
    res = subprocess.run([exe, "-d", "501", "-c", "3d_fullres", "--verify_dataset_integrity", "-np", "1", "-npfp", "1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    pre = tmp_path / "pre" / "Dataset501_SynthThrombus"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization", "CTNormalization"]
    assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*.b2nd"))) + \
        len(list((pre / "nnUNetPlans_3d_fullres").glob("*.npz"))) >= 6
