"""DICOM written the way a PACS exports a head CT study, for the reader tests (each test makes its own files).

``analytic_head`` samples a smooth phantom head at any point, so the same head can be written on an
untilted grid, on a gantry-tilted (sheared) grid, single-frame or enhanced multi-frame, in any transfer syntax,
next to localizers, MIPs, dose reports and stray files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian, XRayRadiationDoseSRStorage,
                         generate_uid)

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111111111"
FRAME_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222222222"
PATIENT = {"PatientName": "PACS^EXPORTED^PATIENT", "PatientID": "PACSPID77", "PatientBirthDate": "19510203",
           "PatientSex": "F", "AccessionNumber": "ACCPACS991", "StudyID": "STUDY42", "StudyDate": "20240611",
           "StudyTime": "083015", "InstitutionName": "PACS GENERAL HOSPITAL",
           "ReferringPhysicianName": "REFERRING^DOCTOR"}


def tilted_grid(size_xyz, spacing_xyz, tilt_deg: float = 0.0, centre=(0.0, 0.0, 0.0)) -> dict:
    """Geometry of an axial series acquired with gantry tilt ``tilt_deg`` about the patient's x axis.

    The image plane is tilted (ImageOrientationPatient row (1,0,0), column (0,cos t,sin t)); the table moves along
    z by ``spacing_xyz[2]`` per slice, so the grid is sheared. Returns orientation (6,), positions (n, 3), rows,
    cols, spacing_rc."""
    t = np.radians(tilt_deg)
    r, c = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])
    nx, ny, nz = size_xyz
    sx, sy, sz = spacing_xyz
    first = np.asarray(centre) - (nx - 1) / 2 * sx * r - (ny - 1) / 2 * sy * c - np.array([0, 0, (nz - 1) / 2 * sz])
    positions = np.array([first + np.array([0.0, 0.0, k * sz]) for k in range(nz)])
    return {"orientation": np.concatenate([r, c]), "positions": positions, "rows": ny, "cols": nx,
            "spacing_rc": (sy, sx)}


def plane_points(grid: dict, k: int) -> np.ndarray:
    """(3, rows*cols) physical centres of slice ``k``'s pixels, row-major."""
    r, c = grid["orientation"][:3], grid["orientation"][3:]
    jj, ii = np.meshgrid(np.arange(grid["rows"]), np.arange(grid["cols"]), indexing="ij")
    p = (grid["positions"][k][:, None] + r[:, None] * (ii.ravel() * grid["spacing_rc"][1])
         + c[:, None] * (jj.ravel() * grid["spacing_rc"][0]))
    return p


#: edge width (mm) of the smooth phantom: a logistic edge of this scale has a 10-90% rise of ~2.6 mm, like a soft
#: head-CT kernel (a point-sampled sharp-edged phantom would alias and no resampling could reproduce it)
EDGE_MM = 0.6
HEAD_AXES = np.array([62.0, 72.0, 50.0])


def _inside(points: np.ndarray, centre, axes, edge_mm: float = EDGE_MM) -> np.ndarray:
    """Smooth indicator (0..1) of an ellipsoid: logistic of the radial distance to its surface (mm)."""
    rel = points - np.asarray(centre, float)[:, None]
    q = np.sqrt((((rel) / np.asarray(axes, float)[:, None]) ** 2).sum(0))
    dist = np.linalg.norm(rel, axis=0) * (1.0 - 1.0 / np.maximum(q, 1e-9))  # > 0 outside
    return 1.0 / (1.0 + np.exp(np.clip(dist / edge_mm, -50, 50)))


