"""DICOM SEG of the thrombus mask, referencing the source CTA series (highdicom), for PACS import.

The SEG has one frame per source CTA image (single-frame files or the frames of an enhanced multi-frame file); each
frame is the mask sampled (nearest neighbour) at that image's own pixel positions, from every image's
ImagePositionPatient / ImageOrientationPatient, so a mask on a resampled grid (thick slices brought to 1 mm, a
gantry-tilted series resampled onto an orthogonal grid) lands on the right source pixels.

The SEG copies the patient and study modules of the CTA, as DICOM requires. With ``anonymize=True`` it follows
the Basic Application Level Confidentiality Profile (DICOM PS3.15 Annex E) for what a SEG carries
(``deidentify_dataset``): patient name and ID become the case id; birth date, sex, accession number, study ID
and every other person name are emptied; institution, physicians, operators, station, ages and other IDs are
removed; every date is shifted back by one offset per case (intervals are kept) and every time is replaced by
000000; every instance UID (study, series, SOP instance, frame of reference, and the references to the source
images) is replaced by a new UID derived from the old one and the case id, so the same source UID always maps to
the same new UID. Such a SEG therefore no longer references the original CTA images: it is for sharing and
research, not for overlaying on the patient's images in the PACS (use a plain SEG there).
"""
from __future__ import annotations

import copy
import datetime
import hashlib

import numpy as np
import SimpleITK as sitk

#: attributes the Basic Profile removes ("X") from what a SEG copies from its sources
REMOVE = ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAge", "PatientSize",
          "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "PatientComments", "AdditionalPatientHistory",
          "EthnicGroup", "Occupation", "MilitaryRank", "IssuerOfPatientID", "PatientBirthTime", "PatientBirthName",
          "PatientMotherBirthName", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
          "StudyDescription", "PhysiciansOfRecord", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
          "OperatorsName", "RequestingPhysician", "StationName", "ReferringPhysicianAddress",
          "ReferringPhysicianTelephoneNumbers", "RequestAttributesSequence", "ReferencedPatientSequence",
          "AdmittingDiagnosesDescription", "MedicalRecordLocator", "CurrentPatientLocation",
          "PatientInsurancePlanCodeSequence",
          "ResponsiblePerson", "ResponsibleOrganization", "InstitutionCodeSequence", "PerformedProcedureStepID",
          "PerformedProcedureStepDescription", "ProtocolName", "DeviceUID")
#: Type 2 attributes the Basic Profile empties ("Z")
EMPTY = ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "ReferringPhysicianName")
#: shift range of dates (days back) in an anonymized SEG
DATE_SHIFT_DAYS = (365, 3650)
#: kept for older callers: the identifying attributes of the patient/study modules
DEIDENTIFY = {"PatientName": "case", "PatientID": "case", **{k: "" for k in EMPTY}, **{k: None for k in REMOVE}}


def source_frames(folder, series_uid: str | None = None) -> tuple[list, list]:
    """Headers of the CTA series in ``folder`` and its frames in the order the SEG frames follow.

    Returns ``(datasets, frames)``: one header per file (sorted along the slice normal) and
    ``dataset_conversion.dicom_io.Frame`` s; for one enhanced multi-frame file, its frames in stored order."""
    from dataset_conversion.dicom_io import ScanError, series_frames

    try:
        pairs = series_frames(folder, series_uid)
    except ScanError as exc:
        raise ValueError(f"{exc} (for the SEG reference)") from exc
    datasets = list({id(ds): ds for ds, _ in pairs}.values())
    frames = [f for _, f in pairs]
    if len(datasets) == 1 and len(frames) > 1:
        frames.sort(key=lambda f: f.index)
    return datasets, frames


def sorted_series(folder, series_uid: str | None = None) -> list:
    """Headers (no pixel data) of one CT series in ``folder``, sorted along the slice normal like the volume."""
    return source_frames(folder, series_uid)[0]


def mask_on_source_frames(mask: sitk.Image, frames: list) -> np.ndarray:
    """(n_frames, rows, cols) uint8: ``mask`` sampled (nearest neighbour) at every pixel centre of each frame."""
    out = []
    for f in frames:
        ref = sitk.Image(int(f.cols), int(f.rows), 1, sitk.sitkUInt8)
        ref.SetOrigin([float(v) for v in f.position])
        ref.SetSpacing((float(f.spacing_rc[1]), float(f.spacing_rc[0]), 1.0))
        r, c = np.asarray(f.orientation[:3], float), np.asarray(f.orientation[3:], float)
        n = np.cross(r, c)
        ref.SetDirection([float(v) for v in np.stack([r, c, n / np.linalg.norm(n)], axis=1).ravel()])
        plane = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        out.append(sitk.GetArrayViewFromImage(plane)[0] > 0)
    return np.stack(out).astype(np.uint8)


