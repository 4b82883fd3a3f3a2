"""Which series of a DICOM folder is the scan: chosen by DICOM meaning, not by count (``choose_series``).

A series is skipped, with its reason, when it is not a CT image SOP class (dose reports, SR, presentation states,
SEG...), its modality is not CT, its ImageType marks it LOCALIZER / DERIVED / SECONDARY / MIP / MPR / VOLUME /
PROJECTION, it is not axial (slice normal more than ``MAX_AXIAL_DEG`` from the head-foot axis), or it covers less
than ``MIN_COVERAGE_MM`` of the head. Thin series (<= ``THIN_MAX_MM``) are preferred over thick ones (a thick series
is used only when no thin one qualifies). The qualifying series are grouped by acquisition (same acquisition start
time = several reconstructions of one scan); within an acquisition the reconstruction with a soft-tissue kernel
wins over a bone/sharp kernel, then the thinnest slices, then the most slices. Acquisitions are the phases of a
multiphase CTA, ordered by acquisition time. A tie, or several acquisitions where only one is expected (NCCT) or
that cannot be ordered (no acquisition time), raises ``AmbiguousSeriesError`` listing the series and how to pick
one (``pick=``, the ``--ncct-series/--cta-series`` flags).

Only headers are read here (``dicom_scan``), never pixel data. ``series_table`` flattens the record of a choice
into qc.csv / metadata.csv columns.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom

from dataset_conversion.dicom_scan import (CT_IMAGE_SOP_CLASSES, ScanError, SeriesInfo, as_list, frames_of,
                                           slice_normal, uid_name)

#: largest angle (degrees) between the slice normal and the patient's head-foot axis for an "axial" series
MAX_AXIAL_DEG = 35.0
#: thinnest coverage (mm along the slice normal) for a series to count as covering the head
MIN_COVERAGE_MM = 30.0
#: slices at most this thick (mm) count as thin (the method's limit, dataset_conversion.preprocess.MAX_SLICE_MM)
THIN_MAX_MM = 2.5
#: series whose acquisitions start within this many seconds are reconstructions of one acquisition
ACQUISITION_GAP_S = 1.0
#: ImageType / FrameType values that mark an image as not a primary axial acquisition
NON_PRIMARY_TYPES = ("LOCALIZER", "DERIVED", "SECONDARY", "MIP", "MPR", "VOLUME", "PROJECTION")
#: reconstruction kernels (or series descriptions) containing one of these words count as bone / sharp kernels
SHARP_KERNEL_WORDS = ("BONE", "SHARP", "LUNG", "EDGE", "DETAIL", "ULTRA", "SKULL", "INNER EAR", "IAC")
#: Siemens-style kernels (H70h, Hr64, J70s, Br59...) with this number or more count as sharp
SHARP_KERNEL_NUMBER = 50


class AmbiguousSeriesError(ScanError):
    """Several series qualify equally; the message lists them and how to choose one."""


def kernel_of(ds: pydicom.Dataset) -> str:
    """The ConvolutionKernel of a header as one string (values joined by a backslash); "" when absent."""
    return "\\".join(str(v) for v in as_list(getattr(ds, "ConvolutionKernel", None)))


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
    """Sorted positions (mm) of the series' frames along the slice normal."""
    n = slice_normal(series.frames[0].orientation)
    return np.sort(np.asarray([f.position @ n for f in series.frames]))


def coverage_mm(series: SeriesInfo) -> float:
    """Extent (mm) of the series along the slice normal, first to last frame."""
    along = _along(series)
    return float(along[-1] - along[0]) if len(along) else 0.0


def _spacing_mm(series: SeriesInfo) -> float:
    gaps = np.diff(_along(series))
    gaps = gaps[gaps > 1e-3]
    return float(np.median(gaps)) if gaps.size else 0.0


def nominal_thickness_mm(series: SeriesInfo) -> float:
    """Median SliceThickness (mm) of the frames; the median slice spacing when no frame states one."""
    thick = [f.thickness for f in series.frames if f.thickness]
    return float(np.median(thick)) if thick else _spacing_mm(series)