def smooth_head(points: np.ndarray, phase: str = "cta") -> np.ndarray:
    """HU of a band-limited head phantom at ``points`` (3, n) mm: scalp 40, skull 1200, brain 35 with texture,
    ventricles 8, a vessel along x (CTA 350 HU, NCCT 42 HU); air -1000."""
    head = _inside(points, (0, 0, 0), HEAD_AXES)
    skull = _inside(points, (0, 0, 0), HEAD_AXES - 3)
    brain = _inside(points, (0, 0, 0), HEAD_AXES - 8)
    hu = -1000 + 1040 * head + 1160 * skull - 1165 * brain
    hu += brain * 4 * np.sin(points[0] / 7) * np.cos(points[1] / 9)
    for cx in (-9.0, 9.0):
        hu -= 27 * _inside(points, (cx, 5, 8), (5, 18, 9))
    tube = np.sqrt((points[1] + 12) ** 2 + (points[2] + 10) ** 2) - 2.6
    vessel = brain / (1.0 + np.exp(np.clip(tube / EDGE_MM, -50, 50))) / (1.0 + np.exp(np.clip((np.abs(points[0]) - 40)
                                                                                                / EDGE_MM, -50, 50)))
    return hu + vessel * ((350 if phase == "cta" else 42) - 35)


def analytic_head(grid: dict, phase: str = "cta") -> np.ndarray:
    """(n, rows, cols) int16 HU of ``smooth_head`` sampled at every pixel centre of ``grid``."""
    out = np.empty((len(grid["positions"]), grid["rows"], grid["cols"]), np.int16)
    for k in range(len(grid["positions"])):
        out[k] = np.round(smooth_head(plane_points(grid, k), phase)).reshape(grid["rows"], grid["cols"])
    return out


def _base(sop_class: str, series_uid: str, number: int, description: str, image_type, time: str) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY_UID, series_uid, FRAME_UID
    ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.SeriesDescription = "CT", "TEST", number, description
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = PATIENT["StudyDate"]
    ds.SeriesTime = ds.ContentTime = time
    if image_type:
        ds.ImageType = list(image_type)
    return ds


def _pixels(ds: Dataset, plane: np.ndarray) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.Rows, ds.Columns = plane.shape[-2:]
    ds.PixelData = np.ascontiguousarray(plane.astype(np.int32) + 1024).astype("<u2").tobytes()


