"""Minimal de-identified copies of source headers for any DICOM writer (``deidentify_sources``), the mapping that
goes with them, and the refusal of sources with burned-in text."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from nnunet_thrombus import __version__
from nnunet_thrombus.deidentify.errors import DeidentificationError
from nnunet_thrombus.deidentify.key import DeidKey, patient_identity, shift_date
from nnunet_thrombus.deidentify.profile import (FUNCTIONAL_GROUPS_KEEP, GEOMETRY_KEYWORDS, IDENTITY_ACTIONS, OWN_DATES,
                                                OWN_TIMES, PROFILE_CODES)

#: SOP class UIDs whose pixels are secondary captures (text burned in by design): refused
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class DeidentifiedSources:
    """Minimal de-identified copies of a series' headers and the key-derived mapping any DICOM writer applies.

    datasets: one minimal ``pydicom.Dataset`` per source, same order; uids: {source UID: new UID} for every UID
    replaced; shift_days: how far this patient's dates moved back; pseudonym: PatientName/PatientID written."""

    datasets: list
    key: DeidKey
    pseudonym: str
    shift_days: int
    uids: dict = field(default_factory=dict)

    def uid(self, old: str) -> str:
        """The key's new UID for ``old`` (recorded in ``uids``)."""
        new = self.key.uid(old)
        if new != str(old):
            self.uids[str(old)] = new
        return new

    def date(self, value: str) -> str:
        return shift_date(value, self.shift_days)

    def contributing_equipment(self) -> list:
        """[highdicom ``ContributingEquipment``] naming this package as the de-identifying equipment (DCM
        DeIdentifyingEquipment), for a highdicom writer's ``contributing_equipment`` argument."""
        import highdicom as hd  # loads in about a second; only the SEG/SR writers need it

        return [hd.ContributingEquipment("nnunet_thrombus", codes.DCM.DeIdentifyingEquipment,
                                         software_versions=__version__,
                                         contribution_description="PS3.15 Basic Profile by allow-list")]

    def stamp(self, ds, today: datetime.date | None = None) -> None:
        """Mark a finished output ``ds`` as de-identified: its own creation dates (``OWN_DATES``, contributing
        equipment's ContributionDateTime) shifted like the sources' (so "made today" does not reveal the shift),
        times 000000, PatientIdentityRemoved, DeidentificationMethod and
        its code sequence, LongitudinalTemporalInformationModified; file meta follows the SOP instance UID."""
        now = (today or datetime.date.today()).strftime("%Y%m%d")
        for key in OWN_DATES:
            if key in ds:
                ds[key].value = self.date(now)
        for key in OWN_TIMES:
            if key in ds:
                ds[key].value = "000000"
        for item in ds.get("ContributingEquipmentSequence", []):  # highdicom dates its own contribution "now"
            if "ContributionDateTime" in item:
                item.ContributionDateTime = self.date(now) + "000000"
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = ["nnunet_thrombus allow-list", "PS3.15 Basic Profile",
                                     "dates shifted by a keyed offset", "UIDs replaced by keyed UIDs"]
        items = []
        for value, meaning in PROFILE_CODES:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        if getattr(ds, "file_meta", None) is not None and "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _copy_functional_groups(src_items, keep: dict):
    out = []
    for item in src_items:
        new = Dataset()
        for seq_name, attrs in keep.items():
            if seq_name in item and len(item[seq_name].value):
                sub = Dataset()
                for a in attrs:
                    if a in item[seq_name].value[0]:
                        sub[a] = item[seq_name].value[0][a]
                setattr(new, seq_name, Sequence([sub]))
        out.append(new)
    return Sequence(out)


def minimal_source(ds, key: DeidKey, pseudonym: str, shift_days: int, uids: dict | None = None):
    """A new ``pydicom.Dataset`` holding only ``GEOMETRY_KEYWORDS`` of ``ds`` (and, for an enhanced multi-frame
    image, its plane geometry functional groups) plus the identity attributes of ``IDENTITY_ACTIONS`` replaced.
    ``uids``: dict collecting {old: new} (optional)."""
    out = Dataset()
    for keyword in GEOMETRY_KEYWORDS:
        if keyword in ds:
            out[keyword] = copy.deepcopy(ds[keyword])
    for name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if name in ds:
            setattr(out, name, _copy_functional_groups(ds[name].value, FUNCTIONAL_GROUPS_KEEP))
    for keyword, action in IDENTITY_ACTIONS.items():
        value = str(getattr(ds, keyword, "") or "")
        if action == "pseudonym":
            new = pseudonym + "^" if keyword == "PatientName" else pseudonym  # "^": a family name, not ambiguous
        elif action == "uid":
            if not value:
                continue
            new = key.uid(value)
            if uids is not None and new != value:
                uids[value] = new
        elif action == "date":
            new = shift_date(value, shift_days)
        elif action == "time":
            new = "000000" if value else ""
        else:
            new = ""
        setattr(out, keyword, new)
    return out


def refuse_burned_in(datasets, where: str = "") -> None:
    """``DeidentificationError`` when a source may carry text in its pixels: ``BurnedInAnnotation`` YES, or a
    secondary capture. Cleaning pixel data is out of scope, so such a series is refused, never passed."""
    for ds in datasets:
        sop = str(getattr(ds, "SOPClassUID", "") or "")
        flag = str(getattr(ds, "BurnedInAnnotation", "") or "").strip().upper()
        if flag == "YES" or sop.startswith(_SECONDARY_CAPTURE_PREFIX):
            what = "is flagged BurnedInAnnotation YES" if flag == "YES" else "is a secondary capture"
            raise DeidentificationError(
                f"{where + ': ' if where else ''}a source image {what}: text in the pixels cannot be removed by "
                "this de-identification (out of scope); export the series without burned-in annotations or "
                "run without --anonymize")


def deidentify_sources(datasets, key: DeidKey, pseudonym: str) -> DeidentifiedSources:
    """De-identified minimal copies of ``datasets`` (the headers of one series, any order kept) for a DICOM writer.

    pseudonym: PatientName and PatientID of the copies (the case id). The date shift is the key's shift of the
    first source's patient (``patient_identity``). Raises ``DeidentificationError`` for burned-in text."""
    datasets = list(datasets)
    if not datasets:
        raise ValueError("deidentify_sources needs at least one source header")
    refuse_burned_in(datasets)
    shift = key.shift_days(patient_identity(datasets[0]))
    uids: dict = {}
    copies = [minimal_source(ds, key, pseudonym, shift, uids) for ds in datasets]
    return DeidentifiedSources(copies, key, pseudonym, shift, uids)
