"""The DICOM node against a real PACS: Orthanc (started by the fixture on a loopback port) holds synthetic studies;
one pass stores a SEG and an SR into each complete study, both valid for dciodvfy and read back from Orthanc to the
values of the case's report.json; a second pass skips them; a study without an NCCT, and studies whose prediction
fails, are left unchanged."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from dicom_checks import dciodvfy_errors  # noqa: E402
from predict_testlib import FakePredictor  # noqa: E402

from nnunet_thrombus.inference.dicom_sr import SR_SERIES_DESCRIPTION, read_sr_values, report_sr_values  # noqa: E402
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor  # noqa: E402


def _study_files(case_dir: Path) -> list[Path]:
    return sorted(case_dir.rglob("*.dcm"))


def _cta_only_study(case_dir: Path, out: Path) -> list[Path]:
    """The CTA of ``case_dir`` as a study of its own (new study, series and instance UIDs): no NCCT."""
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    paths = []
    for i, path in enumerate(sorted((case_dir / "CTA").rglob("*.dcm"))):
        ds = pydicom.dcmread(str(path))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        paths.append(out / f"{i:04d}.dcm")
        ds.save_as(str(paths[-1]), enforce_file_format=True)
    return paths


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_node_round_trip_through_orthanc(orthanc, tmp_path):
    from nnunet_thrombus.pacs.dicomweb import DicomWebPacs
    from nnunet_thrombus.pacs.node import LOG_NAME, serve_pacs, study_case_id
    from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort

    root = tmp_path / "synth"
    write_cohort(root, CohortSpec(2, seed=13, preset="tiny", dataset_id=504, n_test=0), formats=("dicom",),
                 progress=False)
    cases = sorted(p for p in (root / "raw_dicom").iterdir() if p.is_dir())
    pacs = DicomWebPacs(orthanc.url, timeout_s=30)
    good = {}
    for case in cases:
        files = _study_files(case)
        pacs.client.store_instances(datasets=[pydicom.dcmread(str(f)) for f in files])
        good[str(pydicom.dcmread(str(files[0]), stop_before_pixels=True).StudyInstanceUID)] = case
    (tmp_path / "bad").mkdir()
    bad_files = _cta_only_study(cases[0], tmp_path / "bad")
    pacs.client.store_instances(datasets=[pydicom.dcmread(str(f)) for f in bad_files])
    bad_uid = str(pydicom.dcmread(str(bad_files[0]), stop_before_pixels=True).StudyInstanceUID)
    assert set(pacs.find_studies({"ModalitiesInStudy": "CT"})) == {*good, bad_uid}

    out = tmp_path / "out"
    first = serve_pacs(pacs, out, predictor=ThrombusCasePredictor(FakePredictor()))
    assert sorted(first["stored"]) == sorted(good) and first["skipped"] == []
    assert list(first["failed"]) == [bad_uid] and "no NCCT series" in first["failed"][bad_uid]
    assert [s["modality"] for s in pacs.series(bad_uid)] == ["CT"]  # the failed study is as it was

    for uid, case in good.items():
        series = {s["modality"]: s for s in pacs.series(uid) if s["modality"] in ("SEG", "SR")}
        assert set(series) == {"SEG", "SR"} and series["SR"]["description"] == SR_SERIES_DESCRIPTION
        fetched = {}
        for modality, s in series.items():
            (path,) = pacs.download_series(uid, s["uid"], tmp_path / "back" / uid[-12:] / modality)
            errors, text = dciodvfy_errors(path)
            assert not errors, text
            fetched[modality] = pydicom.dcmread(str(path))
        seg, sr = fetched["SEG"], fetched["SR"]
        assert seg.StudyInstanceUID == uid == sr.StudyInstanceUID
        cta_uid = str(pydicom.dcmread(str(next((case / "CTA").rglob("*.dcm"))), stop_before_pixels=True)
                      .SeriesInstanceUID)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == cta_uid  # over the CTA, not the NCCT
        report = json.loads((out / study_case_id(uid) / "report.json").read_text())
        assert report["n_components"] >= 1
        got = read_sr_values(tmp_path / "back" / uid[-12:] / "SR" / "00000.dcm")
        assert got == report_sr_values(report)
        big = report["components"][0]
        assert got["components"][f"Thrombus component {big['index']}"]["volume_mm3"] == big["volume_mm3"]
        refs = {str(i.ReferencedSOPInstanceUID) for e in sr.CurrentRequestedProcedureEvidenceSequence
                for r in e.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
        assert str(seg.SOPInstanceUID) in refs

    again = serve_pacs(pacs, out, predictor=ThrombusCasePredictor(FakePredictor()), study_uids=sorted(good))
    assert sorted(again["skipped"]) == sorted(good) and again["stored"] == [] and again["failed"] == {}
    for uid in good:  # nothing stored twice
        assert sorted(s["modality"] for s in pacs.series(uid)).count("SR") == 1
    broken = serve_pacs(pacs, out, predictor=ThrombusCasePredictor(FakePredictor(fail_on=(1, 2))),
                        study_uids=sorted(good), overwrite=True)  # the model fails: nothing reaches the PACS
    assert sorted(broken["failed"]) == sorted(good) and broken["stored"] == []
    assert all("predict: " in d and "fake model failure" in d for d in broken["failed"].values())
    for uid in good:
        assert sorted(s["modality"] for s in pacs.series(uid)) == ["CT", "CT", "SEG", "SR"]
    rows = list(csv.DictReader((out / LOG_NAME).open(encoding="utf-8")))
    assert sorted(r["status"] for r in rows) == ["failed"] * 3 + ["skipped", "skipped", "stored", "stored"]
    assert not list(out.glob(".pacs_*"))  # downloaded patient data removed