def mask_on_native_grid(mask: sitk.Image, native: sitk.Image) -> np.ndarray:
    """(Z, Y, X) uint8 mask on ``native``'s grid (nearest neighbour when the grids differ)."""
    same = (mask.GetSize() == native.GetSize() and np.allclose(mask.GetSpacing(), native.GetSpacing(), atol=1e-4)
            and np.allclose(mask.GetOrigin(), native.GetOrigin(), atol=1e-3))
    if not same:
        mask = sitk.Resample(mask, native, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return (sitk.GetArrayFromImage(mask) > 0).astype(np.uint8)


def _is_registered_uid(value: str) -> bool:
    """True for a UID defined by the DICOM standard (SOP classes, transfer syntaxes, coding schemes...)."""
    from pydicom.uid import UID_dictionary

    return str(value) in UID_dictionary


def _new_uid(old: str, salt: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["nnunet_thrombus de-identification", salt, str(old)])


def _shift_date(value: str, days: int) -> str:
    text = str(value).strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return ""
    return (day - datetime.timedelta(days=days)).strftime("%Y%m%d")


def date_shift_days(case_id: str, study_uid: str) -> int:
    """Days every date of an anonymized SEG moves back: one value per (case, study), in ``DATE_SHIFT_DAYS``."""
    h = int.from_bytes(hashlib.blake2b(f"{case_id}|{study_uid}".encode(), digest_size=8).digest(), "big")
    lo, hi = DATE_SHIFT_DAYS
    return lo + h % (hi - lo + 1)


def deidentify_dataset(ds, case_id: str, shift_days: int, uid_salt: str | None = None):
    """De-identify ``ds`` in place (and its file meta) per the module doc; returns it.

    shift_days: how far dates move back; uid_salt: mixed into the new UIDs (default: the case id)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    salt = case_id if uid_salt is None else uid_salt
    seen: set[int] = set()

    def walk(d: Dataset) -> None:
        if id(d) in seen:  # highdicom shares items between sequences: map each UID once
            return
        seen.add(id(d))
        for key in REMOVE:
            if key in d:
                delattr(d, key)
        for key in EMPTY:
            if key in d:
                setattr(d, key, "")
        for elem in list(d):
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.value in (None, "", b""):
                continue
            elif elem.VR == "UI":
                values = elem.value if isinstance(elem.value, (list, tuple)) or elem.VM > 1 else [elem.value]
                new = [v if _is_registered_uid(v) else _new_uid(v, salt) for v in values]
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR == "DA":
                elem.value = _shift_date(elem.value, shift_days)
            elif elem.VR == "DT":
                elem.value = (_shift_date(elem.value, shift_days) + "000000") if _shift_date(elem.value, shift_days) \
                    else ""
            elif elem.VR == "TM":
                elem.value = "000000"
            elif elem.VR == "PN" and elem.keyword != "PatientName":
                elem.value = ""
        if "PatientName" in d:
            d.PatientName = case_id + "^"
        if "PatientID" in d:
            d.PatientID = case_id

    walk(ds)
    if getattr(ds, "file_meta", None) is not None:
        for key in ("MediaStorageSOPInstanceUID",):
            if key in ds.file_meta:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = case_id + "^", case_id
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = ["nnunet_thrombus", "PS3.15 Basic Profile", "dates shifted", "UIDs replaced"]
    codes = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                           ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    return ds


def deidentify(ds, case_id: str):
    """Copy of a source header with the patient's identifying attributes replaced (dates and UIDs are left to
    ``deidentify_dataset``, which runs on the finished SEG)."""
    out = copy.deepcopy(ds)
    for key in REMOVE:
        if key in out:
            delattr(out, key)
    for key in EMPTY:
        if key in out:
            setattr(out, key, "")
    out.PatientName, out.PatientID = case_id + "^", case_id
    out.PatientIdentityRemoved = "YES"
    return out


def write_dicom_seg(path, mask: sitk.Image, cta_native: sitk.Image, cta_folder, case_id: str,
                    series_uid: str | None = None, anonymize: bool = False) -> dict:
    """Write a binary DICOM SEG (one segment, "Thrombus") of ``mask`` referencing the CTA series in ``cta_folder``.

    mask: the thrombus mask in physical space (any grid covering the CTA; ``cta_native`` is kept for the
    signature, the frames come from the source headers). anonymize: see the module doc. Written to a temp name
    then renamed. Returns {"frames": int, "series_uid": str, "anonymized": bool}.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from nnunet_thrombus import __version__

    sources, frames = source_frames(cta_folder, series_uid)
    arr = mask_on_source_frames(mask, frames)
    shift = date_shift_days(case_id, str(getattr(sources[0], "StudyInstanceUID", ""))) if anonymize else 0
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
        deidentify_dataset(seg, case_id, shift)
    from nnunet_thrombus.atomic_io import atomic_path

    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
    return {"frames": int(arr.shape[0]), "series_uid": str(seg.SeriesInstanceUID), "anonymized": bool(anonymize)}
