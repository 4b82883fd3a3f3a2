"""Sorting a PACS study's series into NCCT/ and CTA/ by meaning: contrast agent first, then the description; a
localizer or a foreign object is left out; a study where one scan cannot be named fails with the series listed."""
from __future__ import annotations

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from nnunet_thrombus.pacs.study_layout import StudyLayoutError, classify_series, split_study

SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34"


def _header(description="", agent=None, modality="CT", sop=CTImageStorage, image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
            number=1):
    ds = Dataset()
    ds.SOPClassUID, ds.Modality, ds.SeriesDescription, ds.SeriesNumber = sop, modality, description, number
    ds.ImageType = list(image_type)
    if agent:
        ds.ContrastBolusAgent = agent
    return ds


@pytest.mark.parametrize("header, scan", [
    (_header("Head", agent="IOPAMIDOL"), "CTA"),
    (_header("NCCT head", agent="IOPAMIDOL"), "CTA"),  # the header's agent outranks the words
    (_header("Head non-contrast 5mm"), "NCCT"),
    (_header("HEAD_W/O"), "NCCT"),
    (_header("CTA Circle of Willis"), "CTA"),
    (_header("Angio Head 0.625"), "CTA"),
    (_header("Head C+"), "CTA"),
    (_header("Head"), "NCCT?"),
    (_header("Dose Report", modality="SR", sop=SR_STORAGE), None),
    (_header("CTA", modality="MR"), None),
])
def test_classify_series(header, scan):
    assert classify_series(header)[0] == scan


def _write(folder, header, n=2):
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        ds = header.copy()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        paths.append(folder / f"{i}.dcm")
        ds.save_as(str(paths[-1]), enforce_file_format=True)
    return paths


def test_split_study_moves_each_series_to_its_scan(tmp_path):
    series = {"1.1": _write(tmp_path / "a", _header("Head", number=2)),
              "1.2": _write(tmp_path / "b", _header("Head", agent="IODINATED", number=3), n=3),
              "1.3": _write(tmp_path / "c", _header("Scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                                                    number=1), n=1),
              "1.4": _write(tmp_path / "d", _header("Dose", modality="SR", sop=SR_STORAGE, number=999), n=1)}
    choices = {c.series_uid: c for c in split_study(series, tmp_path / "case")}
    assert choices["1.1"].scan == "NCCT" and "beside the CTA" in choices["1.1"].reason  # unlabelled, beside a CTA
    assert choices["1.2"].scan == "CTA"
    assert choices["1.3"].scan is None and "LOCALIZER" in choices["1.3"].reason
    assert choices["1.4"].scan is None
    assert len(list((tmp_path / "case" / "NCCT").rglob("*.dcm"))) == 2
    assert len(list((tmp_path / "case" / "CTA").rglob("*.dcm"))) == 3
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())  # moved, not copied


def test_split_study_without_a_nameable_scan_fails(tmp_path):
    series = {"1.1": _write(tmp_path / "a", _header("Head", number=2)),
              "1.2": _write(tmp_path / "b", _header("Head 2", number=3))}
    with pytest.raises(StudyLayoutError, match="cannot tell which scan.*series 2 'Head'.*ContrastBolusAgent"):
        split_study(series, tmp_path / "case")
    assert not (tmp_path / "case").exists()  # nothing half-sorted
    only_cta = {"1.2": _write(tmp_path / "c", _header("CTA head", number=4))}
    with pytest.raises(StudyLayoutError, match="no NCCT series"):
        split_study(only_cta, tmp_path / "case2")
