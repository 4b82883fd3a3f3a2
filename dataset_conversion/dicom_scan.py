"""Finding the DICOM files of a folder and reading their headers: the first step of ``ct_reader.read_dicom_series``.

``scan_folder`` looks at every file under a folder (searched recursively): anything without the DICOM file
signature ("DICM" at byte 128: README.TXT, VERSION, Thumbs.db, ...) and DICOMDIR files are stray files, listed
and skipped; a file that carries the signature but cannot be parsed fails the scan with the file named. The rest
are grouped by SeriesInstanceUID into ``SeriesInfo`` records (headers only, no pixel data). ``frames_of`` turns one
file's header into its image planes (``Frame``: position and orientation in mm, LPS; pixel spacing in mm; the
rescale to HU), for classic single-frame CT and for enhanced / legacy-converted multi-frame CT alike.

All problems raise ``ScanError`` (a ``ValueError``) whose message names the folder or file and the problem.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

CT_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


class ScanError(ValueError):
    """A scan that cannot be used; the message says which file/folder and why."""


@dataclass
class Frame:
    """One image plane: where it lies (mm, LPS) and how to get its HU."""

    path: Path
    index: int | None  # 0-based frame number inside a multi-frame file; None for a single-frame file
    position: np.ndarray  # (3,) ImagePositionPatient mm: centre of the first (top-left) pixel
    orientation: np.ndarray  # (6,) row direction (along a row, +column index), column direction (+row index)
    spacing_rc: tuple[float, float]  # PixelSpacing: (between rows, between columns) mm
    rows: int
    cols: int
    slope: float  # RescaleSlope: HU per stored value
    intercept: float  # RescaleIntercept, HU
    thickness: float | None  # SliceThickness, mm
    acq_seconds: float | None  # acquisition time of day, seconds (None when the file has none)


@dataclass
class SeriesInfo:
    """One series found in a folder: its files' headers, and (once read for choosing) its frames and the reason
    it was skipped."""

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


def uid_name(uid: str) -> str:
    """The registered name of a DICOM UID (a SOP class, a transfer syntax), else the UID itself."""
    try:
        return pydicom.uid.UID(uid).name or uid
    except Exception:  # a malformed UID: show it as it is
        return uid


def as_list(value) -> list:
    """A multi-valued DICOM attribute (or a backslash-separated string) as a list; None -> []."""
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


def _multiframe_frames(path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """The frames of an enhanced / legacy-converted CT file: per-frame functional groups over the shared ones."""
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


def frames_of(path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """The image planes of one file: one for a classic CT image, one per frame for an enhanced CT; none for a file
    without plane position, orientation or pixel spacing."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _multiframe_frames(path, ds)
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


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """(3,) unit normal of the slice plane (row direction x column direction) from a (6,) ImageOrientationPatient."""
    n = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise ScanError(f"ImageOrientationPatient {list(orientation)} has parallel row and column directions")
    return n / norm


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


def series_frames(folder: str | os.PathLike, series_uid: str | None = None) -> list[tuple[pydicom.Dataset, Frame]]:
    """Headers and frames of one series in ``folder`` in the order ``ct_reader.read_dicom_series`` stacks them
    (along the slice normal); stray files skipped. ``series_uid`` None: the folder must hold exactly one series."""
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
    normal = slice_normal(frames[0].orientation)
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
