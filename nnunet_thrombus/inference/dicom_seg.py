"""DICOM SEG of the thrombus mask, referencing the source CTA series (highdicom), for PACS import.

The SEG has one frame per source CTA image (single-frame files or the frames of an enhanced multi-frame file); each
frame is the mask sampled (nearest neighbour) at that image's own pixel positions, from every image's
ImagePositionPatient / ImageOrientationPatient, so a mask on a resampled grid (thick slices brought to 1 mm, a
gantry-tilted series resampled onto an orthogonal grid) lands on the right source pixels.

The plain SEG copies the patient and study modules of the CTA, as DICOM requires. With ``anonymize=True`` it is
built from minimal de-identified copies of the source headers (``nnunet_thrombus.deidentify``, an allow-list
after DICOM PS3.15 Annex E): geometry and pixel description kept, patient name and ID set to the case id, birth
date, sex, accession number, study ID and referring physician emptied, dates shifted back by a key-derived
offset, times set to 000000, and every instance UID (study, series, SOP instance, frame of reference) replaced by
a UID derived from the key, so the same source UID maps to the same new UID under one key. Nothing else of the
source (private tags, free text, request sequences, equipment, operators) reaches the SEG. Such a SEG no longer
references the original CTA images: it is for sharing and research, not for overlaying on the patient's images
in the PACS (use a plain SEG there). See docs/deidentification.md.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dataset_conversion.dicom_scan import ScanError, series_frames
from nnunet_thrombus import __version__
from nnunet_thrombus.atomic_io import atomic_path
from nnunet_thrombus.deidentify import DeidentificationError, dataset_leaks, deidentify_sources, new_key


def source_frames(folder, series_uid: str | None = None) -> tuple[list, list]:
    """Headers of the CTA series in ``folder`` and its frames in the order the SEG frames follow.

    Returns ``(datasets, frames)``: one header per file (sorted along the slice normal) and
    ``dataset_conversion.dicom_scan.Frame`` s; for one enhanced multi-frame file, its frames in stored order."""
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


def _check_no_leak(ds, sources: list) -> None:
    """``DeidentificationError`` naming the attributes of the written ``ds`` that carry a value the profile
    removes from ``sources`` (``deidentify.dataset_leaks``: a last check behind the allow-list)."""
    where = dataset_leaks(ds, sources)
    if where:
        raise DeidentificationError("the anonymized SEG would carry source values the profile removes, in "
                                    f"{', '.join(where)}; not written")


def write_dicom_seg(path, mask: sitk.Image, cta_native: sitk.Image, cta_folder, case_id: str,
                    series_uid: str | None = None, anonymize: bool = False, key=None) -> dict:
    """Write a binary DICOM SEG (one segment, "Thrombus") of ``mask`` referencing the CTA series in ``cta_folder``.

    mask: the thrombus mask in physical space (any grid covering the CTA; ``cta_native`` is kept for the
    signature, the frames come from the source headers). anonymize: see the module doc; key: the
    ``deidentify.DeidKey`` of the UID and date mapping (None: a new key kept nowhere, so the mapping is one-way).
    Written to a temp name then renamed. Returns {"frames": int, "series_uid": str, "anonymized": bool}; with
    ``anonymize``, also "uids" ({source UID: new UID}) and "shift_days".
    """
    # highdicom (and pydicom's code dictionary) load when a SEG is written, not when predict starts
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources, frames = source_frames(cta_folder, series_uid)
    arr = mask_on_source_frames(mask, frames)
    originals, deid = sources, None
    if anonymize:
        deid = deidentify_sources(sources, key if key is not None else new_key(), case_id)
        sources = deid.datasets
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
                              series_description="Thrombus (nnunet_thrombus)",
                              contributing_equipment=deid.contributing_equipment() if deid is not None else None)
    if deid is not None:
        deid.stamp(seg)
        _check_no_leak(seg, originals)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp), enforce_file_format=True)
    out = {"frames": int(arr.shape[0]), "series_uid": str(seg.SeriesInstanceUID), "anonymized": bool(anonymize)}
    if deid is not None:
        out.update(uids=dict(deid.uids), shift_days=deid.shift_days)
    return out
