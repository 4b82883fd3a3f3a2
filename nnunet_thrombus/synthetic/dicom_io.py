"""Write a SimpleITK int16 HU volume as one DICOM CT Image Storage series (one file per slice).

Patient identifiers are fake and recognisable (``SYNTH^PATIENT0003``) so de-identification tests can
look for them. UIDs are derived deterministically from the case id, so a fixed seed gives identical
files. The folder is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from nnunet_thrombus.atomic_io import publish_dir

FAKE_INSTITUTION = "SYNTHETIC STROKE CENTRE"


def fake_patient(case_id: str, index: int) -> dict:
    """Fake but realistic-looking identifiers for case number ``index``."""
    return {"PatientName": f"SYNTH^PATIENT{index:04d}", "PatientID": f"SYNPID{index:06d}",
            "PatientBirthDate": f"19{40 + index % 50:02d}0{1 + index % 9}1{index % 9}",
            "PatientSex": "M" if index % 2 else "F", "AccessionNumber": f"ACC{index:07d}",
            "InstitutionName": FAKE_INSTITUTION, "StudyID": f"S{index:05d}",
            "StudyDate": "20230315", "StudyTime": "101500"}


def uid(*parts) -> str:
    """Deterministic DICOM UID from ``parts``."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_series(image: sitk.Image, folder: str | os.PathLike, patient: dict, study_uid: str, series_uid: str,
                 frame_uid: str, series_number: int, description: str, acquisition_time: str,
                 contrast: bool) -> Path:
    """Write ``image`` (int16 HU, identity direction) into ``folder`` as ``IM0001.dcm``... ; returns the folder."""
    if image.GetPixelID() != sitk.sitkInt16:
        raise ValueError(f"expected an int16 HU image, got pixel type {image.GetPixelIDTypeAsString()}")
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if not np.allclose(direction, np.eye(3)):
        raise ValueError(f"only identity direction is supported, got {image.GetDirection()}")
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arr = sitk.GetArrayFromImage(image)
    sx, sy, sz = image.GetSpacing()
    ox, oy, oz = image.GetOrigin()
    for k in range(arr.shape[0]):
        sop = uid(series_uid, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        for key, val in patient.items():
            setattr(ds, key, val)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "CT", "nnunet_thrombus synthetic", "HEAD"
        ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = patient.get("StudyDate", "20230315")
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = acquisition_time
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, series_number, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP, ds.PatientPosition = "120", "HFS"
        if contrast:
            ds.ContrastBolusAgent = "IODINATED CONTRAST"
        ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{oz + k * sz:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{oz + k * sz:.4f}"
        ds.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]  # row spacing (y), column spacing (x)
        ds.SliceThickness = f"{sz:.6g}"
        ds.SpacingBetweenSlices = f"{sz:.6g}"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = ("200", "700") if contrast else ("40", "80")
        ds.PixelData = np.ascontiguousarray(arr[k]).astype("<i2").tobytes()
        ds.save_as(tmp / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return publish_dir(tmp, folder)


def read_series(folder: str | os.PathLike) -> sitk.Image:
    """Read the single DICOM series in ``folder`` with SimpleITK (for tests and QC)."""
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise ValueError(f"no DICOM series found in {folder}")
    reader.SetFileNames(files)
    return reader.Execute()
