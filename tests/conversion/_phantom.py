"""Small analytic head phantom for the converter tests (NCCT in its own rigidly moved frame, CTA, label).

Anatomy frame = CTA physical frame (LPS mm, centre 0). Ellipsoidal head: scalp (40 HU), skull shell
(1200 HU), brain (35 HU) with two ventricles (8 HU), a vessel along x (CTA 350 HU, NCCT 42 HU) and a
thrombus segment in it (NCCT 70 HU, CTA 55 HU). ``ncct_transform`` maps CTA points to NCCT points.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

HEAD = np.array([62.0, 72.0, 50.0])   # outer semi-axes (x, y, z) mm
SCALP_MM, SKULL_MM = 3.0, 5.0


def _ellipsoid(p, centre, axes):
    return (((p - np.asarray(centre)[:, None]) / np.asarray(axes)[:, None]) ** 2).sum(0)


def phantom_values(points: np.ndarray, phase: str, rng: np.random.Generator | None = None) -> dict:
    """points: (3, n) anatomy mm. Returns dict of arrays: hu, brain, skull, label."""
    r_out = _ellipsoid(points, (0, 0, 0), HEAD)
    r_skull = _ellipsoid(points, (0, 0, 0), HEAD - SCALP_MM)
    r_brain = _ellipsoid(points, (0, 0, 0), HEAD - SCALP_MM - SKULL_MM)
    brain = r_brain <= 1
    skull = (r_skull <= 1) & ~brain
    hu = np.full(points.shape[1], -1000.0)
    hu[r_out <= 1] = 40
    hu[skull] = 1200
    hu[brain] = 35 + 4 * np.sin(points[0, brain] / 7) * np.cos(points[1, brain] / 9)
    for cx in (-9.0, 9.0):
        v = _ellipsoid(points, (cx, 5, 8), (5, 18, 9)) <= 1
        hu[v] = 8
    vessel = brain & ((points[1] + 12) ** 2 + (points[2] + 10) ** 2 <= 2.6 ** 2) & (np.abs(points[0]) < 40)
    clot = vessel & (points[0] > 12) & (points[0] < 30)
    hu[vessel] = 350 if phase == "cta" else 42
    hu[clot] = 55 if phase == "cta" else 70
    if rng is not None:
        hu = hu + rng.normal(0, 4, hu.shape)
    return {"hu": hu, "brain": brain, "skull": skull, "label": clot}


def euler(angles_deg, translation_mm) -> sitk.Euler3DTransform:
    t = sitk.Euler3DTransform()
    t.SetRotation(*np.radians(angles_deg))
    t.SetTranslation([float(v) for v in translation_mm])
    return t


def grid_points(size_xyz, spacing, origin) -> np.ndarray:
    ix, iy, iz = [np.arange(n) for n in size_xyz]
    z, y, x = np.meshgrid(iz, iy, ix, indexing="ij")
    return np.stack([origin[0] + x.ravel() * spacing[0], origin[1] + y.ravel() * spacing[1],
                     origin[2] + z.ravel() * spacing[2]])


def make_case(seed: int, angles_deg=(4, -3, 6), translation_mm=(5, -4, 3), cta_spacing=(1.6, 1.6, 2.0),
              cta_size=(80, 96, 56), ncct_spacing=(1.5, 1.5, 1.5), ncct_size=(88, 100, 74)) -> dict:
    """Images (int16 HU) and masks as SimpleITK images; transform maps CTA point -> NCCT point."""
    rng = np.random.default_rng(seed)
    tr = euler(angles_deg, translation_mm)
    cta_origin = -(np.array(cta_size) - 1) / 2 * np.array(cta_spacing)
    pts = grid_points(cta_size, cta_spacing, cta_origin)
    v = phantom_values(pts, "cta", rng)
    shape = tuple(cta_size[::-1])

    def img(arr, origin, spacing, dtype):
        out = sitk.GetImageFromArray(arr.reshape(shape if origin is cta_origin else tuple(ncct_size[::-1])).astype(dtype))
        out.SetOrigin([float(o) for o in origin])
        out.SetSpacing([float(s) for s in spacing])
        return out

    cta = img(np.round(v["hu"]), cta_origin, cta_spacing, np.int16)
    case = {"cta": cta, "label": img(v["label"], cta_origin, cta_spacing, np.uint8),
            "brain": img(v["brain"], cta_origin, cta_spacing, np.uint8),
            "skull": img(v["skull"], cta_origin, cta_spacing, np.uint8), "transform": tr}
    ncct_origin = -(np.array(ncct_size) - 1) / 2 * np.array(ncct_spacing)
    npts = grid_points(ncct_size, ncct_spacing, ncct_origin)
    anat = _apply_inverse(tr, npts)
    nv = phantom_values(anat, "ncct", rng)
    case["ncct"] = img(np.round(nv["hu"]), ncct_origin, ncct_spacing, np.int16)
    case["label_on_ncct"] = img(nv["label"], ncct_origin, ncct_spacing, np.uint8)
    return case


def _apply_inverse(tr: sitk.Euler3DTransform, pts: np.ndarray) -> np.ndarray:
    """Vectorised inverse of the Euler transform p -> R (p - c) + c + t."""
    m = np.array(tr.GetMatrix()).reshape(3, 3)
    c = np.array(tr.GetCenter())[:, None]
    t = np.array(tr.GetTranslation())[:, None]
    return m.T @ (pts - c - t) + c


def write_dicom_series(image: sitk.Image, folder: Path, *, modality="CT", series_number=1, acq_time="101500",
                       drop_slices=(), duplicate_slice=None, tilt=0.0, study_uid=None, z_shift=None) -> Path:
    """One file per axial slice, stored as uint16 with RescaleIntercept -1024."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(image).astype(np.int32) + 1024
    series_uid, study_uid = generate_uid(), study_uid or generate_uid()
    sp, org = image.GetSpacing(), image.GetOrigin()
    slices = [z for z in range(arr.shape[0]) if z not in drop_slices]
    if duplicate_slice is not None:
        slices.append(duplicate_slice)
    for k, z in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = modality, "anon", "anon"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, study_uid
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionTime = series_number, k + 1, acq_time
        ds.StudyDate = datetime.date(2020, 1, 1).strftime("%Y%m%d")
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [org[0], org[1] + tilt * z * sp[2], org[2] + z * sp[2] + (z_shift or {}).get(z, 0.0)]
        ds.PixelSpacing = [sp[1], sp[0]]
        ds.SliceThickness = sp[2]
        ds.GantryDetectorTilt = 0.0
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = arr[z].astype(np.uint16).tobytes()
        ds.save_as(str(folder / f"im{k:04d}.dcm"), enforce_file_format=True)
    return folder


def write_patient(root: Path, name: str, case: dict, fmt: str = "dicom", masks_on: str = "cta",
                  n_phases: int = 1) -> Path:
    """root/name/{NCCT,CTA}/ (dicom) or ncct.nii.gz + cta.nii.gz (nifti), masks/thrombus.nii.gz."""
    folder = root / name
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    if fmt == "dicom":
        write_dicom_series(case["ncct"], folder / "NCCT")
        for ph in range(1, n_phases + 1):
            cta = case["cta"] if ph == 2 or n_phases == 1 else sitk.Cast(
                sitk.Cast(case["cta"], sitk.sitkFloat32) * 0.9 - 100, sitk.sitkInt16)
            write_dicom_series(cta, folder / "CTA" / f"phase{ph}", series_number=10 + ph,
                               acq_time=f"1015{10 * ph:02d}")
    else:
        sitk.WriteImage(case["ncct"], str(folder / "ncct.nii.gz"))
        sitk.WriteImage(case["cta"], str(folder / "cta.nii.gz"))
    mask = case["label"] if masks_on == "cta" else case["label_on_ncct"]
    sitk.WriteImage(mask, str(folder / "masks" / "thrombus.nii.gz"))
    return folder