def series_summary(series: SeriesInfo) -> dict:
    """Plain-data description (no UIDs, no patient data) for reports and tables; thickness and coverage in mm."""
    ds = series.header
    sop = str(getattr(ds, "SOPClassUID", ""))
    out = {"series_number": series.number, "description": series.description,
           "sop_class": CT_IMAGE_SOP_CLASSES.get(sop) or uid_name(sop),
           "image_type": "\\".join(str(v) for v in as_list(getattr(ds, "ImageType", []))),
           "n_images": len(series.frames) or len(series.files)}
    if series.frames:
        out["kernel"] = kernel_of(ds)
        out["slice_thickness_mm"] = round(nominal_thickness_mm(series), 3)
        out["coverage_mm"] = round(coverage_mm(series), 1)
    if series.skip:
        out["reason"] = series.skip
    return out


def series_label(series: SeriesInfo) -> str:
    """One line naming the series for error messages: number, description, images, thickness (mm), kernel."""
    s = series_summary(series)
    bits = [f"series {s['series_number']}", repr(s["description"]) if s["description"] else "",
            f"{s['n_images']} images"]
    if "slice_thickness_mm" in s:
        bits.append(f"{s['slice_thickness_mm']:g} mm")
    if s.get("kernel"):
        bits.append(f"kernel {s['kernel']}")
    return " ".join(b for b in bits if b)


def _image_types(series: SeriesInfo) -> list[str]:
    """The ImageType values of every file of the series, upper case."""
    return [str(v).upper() for _, d in series.files for v in as_list(getattr(d, "ImageType", []))]


