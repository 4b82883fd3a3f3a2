"""Sort the CT series of one study into the patient folder predict reads (``NCCT/`` and ``CTA/``).

A PACS sends a study as a bag of series; predict wants the non-contrast and the contrast scans apart, then chooses
within each folder by meaning (``dataset_conversion.series_policy``: localizers, MIPs, dose reports, thick or sharp
reconstructions are skipped there). This module makes the first cut, per series, from its header:

1. a series that is not a CT image (SEG, SR, dose report, presentation state...) is left out;
2. a contrast agent in the header (ContrastBolusAgent or its code sequence) makes it a CTA;
3. else the series description decides: words of a non-contrast scan (``NON_CONTRAST_WORDS``) make it an NCCT,
   then words of an angiogram (``CONTRAST_WORDS``);
4. a series neither rule places is the non-contrast scan when the study names a CTA and no NCCT (a localizer or
   other non-primary image is left out instead); otherwise it is left out when both scans are named, and an error
   naming it when one is missing, so a node never guesses which scan carries contrast.

``split_study`` returns the record of that cut (which series went where and why), logged and kept by the node.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

#: SOP classes of CT images (single-frame, enhanced, legacy converted enhanced)
CT_IMAGE_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")
#: description words of a non-contrast scan (checked first: "non-contrast" contains "contrast")
NON_CONTRAST_WORDS = ("NCCT", "NON CONTRAST", "NONCONTRAST", "NON-CONTRAST", "NONCON", "WITHOUT CONTRAST", "W/O",
                      "PLAIN", "NATIVE", "UNENHANCED", "C-")
#: description words of a contrast-enhanced angiogram
CONTRAST_WORDS = ("CTA", "ANGIO", "ARTERIAL", "CONTRAST", "C+", "POST")


class StudyLayoutError(ValueError):
    """A study whose series cannot be sorted into NCCT and CTA; the message names the series and the fix."""


@dataclass
class SeriesChoice:
    """Where one series of the study went: ``scan`` is "NCCT", "CTA" or None (left out), with the reason."""

    series_uid: str
    number: int | None
    description: str
    scan: str | None
    reason: str
    files: list = field(default_factory=list)
    non_primary: str = ""


def _words(description: str) -> str:
    return " " + re.sub(r"[_\s]+", " ", description.upper()) + " "


def _has_word(text: str, words) -> str | None:
    for w in words:
        if re.search(r"(?<![A-Z0-9])" + re.escape(w) + r"(?![A-Z0-9])", text):
            return w
    return None


def classify_series(header) -> tuple[str | None, str]:
    """("NCCT" | "CTA" | None, reason) for one series from the header of one of its instances."""
    sop = str(getattr(header, "SOPClassUID", ""))
    modality = str(getattr(header, "Modality", ""))
    if sop not in CT_IMAGE_SOP_CLASSES or modality != "CT":
        return None, f"not a CT image (modality {modality or '?'}, SOP class {sop or '?'})"
    agent = str(getattr(header, "ContrastBolusAgent", "") or "").strip()
    if agent or len(getattr(header, "ContrastBolusAgentSequence", []) or []):
        return "CTA", f"contrast agent in the header ({agent or 'ContrastBolusAgentSequence'})"
    text = _words(str(getattr(header, "SeriesDescription", "") or ""))
    word = _has_word(text, NON_CONTRAST_WORDS)
    if word:
        return "NCCT", f"no contrast agent in the header; description says {word!r}"
    word = _has_word(text, CONTRAST_WORDS)
    if word:
        return "CTA", f"description says {word!r} (no contrast agent recorded)"
    return "NCCT?", "no contrast agent in the header and a description that names neither scan"


def split_study(series: dict, case_dir) -> list[SeriesChoice]:
    """Copy-free sort: move the files of each series of ``series`` ({series uid: [file paths]}, all of one study)
    into ``case_dir/NCCT/<n>/`` or ``case_dir/CTA/<n>/``; returns one ``SeriesChoice`` per series.

    Raises ``StudyLayoutError`` when no series is a CTA or none is an NCCT, or when a CT image series is neither
    (list of the series and of the header values that would place them)."""
    case_dir = Path(case_dir)
    choices = []
    for uid, files in sorted(series.items()):
        head = pydicom.dcmread(str(files[0]), stop_before_pixels=True)
        scan, reason = classify_series(head)
        number = getattr(head, "SeriesNumber", None)
        types = [str(t).upper() for t in (getattr(head, "ImageType", None) or [])]
        odd = "/".join(t for t in types if t in ("LOCALIZER", "DERIVED", "SECONDARY", "MIP", "MPR", "PROJECTION"))
        choices.append(SeriesChoice(uid, None if number in (None, "") else int(number),
                                    str(getattr(head, "SeriesDescription", "") or ""), scan, reason, list(files),
                                    odd))
    for c in choices:
        if c.scan == "NCCT?" and c.non_primary:
            c.scan, c.reason = None, f"ImageType {c.non_primary}: not a primary axial scan"
    unsure = [c for c in choices if c.scan == "NCCT?"]
    has = {scan: any(c.scan == scan for c in choices) for scan in ("NCCT", "CTA")}
    for c in unsure:
        if has["CTA"] and not has["NCCT"]:  # beside a named CTA, the unlabelled series are the non-contrast scan
            c.scan, c.reason = "NCCT", c.reason + "; taken as the non-contrast scan beside the CTA"
        elif has["CTA"] and has["NCCT"]:
            c.scan, c.reason = None, c.reason + "; not needed (both scans are named)"
    label = lambda c: f"series {c.number} {c.description!r} ({c.reason})"  # noqa: E731
    unsure = [c for c in choices if c.scan == "NCCT?"]
    if unsure:
        raise StudyLayoutError("cannot tell which scan these series are: " + "; ".join(label(c) for c in unsure)
                               + ". Set ContrastBolusAgent on the CTA, or describe the series (NCCT / CTA)")
    for scan in ("NCCT", "CTA"):
        if not any(c.scan == scan for c in choices):
            raise StudyLayoutError(f"the study holds no {scan} series: " + "; ".join(label(c) for c in choices))
    for k, c in enumerate(choices):
        if c.scan not in ("NCCT", "CTA"):
            continue
        folder = case_dir / c.scan / f"series{k:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(c.files):
            target = folder / f"IM{i:05d}.dcm"
            Path(path).replace(target)
            c.files[i] = target
    return choices
