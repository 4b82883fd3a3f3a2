"""Predict-side input handling: find the cases, read NCCT + CTA, preprocess onto the CTA grid, check them.

Accepted inputs (any mix, given as a list of paths):

- one patient folder (``NCCT/`` + ``CTA/`` DICOM folders or ``ncct.nii.gz`` + ``cta.nii.gz``, as the converter reads;
  a DICOM folder may hold localizers, MIPs, dose reports and stray files: the series is chosen by meaning, see
  ``dataset_conversion.series_policy``, and the choice goes into ``report.json`` ``input.series``);
- a folder of such patient folders (one case per sub-folder);
- an nnU-Net images folder (``<case>_0000.nii.gz`` = CTA, ``<case>_0001.nii.gz`` = NCCT), already registered and
  skull-stripped by ``convert``: registration and skull stripping are skipped, the brain mask is CTA > -1000 HU.

Reading and registration reuse ``dataset_conversion`` (never re-implemented here).  Every problem with a case
raises ``CaseInputError`` (a ``ValueError``) whose message names the case and says how to fix it.
"""
from __future__ import annotations

import gzip
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from scipy import ndimage

from dataset_conversion.ct_reader import read_image
from dataset_conversion.dicom_scan import ScanError, folder_headers
from dataset_conversion.discovery import (IMAGE_SUFFIXES, Case, discover_cases, discover_nnunet_images,
                                          discover_patient, safe_case_id)
from dataset_conversion.preprocess import OUTSIDE_BRAIN_HU, check_slice_thickness, preprocess_case
from dataset_conversion.series_policy import AmbiguousSeriesError
from nnunet_thrombus.deidentify import DeidentificationError, check_case_sources
from nnunet_thrombus.inference.preprocess_cache import preprocess_cached

#: CTA vessel 99th percentile (HU, inside the brain) below which the CTA is said to show no contrast
NO_CONTRAST_HU = 150.0
#: skull enclosure (fraction of the brain's outer shell that is bone) below which a scan is refused as non-head
MIN_SKULL_ENCLOSURE = 0.15
#: plausible brain-mask volume range, ml
BRAIN_ML_RANGE = (20.0, 2500.0)
#: DICOM attributes that identify a patient; never written to non-DICOM outputs unless ``keep_phi``
PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
                "ReferringPhysicianName", "StudyID")


class CaseInputError(ValueError):
    """A case that cannot be predicted; the message names the case and the fix."""


@dataclass
class PreparedCase:
    """One case ready for the model: channels on the CTA grid (int16 HU, outside brain -1024) and bookkeeping."""

    case_id: str
    cta: sitk.Image
    ncct: sitk.Image
    brain_mask: sitk.Image
    cta_native: sitk.Image
    input_info: dict
    registration_qc: dict
    warnings: list = field(default_factory=list)
    dicom_cta_folder: Path | None = None
    dicom_series_uid: str | None = None
    phi: dict = field(default_factory=dict)
    preprocess_s: float = 0.0
    #: with ``anonymize``: every source header value the de-identification profile removes (to redact free text)
    identifying: frozenset = frozenset()

    def channels(self) -> np.ndarray:
        """(2, Z, Y, X) float32: CTA, NCCT (the training channel order)."""
        return np.stack([sitk.GetArrayFromImage(self.cta), sitk.GetArrayFromImage(self.ncct)]).astype(np.float32)


def _is_nnunet_folder(folder: Path) -> bool:
    return any(folder.glob("*_0000.nii.gz"))


def _is_patient_folder(folder: Path) -> bool:
    names = {p.name.lower() for p in folder.iterdir()}
    return bool({"ncct", "cta"} & names) or any(n.startswith(("ncct.", "cta.", "cta_phase")) for n in names)


def find_cases(inputs) -> list[Case]:
    """Cases of one or several input paths (see module doc), sorted by case id; ids made unique.

    A case with a problem found here (e.g. missing modality) carries it in ``Case.error``."""
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    cases: list[Case] = []
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"input {path} is not a folder (give a patient folder, a folder of patient folders "
                             "or an nnU-Net imagesTs folder)")
        if _is_nnunet_folder(path):
            found = discover_nnunet_images(path)
            for case in found:
                case.meta["preprocessed"] = True
        elif _is_patient_folder(path):
            found = [discover_patient(path)]
            found[0].case_id = safe_case_id(path.name)
        else:
            found = discover_cases(path)
        cases += found
    seen: dict[str, int] = {}
    for case in sorted(cases, key=lambda c: c.case_id):
        n = seen.get(case.case_id, 0)
        seen[case.case_id] = n + 1
        if n:
            case.case_id = f"{case.case_id}-{n + 1}"
    return sorted(cases, key=lambda c: c.case_id)


