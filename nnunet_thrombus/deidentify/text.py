"""Identifying values of source headers and the text checks built on them: redaction of free text (errors,
reports), leak detection in written bytes, and the per-case refusals run before anything is written."""
from __future__ import annotations

import re

from pydicom.uid import UID_dictionary

from nnunet_thrombus.deidentify.errors import DeidentificationError
from nnunet_thrombus.deidentify.profile import BASIC_PROFILE
from nnunet_thrombus.deidentify.sources import refuse_burned_in

#: values shorter than this are not searched for in free text (a sex "F" or a slice count would match anywhere)
MIN_REDACT_LENGTH = 4
REDACTED = "[removed]"


def _element_items(elem) -> list:
    """The values of a DICOM element, one per item of a multi-valued element."""
    value = elem.value
    return list(value) if isinstance(value, (list, tuple)) or getattr(elem, "VM", 1) > 1 else [value]


def _values_of(elem) -> list[str]:
    out = []
    for v in _element_items(elem):
        if v is None or isinstance(v, (bytes, bytearray)):
            continue
        text = str(v).strip()
        if text:
            out.append(text)
            if elem.VR == "PN":  # each name component on its own too
                out += [p.strip() for p in re.split(r"[\^=]", text) if p.strip()]
    return out


def identifying_values(datasets) -> set[str]:
    """Every text value in ``datasets`` that the profile acts on: attributes of ``BASIC_PROFILE`` (except the SOP
    class), everything nested in a sequence the profile lists, and private elements. UIDs included, except those
    the DICOM standard defines (a SOP class UID identifies nobody); short coded strings (YES, NO) left out."""
    found: set[str] = set()

    def walk(d, inside: bool) -> None:
        for elem in d:
            listed = elem.keyword in BASIC_PROFILE or elem.tag.is_private or inside
            if elem.VR == "SQ":
                for item in elem.value or []:
                    walk(item, listed)
            elif listed and elem.VR not in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "US", "SS", "UL", "SL",
                                             "FL", "FD"):
                found.update(v for v in _values_of(elem) if not (elem.VR == "UI" and v in UID_dictionary)
                             and not (elem.VR == "CS" and len(v) < MIN_REDACT_LENGTH))  # YES, NO, M, F
            elif listed and elem.VR == "UN" and isinstance(elem.value, bytes):
                text = elem.value.decode("latin-1", "replace").strip("\x00 ")
                if text:
                    found.add(text)

    for ds in datasets:
        walk(ds, False)
        if getattr(ds, "file_meta", None) is not None:
            walk(ds.file_meta, False)
    return found


def check_case_sources(case_id: str, headers, read_series_uids) -> frozenset:
    """Before any output of a case is written: ``identifying_values`` of all its ``headers``, after refusing
    (``DeidentificationError``) a read series (``read_series_uids``) that may carry burned-in text, and a case id
    (usually the folder name) that contains one of those values (a folder named after the patient ID)."""
    wanted = {str(u) for u in read_series_uids if u}
    refuse_burned_in([ds for ds in headers if str(getattr(ds, "SeriesInstanceUID", "")) in wanted],
                     where=f"case {case_id}")
    values = frozenset(identifying_values(headers))
    lowered = case_id.lower()
    if any(len(v) >= MIN_REDACT_LENGTH and v.lower() in lowered for v in values):
        raise DeidentificationError(f"case {case_id}: the case id (its folder name) contains an identifying "
                                    "header value (patient name, ID, accession number...); rename the folder to a "
                                    "neutral id for --anonymize")
    return values


def _searchable(values) -> list[str]:
    return sorted({v for v in values if len(v) >= MIN_REDACT_LENGTH}, key=len, reverse=True)


def redact(text: str, values) -> str:
    """``text`` with every value of ``values`` replaced by ``[removed]``, longest first (a full name goes before
    its parts): values of at least ``MIN_REDACT_LENGTH`` characters wherever they occur, shorter alphabetic ones
    (a two- or three-letter name component) only as whole words."""
    for v in _searchable(values):
        if v in text:
            text = text.replace(v, REDACTED)
    for v in sorted({v for v in values if 2 <= len(v) < MIN_REDACT_LENGTH and v.isalpha()}, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z]){re.escape(v)}(?![A-Za-z])", REDACTED, text)
    return text


def redact_tree(obj, values):
    """A JSON-like structure (dicts, lists, strings, numbers) with every string passed through ``redact``."""
    if isinstance(obj, str):
        return redact(obj, values)
    if isinstance(obj, dict):
        return {redact(str(k), values) if isinstance(k, str) else k: redact_tree(v, values) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_tree(v, values) for v in obj)
    return obj


def leaked_values(data: bytes, values) -> list[str]:
    """The values of ``values`` (at least ``MIN_REDACT_LENGTH`` characters) found in ``data`` as UTF-8 bytes."""
    return [v for v in _searchable(values) if v.encode("utf-8", "replace") in data]


#: a written date/time value of this form is split into its date and its time instead of searched as text
_DATE_TIME = re.compile(r"^(\d{8})?(\d{2,6})?(\.\d{1,6})?([+-]\d{4})?$")


def _temporal_parts(text: str) -> set[str]:
    """A DA, TM or DT value as the parts a source date or time could equal: the whole value, its YYYYMMDD date and
    its time as hhmmss (``1015`` read as ``101500``; fraction and UTC offset dropped). A time of 000000 is left out:
    it is the constant ``DeidentifiedSources.stamp`` writes, and midnight identifies nobody. An empty set for text
    that is not a date or time."""
    text = text.strip()
    match = _DATE_TIME.match(text)
    if not text or match is None:
        return set()
    date, time = match.group(1), match.group(2)
    parts = {text, date, time.ljust(6, "0") if time else None}
    return {p for p in parts if p and p.strip("0")}


def _temporal_leak(elem, source_parts: set[str]) -> bool:
    """A DA/TM/DT element equals, as a whole or in its date or time, one of ``source_parts`` (the sources' values
    split by ``_temporal_parts``). Compared by parts, not as a substring: the digits of a shifted date and a time of
    000000 may spell a source time by chance (``20231015`` + ``000000`` holds ``101500``)."""
    return any(_temporal_parts(str(v)) & source_parts for v in _element_items(elem))


def dataset_leaks(ds, sources) -> list[str]:
    """Keywords (or tags) of the elements of a written dataset ``ds`` whose text contains a value the profile
    removes from ``sources``, or whose UID is one of theirs (whole UIDs: a date's digits may occur inside a new
    2.25 UID by chance). Dates and times (DA, TM, DT) are compared by their date and time parts, not as text
    (``_temporal_leak``). Pixel data and other binary values are not searched."""
    values = identifying_values(sources)
    source_parts = set().union(*(_temporal_parts(v) for v in values))
    where = set()
    for elem in ds.iterall():
        if elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.value is None:
            continue
        if elem.VR == "UI":
            if any(str(v) in values for v in _element_items(elem)):
                where.add(elem.keyword or str(elem.tag))
        elif elem.VR in ("DA", "TM", "DT"):
            if _temporal_leak(elem, source_parts):
                where.add(elem.keyword or str(elem.tag))
        elif leaked_values(str(elem.value).encode("utf-8", "replace"), values):
            where.add(elem.keyword or str(elem.tag))
    return sorted(where)
