"""Series policy on headers alone (no pixel data is written or decoded): reconstructions of one acquisition vs
phases of a multiphase CTA, told apart by acquisition start time (``ACQUISITION_GAP_S``)."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dataset_conversion.dicom_scan import SeriesInfo
from dataset_conversion.series_policy import AmbiguousSeriesError, choose_series

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _series(number: int, kernel: str, acq_time: str, n: int = 40, thickness: float = 1.0) -> SeriesInfo:
    """Headers of an axial head series: ``n`` slices ``thickness`` mm apart (coverage (n - 1) * thickness mm)."""
    uid = pydicom.uid.generate_uid()
    files = []
    for k in range(n):
        ds = pydicom.Dataset()
        ds.SOPClassUID, ds.Modality, ds.ImageType = CT_IMAGE, "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.ConvolutionKernel = uid, number, kernel
        ds.ImagePositionPatient = [-100.0, -120.0, k * thickness]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.Rows, ds.Columns = [0.5, 0.5], 400, 400
        ds.SliceThickness, ds.AcquisitionTime = thickness, acq_time
        files.append((Path(f"IM{number:02d}_{k:03d}.dcm"), ds))
    return SeriesInfo(uid, files)


def _folder(*series: SeriesInfo) -> dict[str, SeriesInfo]:
    return {s.uid: s for s in series}


def test_reconstructions_within_the_gap_are_one_acquisition():
    """0.6 s apart (< ``ACQUISITION_GAP_S``): two reconstructions of one scan, the soft kernel wins."""
    soft, sharp = _series(3, "H30s", "101500.0"), _series(4, "H70h", "101500.6")
    chosen, record = choose_series(Path("NCCT"), _folder(soft, sharp), multiphase=False, flag="--ncct-series")
    assert chosen is soft and record["n_phases"] == 1
    assert record["reason"] == "best reconstruction of the only acquisition"
    assert "preferred (series 3" in record["skipped"][0]["reason"]


def test_acquisitions_beyond_the_gap_are_phases():
    """2 s apart (> ``ACQUISITION_GAP_S``): two acquisitions, ambiguous for an NCCT, phases for a CTA."""
    early, late = _series(3, "H30s", "101500.0"), _series(4, "H70h", "101502.0")
    with pytest.raises(AmbiguousSeriesError, match=r"2 acquisitions qualify .*--ncct-series 3 or --ncct-series 4"):
        choose_series(Path("NCCT"), _folder(early, late), multiphase=False, flag="--ncct-series")
    chosen, record = choose_series(Path("CTA"), _folder(early, late))
    assert chosen is late and record["phase"] == 2 and record["n_phases"] == 2
    assert record["note"] == "2 phases found; took the later one"
    assert record["skipped"][0]["reason"] == "CTA phase 1 of 2 (phase 2 was taken)"


def test_thin_series_preferred_and_short_coverage_skipped():
    thick = _series(2, "H30s", "101500.0", n=20, thickness=5.0)  # 95 mm, thicker than THIN_MAX_MM
    thin = _series(5, "H30s", "101500.0", n=80, thickness=1.0)  # 79 mm
    partial = _series(6, "H30s", "101500.0", n=20, thickness=1.0)  # 19 mm: not the whole head
    chosen, record = choose_series(Path("NCCT"), _folder(thick, thin, partial), multiphase=False)
    assert chosen is thin and record["chosen"]["slice_thickness_mm"] == 1.0
    reasons = {s["series_number"]: s["reason"] for s in record["skipped"]}
    assert reasons[2] == "thicker slices (5 mm) than a thin series of the same folder"
    assert reasons[6].startswith("covers only 19.0 mm")