def select_part(cases: list, num_parts: int, part_id: int) -> list:
    """Cases ``i`` (in case-id order) with ``i % num_parts == part_id`` (nnU-Net's ``-num_parts/-part_id``)."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError(f"need num_parts >= 1 and 0 <= part_id < num_parts, got {num_parts=} {part_id=}")
    ordered = sorted(cases, key=lambda c: c.case_id)
    return [c for i, c in enumerate(ordered) if i % num_parts == part_id]


def read_phi(dicom_folder: Path, series_uid: str | None = None) -> dict:
    """Identifying header values of the first DICOM file in ``dicom_folder`` (of ``series_uid`` when given;
    stray and non-DICOM files skipped; empty values dropped)."""
    for path in sorted(p for p in Path(dicom_folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception:  # not a DICOM file: try the next one
            continue
        if series_uid and str(getattr(ds, "SeriesInstanceUID", "")) != series_uid:
            continue
        return {k: str(getattr(ds, k)) for k in PHI_KEYWORDS if str(getattr(ds, k, "") or "")}
    return {}


def case_headers(case: Case) -> list:
    """Headers (no pixels) of every DICOM file in the case's NCCT and CTA folders, all series included."""
    return folder_headers(case.ncct, case.cta)


def check_deidentifiable(case: Case, series_uids) -> frozenset:
    """For ``--anonymize``: ``deidentify.check_case_sources`` on the case's DICOM headers, its refusals raised
    as ``CaseInputError``."""
    try:
        return check_case_sources(case.case_id, case_headers(case), series_uids)
    except DeidentificationError as exc:
        raise CaseInputError(str(exc)) from exc


def _geometry(image: sitk.Image) -> dict:
    return {"size_xyz": list(image.GetSize()), "spacing_xyz_mm": [round(float(s), 4) for s in image.GetSpacing()],
            "origin_xyz_mm": [round(float(s), 4) for s in image.GetOrigin()],
            "direction": [round(float(s), 6) for s in image.GetDirection()]}


def _ball(radius_mm: float, spacing_zyx) -> np.ndarray:
    """Boolean ellipsoid structuring element of ``radius_mm`` on a grid of ``spacing_zyx`` mm."""
    it = [max(1, int(round(radius_mm / s))) for s in spacing_zyx]
    zz, yy, xx = np.ogrid[[slice(-i, i + 1) for i in it]]
    return (zz / it[0]) ** 2 + (yy / it[1]) ** 2 + (xx / it[2]) ** 2 <= 1.0


def contrast_statistics(cta: np.ndarray, ncct: np.ndarray, brain: np.ndarray, spacing_zyx=(1.0, 1.0, 1.0),
                        erode_mm: float = 3.0) -> dict:
    """99.5th percentiles (HU) of CTA and NCCT inside the brain mask eroded by ``erode_mm`` (away from the
    inner table): contrast-filled vessels lift the CTA's to 200-500 HU, the NCCT's stays near brain (30-60 HU)."""
    inside = ndimage.binary_erosion(brain > 0, _ball(erode_mm, spacing_zyx))
    if not inside.any():
        inside = brain > 0
    if not inside.any():
        return {"cta_p99_hu": float("nan"), "ncct_p99_hu": float("nan")}
    return {"cta_p99_hu": float(np.percentile(cta[inside], 99.5)),
            "ncct_p99_hu": float(np.percentile(ncct[inside], 99.5))}


def skull_enclosure(native: np.ndarray, brain: np.ndarray, spacing_zyx, shell_mm: float = 5.0) -> float:
    """Fraction of a ``shell_mm`` shell around the brain mask that is bone (> 300 HU) on ``native``: a skull
    surrounds the brain in a head CT (about 0.3-1.0); a body CT's soft-tissue blob is not enclosed (< 0.1)."""
    m = brain > 0
    if not m.any():
        return 0.0
    shell = ndimage.binary_dilation(m, _ball(shell_mm, spacing_zyx)) & ~m
    return float((native[shell] > 300).mean()) if shell.any() else 0.0