def _type_skip_reason(series: SeriesInfo) -> str | None:
    """Why the series' SOP class, modality or ImageType rule it out (headers only), or None."""
    ds = series.header
    sop = str(getattr(ds, "SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    if sop not in CT_IMAGE_SOP_CLASSES:
        return f"not a CT image ({uid_name(sop)})"
    modality = str(getattr(ds, "Modality", ""))
    if modality != "CT":
        return f"modality is {modality!r}, expected 'CT'"
    types = _image_types(series)
    bad = [t for t in NON_PRIMARY_TYPES if t in types]
    if bad:
        return f"ImageType {chr(92).join(as_list(ds.ImageType))}: {'/'.join(b.lower() for b in bad)} image"
    return None


def skip_reason(series: SeriesInfo) -> str | None:
    """Why ``series`` cannot be the scan (see the module doc), or None when it qualifies. Reads its frames into
    ``series.frames`` (left empty when its geometry is unreadable)."""
    reason = _type_skip_reason(series)
    if reason:
        return reason
    try:
        for path, d in series.files:
            series.frames += frames_of(path, d)
    except ScanError as exc:
        series.frames = []
        return f"unreadable geometry ({exc})"
    if len(series.frames) < len(series.files):
        series.frames = []
        return "no image position/orientation/pixel spacing (not a cross-sectional image)"
    n = slice_normal(series.frames[0].orientation)
    angle = float(np.degrees(np.arccos(min(1.0, abs(n[2])))))
    if angle > MAX_AXIAL_DEG:
        plane = "sagittal" if abs(n[0]) >= abs(n[1]) else "coronal"
        return f"not axial ({plane}-like: slice normal {angle:.0f} deg from the head-foot axis)"
    return _extent_reason(series)


def _extent_reason(series: SeriesInfo) -> str | None:
    """Why the series' frames are too few or too short to be a head volume, or None."""
    if len(series.frames) < 3:
        return f"only {len(series.frames)} image(s), not a volume"
    cover = coverage_mm(series)
    if cover < MIN_COVERAGE_MM:
        return f"covers only {cover:.1f} mm along the slice normal (< {MIN_COVERAGE_MM:g} mm: not the whole head)"
    return None


def _acq_start(series: SeriesInfo) -> float | None:
    times = [f.acq_seconds for f in series.frames if f.acq_seconds is not None]
    return min(times) if times else None


def _rank_key(series: SeriesInfo) -> tuple:
    """Sort key of reconstructions of one acquisition: soft kernel first, then thinnest, then most slices."""
    return (is_sharp_kernel(kernel_of(series.header), series.description), round(nominal_thickness_mm(series), 2),
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


def _by_number(series) -> list[SeriesInfo]:
    return sorted(series, key=lambda o: (o.number, o.uid))


def _record(chosen: SeriesInfo, reason: str, passed_over: list[SeriesInfo], **extra) -> dict:
    """The record of a choice: the chosen series, why, and every other series with its reason."""
    return {"chosen": series_summary(chosen), "reason": reason,
            "skipped": [series_summary(o) for o in _by_number(passed_over)], **extra}


def _not_a_head_volume(series: SeriesInfo) -> str | None:
    """Why a series cannot be a head scan even when the user names it (a localizer, fewer than 3 images, less
    than ``MIN_COVERAGE_MM`` of coverage), or None. Other skip reasons (a DERIVED reconstruction, a thick or
    oblique series) the user may override."""
    if "LOCALIZER" in _image_types(series):
        return "a localizer (scout) image"
    return _extent_reason(series)


def _choose_picked(folder: Path, series: dict[str, SeriesInfo], want: str, flag: str | None,
                   skipped: list[SeriesInfo], candidates: list[SeriesInfo]) -> tuple[SeriesInfo, dict]:
    """The series the user named (SeriesNumber or SeriesInstanceUID ``want``), even one the rule would skip."""
    hits = [s for s in series.values() if s.uid == want or str(s.number) == want]
    if not hits:
        raise ScanError(f"{folder}: no series {want!r} ({flag}); found " +
                        "; ".join(series_label(s) for s in sorted(series.values(), key=lambda s: s.number)))
    if len(hits) > 1:
        raise AmbiguousSeriesError(f"{folder}: {len(hits)} series are numbered {want}; give the "
                                   "SeriesInstanceUID instead: " +
                                   " or ".join(f"{flag or 'series'} {h.uid}" for h in hits))
    chosen = hits[0]
    if not chosen.frames:
        chosen.frames = [f for path, d in chosen.files for f in frames_of(path, d)]
    if chosen.skip and not chosen.frames:
        raise ScanError(f"{folder}: series {want} ({flag}) cannot be read as a volume: {chosen.skip}")
    not_a_head = _not_a_head_volume(chosen)
    if not_a_head:
        usable = [series_label(s) for s in _by_number(candidates)]
        raise ScanError(f"{folder}: series {want} ({flag}) is not a head volume: {not_a_head}; "
                        + (f"give {flag or 'the flag'} one of: " + "; ".join(usable) if usable
                           else "no series of this folder qualifies"))
    note = f"picked with {flag} {want}" + (f" although it would be skipped: {chosen.skip}" if chosen.skip else "")
    chosen.skip = None
    others = [s for s in candidates if s is not chosen]
    for s in others:
        s.skip = f"not the series picked ({flag or 'series'} {want})"
    skipped = [s for s in skipped if s is not chosen]
    return chosen, _record(chosen, note, skipped + others, n_phases=None, phase=None, note=note)


def _acquisitions(pool: list[SeriesInfo]) -> list[list[SeriesInfo]]:
    """``pool`` grouped by acquisition: series whose acquisition starts lie within ``ACQUISITION_GAP_S`` seconds
    of the previous one are reconstructions of one scan; a series without acquisition time is a group of its own."""
    groups: list[list[SeriesInfo]] = []
    for s in sorted((s for s in pool if _acq_start(s) is not None), key=_acq_start):
        if groups and _acq_start(s) - _acq_start(groups[-1][-1]) <= ACQUISITION_GAP_S:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups + [[s] for s in pool if _acq_start(s) is None]


def _best_reconstructions(folder: Path, pool: list[SeriesInfo], flag: str | None,
                          every: dict[str, SeriesInfo]) -> tuple[list[SeriesInfo], list[SeriesInfo]]:
    """The best reconstruction of each acquisition (``_rank_key``) and the others, marked skipped; a tie raises."""
    best, others = [], []
    for members in _acquisitions(pool):
        members.sort(key=_rank_key)
        if len(members) > 1 and _rank_key(members[0]) == _rank_key(members[1]):
            tied = [m for m in members if _rank_key(m) == _rank_key(members[0])]
            raise AmbiguousSeriesError(
                f"{folder}: {len(tied)} reconstructions of one acquisition qualify equally (" +
                "; ".join(series_label(m) for m in tied) + f"); {_pick_hint(flag, tied, every)}")
        for m in members[1:]:
            m.skip = (f"another reconstruction of the same acquisition is preferred (series {members[0].number}: "
                      "soft-tissue kernel, then thinnest slices, then most slices)")
        best.append(members[0])
        others += members[1:]
    return best, others


def _phases_in_time_order(folder: Path, best: list[SeriesInfo], multiphase: bool, flag: str | None,
                          every: dict[str, SeriesInfo]) -> list[SeriesInfo]:
    """One series per acquisition, ordered by acquisition time; raises when that order is unknown, or when
    several acquisitions qualify and only one is expected (``multiphase=False``)."""
    if len(best) > 1 and any(_acq_start(s) is None for s in best):
        raise AmbiguousSeriesError(f"{folder}: {len(best)} series qualify and not all have an acquisition time, "
                                   "so their order is unknown (" + "; ".join(series_label(s) for s in best) +
                                   f"); {_pick_hint(flag, best, every)}")
    phases = sorted(best, key=lambda s: (_acq_start(s), s.number))
    if not multiphase and len(phases) > 1:
        raise AmbiguousSeriesError(f"{folder}: {len(phases)} acquisitions qualify (" +
                                   "; ".join(series_label(s) for s in phases) + f"); {_pick_hint(flag, phases, every)}")
    return phases


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
    for s in _by_number(series.values()):
        s.frames = []
        s.skip = skip_reason(s)
        (skipped if s.skip else candidates).append(s)
    if pick is not None and str(pick) != "":
        return _choose_picked(folder, series, str(pick), flag, skipped, candidates)
    if not candidates:
        reasons = "; ".join(f"{series_label(s)}: {s.skip}" for s in skipped)
        raise ScanError(f"{folder}: no usable CT series ({reasons})")
    thin = [s for s in candidates if nominal_thickness_mm(s) <= THIN_MAX_MM + 1e-3]
    pool = thin or candidates
    others = [s for s in candidates if s not in pool]
    for s in others:
        s.skip = f"thicker slices ({nominal_thickness_mm(s):g} mm) than a thin series of the same folder"
    best, not_best = _best_reconstructions(folder, pool, flag, series)
    others += not_best
    phases = _phases_in_time_order(folder, best, multiphase, flag, series)
    n = len(phases)
    if phase is None:
        phase = 1 if n == 1 else 2
    if not 1 <= phase <= n:
        raise ScanError(f"{folder}: phase {phase} requested but the folder holds {n} qualifying series "
                        "(" + "; ".join(series_label(s) for s in phases) + ")")
    chosen = phases[phase - 1]
    for i, s in enumerate(phases, start=1):
        if s is not chosen:
            s.skip = f"CTA phase {i} of {n} (phase {phase} was taken)"
            others.append(s)
    reason = "the only qualifying series" if n == 1 and len(pool) == 1 else (
        "best reconstruction of the only acquisition" if n == 1 else f"phase {phase} of {n} by acquisition time")
    if not thin:
        reason += " (no thin series: thick slices)"
    note = f"{n} phases found; took the later one" if n == 2 and phase == 2 else ""
    return chosen, _record(chosen, reason, skipped + others, n_phases=n, phase=phase, note=note)


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
