"""Reading CT scans: DICOM folders as a PACS exports them (with checks) and NIfTI files, as SimpleITK images in HU.

``read_dicom_series`` reads one series of a folder (searched recursively) in four steps, one module each:

1. ``dicom_scan``: finds the DICOM files and reads their headers; stray files (no DICOM signature, DICOMDIR) are
   skipped and listed in ``info["stray_files"]``, a file that carries the signature but cannot be parsed fails
   with the file named;
2. ``series_policy``: chooses the series by meaning, not by count (localizers, MIPs, dose reports, thick or sharp
   reconstructions skipped with their reasons; the phases of a multiphase CTA ordered by acquisition time); a tie
   raises ``AmbiguousSeriesError`` naming how to pick one (``series=``, ``--ncct-series/--cta-series``);
3. ``dicom_pixels``: decodes the pixels (any transfer syntax pydicom can decode, with the ``dicom`` extra's
   plugins for JPEG lossless, JPEG-LS and JPEG 2000) and applies each frame's RescaleSlope/Intercept (HU);
4. ``dicom_geometry``: orders the slices along their normal, refuses duplicate or missing slices, uneven spacing,
   a changing orientation or a non-uniform tilt, and resamples a uniform gantry tilt onto an orthogonal grid
   (reported in ``info["gantry_tilt_deg"]``).

All problems raise ``ScanError`` (a ``ValueError``) whose message names the folder or file and the problem.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dataset_conversion.dicom_geometry import deshear, slice_geometry
from dataset_conversion.dicom_pixels import check_hu, decode_hu
from dataset_conversion.dicom_scan import Frame, ScanError, scan_folder, uid_name
from dataset_conversion.series_policy import choose_series, nominal_thickness_mm

NIFTI_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def volume_from_frames(folder: Path, frames: list[Frame]) -> tuple[sitk.Image, dict]:
    """int16 HU ``sitk.Image`` on an orthogonal grid (spacing and origin in mm, LPS) from the frames of one series,
    and geometry facts (slice_spacing_mm, gantry_tilt_deg, tilt_corrected, frames in stacking order)."""
    geo = slice_geometry(folder, frames)
    ordered = [frames[i] for i in geo["order"]]
    hu = decode_hu(ordered)
    spacing_rc = ordered[0].spacing_rc
    origin = geo["origin"]
    if geo["tilted"]:
        hu, (u0, v0), _ = deshear(hu, geo, spacing_rc)
        origin = origin + u0 * geo["row_dir"] + v0 * geo["col_dir"]
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((float(spacing_rc[1]), float(spacing_rc[0]), float(geo["step"])))
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in np.stack([geo["row_dir"], geo["col_dir"], geo["normal"]], axis=1).ravel()])
    facts = {"slice_spacing_mm": float(geo["step"]), "gantry_tilt_deg": round(geo["tilt_deg"], 2),
             "tilt_corrected": geo["tilted"], "frames": ordered}
    return image, facts


def read_dicom_series(folder: str | os.PathLike, phase: int | None = None, series: str | int | None = None,
                      multiphase: bool = True, flag: str | None = "--cta-series") -> tuple[sitk.Image, dict]:
    """Read one CT series from ``folder`` (searched recursively) as an ``sitk.Image`` (int16 HU, z,y,x on disk).

    phase: 1-based acquisition in time order for a multiphase CTA (default: the only one, else phase 2; with
    exactly 2 the later one and ``info["phase_note"]`` says so). series: SeriesNumber or SeriesInstanceUID that
    overrides the choice. multiphase=False for an NCCT folder (several acquisitions are ambiguous). flag: the
    option named in error messages. The image direction is the series' row/column/normal directions; a tilted
    series comes back resampled onto an orthogonal grid.
    Returns ``(image, info)``; info holds series_uid, modality, slice_thickness_mm, slice_spacing_mm, n_slices,
    phase, n_series (qualifying acquisitions), selection (chosen / reason / skipped series), stray_files,
    gantry_tilt_deg, tilt_corrected, multiframe, transfer_syntax and header fields (study_uid, patient_id, ...).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScanError(f"{folder}: DICOM folder does not exist")
    found, stray = scan_folder(folder)
    chosen, selection = choose_series(folder, found, phase=phase, pick=series, multiphase=multiphase, flag=flag)
    image, facts = volume_from_frames(folder, chosen.frames)
    ds0 = chosen.header
    thickness = nominal_thickness_mm(chosen)
    info = {
        "series_uid": chosen.uid,
        "modality": "CT",
        "slice_thickness_mm": thickness or facts["slice_spacing_mm"],
        "slice_spacing_mm": facts["slice_spacing_mm"],
        "n_slices": int(image.GetSize()[2]),
        "series_number": chosen.number,
        "acquisition_time": str(getattr(ds0, "AcquisitionTime", "") or ""),
        "study_uid": str(getattr(ds0, "StudyInstanceUID", "")),
        "patient_id": str(getattr(ds0, "PatientID", "")),
        "series_description": chosen.description,
        "frame_of_reference_uid": str(getattr(ds0, "FrameOfReferenceUID", "")),
        "study_date": str(getattr(ds0, "StudyDate", "")),
        "manufacturer": str(getattr(ds0, "Manufacturer", "")),
        "kvp": str(getattr(ds0, "KVP", "")),
        "multiframe": len(chosen.files) == 1 and len(chosen.frames) > 1,
        "transfer_syntax": uid_name(str(getattr(ds0.file_meta, "TransferSyntaxUID", ""))),
        "gantry_tilt_deg": facts["gantry_tilt_deg"], "tilt_corrected": facts["tilt_corrected"],
        "gantry_tilt_tag_deg": float(getattr(ds0, "GantryDetectorTilt", 0.0) or 0.0),
        "selection": selection, "stray_files": stray,
        "phase": selection.get("phase") or phase or 1, "n_series": selection.get("n_phases") or 1,
        "source": "dicom", "path": str(folder),
    }
    if selection.get("note"):
        info["phase_note"] = selection["note"]
    check_hu(image, str(folder))
    return image, info


def read_image(path: str | os.PathLike, phase: int | None = None, series: str | int | None = None,
               multiphase: bool = True, flag: str | None = "--cta-series") -> tuple[sitk.Image, dict]:
    """Read a NIfTI/NRRD/MHA file or a DICOM folder as HU; returns ``(image, info)`` like ``read_dicom_series``."""
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path, phase=phase, series=series, multiphase=multiphase, flag=flag)
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
