"""Reading CT scans: DICOM folders as a PACS exports them (with checks) and NIfTI files, as SimpleITK images in HU.

``read_dicom_series`` looks at every file of a folder (searched recursively) and

1. **skips stray files**: anything without the DICOM file signature ("DICM" at byte 128: README.TXT, VERSION,
   Thumbs.db, ...) and DICOMDIR files are listed in ``info["stray_files"]``; a file that carries the signature but
   cannot be parsed fails the series with the file named;
2. **chooses the series by meaning, not by count**: a series is skipped (with its reason, in
   ``info["skipped_series"]``) when it is not a CT image SOP class (dose reports, SR, presentation states, SEG...),
   its modality is not CT, its ImageType marks it LOCALIZER / DERIVED / SECONDARY / MIP / MPR / VOLUME / PROJECTION,
   it is not axial (slice normal more than ``MAX_AXIAL_DEG`` from the head-foot axis), or it covers less than
   ``MIN_COVERAGE_MM`` of the head.  Thin series (<= ``THIN_MAX_MM``) are preferred over thick ones (a thick
   series is used only when no thin one qualifies).  The qualifying series are grouped by acquisition (same
   acquisition start time = several reconstructions of one scan); within an acquisition the reconstruction with a
   soft-tissue kernel wins over a bone/sharp kernel, then the thinnest slices, then the most slices.  Acquisitions
   are the phases of a multiphase CTA, ordered by acquisition time.  A tie, or several acquisitions where only one
   is expected (NCCT) or that cannot be ordered (no acquisition time), raises ``AmbiguousSeriesError`` listing the
   series and how to pick one (``series=``, the ``--ncct-series/--cta-series`` flags);
3. **reads the pixels with pydicom** (any transfer syntax pydicom can decode: uncompressed, deflate, RLE and, with
   the ``pylibjpeg`` / ``pylibjpeg-openjpeg`` / ``pylibjpeg-libjpeg`` / ``pyjpegls`` plugins, JPEG lossless, JPEG-LS
   and JPEG 2000), one file per slice or one enhanced / legacy-converted multi-frame CT file, applying each frame's
   RescaleSlope/Intercept;
4. **checks and fixes the geometry** from every frame's ImagePositionPatient and ImageOrientationPatient:
   duplicate or missing slices, uneven spacing, a changing orientation or a non-linear drift (non-uniform tilt)
   are refused; a uniform gantry tilt (slices stacked along a direction that is not their normal, a sheared grid)
   is resampled onto an orthogonal grid (see ``deshear``) and reported in ``info["gantry_tilt_deg"]``.

All problems raise ``ScanError`` (a ``ValueError``) whose message names the folder or file and the problem.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

#: relative tolerance on slice gaps before a series counts as having missing slices / uneven spacing
SPACING_TOLERANCE = 0.05
#: in-plane drift (pixels) over the whole series below which a series is read as untilted
MAX_DRIFT_PX = 0.25
#: largest deviation (mm, and fraction of a pixel) of a slice from the straight line of a uniform tilt
TILT_LINE_TOLERANCE_MM = 0.1
#: largest angle (degrees) between the slice normal and the patient's head-foot axis for an "axial" series
MAX_AXIAL_DEG = 35.0
#: thinnest coverage (mm along the slice normal) for a series to count as covering the head
MIN_COVERAGE_MM = 30.0
#: slices at most this thick (mm) count as thin (the method's limit, dataset_conversion.preprocess.MAX_SLICE_MM)
THIN_MAX_MM = 2.5
#: series whose acquisitions start within this many seconds are reconstructions of one acquisition
ACQUISITION_GAP_S = 1.0
#: HU written where a resampled (tilt-corrected) grid lies outside the scanned field of view (air)
OUTSIDE_FOV_HU = -1024
NIFTI_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
CT_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: ImageType / FrameType values that mark an image as not a primary axial acquisition
NON_PRIMARY_TYPES = ("LOCALIZER", "DERIVED", "SECONDARY", "MIP", "MPR", "VOLUME", "PROJECTION")
#: reconstruction kernels (or series descriptions) containing one of these words count as bone / sharp kernels
SHARP_KERNEL_WORDS = ("BONE", "SHARP", "LUNG", "EDGE", "DETAIL", "ULTRA", "SKULL", "INNER EAR", "IAC")
#: Siemens-style kernels (H70h, Hr64, J70s, Br59...) with this number or more count as sharp
SHARP_KERNEL_NUMBER = 50


class ScanError(ValueError):
    """A scan that cannot be used; the message says which file/folder and why."""


class AmbiguousSeriesError(ScanError):
    """Several series qualify equally; the message lists them and how to choose one."""


@dataclass
class Frame:
    """One image plane: where it lies (mm, LPS) and how to get its HU."""

    path: Path
    index: int | None  # 0-based frame number inside a multi-frame file; None for a single-frame file
    position: np.ndarray  # (3,) ImagePositionPatient: centre of the first (top-left) pixel
    orientation: np.ndarray  # (6,) row direction (along a row, +column index), column direction (+row index)
    spacing_rc: tuple[float, float]  # PixelSpacing: (between rows, between columns) mm
    rows: int
    cols: int
    slope: float
    intercept: float
    thickness: float | None
    acq_seconds: float | None  # acquisition time of day, seconds (None when the file has none)


@dataclass
class SeriesInfo:
    """One series found in a folder, with the headers needed to choose it."""

    uid: str
    files: list[tuple[Path, pydicom.Dataset]]
    frames: list[Frame] = field(default_factory=list)
    skip: str | None = None

    @property
    def header(self) -> pydicom.Dataset:
        return self.files[0][1]

    @property
    def number(self) -> int:
        try:
            return int(getattr(self.header, "SeriesNumber", 0) or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def description(self) -> str:
        return str(getattr(self.header, "SeriesDescription", "") or "")

    def summary(self) -> dict:
        """Plain-data description (no UIDs, no patient data) for reports and tables."""
        ds = self.header
        sop = str(getattr(ds, "SOPClassUID", ""))
        out = {"series_number": self.number, "description": self.description,
               "sop_class": CT_IMAGE_SOP_CLASSES.get(sop) or _uid_name(sop),
               "image_type": "\\".join(str(v) for v in _as_list(getattr(ds, "ImageType", []))),
               "n_images": len(self.frames) or len(self.files)}
        if self.frames:
            out["kernel"] = _kernel(ds)
            out["slice_thickness_mm"] = round(_nominal_thickness(self), 3)
            out["coverage_mm"] = round(_coverage(self), 1)
        if self.skip:
            out["reason"] = self.skip
        return out

    def label(self) -> str:
        s = self.summary()
        bits = [f"series {s['series_number']}", repr(s["description"]) if s["description"] else "",
                f"{s['n_images']} images"]
        if "slice_thickness_mm" in s:
            bits.append(f"{s['slice_thickness_mm']:g} mm")
        if s.get("kernel"):
            bits.append(f"kernel {s['kernel']}")
        return " ".join(b for b in bits if b)


def _uid_name(uid: str) -> str:
    try:
        return pydicom.uid.UID(uid).name or uid
    except Exception:  # a malformed UID: show it as it is
        return uid


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [v for v in str(value).split("\\") if v]
    try:
        return list(value)
    except TypeError:
        return [value]


def _floats(value, n: int, what: str, where) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ScanError(f"{where}: unreadable {what} {value!r}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ScanError(f"{where}: {what} must hold {n} numbers, got {value!r}")
    return arr


def _seconds(date_time: str | None, time: str | None) -> float | None:
    """Time of day (s) from a DICOM DT ("YYYYMMDDHHMMSS.ffffff") or TM ("HHMMSS.ffffff"); None when absent/bad."""
    text = ""
    if date_time and len(str(date_time)) >= 10:
        text = str(date_time)[8:]
    elif time:
        text = str(time)
    text = text.split("+")[0].split("-")[0].strip().replace(":", "")
    m = re.match(r"^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$", text)
    if not m:
        return None
    h, mi, s, frac = m.groups()
    return int(h) * 3600 + int(mi or 0) * 60 + int(s or 0) + float(frac or 0)


def _item(group, sequence: str, attribute: str):
    """``group.<sequence>[0].<attribute>`` or None."""
    if group is None or sequence not in group:
        return None
    seq = group[sequence].value
    if not seq or attribute not in seq[0]:
        return None
    return seq[0][attribute].value


def frames_of(path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """The image planes of one file: one for a classic CT image, one per frame for an enhanced CT."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds and \
            len(ds.SharedFunctionalGroupsSequence) else None
        frames = []
        for i, per in enumerate(ds.PerFrameFunctionalGroupsSequence):
            def get(seq, attr, per=per):
                value = _item(per, seq, attr)
                return value if value is not None else _item(shared, seq, attr)
            where = f"{path} (frame {i + 1})"
            pos, orient = get("PlanePositionSequence", "ImagePositionPatient"), \
                get("PlaneOrientationSequence", "ImageOrientationPatient")
            spacing = get("PixelMeasuresSequence", "PixelSpacing")
            if pos is None or orient is None or spacing is None:
                raise ScanError(f"{where}: multi-frame image lacks plane position, orientation or pixel spacing")
            thick = get("PixelMeasuresSequence", "SliceThickness")
            slope = get("PixelValueTransformationSequence", "RescaleSlope")
            intercept = get("PixelValueTransformationSequence", "RescaleIntercept")
            acq = get("FrameContentSequence", "FrameAcquisitionDateTime")
            sp = _floats(spacing, 2, "PixelSpacing", where)
            frames.append(Frame(path, i, _floats(pos, 3, "ImagePositionPatient", where),
                                _floats(orient, 6, "ImageOrientationPatient", where), (sp[0], sp[1]),
                                int(ds.Rows), int(ds.Columns), float(slope if slope is not None else 1.0),
                                float(intercept if intercept is not None else 0.0),
                                float(thick) if thick not in (None, "") else None,
                                _seconds(acq, None) if acq else _seconds(getattr(ds, "AcquisitionDateTime", None),
                                                                          getattr(ds, "AcquisitionTime", None))))
        return frames
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds or "PixelSpacing" not in ds:
        return []
    sp = _floats(ds.PixelSpacing, 2, "PixelSpacing", path)
    thick = getattr(ds, "SliceThickness", None)
    return [Frame(path, None, _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", path),
                  _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path), (sp[0], sp[1]),
                  int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0),
                  float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0),
                  float(thick) if thick not in (None, "") else None,
                  _seconds(getattr(ds, "AcquisitionDateTime", None), getattr(ds, "AcquisitionTime", None)))]