def check_nifti_complete(path: Path) -> None:
    """Raise ``CaseInputError`` when a NIfTI-1 file (``.nii`` / ``.nii.gz``) holds fewer voxel bytes than its
    header promises or its gzip stream is cut: ITK would otherwise read a truncated file without complaint."""
    name = Path(path).name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(352)
            total = len(head)
            while chunk := f.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise CaseInputError(f"{path}: truncated or corrupt file ({exc}); copy it again") from exc
    if len(head) < 348:
        raise CaseInputError(f"{path}: truncated NIfTI header ({len(head)} bytes); copy it again")
    endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", head[40:56])
    bitpix = struct.unpack(endian + "h", head[72:74])[0]
    offset = int(struct.unpack(endian + "f", head[108:112])[0])
    need = offset + int(np.prod([max(1, d) for d in dims[1:1 + max(1, min(dims[0], 7))]])) * bitpix // 8
    if total < need:
        raise CaseInputError(f"{path}: truncated NIfTI ({total} of {need} bytes); copy the file again")


def series_report(info: dict) -> dict:
    """``report.json`` ``input.series.<scan>``: the DICOM series read and why, every series skipped with its
    reason, stray files, gantry tilt (no UIDs, no patient data); ``{"source": "nifti"}`` for an image file."""
    if info.get("source") != "dicom":
        return {"source": info.get("source", "nifti")}
    sel = info.get("selection") or {}
    return {"source": "dicom", "chosen": sel.get("chosen", {}), "reason": sel.get("reason", ""),
            "skipped": list(sel.get("skipped", [])), "stray_files": list(info.get("stray_files", [])),
            "gantry_tilt_deg": float(info.get("gantry_tilt_deg", 0.0)),
            "tilt_corrected": bool(info.get("tilt_corrected", False)), "multiframe": bool(info.get("multiframe")),
            "transfer_syntax": str(info.get("transfer_syntax", ""))}


def _read_pair(case: Case, allow_thick: bool, ncct_series: str | None = None, cta_series: str | None = None):
    if case.cta_phases:
        idx = 1 if len(case.cta_phases) >= 2 else 0
        cta, cta_info = read_image(case.cta_phases[idx])
        cta_info.update(phase=idx + 1, n_series=len(case.cta_phases))
    else:
        cta, cta_info = read_image(case.cta, series=case.meta.get("cta_series") or cta_series, flag="--cta-series")
    ncct, ncct_info = read_image(case.ncct, multiphase=False, series=case.meta.get("ncct_series") or ncct_series,
                                 flag="--ncct-series")
    for path in (case.ncct, case.cta, *case.cta_phases):
        if path is not None and Path(path).is_file():
            check_nifti_complete(Path(path))
    cta_native = cta
    try:
        cta, cta_thick = check_slice_thickness(cta, cta_info["slice_thickness_mm"], "CTA", allow_thick)
        ncct, ncct_thick = check_slice_thickness(ncct, ncct_info["slice_thickness_mm"], "NCCT", allow_thick)
    except ValueError as exc:
        raise CaseInputError(f"case {case.case_id}: {exc}") from exc
    return cta, ncct, cta_native, cta_info, ncct_info, cta_thick or ncct_thick


def _scan_warnings(cta_info: dict, ncct_info: dict, thick: bool) -> list[dict]:
    """Warnings about how the scans were acquired: gantry tilt (resampled), thick slices (resampled to 1 mm)."""
    warnings: list[dict] = []
    for name, scan_info in (("NCCT", ncct_info), ("CTA", cta_info)):
        if scan_info.get("tilt_corrected"):
            tilt = scan_info["gantry_tilt_deg"]
            warnings.append({"code": "gantry_tilt", "message": f"{name} acquired with {tilt:.1f} deg gantry tilt: "
                             "resampled onto an orthogonal grid (slices shifted in-plane)"})
    if thick:
        warnings.append({"code": "thick_slices", "message": "slices thicker than 2.5 mm were resampled to 1 mm "
                         "(--allow-thick-slices); measurements are less reliable"})
    return warnings


