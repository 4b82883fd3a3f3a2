"""The thrombus DICOM SEG: valid for dciodvfy (plain and anonymized), read back to the same mask by
highdicom and by a plain pydicom decoder, on untilted, gantry-tilted and enhanced multi-frame CTA; the anonymized
SEG holds none of the source's names, IDs, dates or UIDs. Each test writes its own DICOM."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from _pacs_export import PATIENT, analytic_head, plane_points, tilted_grid, write_multiframe, write_series  # noqa: E402
from dicom_checks import all_values, dciodvfy_errors, decode_binary_seg  # noqa: E402

from dataset_conversion.ct_reader import read_dicom_series  # noqa: E402
from nnunet_thrombus.inference.dicom_seg import write_dicom_seg  # noqa: E402

CLOT_CENTRE, CLOT_RADIUS = np.array([14.0, -12.0, -10.0]), 7.0
SIZE, SPACING = (72, 80, 36), (2.0, 2.0, 2.5)


def _mask_on(image: sitk.Image) -> sitk.Image:
    """Sphere (the 'clot') on the grid of ``image``."""
    nx, ny, nz = image.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    d = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())[None, :]
    pts = np.asarray(image.GetOrigin())[:, None] + d @ np.stack([i.ravel(), j.ravel(), k.ravel()])
    inside = (np.linalg.norm(pts - CLOT_CENTRE[:, None], axis=0) <= CLOT_RADIUS).reshape(nz, ny, nx)
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def _truth(grid: dict) -> dict:
    """{rounded position of each source slice: (rows, cols) bool sphere at its pixel centres}."""
    out = {}
    for k, pos in enumerate(grid["positions"]):
        inside = np.linalg.norm(plane_points(grid, k) - CLOT_CENTRE[:, None], axis=0) <= CLOT_RADIUS
        out[tuple(round(float(v), 2) for v in pos)] = inside.reshape(grid["rows"], grid["cols"])
    return out


def _dice(a, b) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def _check_seg(path, truth: dict, min_dice: float, sources: list[str] | None):
    import highdicom as hd

    errors, out = dciodvfy_errors(path)
    assert not errors, out
    decoded = decode_binary_seg(path)  # pydicom alone
    assert len(decoded) == len(truth)
    keys = np.array(sorted(truth))
    frames = {}
    for pos, frame in decoded.items():  # match each SEG frame to its source slice by position (within 0.01 mm)
        near = int(np.argmin(np.abs(keys - np.array(pos)).max(1)))
        assert np.abs(keys[near] - np.array(pos)).max() <= 0.011, pos
        frames[tuple(keys[near])] = frame
    assert len(frames) == len(truth)
    got = np.stack([frames[tuple(p)] for p in keys])
    want = np.stack([truth[tuple(p)] for p in keys])
    assert want.sum() > 50
    assert _dice(got, want) >= min_dice, _dice(got, want)
    seg = hd.seg.segread(str(path))  # highdicom's reader, frames found through their source-image references
    if sources is not None:
        by_uid = seg.get_pixels_by_source_instance(source_sop_instance_uids=sources, segment_numbers=[1])[..., 0]
        assert np.array_equal(by_uid.astype(bool), got)
    else:  # the volume highdicom assembles from the frame positions (slice order may run either way)
        vol = seg.get_volume().array[..., 0].astype(bool)
        assert vol.shape == got.shape
        assert np.array_equal(vol, got) or np.array_equal(vol[::-1], got)
    return got, want


def _source_uids(folder, grid) -> list[str]:
    """SOP instance UIDs of the CTA files in the order of ``sorted(_truth(grid))`` (by rounded position)."""
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.name.startswith("IM")]
    keyed = {tuple(round(float(v), 2) for v in grid["positions"][k]): k for k in range(len(grid["positions"]))}
    by_k = {int(h.InstanceNumber) - 1: str(h.SOPInstanceUID) for h in heads}
    return [by_k[keyed[key]] for key in sorted(keyed)]


@pytest.mark.parametrize("tilt", [0.0, 12.0], ids=["untilted", "tilt12"])
def test_seg_plain_valid_and_read_back(tmp_path, tilt):
    grid = tilted_grid(SIZE, SPACING, tilt_deg=tilt)
    write_series(tmp_path / "CTA", analytic_head(grid), grid)
    (tmp_path / "CTA" / "README.TXT").write_text("stray file")
    image, info = read_dicom_series(tmp_path / "CTA")
    assert info["tilt_corrected"] == (tilt > 0)
    res = write_dicom_seg(tmp_path / "seg.dcm", _mask_on(image), image, tmp_path / "CTA", "case01",
                          series_uid=info["series_uid"])
    assert res["frames"] == SIZE[2]
    got, want = _check_seg(tmp_path / "seg.dcm", _truth(grid), 1.0 if tilt == 0 else 0.9,
                           _source_uids(tmp_path / "CTA", grid))
    if tilt == 0:
        assert np.array_equal(got, want)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert str(seg.PatientName) == PATIENT["PatientName"]  # a plain SEG keeps the source's patient module
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == info["series_uid"]


def test_anonymized_seg_holds_no_source_identifier(tmp_path):
    grid = tilted_grid(SIZE, SPACING)
    write_series(tmp_path / "CTA", analytic_head(grid), grid)
    image, info = read_dicom_series(tmp_path / "CTA")
    from nnunet_thrombus.deidentify import new_key

    key = new_key(tmp_path / "key.txt")
    res = write_dicom_seg(tmp_path / "anon.dcm", _mask_on(image), image, tmp_path / "CTA", "case07", anonymize=True,
                          key=key)
    got, want = _check_seg(tmp_path / "anon.dcm", _truth(grid), 1.0, None)
    assert np.array_equal(got, want)
    secrets = {v for k, v in PATIENT.items() if k not in ("PatientSex", "StudyTime")}
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "CTA").iterdir())]
    secrets |= {"20240611", "083015", "101500"}  # study/series/acquisition date and times
    for ds in sources:
        secrets |= {str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID),
                    str(ds.FrameOfReferenceUID)}
    seg = pydicom.dcmread(tmp_path / "anon.dcm")
    values = all_values(seg)
    uids = {str(e.value) for e in seg.iterall() if e.VR == "UI"}
    # UIDs compare whole: a time's digits ("101500") may occur by chance inside a new 39-digit 2.25 UID
    leaks = sorted({s for s in secrets for v in values if s and s in v and (v not in uids or s == v)})
    assert not leaks, leaks
    raw = (tmp_path / "anon.dcm").read_bytes()
    for uid in uids:  # the same rule for the raw bytes
        raw = raw.replace(uid.encode(), b"")
    assert not [s for s in secrets if s.encode() in raw]
    assert seg.PatientName == "case07^" and seg.PatientID == "case07" and seg.PatientIdentityRemoved == "YES"
    assert seg.StudyDate and seg.StudyDate != PATIENT["StudyDate"]  # shifted, not dropped
    shift = (np.datetime64(f"{PATIENT['StudyDate'][:4]}-{PATIENT['StudyDate'][4:6]}-{PATIENT['StudyDate'][6:]}")
             - np.datetime64(f"{seg.StudyDate[:4]}-{seg.StudyDate[4:6]}-{seg.StudyDate[6:]}")).astype(int)
    assert 365 <= shift <= 3650
    made = (np.datetime64("today") - np.datetime64(f"{seg.ContentDate[:4]}-{seg.ContentDate[4:6]}-"
                                                   f"{seg.ContentDate[6:]}")).astype(int)
    assert abs(made - shift) <= 1  # the SEG's own creation date moved by the same shift
    assert seg.StudyTime in ("", "000000") and seg.ContentTime == "000000"
    assert res["uids"][str(sources[0].StudyInstanceUID)] == seg.StudyInstanceUID
    # consistent within one key (read back from its file): the same source gives the same new UIDs again ...
    from nnunet_thrombus.deidentify import load_key

    write_dicom_seg(tmp_path / "anon2.dcm", _mask_on(image), image, tmp_path / "CTA", "case07", anonymize=True,
                    key=load_key(tmp_path / "key.txt"))
    again = pydicom.dcmread(tmp_path / "anon2.dcm")
    assert again.StudyInstanceUID == seg.StudyInstanceUID and again.FrameOfReferenceUID == seg.FrameOfReferenceUID
    assert again.ReferencedSeriesSequence[0].SeriesInstanceUID == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert again.StudyDate == seg.StudyDate
    # ... and unrelated under another key (nobody without the key recomputes the mapping from the case id)
    write_dicom_seg(tmp_path / "anon3.dcm", _mask_on(image), image, tmp_path / "CTA", "case07", anonymize=True,
                    key=new_key())
    other = pydicom.dcmread(tmp_path / "anon3.dcm")
    assert other.StudyInstanceUID != seg.StudyInstanceUID and other.FrameOfReferenceUID != seg.FrameOfReferenceUID
    assert {c.CodeValue for c in seg.DeidentificationMethodCodeSequence} == {"113100", "113107"}
    purposes = {i.PurposeOfReferenceCodeSequence[0].CodeValue for i in seg.ContributingEquipmentSequence}
    assert "109104" in purposes  # DCM De-identifying Equipment (highdicom's ContributingEquipment)
    assert "109101" not in purposes  # the scanner's Acquisition Equipment is not copied from the sources
    for item in seg.ContributingEquipmentSequence:  # highdicom's own "now" moved back by the same shift
        if "ContributionDateTime" in item:
            assert item.ContributionDateTime[:8] == seg.ContentDate


@pytest.mark.parametrize("anonymize", [False, True], ids=["plain", "anonymized"])
def test_seg_on_enhanced_multiframe_cta(tmp_path, anonymize):
    grid = tilted_grid(SIZE, SPACING)
    write_multiframe(tmp_path / "CTA" / "enhanced.dcm", analytic_head(grid), grid)
    image, info = read_dicom_series(tmp_path / "CTA")
    assert info["multiframe"]
    write_dicom_seg(tmp_path / "seg.dcm", _mask_on(image), image, tmp_path / "CTA", "mf", anonymize=anonymize)
    got, want = _check_seg(tmp_path / "seg.dcm", _truth(grid), 1.0, None)  # the minimal copy keeps the geometry
    assert np.array_equal(got, want)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert (str(seg.PatientName) == "mf^") == anonymize
