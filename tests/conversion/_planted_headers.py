"""DICOM headers carrying a distinct planted value in every attribute of PS3.15 Table E.1-1 (as
``nnunet_thrombus.deidentify.BASIC_PROFILE`` encodes it), for the de-identification tests.

``plant_folder`` rewrites every file of a DICOM folder with those values (the pixels and geometry untouched) plus
a private element with a person's name and a BurnedInAnnotation flag; it returns the planted text values, which
no de-identified output may contain, whole or as a substring.
"""
from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

#: attributes left as the source has them: the reader needs them to build the volume (they are checked anyway: the
#: source's own UIDs and dates are added to the planted values by ``plant_folder``)
KEEP = {"SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
        "MediaStorageSOPInstanceUID", "DataSetTrailingPadding", "IconImageSequence", "DigitalSignaturesSequence"}
PRIVATE_CREATOR = "PLANTED VENDOR"
PRIVATE_NAME = "PRIVATEPERSON^HIDDEN"


def planted_value(keyword: str, i: int):
    """A distinct, valid value of ``keyword``'s VR (``i``: its index); None for a VR not planted."""
    vr = dictionary_VR(tag_for_keyword(keyword))
    if vr == "PN":
        return f"PLANTFAM{i:03d}^PLANTGIV{i:03d}"
    if vr == "DA":
        return f"19{30 + i % 60:02d}{1 + i % 12:02d}{1 + i % 27:02d}"
    if vr == "TM":
        return f"{i % 24:02d}{(7 * i) % 60:02d}{(13 * i) % 60:02d}.{100 + i:03d}"
    if vr == "DT":
        return f"19{30 + i % 60:02d}{1 + i % 12:02d}{1 + i % 27:02d}{i % 24:02d}{(7 * i) % 60:02d}17"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.8.498.7{i:04d}3{i:04d}1"
    if vr == "AS":
        return "067Y"
    if vr == "DS":
        return f"{60 + i}.{100 + i:03d}7"
    if vr in ("US", "SS", "UL", "SL"):
        return 4
    if vr in ("CS", "SH", "AE", "LO", "LT", "ST", "UT", "UC"):
        return f"ZQ{i:03d}PLANT"
    return None


def _item(i: int) -> Dataset:
    """One sequence item: a coded entry and a reference, all planted."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = f"ZQ{i:03d}CODE", "99PLANT", f"ZQ{i:03d}MEANING"
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.8{i:04d}9"
    return item


def _request_item(i: int) -> Dataset:
    """A RequestAttributesSequence item as a RIS fills it."""
    item = Dataset()
    item.RequestedProcedureID, item.ScheduledProcedureStepID = f"ZQ{i:03d}REQID", f"ZQ{i:03d}SPSID"
    item.AccessionNumber, item.RequestedProcedureDescription = f"ZQ{i:03d}ACCREQ", f"ZQ{i:03d}REQDESC"
    item.ReasonForTheRequestedProcedure = f"ZQ{i:03d}REQREASON"
    return item


def plant(ds: Dataset, profile: dict) -> None:
    """Put a planted value in every attribute of ``profile`` (except ``KEEP``) into ``ds``, in place."""
    for i, keyword in enumerate(sorted(profile)):
        if keyword in KEEP:
            continue
        vr = dictionary_VR(tag_for_keyword(keyword))
        if vr == "SQ":
            items = [_request_item(i)] if keyword == "RequestAttributesSequence" else [_item(i)]
            setattr(ds, keyword, Sequence(items))
            continue
        value = "O" if keyword == "PatientSex" else planted_value(keyword, i)  # enumerated: M, F or O
        if value is not None:
            setattr(ds, keyword, value)
    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", PRIVATE_NAME)
    block.add_new(0x11, "LT", "ZQPRIVATE free text about the patient")
    ds.BurnedInAnnotation = "NO"


def text_values(ds: Dataset, profile: dict) -> set[str]:
    """Text values of ``ds`` in attributes of ``profile`` (at any depth) and in private elements; each person
    name also by its components."""
    out: set[str] = set()

    def walk(d: Dataset, inside: bool) -> None:
        for elem in d:
            listed = inside or elem.keyword in profile or elem.tag.is_private
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item, listed)
            elif listed and isinstance(elem.value, (str, pydicom.valuerep.PersonName)) and str(elem.value):
                text = str(elem.value)
                out.add(text)
                if elem.VR == "PN":
                    out.update(p for p in text.split("^") if p)
            elif listed and isinstance(elem.value, (list, pydicom.multival.MultiValue)):
                out.update(str(v) for v in elem.value if str(v))
    walk(ds, False)
    walk(ds.file_meta, False)
    return out


def plant_folder(src: Path, dst: Path, profile: dict) -> set[str]:
    """Copy every DICOM file of ``src`` to ``dst`` (same relative paths) with ``plant`` applied; returns every
    planted or source-identifying text value (at least 4 characters) of the written files."""
    values: set[str] = set()
    for path in sorted(p for p in Path(src).rglob("*") if p.is_file()):
        ds = pydicom.dcmread(str(path))
        plant(ds, profile)
        out = Path(dst) / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(str(out), enforce_file_format=True)
        values |= text_values(ds, profile)
    from pydicom.uid import UID_dictionary

    return {v for v in values if len(v) >= 4 and v not in UID_dictionary}  # a SOP class UID identifies nobody