def _register(case: Case, cta: sitk.Image, ncct: sitk.Image, cache_dir: Path | None) -> tuple[dict, str]:
    """({"cta", "ncct_on_cta", "brain_mask", "qc"}, cache status): NCCT registered onto the CTA and both
    skull-stripped (``dataset_conversion.preprocess``), or taken as they are for nnU-Net input (already done)."""
    cid = case.case_id
    if case.meta.get("preprocessed"):
        if cta.GetSize() != ncct.GetSize() or not np.allclose(cta.GetSpacing(), ncct.GetSpacing(), atol=1e-3):
            raise CaseInputError(f"case {cid}: _0000 and _0001 are on different grids ({cta.GetSize()} vs "
                                 f"{ncct.GetSize()}); run 'nnunet_thrombus convert' to register them")
        ncct.CopyInformation(cta)
        brain = sitk.Cast(cta > -1000, sitk.sitkUInt8)
        return {"cta": cta, "ncct_on_cta": ncct, "brain_mask": brain, "qc": {"note": "input already registered"}}, "n/a"
    try:
        return preprocess_cached(ncct, cta, cache_dir, preprocess_case)
    except ValueError as exc:  # skull strip finds no brain, registration diverged
        raise CaseInputError(f"case {cid}: {exc}; is this a head CT (NCCT + CTA of the same patient)?") from exc


def _check_head(case: Case, cta: sitk.Image, brain_arr: np.ndarray) -> float:
    """Brain volume (ml) of a plausible head CT; ``CaseInputError`` when the brain mask is implausible or no skull
    surrounds it."""
    cid = case.case_id
    brain_ml = float(brain_arr.sum()) * float(np.prod(cta.GetSpacing())) / 1000.0
    if not BRAIN_ML_RANGE[0] <= brain_ml <= BRAIN_ML_RANGE[1]:
        raise CaseInputError(f"case {cid}: brain mask volume {brain_ml:.0f} ml outside {BRAIN_ML_RANGE} ml: not a "
                             "head CT, or the field of view misses the brain; check the scans")
    if not case.meta.get("preprocessed"):
        enclosure = skull_enclosure(sitk.GetArrayViewFromImage(cta), brain_arr, cta.GetSpacing()[::-1])
        if enclosure < MIN_SKULL_ENCLOSURE:
            raise CaseInputError(f"case {cid}: no skull around the soft tissue (bone fraction {enclosure:.2f} < "
                                 f"{MIN_SKULL_ENCLOSURE}): this does not look like a head CT; give head scans")
    return brain_ml


def _check_contrast(result: dict, brain_arr: np.ndarray, spacing_zyx, warnings: list) -> dict:
    """Contrast statistics of the registered pair; swaps ``result``'s CTA and NCCT (with a warning) when only the
    scan given as NCCT shows contrast, warns when neither does."""
    cta_arr = sitk.GetArrayFromImage(result["cta"])
    ncct_arr = sitk.GetArrayFromImage(result["ncct_on_cta"])
    stats = contrast_statistics(cta_arr, ncct_arr, brain_arr, spacing_zyx)
    if stats["ncct_p99_hu"] >= NO_CONTRAST_HU > stats["cta_p99_hu"]:
        warnings.append({"code": "swapped_channels",
                         "message": f"the scan given as CTA shows no contrast (99th pct {stats['cta_p99_hu']:.0f} HU) "
                                    f"but the NCCT does ({stats['ncct_p99_hu']:.0f} HU): channels were swapped for "
                                    "prediction; check which scan is which"})
        swapped_cta = sitk.GetImageFromArray(ncct_arr)
        swapped_cta.CopyInformation(result["cta"])
        swapped_ncct = sitk.GetImageFromArray(cta_arr)
        swapped_ncct.CopyInformation(result["cta"])
        result["cta"], result["ncct_on_cta"] = swapped_cta, swapped_ncct
    elif stats["cta_p99_hu"] < NO_CONTRAST_HU:
        warnings.append({"code": "no_contrast", "message": f"CTA vessel 99th percentile {stats['cta_p99_hu']:.0f} HU "
                                                           f"< {NO_CONTRAST_HU:g} HU: no contrast visible"})
    return stats


def _case_phi(case: Case, cta_info: dict, ncct_info: dict) -> tuple[Path | None, dict]:
    """(the CTA's DICOM folder or None, identifying header values of the case's DICOM series)."""
    dicom_folder = Path(case.cta) if case.cta is not None and Path(case.cta).is_dir() else None
    phi = read_phi(dicom_folder, cta_info.get("series_uid") or None) if dicom_folder else {}
    if case.ncct is not None and Path(case.ncct).is_dir():
        phi = {**read_phi(Path(case.ncct), ncct_info.get("series_uid") or None), **phi}
    return dicom_folder, phi


