"""DICOM SEG of the thrombus mask, referencing the source CTA series (highdicom), for PACS import.

The SEG copies the patient and study modules of the CTA, as DICOM requires; with ``anonymize=True`` those
identifying values are replaced first (name and id become the case id, birth date, accession number,
institution and referring physician are emptied, ``PatientIdentityRemoved`` = YES). The mask must be on the
native CTA grid; a mask on a resampled grid (thick slices) is brought back with nearest-neighbour resampling.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: attributes blanked (or set to the case id) in an anonymized SEG
DEIDENTIFY = {"PatientName": "case", "PatientID": "case", "PatientBirthDate": "", "AccessionNumber": "",
              "InstitutionName": None, "InstitutionAddress": None, "ReferringPhysicianName": "", "StudyID": "",
              "PatientSex": "", "OtherPatientIDs": None, "PatientAge": None}


def sorted_series(folder, series_uid: str | None = None) -> list:
    """Headers (no pixel data) of one CT series in ``folder``, sorted along the slice normal like the volume."""
    import pydicom

    headers = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception:  # not DICOM: skip
            continue
        if series_uid and str(getattr(ds, "SeriesInstanceUID", "")) != series_uid:
            continue
        headers.append(ds)
    if not headers:
        raise ValueError(f"{folder}: no DICOM files of series {series_uid or '(any)'} for the SEG reference")
    uids = {str(ds.SeriesInstanceUID) for ds in headers}
    if len(uids) > 1:
        raise ValueError(f"{folder}: {len(uids)} series found, give the CTA series uid")
    orient = np.asarray([float(v) for v in headers[0].ImageOrientationPatient])
    normal = np.cross(orient[:3], orient[3:])
    return sorted(headers, key=lambda ds: float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)))


def deidentify(ds, case_id: str):
    """Copy of ``ds`` with identifying attributes replaced (see ``DEIDENTIFY``)."""
    out = copy.deepcopy(ds)
    for key, value in DEIDENTIFY.items():
        if value is None:
            if key in out:
                delattr(out, key)
        elif key in out or value == "case":
            setattr(out, key, (case_id + ("^" if key == "PatientName" else "")) if value == "case" else value)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "nnunet_thrombus: identifiers replaced by case id"
    return out


def mask_on_native_grid(mask: sitk.Image, native: sitk.Image) -> np.ndarray:
    """(Z, Y, X) uint8 mask on ``native``'s grid (nearest neighbour when the grids differ)."""
    same = (mask.GetSize() == native.GetSize() and np.allclose(mask.GetSpacing(), native.GetSpacing(), atol=1e-4)
            and np.allclose(mask.GetOrigin(), native.GetOrigin(), atol=1e-3))
    if not same:
        mask = sitk.Resample(mask, native, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return (sitk.GetArrayFromImage(mask) > 0).astype(np.uint8)


def write_dicom_seg(path, mask: sitk.Image, cta_native: sitk.Image, cta_folder, case_id: str,
                    series_uid: str | None = None, anonymize: bool = False) -> dict:
    """Write a binary DICOM SEG (one segment, "Thrombus") of ``mask`` referencing the CTA series in ``cta_folder``.

    Written to a temp name then ``os.replace``d. Returns {"frames": int, "series_uid": str}.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from nnunet_thrombus import __version__

    sources = sorted_series(cta_folder, series_uid)
    arr = mask_on_native_grid(mask, cta_native)
    if arr.shape[0] != len(sources) or arr.shape[1:] != (int(sources[0].Rows), int(sources[0].Columns)):
        raise ValueError(f"case {case_id}: mask shape {arr.shape} does not match the CTA series "
                         f"({len(sources)} x {sources[0].Rows} x {sources[0].Columns})")
    if anonymize:
        sources = [deidentify(ds, case_id) for ds in sources]
    algo = hd.AlgorithmIdentificationSequence(name="nnunet_thrombus cascade", version=__version__,
                                              family=codes.cid7162.ArtificialIntelligence)
    desc = hd.seg.SegmentDescription(segment_number=1, segment_label="Thrombus",
                                     segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                     segmented_property_type=codes.SCT.Thrombus,
                                     algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                     algorithm_identification=algo)
    seg = hd.seg.Segmentation(source_images=sources, pixel_array=arr,
                              segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[desc],
                              series_instance_uid=hd.UID(), series_number=9901, sop_instance_uid=hd.UID(),
                              instance_number=1, manufacturer="nnunet_thrombus",
                              manufacturer_model_name="ThrombusCascade", software_versions=__version__,
                              device_serial_number="none", omit_empty_frames=False,
                              series_description="Thrombus (nnunet_thrombus)")
    if anonymize:
        for key in ("InstitutionName", "InstitutionAddress"):
            if key in seg:
                delattr(seg, key)
    from nnunet_thrombus.atomic_io import atomic_path

    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
    return {"frames": int(arr.shape[0]), "series_uid": str(seg.SeriesInstanceUID)}
