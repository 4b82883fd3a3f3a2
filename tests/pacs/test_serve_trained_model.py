"""``nnunet_thrombus serve`` with the shared short-trained cascade against Orthanc: the model runs on a study
taken from the PACS, and the SEG + SR it stores back read to the report's values."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from dicom_checks import dciodvfy_errors  # noqa: E402

pytestmark = pytest.mark.slow


def test_serve_command_with_trained_model(tiny_cascade, orthanc, tmp_path, monkeypatch, capsys):
    from nnunet_thrombus import cli
    from nnunet_thrombus.inference.dicom_sr import read_sr_values, report_sr_values
    from nnunet_thrombus.pacs.dicomweb import DicomWebPacs
    from nnunet_thrombus.pacs.node import study_case_id

    for key, value in tiny_cascade["ws"].env().items():
        if key.startswith("nnUNet"):
            monkeypatch.setenv(key, value)
    case = sorted((tiny_cascade["cohort"]["synth"] / "raw_dicom").iterdir())[0]
    files = sorted(case.rglob("*.dcm"))
    pacs = DicomWebPacs(orthanc.url, timeout_s=30)
    pacs.client.store_instances(datasets=[pydicom.dcmread(str(f)) for f in files])
    study = str(pydicom.dcmread(str(files[0]), stop_before_pixels=True).StudyInstanceUID)
    out = tmp_path / "out"
    rc = cli.main(["serve", "--dicomweb", orthanc.url, "-o", str(out), "-d", "501", "--disable-tta",
                   "--device", "cpu"])
    printed = capsys.readouterr().err  # progress and the summary line are log records (stderr)
    assert rc == 0, printed
    assert "1 stud(ies) stored, 0 skipped, 0 failed" in printed
    report = json.loads((out / study_case_id(study) / "report.json").read_text())
    assert report["model"]["folds"] == ["0"]  # the trained model ran, not a stand-in
    series = {s["modality"]: s["uid"] for s in pacs.series(study)}
    assert {"CT", "SEG", "SR"} <= set(series)
    sr_path = pacs.download_series(study, series["SR"], tmp_path / "back")[0]
    errors, text = dciodvfy_errors(sr_path)
    assert not errors, text
    assert read_sr_values(sr_path) == report_sr_values(report)
    rc = cli.main(["serve", "--dicomweb", orthanc.url, "-o", str(out), "-d", "501", "--study", study])
    assert rc == 0 and "0 stud(ies) stored, 1 skipped" in capsys.readouterr().err