def prepare_case(case: Case, allow_thick_slices: bool = False, cache_dir: Path | None = None,
                 ncct_series: str | None = None, cta_series: str | None = None,
                 anonymize: bool = False) -> PreparedCase:
    """Read, register, skull-strip and check one case; raises ``CaseInputError`` naming the case and the fix.

    ``ncct_series`` / ``cta_series``: SeriesNumber or SeriesInstanceUID to read when a DICOM folder holds several
    series that qualify equally (predict's ``--ncct-series`` / ``--cta-series``); ``case.meta`` values of the same
    name win. None: chosen by meaning (``dataset_conversion.series_policy``); an ambiguous choice raises, naming
    the flag.

    ``cache_dir``: where registration + skull stripping are cached per pair of scans
    (:mod:`nnunet_thrombus.inference.preprocess_cache`); None computes them every time. ``input_info`` records
    ``preprocess_cache``: "off", "hit", "miss" or "n/a" (nnU-Net input, nothing to register).
    """
    t0 = time.perf_counter()
    cid = case.case_id
    if case.error:
        raise CaseInputError(f"case {cid}: {case.error}; put both scans in the case folder")
    try:
        cta, ncct, cta_native, cta_info, ncct_info, thick = _read_pair(case, allow_thick_slices, ncct_series,
                                                                       cta_series)
    except AmbiguousSeriesError as exc:  # predict takes these flags for a single case only
        raise CaseInputError(f"case {cid}: {exc} (with this case's folder as the only -i input)") from exc
    except (ScanError, CaseInputError) as exc:
        raise CaseInputError(f"case {cid}: {exc}") from exc
    identifying = frozenset()
    if anonymize:
        identifying = check_deidentifiable(case, [i.get("series_uid") for i in (cta_info, ncct_info)
                                                  if i.get("series_uid")])
    warnings = _scan_warnings(cta_info, ncct_info, thick)
    result, cache_status = _register(case, cta, ncct, cache_dir)
    brain_arr = sitk.GetArrayViewFromImage(result["brain_mask"])
    brain_ml = _check_head(case, cta, brain_arr)
    stats = _check_contrast(result, brain_arr, cta.GetSpacing()[::-1], warnings)
    qc = dict(result["qc"])
    if qc.get("reg_qc_pass") is False:
        warnings.append({"code": "poor_registration", "message": f"registration QC failed (NCC "
                                                                 f"{qc.get('ncc_brain')}); densities may be wrong"})
    thickness = {"cta": round(float(cta_info["slice_thickness_mm"]), 3),
                 "ncct": round(float(ncct_info["slice_thickness_mm"]), 3)}
    info = {"source": cta_info["source"], "cta_geometry": _geometry(cta_native), "grid_geometry": _geometry(cta),
            "ncct_geometry": _geometry(ncct), "slice_thickness_mm": thickness, "thick_slices_resampled": thick,
            "cta_phase": cta_info.get("phase"), "preprocessed_input": bool(case.meta.get("preprocessed")),
            "brain_volume_ml": round(brain_ml, 1), "outside_brain_hu": OUTSIDE_BRAIN_HU,
            "cta_p99_hu": round(stats["cta_p99_hu"], 1), "ncct_p99_hu": round(stats["ncct_p99_hu"], 1),
            "preprocess_cache": cache_status,
            "series": {"ncct": series_report(ncct_info), "cta": series_report(cta_info)}}
    dicom_folder, phi = _case_phi(case, cta_info, ncct_info)
    return PreparedCase(case_id=cid, cta=result["cta"], ncct=result["ncct_on_cta"], brain_mask=result["brain_mask"],
                        cta_native=cta_native, input_info=info, registration_qc=qc, warnings=warnings,
                        dicom_cta_folder=dicom_folder, dicom_series_uid=cta_info.get("series_uid") or None,
                        phi=phi, preprocess_s=time.perf_counter() - t0, identifying=identifying)


__all__ = ["CaseInputError", "PreparedCase", "find_cases", "select_part", "prepare_case", "read_phi", "series_report",
           "case_headers", "check_deidentifiable",
           "contrast_statistics", "skull_enclosure", "IMAGE_SUFFIXES"]
