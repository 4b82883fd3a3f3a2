"""Reading CT scans: DICOM series (with checks) and NIfTI files, as SimpleITK images in HU.

``read_dicom_series`` groups the files of a folder by SeriesInstanceUID, picks one series (a
multiphase CTA folder holds one series per phase, ordered by acquisition time then series number),
sorts its slices by position along the slice normal, and refuses what would silently corrupt a
volume: unreadable files, a modality other than CT, duplicate or missing slices, non-uniform
spacing, gantry tilt, and pixel values that are not plausible Hounsfield units.  Pixel data are
read with SimpleITK's ``ImageSeriesReader`` (which applies RescaleSlope/Intercept) from the file
list sorted here, so GDCM's own series grouping is never trusted blindly.

All problems raise ``ScanError`` (a ``ValueError``) whose message names the folder and the problem.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

#: relative tolerance on slice gaps before a series counts as having missing slices / uneven spacing
SPACING_TOLERANCE = 0.05
#: largest accepted angle (degrees) between the slice normal and the direction in which slices advance
MAX_TILT_DEG = 0.5
NIFTI_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


class ScanError(ValueError):
    """A scan that cannot be used; the message says which file/folder and why."""


def _series_headers(folder: Path) -> dict[str, list[tuple[Path, pydicom.Dataset]]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ScanError(f"{folder}: no files found")
    series: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    for path in files:
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            uid = str(ds.SeriesInstanceUID)
            _ = ds.ImagePositionPatient, ds.ImageOrientationPatient
        except Exception as exc:  # pydicom raises many types for damaged files
            raise ScanError(f"{path}: corrupt or not a DICOM image file ({type(exc).__name__}: {exc})") from exc
        series.setdefault(uid, []).append((path, ds))
    return series


def _series_sort_key(headers: list[tuple[Path, pydicom.Dataset]]) -> tuple:
    ds = headers[0][1]
    time = str(getattr(ds, "AcquisitionTime", "") or getattr(ds, "SeriesTime", "") or "")
    try:
        time_value = float(time) if time else float("inf")
    except ValueError:
        time_value = float("inf")
    return (time_value, int(getattr(ds, "SeriesNumber", 0) or 0))


def _check_and_sort(folder: Path, headers: list[tuple[Path, pydicom.Dataset]]) -> tuple[list[str], dict]:
    ds0 = headers[0][1]
    modality = str(getattr(ds0, "Modality", ""))
    if modality != "CT":
        raise ScanError(f"{folder}: modality is {modality!r}, expected 'CT'")
    if len(headers) < 3:
        raise ScanError(f"{folder}: series has only {len(headers)} slice(s), expected a volume")
    tilt = float(getattr(ds0, "GantryDetectorTilt", 0.0) or 0.0)
    orient = np.asarray([float(v) for v in ds0.ImageOrientationPatient])
    normal = np.cross(orient[:3], orient[3:])
    positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for _, ds in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        dup = int(np.sum(gaps < 1e-3))
        raise ScanError(f"{folder}: {dup} duplicate slice position(s) in series {ds0.SeriesInstanceUID}")
    step = float(np.median(gaps))
    bad = np.abs(gaps - step) > SPACING_TOLERANCE * step
    if np.any(bad):
        kind = "missing slice(s)" if np.all(gaps[bad] > step) else "inconsistent slice spacing"
        raise ScanError(f"{folder}: {kind}: slice gaps range {gaps.min():.3f}-{gaps.max():.3f} mm "
                        f"(median {step:.3f} mm) at {int(bad.sum())} place(s)")
    advance = positions[-1] - positions[0]
    cosang = abs(float(advance @ normal)) / (np.linalg.norm(advance) + 1e-12)
    angle = float(np.degrees(np.arccos(min(1.0, cosang))))
    if abs(tilt) > MAX_TILT_DEG or angle > MAX_TILT_DEG:
        raise ScanError(f"{folder}: gantry tilt {max(abs(tilt), angle):.2f} deg (tag {tilt:.2f}); tilted series are "
                        "not supported, reconstruct without tilt or resample to an orthogonal grid first")
    for _, ds in headers:
        if str(getattr(ds, "Modality", "")) != "CT":
            raise ScanError(f"{folder}: mixed modalities inside series {ds0.SeriesInstanceUID}")
    files = [str(headers[i][0]) for i in order]
    info = {
        "series_uid": str(ds0.SeriesInstanceUID),
        "modality": modality,
        "slice_thickness_mm": float(getattr(ds0, "SliceThickness", 0) or 0) or step,
        "slice_spacing_mm": step,
        "n_slices": len(files),
        "series_number": int(getattr(ds0, "SeriesNumber", 0) or 0),
        "acquisition_time": str(getattr(ds0, "AcquisitionTime", "") or ""),
        "study_uid": str(getattr(ds0, "StudyInstanceUID", "")),
        "patient_id": str(getattr(ds0, "PatientID", "")),
        "series_description": str(getattr(ds0, "SeriesDescription", "")),
        "frame_of_reference_uid": str(getattr(ds0, "FrameOfReferenceUID", "")),
        "study_date": str(getattr(ds0, "StudyDate", "")),
        "manufacturer": str(getattr(ds0, "Manufacturer", "")),
        "kvp": str(getattr(ds0, "KVP", "")),
    }
    return files, info


def check_hu(image: sitk.Image, where: str) -> None:
    """Refuse empty images and pixel values that are not plausible HU (e.g. rescale not applied)."""
    arr = sitk.GetArrayViewFromImage(image)
    if arr.size == 0 or float(arr.max()) == float(arr.min()):
        raise ScanError(f"{where}: empty image (all voxels equal {float(arr.min()) if arr.size else 'n/a'})")
    sample = arr[:: max(1, arr.shape[0] // 16)]
    lo, hi = np.percentile(sample, [1, 99.9])
    if lo > -300 or lo < -3100 or hi > 5000:
        raise ScanError(f"{where}: intensities do not look like HU (1st pct {lo:.0f}, 99.9th pct {hi:.0f}); "
                        "is RescaleSlope/Intercept missing, or is this not a CT of the head with surrounding air?")


def read_dicom_series(folder: str | os.PathLike, phase: int | None = None) -> tuple[sitk.Image, dict]:
    """Read one CT series from ``folder`` (searched recursively) as an ``sitk.Image`` (int16 HU, z,y,x on disk).

    phase: 1-based index of the series in acquisition order when the folder holds several series
    (multiphase CTA). Default: phase 2 when there are 3 or more series, else the only one; with
    exactly 2 series the second is taken and ``info["phase_note"]`` says so.
    Returns ``(image, info)``; info holds series_uid, modality, slice_thickness_mm, slice_spacing_mm,
    n_slices, phase, n_series and header fields (study_uid, patient_id, ...).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScanError(f"{folder}: DICOM folder does not exist")
    series = _series_headers(folder)
    ordered = sorted(series.values(), key=_series_sort_key)
    n = len(ordered)
    if phase is None:
        phase = 1 if n == 1 else 2
    if not 1 <= phase <= n:
        raise ScanError(f"{folder}: phase {phase} requested but the folder holds {n} series")
    files, info = _check_and_sort(folder, ordered[phase - 1])
    info.update(phase=phase, n_series=n, source="dicom", path=str(folder))
    if n == 2 and phase == 2:
        info["phase_note"] = "2 series found; took the later one"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ScanError(f"{folder}: pixel data could not be read ({str(exc).strip().splitlines()[-1]})") from exc
    image = sitk.Cast(image, sitk.sitkInt16) if image.GetPixelID() != sitk.sitkInt16 else image
    check_hu(image, str(folder))
    return image, info


def read_image(path: str | os.PathLike, phase: int | None = None) -> tuple[sitk.Image, dict]:
    """Read a NIfTI/NRRD/MHA file or a DICOM folder as HU; returns ``(image, info)`` like ``read_dicom_series``."""
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path, phase=phase)
    if not path.exists():
        raise ScanError(f"{path}: file does not exist")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ScanError(f"{path}: corrupt or unreadable image file ({str(exc).strip().splitlines()[-1]})") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ScanError(f"{path}: expected a 3D scalar image, got dimension {image.GetDimension()} with "
                        f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    check_hu(image, str(path))
    if image.GetPixelID() != sitk.sitkInt16:
        image = sitk.Cast(sitk.Clamp(image, lowerBound=-32768, upperBound=32767), sitk.sitkInt16)
    spacing = image.GetSpacing()
    info = {"series_uid": "", "modality": "CT", "slice_thickness_mm": float(spacing[2]),
            "slice_spacing_mm": float(spacing[2]), "n_slices": image.GetSize()[2], "phase": phase or 1,
            "n_series": 1, "source": "nifti", "path": str(path)}
    return image, info