def _has_dicom_signature(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def scan_folder(folder: str | os.PathLike) -> tuple[dict[str, SeriesInfo], list[str]]:
    """Headers of every DICOM file under ``folder`` grouped by SeriesInstanceUID, and the stray files skipped.

    Returns ``({series_uid: SeriesInfo}, [relative path of each skipped non-DICOM file or DICOMDIR])``.
    Raises ``ScanError`` for a file that carries the DICOM signature but cannot be parsed (naming it)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    series: dict[str, SeriesInfo] = {}
    stray: list[str] = []
    for path in files:
        rel = str(path.relative_to(folder))
        if not _has_dicom_signature(path):
            stray.append(rel)
            continue
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types for damaged files
            raise ScanError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {exc}); "
                            "export the series again or remove the file") from exc
        sop = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or getattr(ds, "SOPClassUID", ""))
        if sop == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
            stray.append(rel)
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        if not uid:
            raise ScanError(f"{path}: corrupt DICOM file (no SeriesInstanceUID); export the series again")
        series.setdefault(uid, SeriesInfo(uid, [])).files.append((path, ds))
    if not series:
        raise ScanError(f"{folder}: no DICOM files found" + (f" ({len(stray)} other file(s): "
                                                             f"{', '.join(stray[:5])})" if stray else ""))
    return series, stray


def _normal(orientation: np.ndarray) -> np.ndarray:
    n = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise ScanError(f"ImageOrientationPatient {list(orientation)} has parallel row and column directions")
    return n / norm


def _kernel(ds) -> str:
    return "\\".join(str(v) for v in _as_list(getattr(ds, "ConvolutionKernel", None)))


def is_sharp_kernel(kernel: str, description: str = "") -> bool:
    """True for a bone / sharp reconstruction kernel (GE BONE, Siemens H70h / Hr64, "... bone" descriptions)."""
    text = f"{kernel} {description}".upper()
    if any(word in text for word in SHARP_KERNEL_WORDS):
        return True
    for m in re.finditer(r"\b[A-Z][A-Z]?(\d{2})[A-Z]?\b", str(kernel).upper()):
        if int(m.group(1)) >= SHARP_KERNEL_NUMBER:
            return True
    return False


def _along(series: SeriesInfo) -> np.ndarray:
    n = _normal(series.frames[0].orientation)
    return np.sort(np.asarray([f.position @ n for f in series.frames]))


def _coverage(series: SeriesInfo) -> float:
    along = _along(series)
    return float(along[-1] - along[0]) if len(along) else 0.0


def _spacing(series: SeriesInfo) -> float:
    gaps = np.diff(_along(series))
    gaps = gaps[gaps > 1e-3]
    return float(np.median(gaps)) if gaps.size else 0.0


def _nominal_thickness(series: SeriesInfo) -> float:
    thick = [f.thickness for f in series.frames if f.thickness]
    return float(np.median(thick)) if thick else _spacing(series)


def _skip_reason(series: SeriesInfo) -> str | None:
    ds = series.header
    sop = str(getattr(ds, "SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    if sop not in CT_IMAGE_SOP_CLASSES:
        return f"not a CT image ({_uid_name(sop)})"
    modality = str(getattr(ds, "Modality", ""))
    if modality != "CT":
        return f"modality is {modality!r}, expected 'CT'"
    types = [str(v).upper() for v in _as_list(getattr(ds, "ImageType", []))]
    for path, d in series.files[1:]:
        types += [str(v).upper() for v in _as_list(getattr(d, "ImageType", []))]
    bad = [t for t in NON_PRIMARY_TYPES if t in types]
    if bad:
        return f"ImageType {chr(92).join(_as_list(ds.ImageType))}: {'/'.join(b.lower() for b in bad)} image"
    try:
        for path, d in series.files:
            series.frames += frames_of(path, d)
    except ScanError as exc:
        series.frames = []
        return f"unreadable geometry ({exc})"
    if len(series.frames) < len(series.files):
        series.frames = []
        return "no image position/orientation/pixel spacing (not a cross-sectional image)"
    n = _normal(series.frames[0].orientation)
    angle = float(np.degrees(np.arccos(min(1.0, abs(n[2])))))
    if angle > MAX_AXIAL_DEG:
        plane = "sagittal" if abs(n[0]) >= abs(n[1]) else "coronal"
        return f"not axial ({plane}-like: slice normal {angle:.0f} deg from the head-foot axis)"
    if len(series.frames) < 3:
        return f"only {len(series.frames)} image(s), not a volume"
    cover = _coverage(series)
    if cover < MIN_COVERAGE_MM:
        return f"covers only {cover:.1f} mm along the slice normal (< {MIN_COVERAGE_MM:g} mm: not the whole head)"
    return None


def _acq_start(series: SeriesInfo) -> float | None:
    times = [f.acq_seconds for f in series.frames if f.acq_seconds is not None]
    return min(times) if times else None


def _rank_key(series: SeriesInfo) -> tuple:
    """Sort key of reconstructions of one acquisition: soft kernel first, then thinnest, then most slices."""
    return (is_sharp_kernel(_kernel(series.header), series.description), round(_nominal_thickness(series), 2),
            -len(series.frames))


def _pick_hint(flag: str | None, among: list[SeriesInfo], every: dict[str, SeriesInfo]) -> str:
    """How to pick one of ``among``: the value to give ``flag`` for each, its SeriesNumber when no other series
    of the folder (``every``) shares it, else its SeriesInstanceUID."""
    if not flag:
        return ("pick one by leaving only that series in the folder (or give convert / predict "
                "--ncct-series/--cta-series)")
    numbers = [s.number for s in every.values()]
    values = [str(s.number) if numbers.count(s.number) == 1 else s.uid for s in among]
    return "pick one with " + " or ".join(f"{flag} {v}" for v in values)


def choose_series(folder: Path, series: dict[str, SeriesInfo], phase: int | None = None,
                  pick: str | int | None = None, multiphase: bool = True,
                  flag: str | None = "--cta-series") -> tuple[SeriesInfo, dict]:
    """The series to read among ``series`` (see the module doc) and a record of the choice.

    phase: 1-based acquisition (phase) in time order; default: the only one, or phase 2 when there are several
    (with exactly 2, ``note`` says the later one was taken). multiphase=False (NCCT): several acquisitions are
    ambiguous. pick: a SeriesNumber or SeriesInstanceUID that overrides the rule (``flag`` names the option
    that sets it, for the error messages; None: the caller has no such option, the message says to leave only
    the wanted series in the folder). Returns ``(series, record)`` with record keys chosen, reason,
    skipped (list of summaries with reasons), n_phases, phase, note."""
    skipped: list[SeriesInfo] = []
    candidates: list[SeriesInfo] = []
    for s in sorted(series.values(), key=lambda s: (s.number, s.uid)):
        s.frames = []
        s.skip = _skip_reason(s)
        (skipped if s.skip else candidates).append(s)

    def record(chosen: SeriesInfo, reason: str, others: list[SeriesInfo], **extra) -> dict:
        rest = [o.summary() for o in sorted(skipped + others, key=lambda o: (o.number, o.uid))]
        return {"chosen": chosen.summary(), "reason": reason, "skipped": rest, **extra}

    if pick is not None and str(pick) != "":
        want = str(pick)
        hits = [s for s in series.values() if s.uid == want or str(s.number) == want]
        if not hits:
            raise ScanError(f"{folder}: no series {want!r} ({flag}); found " +
                            "; ".join(s.label() for s in sorted(series.values(), key=lambda s: s.number)))
        if len(hits) > 1:
            raise AmbiguousSeriesError(f"{folder}: {len(hits)} series are numbered {want}; give the "
                                       "SeriesInstanceUID instead: " +
                                       " or ".join(f"{flag or 'series'} {h.uid}" for h in hits))
        chosen = hits[0]
        if not chosen.frames:
            chosen.frames = [f for path, d in chosen.files for f in frames_of(path, d)]
        if chosen.skip and not chosen.frames:
            raise ScanError(f"{folder}: series {want} ({flag}) cannot be read as a volume: {chosen.skip}")
        note = f"picked with {flag} {want}" + (f" although it would be skipped: {chosen.skip}" if chosen.skip else "")
        chosen.skip = None
        others = [s for s in candidates if s is not chosen]
        for s in others:
            s.skip = f"not the series picked ({flag or 'series'} {want})"
        skipped[:] = [s for s in skipped if s is not chosen]
        return chosen, record(chosen, note, others, n_phases=None, phase=None, note=note)
    if not candidates:
        reasons = "; ".join(f"{s.label()}: {s.skip}" for s in skipped)
        raise ScanError(f"{folder}: no usable CT series ({reasons})")
    thin = [s for s in candidates if _nominal_thickness(s) <= THIN_MAX_MM + 1e-3]
    pool = thin or candidates
    not_thin = [s for s in candidates if s not in pool]
    for s in not_thin:
        s.skip = f"thicker slices ({_nominal_thickness(s):g} mm) than a thin series of the same folder"
    groups: dict = {}
    timed = sorted((s for s in pool if _acq_start(s) is not None), key=_acq_start)
    for s in timed:  # reconstructions of one scan share its acquisition start (within ACQUISITION_GAP_S)
        last = next(reversed(groups), None) if groups else None
        if last is not None and _acq_start(s) - _acq_start(groups[last][-1]) <= ACQUISITION_GAP_S:
            groups[last].append(s)
        else:
            groups[("t", s.uid)] = [s]
    for s in pool:
        if _acq_start(s) is None:
            groups[("uid", s.uid)] = [s]
    best_of = []
    others = list(not_thin)
    for members in groups.values():
        members.sort(key=_rank_key)
        if len(members) > 1 and _rank_key(members[0]) == _rank_key(members[1]):
            tied = [m for m in members if _rank_key(m) == _rank_key(members[0])]
            raise AmbiguousSeriesError(
                f"{folder}: {len(tied)} reconstructions of one acquisition qualify equally (" +
                "; ".join(m.label() for m in tied) + f"); {_pick_hint(flag, tied, series)}")
        for m in members[1:]:
            m.skip = (f"another reconstruction of the same acquisition is preferred (series {members[0].number}: "
                      "soft-tissue kernel, then thinnest slices, then most slices)")
        best_of.append(members[0])
        others += members[1:]
    if len(best_of) > 1 and any(_acq_start(s) is None for s in best_of):
        raise AmbiguousSeriesError(f"{folder}: {len(best_of)} series qualify and not all have an acquisition time, "
                                   "so their order is unknown (" + "; ".join(s.label() for s in best_of) +
                                   f"); {_pick_hint(flag, best_of, series)}")
    best_of.sort(key=lambda s: (_acq_start(s), s.number))
    n = len(best_of)
    if not multiphase and n > 1:
        raise AmbiguousSeriesError(f"{folder}: {n} acquisitions qualify (" + "; ".join(s.label() for s in best_of)
                                   + f"); {_pick_hint(flag, best_of, series)}")
    if phase is None:
        phase = 1 if n == 1 else 2
    if not 1 <= phase <= n:
        raise ScanError(f"{folder}: phase {phase} requested but the folder holds {n} qualifying series "
                        "(" + "; ".join(s.label() for s in best_of) + ")")
    chosen = best_of[phase - 1]
    for i, s in enumerate(best_of, start=1):
        if s is not chosen:
            s.skip = f"CTA phase {i} of {n} (phase {phase} was taken)"
            others.append(s)
    reason = "the only qualifying series" if n == 1 and len(pool) == 1 else (
        "best reconstruction of the only acquisition" if n == 1 else f"phase {phase} of {n} by acquisition time")
    if not thin:
        reason += " (no thin series: thick slices)"
    note = f"{n} phases found; took the later one" if n == 2 and phase == 2 else ""
    return chosen, record(chosen, reason, others, n_phases=n, phase=phase, note=note)


def _geometry(folder: Path, frames: list[Frame]) -> dict:
    """Slice order and grid of ``frames`` (see module doc, step 4). Raises ``ScanError`` on bad geometry."""
    orient = frames[0].orientation
    for f in frames:
        if np.max(np.abs(f.orientation - orient)) > 1e-3:
            raise ScanError(f"{folder}: image orientation changes between slices ({f.path.name}): non-uniform "
                            "gantry tilt or mixed reconstructions; export one uniformly oriented series")
        if (f.rows, f.cols) != (frames[0].rows, frames[0].cols) or \
                not np.allclose(f.spacing_rc, frames[0].spacing_rc, rtol=1e-3):
            raise ScanError(f"{folder}: image size or pixel spacing changes between slices ({f.path.name})")
    row_dir, col_dir = orient[:3], orient[3:]
    normal = _normal(orient)
    positions = np.asarray([f.position for f in frames])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        dup = int(np.sum(gaps < 1e-3))
        raise ScanError(f"{folder}: {dup} duplicate slice position(s) in the series; export it again")
    step = float(np.median(gaps))
    bad = np.abs(gaps - step) > SPACING_TOLERANCE * step
    if np.any(bad):
        kind = "missing slice(s)" if np.all(gaps[bad] > step) else "inconsistent slice spacing"
        raise ScanError(f"{folder}: {kind}: slice gaps range {gaps.min():.3f}-{gaps.max():.3f} mm "
                        f"(median {step:.3f} mm) at {int(bad.sum())} place(s)")
    rel = positions - positions[0]
    inplane = np.stack([rel @ row_dir, rel @ col_dir], axis=1)  # (n, 2) mm: drift along rows / columns
    dist = along - along[0]
    slope = (inplane * dist[:, None]).sum(0) / max(float((dist ** 2).sum()), 1e-12)  # mm drift per mm along normal
    resid = np.abs(inplane - dist[:, None] * slope[None, :]).max()
    pixel = min(frames[0].spacing_rc)
    if resid > max(TILT_LINE_TOLERANCE_MM, 0.1 * pixel):
        raise ScanError(f"{folder}: slice positions do not lie on a straight line (off by up to {resid:.2f} mm): "
                        "non-uniform gantry tilt or a moving table; cannot be resampled safely")
    drift_px = np.abs(slope * dist[-1]) / np.array([frames[0].spacing_rc[1], frames[0].spacing_rc[0]])
    tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(slope))))
    return {"order": order, "step": step, "normal": normal, "row_dir": row_dir, "col_dir": col_dir,
            "drift_mm_per_mm": slope, "tilted": bool(drift_px.max() > MAX_DRIFT_PX), "tilt_deg": tilt_deg,
            "origin": positions[0], "dist": dist}


def _decode(folder: Path, frames: list[Frame]) -> np.ndarray:
    """(n, rows, cols) int16 HU of ``frames`` in the given order (slope/intercept of each frame applied, rounded,
    clipped to the int16 range; integer rescales stay in integer arithmetic)."""
    out = np.empty((len(frames), frames[0].rows, frames[0].cols), np.int16)
    cache: dict[Path, np.ndarray] = {}
    for k, f in enumerate(frames):
        if f.path not in cache:
            cache.clear()
            ds = None
            try:
                ds = pydicom.dcmread(str(f.path))
                arr = ds.pixel_array
            except Exception as exc:  # missing decoder plugin, truncated or damaged pixel data
                ts = ds.file_meta.get("TransferSyntaxUID") if ds is not None and hasattr(ds, "file_meta") else None
                hint = ""
                if ts is not None and ts.is_compressed:
                    hint = (f" (transfer syntax {ts.name}: are the decoders installed? "
                            "pip install 'nnunet_thrombus[dicom]')")
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                raise ScanError(f"{f.path}: pixel data could not be decoded ({type(exc).__name__}: {last}){hint}; "
                                "export the series again") from exc
            cache[f.path] = arr if arr.ndim == 3 else arr[None]
        arr = cache[f.path]
        plane = arr[f.index or 0]
        if plane.shape != (f.rows, f.cols):
            raise ScanError(f"{f.path}: pixel data shape {plane.shape} does not match Rows/Columns {f.rows}x{f.cols}")
        if f.slope == 1.0 and float(f.intercept).is_integer():
            value = plane.astype(np.int32) + int(f.intercept)
        else:
            value = np.rint(plane.astype(np.float64) * f.slope + f.intercept)
        np.clip(value, -32768, 32767, out=value)
        out[k] = value
    return out


def deshear(hu: np.ndarray, geometry: dict, spacing_rc: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Resample a sheared (gantry-tilted) stack onto an orthogonal grid.

    hu: (n, rows, cols) int16 slices in order along the normal. Every slice stays a plane of the output (no
    interpolation across slices); each is shifted in-plane (bilinear) by its drift so that one output voxel column
    runs along the slice normal. The in-plane extent grows to hold every shifted slice (outside the field of view:
    ``OUTSIDE_FOV_HU``). Returns ``(volume (n, rows', cols'), in-plane origin offset (u0, v0) mm along row/column
    directions, rows' )``."""
    n, rows, cols = hu.shape
    dr, dc = spacing_rc  # between rows (along col_dir), between columns (along row_dir)
    shift = geometry["dist"][:, None] * geometry["drift_mm_per_mm"][None, :]  # (n, 2) mm along (row_dir, col_dir)
    u = shift[:, 0]
    v = shift[:, 1]
    u0, v0 = float(min(u.min(), 0.0)), float(min(v.min(), 0.0))
    cols_out = int(np.ceil((max(u.max(), 0.0) - u0) / dc - 1e-6)) + cols
    rows_out = int(np.ceil((max(v.max(), 0.0) - v0) / dr - 1e-6)) + rows
    out = np.empty((n, rows_out, cols_out), np.int16)
    for k in range(n):
        offset = [(v0 - v[k]) / dr, (u0 - u[k]) / dc]  # output index + offset = source index
        plane = _shift_linear(hu[k].astype(np.float32), offset[0], rows_out, axis=0)
        plane = _shift_linear(plane, offset[1], cols_out, axis=1)
        out[k] = np.clip(np.rint(plane), -32768, 32767)
    return out, np.array([u0, v0]), rows_out


def _shift_linear(a: np.ndarray, offset: float, n_out: int, axis: int) -> np.ndarray:
    """``out[i] = a[i + offset]`` along ``axis`` for i in 0..n_out-1, linear between samples (one separable pass of
    the bilinear in-plane shift). Where ``i + offset`` lies outside the sampled field ``[0, n - 1]`` the output is
    ``OUTSIDE_FOV_HU``: no blend of the edge sample with the fill value, so the rim of the field keeps measured HU
    and everything beyond it is recognisably outside the field of view (as scipy's ``affine_transform`` with
    ``mode="constant"``, order 1)."""
    n = a.shape[axis]
    i0 = int(np.floor(offset))
    frac = np.float32(offset - i0)
    idx = np.arange(i0, i0 + n_out + 1)
    taken = np.take(a, np.clip(idx, 0, n - 1), axis=axis)
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(0, n_out), slice(1, n_out + 1)
    out = (1 - frac) * taken[tuple(lo)] + frac * taken[tuple(hi)]
    source = idx[:n_out] + float(frac)  # source coordinate of each output sample
    outside = (source < -1e-6) | (source > n - 1 + 1e-6)
    if outside.any():
        index = [slice(None)] * a.ndim
        index[axis] = outside
        out[tuple(index)] = OUTSIDE_FOV_HU
    return out


def volume_from_frames(folder: Path, frames: list[Frame]) -> tuple[sitk.Image, dict]:
    """int16 HU ``sitk.Image`` on an orthogonal grid from the frames of one series, and geometry facts
    (slice_spacing_mm, gantry_tilt_deg, tilt_corrected, frame order)."""
    geo = _geometry(folder, frames)
    ordered = [frames[i] for i in geo["order"]]
    hu = _decode(folder, ordered)
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
    thickness = _nominal_thickness(chosen)
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
        "transfer_syntax": _uid_name(str(getattr(ds0.file_meta, "TransferSyntaxUID", ""))),
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


def series_frames(folder: str | os.PathLike, series_uid: str | None = None) -> list[tuple[pydicom.Dataset, Frame]]:
    """Headers and frames of one series in ``folder`` in the order ``read_dicom_series`` stacks them (along the
    slice normal); stray files skipped. ``series_uid`` None: the folder must hold exactly one series."""
    found, _ = scan_folder(folder)
    if series_uid is None:
        if len(found) > 1:
            raise ScanError(f"{folder}: {len(found)} series found, give the series uid")
        series_uid = next(iter(found))
    if series_uid not in found:
        raise ScanError(f"{folder}: no DICOM files of series {series_uid}")
    s = found[series_uid]
    by_path = {p: d for p, d in s.files}
    frames = [f for p, d in s.files for f in frames_of(p, d)]
    normal = _normal(frames[0].orientation)
    frames.sort(key=lambda f: float(f.position @ normal))
    return [(by_path[f.path], f) for f in frames]


def folder_headers(*folders) -> list[pydicom.Dataset]:
    """Headers (no pixels) of every DICOM file in ``folders`` (paths that are not folders are ignored), every
    series included; a folder that cannot be scanned adds nothing."""
    out = []
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        try:
            found, _ = scan_folder(folder)
        except ScanError:
            continue
        out += [ds for s in found.values() for _, ds in s.files]
    return out


def series_table(info: dict, prefix: str, descriptions: bool = True) -> dict:
    """Flat columns for qc.csv / metadata.csv from a reader ``info`` (empty strings for NIfTI input);
    ``descriptions=False`` leaves out the SeriesDescription of each series (de-identified tables)."""
    sel = info.get("selection") or {}
    chosen = sel.get("chosen") or {}
    skipped = sel.get("skipped") or []
    desc = (lambda s: s.get("description", "")) if descriptions else (lambda s: "")  # noqa: E731
    return {f"{prefix}_series": (f"{chosen.get('series_number')} {desc(chosen)}".strip() if chosen else ""),
            f"{prefix}_series_reason": sel.get("reason", ""),
            f"{prefix}_series_skipped": "; ".join(f"{s.get('series_number')} {desc(s)}".strip()
                                                  + f": {s.get('reason', '')}" for s in skipped),
            f"{prefix}_stray_files": "; ".join(info.get("stray_files") or []),
            f"{prefix}_gantry_tilt_deg": info.get("gantry_tilt_deg", "") if info.get("source") == "dicom" else "",
            f"{prefix}_tilt_corrected": bool(info.get("tilt_corrected", False))}


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