def write_series(folder: Path, hu: np.ndarray, grid: dict, *, number: int = 3, description: str = "CTA HEAD 0.6",
                 image_type=("ORIGINAL", "PRIMARY", "AXIAL"), acq_time: str = "101500.000", kernel: str = "H30s",
                 thickness: float | None = None, tilt_tag: float = 0.0, prefix: str = "IM",
                 series_uid: str | None = None) -> list[Path]:
    """One CT Image Storage file per slice (uint16, RescaleIntercept -1024); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    paths = []
    step = float(np.linalg.norm(grid["positions"][1] - grid["positions"][0])) if len(hu) > 1 else 1.0
    for k in range(hu.shape[0]):
        ds = _base(CTImageStorage, series_uid, number, description, image_type, acq_time)
        ds.AcquisitionTime, ds.InstanceNumber, ds.ConvolutionKernel = acq_time, k + 1, kernel
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in grid["orientation"]]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in grid["positions"][k]]
        ds.PixelSpacing = [f"{v:.6g}" for v in grid["spacing_rc"]]
        ds.SliceThickness = f"{thickness or step:.6g}"
        ds.GantryDetectorTilt = f"{tilt_tag:g}"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.KVP = "120"
        _pixels(ds, hu[k])
        path = folder / f"{prefix}{number:02d}_{k + 1:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_multiframe(path: Path, hu: np.ndarray, grid: dict, *, number: int = 5, acq_time: str = "101500") -> Path:
    """One Enhanced CT Image Storage file holding every slice (shared pixel measures / orientation / rescale,
    per-frame plane position), frames stored in reverse order to check that the reader sorts them."""
    ds = _base(EnhancedCTImageStorage, generate_uid(), number, "CTA HEAD enhanced", ("ORIGINAL", "PRIMARY", "AXIAL",
                                                                                      "NONE"), acq_time)
    ds.AcquisitionDateTime = PATIENT["StudyDate"] + acq_time
    ds.InstanceNumber = 1
    ds.ContentQualification, ds.BurnedInAnnotation, ds.KVP = "PRODUCT", "NO", "120"
    ds.PresentationLUTShape, ds.LossyImageCompression = "IDENTITY", "00"
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [f"{v:.6g}" for v in grid["spacing_rc"]]
    pm.SliceThickness = f"{np.linalg.norm(grid['positions'][1] - grid['positions'][0]):.6g}"
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.6f}" for v in grid["orientation"]]
    pv = Dataset()
    pv.RescaleIntercept, pv.RescaleSlope, pv.RescaleType = -1024, 1, "HU"
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    shared.PixelValueTransformationSequence = Sequence([pv])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = list(range(hu.shape[0]))[::-1]
    per = []
    for k in order:
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [f"{v:.4f}" for v in grid["positions"][k]]
        fc = Dataset()
        fc.FrameAcquisitionDateTime = PATIENT["StudyDate"] + acq_time
        fg.PlanePositionSequence, fg.FrameContentSequence = Sequence([pp]), Sequence([fc])
        per.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.NumberOfFrames = len(order)
    _pixels(ds, hu[order])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_localizer(folder: Path, number: int = 1) -> Path:
    """A coronal scout (ImageType ORIGINAL\\PRIMARY\\LOCALIZER), one image."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = _base(CTImageStorage, generate_uid(), number, "Topogram 0.6", ("ORIGINAL", "PRIMARY", "LOCALIZER"), "101000")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.ImagePositionPatient = [-100, 0, 100]
    ds.PixelSpacing = [1, 1]
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    _pixels(ds, np.zeros((64, 64), np.int16))
    path = folder / f"LOC{number:02d}"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dose_report(folder: Path, number: int = 999) -> Path:
    """An X-Ray Radiation Dose SR (no image, no geometry), as scanners add to every study."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = _base(XRayRadiationDoseSRStorage, generate_uid(), number, "Dose Report", None, "102000")
    ds.Modality = "SR"
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    path = folder / f"SR{number:03d}"
    ds.save_as(path, enforce_file_format=True)
    return path


def mip_of(hu: np.ndarray, grid: dict, slab: int = 7) -> tuple[np.ndarray, dict]:
    """Thick axial MIP slabs (max over ``slab`` slices, every ``slab`` slices) and their grid."""
    n = hu.shape[0] // slab
    mip = np.stack([hu[i * slab:(i + 1) * slab].max(0) for i in range(n)])
    g = dict(grid)
    g["positions"] = np.array([grid["positions"][i * slab + slab // 2] for i in range(n)])
    return mip, g


def read_raw(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(str(path))


def tilted_copy(image, tilt_deg: float, step_mm: float) -> tuple[np.ndarray, dict]:
    """``image`` re-acquired with gantry tilt: tilted planes (rotation about x) stacked along z by ``step_mm``,
    each sampled (linear) from ``image``; returns HU (n, rows, cols) and the grid for ``write_series``."""
    t = np.radians(tilt_deg)
    r, c = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])
    n = np.cross(r, c)
    sx, sy, sz = image.GetSpacing()
    nx, ny, nz = image.GetSize()
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]))
    half_z = (nz - 1) / 2 * sz + ny * sy / 2 * np.sin(t)  # every tilted plane still crosses the head
    n_slices = int(2 * half_z / step_mm) + 1
    first = centre - (nx - 1) / 2 * sx * r - (ny - 1) / 2 * sy * c - np.array([0, 0, half_z])
    positions = np.array([first + np.array([0.0, 0.0, k * step_mm]) for k in range(n_slices)])
    out = np.empty((n_slices, ny, nx), np.int16)
    for k, pos in enumerate(positions):
        ref = sitk.Image(nx, ny, 1, sitk.sitkInt16)
        ref.SetOrigin([float(v) for v in pos])
        ref.SetSpacing((sx, sy, 1.0))
        ref.SetDirection([float(v) for v in np.stack([r, c, n], axis=1).ravel()])
        out[k] = sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, -1000.0))[0]
    return out, {"orientation": np.concatenate([r, c]), "positions": positions, "rows": ny, "cols": nx,
                 "spacing_rc": (sy, sx)}
