"""De-identification by allow-list, after DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile).

Two ideas, each with one owner here:

- **Allow-list.** A DICOM writer (the SEG, any other object derived from a CT series) is fed *minimal copies* of
  the source headers (``deidentify_sources``): geometry and pixel description copied, patient and study identity
  replaced as the profile says, and nothing else. Every attribute not named in ``GEOMETRY_KEYWORDS`` /
  ``IDENTITY_ACTIONS`` (private tags, free text, request sequences, equipment, operators, ...) is absent by
  construction, so a scanner or RIS attribute nobody listed cannot slip through.
- **Secret-keyed mapping.** ``DeidKey`` holds a random secret; new UIDs and the date shift are HMAC-SHA256 values
  of that secret, so the same source UID maps to the same new UID under one key (a SEG still references the same
  de-identified study across runs), and nobody without the key can recompute the mapping from a case id. Keep the
  key file to re-link outputs to their sources; delete it to make the link one-way.

Non-DICOM outputs (reports, tables, logs) take no header value by design; ``identifying_values`` lists the values
the profile acts on in the source headers so that ``redact`` / ``redact_tree`` / ``leaked_values`` can prove it
(and scrub free text such as error messages). Writers call ``DeidentifiedSources.stamp`` on their finished
dataset to record the profile and options applied (PS3.15 Table CID 7050 codes).

Out of scope, and refused rather than passed: pixel data with burned-in text (``refuse_burned_in``: a source
flagged ``BurnedInAnnotation`` YES, or a secondary capture).
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

#: default name of the key file written beside the outputs when the user names none
KEY_FILE_NAME = "deid_key.txt"
_KEY_HEADER = "nnunet_thrombus de-identification key v1"
#: how far back dates move (days, inclusive range); one shift per source patient under one key
DATE_SHIFT_DAYS = (365, 3650)

#: PS3.15 Table E.1-1 (Basic Profile) action codes for the attributes a CT image or its request/visit data can
#: carry: X remove, Z empty (Type 2), D dummy value, U replace UID, and the combined codes the table gives.
#: The allow-list below does not *need* this table (absent by construction); it is used to list the identifying
#: values of a source (``identifying_values``), to plant them in tests and for the documentation.
BASIC_PROFILE = {
    "AccessionNumber": "Z", "AcquisitionComments": "X", "AcquisitionContextSequence": "X",
    "AcquisitionDate": "X/Z", "AcquisitionDateTime": "X/Z/D", "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionProtocolDescription": "X", "AcquisitionTime": "X/Z", "AcquisitionUID": "U",
    "ActualHumanPerformersSequence": "X", "AdditionalPatientHistory": "X", "AdmissionID": "X",
    "AdmittingDate": "X", "AdmittingDiagnosesCodeSequence": "X", "AdmittingDiagnosesDescription": "X",
    "AdmittingTime": "X", "Allergies": "X", "AuthorObserverSequence": "X", "BranchOfService": "X",
    "ConcatenationUID": "U", "ContentCreatorName": "Z", "ContentDate": "Z/D", "ContentTime": "Z/D",
    "ContrastBolusAgent": "Z/D", "ContributionDescription": "X", "CountryOfResidence": "X",
    "CurrentPatientLocation": "X", "CustodialOrganizationSequence": "X", "DataSetTrailingPadding": "X",
    "DerivationDescription": "X", "DetectorID": "X/D", "DeviceDescription": "X", "DeviceSerialNumber": "X/Z/D",
    "DeviceUID": "U", "DigitalSignaturesSequence": "X", "DimensionOrganizationUID": "U",
    "DischargeDiagnosisDescription": "X", "EthnicGroup": "X", "FillerOrderNumberImagingServiceRequest": "Z",
    "FrameAcquisitionDateTime": "X/D", "FrameComments": "X", "FrameOfReferenceUID": "U",
    "FrameReferenceDateTime": "X/D", "GantryID": "X/Z/D", "GeneratorID": "X/Z/D", "IconImageSequence": "X",
    "IdentifyingComments": "X", "ImageComments": "X", "ImagingServiceRequestComments": "X",
    "InstanceCreationDate": "X/D", "InstanceCreationTime": "X/Z/D", "InstanceCreatorUID": "U",
    "InstitutionAddress": "X", "InstitutionCodeSequence": "X/Z/D", "InstitutionName": "X/Z/D",
    "InstitutionalDepartmentName": "X", "InstitutionalDepartmentTypeCodeSequence": "X",
    "IrradiationEventUID": "U", "IssuerOfAdmissionIDSequence": "X", "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeIDSequence": "X", "LastMenstrualDate": "X", "MediaStorageSOPInstanceUID": "U",
    "MedicalAlerts": "X", "MedicalRecordLocator": "X", "MilitaryRank": "X", "ModifiedAttributesSequence": "X",
    "NameOfPhysiciansReadingStudy": "X", "Occupation": "X", "OperatorIdentificationSequence": "X",
    "OperatorsName": "X/Z/D", "OriginalAttributesSequence": "X", "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X", "PatientAddress": "X", "PatientAge": "X", "PatientBirthDate": "Z",
    "PatientBirthName": "X", "PatientBirthTime": "X", "PatientComments": "X", "PatientID": "Z",
    "PatientInstitutionResidence": "X", "PatientInsurancePlanCodeSequence": "X", "PatientMotherBirthName": "X",
    "PatientName": "Z", "PatientPrimaryLanguageCodeSequence": "X", "PatientReligiousPreference": "X",
    "PatientSex": "Z", "PatientSexNeutered": "X/Z", "PatientSize": "X", "PatientState": "X",
    "PatientTelephoneNumbers": "X", "PatientTransportArrangements": "X", "PatientWeight": "X",
    "PerformedLocation": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X", "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedStationAETitle": "X", "PerformedStationName": "X",
    "PerformingPhysicianIdentificationSequence": "X", "PerformingPhysicianName": "X",
    "PhysiciansOfRecord": "X", "PhysiciansOfRecordIdentificationSequence": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "PlacerOrderNumberImagingServiceRequest": "Z",
    "PreMedication": "X", "PregnancyStatus": "X", "ProtocolName": "X/D", "ReasonForStudy": "X",
    "ReasonForTheRequestedProcedure": "X", "ReasonForVisit": "X", "ReasonForVisitCodeSequence": "X",
    "ReferencedFrameOfReferenceUID": "U", "ReferencedImageSequence": "X/Z/U*", "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D", "ReferencedSOPInstanceUID": "U",
    "ReferencedStudySequence": "X/Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X", "RegionOfResidence": "X", "RelatedFrameOfReferenceUID": "U",
    "RequestAttributesSequence": "X", "RequestedContrastAgent": "X", "RequestedProcedureComments": "X",
    "RequestedProcedureDescription": "X/Z", "RequestedProcedureID": "X", "RequestedProcedureLocation": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "ResponsibleOrganization": "X",
    "ResponsiblePerson": "X", "ScheduledProcedureStepDescription": "X", "ScheduledProcedureStepID": "X",
    "SeriesDate": "X/D", "SeriesDescription": "X", "SeriesInstanceUID": "U", "SeriesTime": "X/D",
    "ServiceEpisodeDescription": "X", "ServiceEpisodeID": "X", "SmokingStatus": "X", "SOPInstanceUID": "U",
    "SourceImageSequence": "X/Z/U*", "SpecialNeeds": "X", "StationName": "X/Z/D", "StorageMediaFileSetUID": "U",
    "StudyComments": "X", "StudyDate": "Z", "StudyDescription": "X", "StudyID": "Z", "StudyInstanceUID": "U",
    "StudyTime": "Z", "SynchronizationFrameOfReferenceUID": "U", "TimezoneOffsetFromUTC": "X",
    "UID": "U", "VerifyingObserverName": "D", "VisitComments": "X",
    # devices, people, signatures, specimens, free text and dates in content items
    "AttributeModificationDateTime": "X/D", "CertifiedTimestamp": "X", "CommentsOnThePerformedProcedureStep": "X",
    "ConsultingPhysicianIdentificationSequence": "X", "ConsultingPhysicianName": "X", "ContainerComponentID": "X",
    "ContainerDescription": "X", "ContextGroupExtensionCreatorUID": "U", "ContributionDateTime": "X/D",
    "Date": "X", "DateOfInstallation": "X", "DateOfLastCalibration": "X", "DateOfManufacture": "X",
    "DateTime": "X", "DeviceAlternateIdentifier": "X", "DeviceLabel": "X", "DigitalSignatureDateTime": "X",
    "DigitalSignatureUID": "X", "EthnicGroupCodeSequence": "X", "InstanceCoercionDateTime": "X",
    "LongDeviceDescription": "X", "ManufacturerDeviceIdentifier": "X", "ObservationDateTime": "X",
    "PatientAlternativeCalendar": "X", "PatientBirthDateInAlternativeCalendar": "X",
    "PatientDeathDateInAlternativeCalendar": "X", "PersonAddress": "X", "PersonIdentificationCodeSequence": "D",
    "PersonName": "D", "PersonTelecomInformation": "X", "PersonTelephoneNumbers": "X",
    "ReasonForPerformedProcedureCodeSequence": "X", "ReasonForRequestedProcedureCodeSequence": "X",
    "ReferencedPatientPhotoSequence": "X", "RequestingServiceCodeSequence": "X", "RouteOfAdmissions": "X",
    "SeriesDescriptionCodeSequence": "X", "SourceEndDateTime": "X", "SourceStartDateTime": "X",
    "SpecimenDetailedDescription": "X", "SpecimenShortDescription": "X", "SpecimenUID": "U",
    "StorageMediaFileSetID": "X", "TextValue": "X", "Time": "X", "TimeOfLastCalibration": "X",
    "UniqueDeviceIdentifier": "X",
}

#: what a minimal source keeps verbatim: geometry and pixel description (none of these is in Table E.1-1)
GEOMETRY_KEYWORDS = ("SOPClassUID", "Modality", "Rows", "Columns", "NumberOfFrames", "PixelSpacing",
                     "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness", "SpacingBetweenSlices",
                     "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                     "PixelRepresentation", "LossyImageCompression", "LossyImageCompressionRatio",
                     "LossyImageCompressionMethod")
#: enhanced multi-frame sources: functional-group items kept, each with only these attributes
FUNCTIONAL_GROUPS_KEEP = {"PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
                          "PlaneOrientationSequence": ("ImageOrientationPatient",),
                          "PlanePositionSequence": ("ImagePositionPatient",)}
#: identity attributes a minimal source carries and what replaces them: "pseudonym" (D), "" (Z: Type 2, empty),
#: "uid" (U: key-derived UID), "date" (shifted by the key's patient shift), "time" (000000)
IDENTITY_ACTIONS = {"PatientName": "pseudonym", "PatientID": "pseudonym", "PatientBirthDate": "", "PatientSex": "",
                    "AccessionNumber": "", "StudyID": "", "ReferringPhysicianName": "", "StudyDate": "date",
                    "StudyTime": "time", "StudyInstanceUID": "uid", "SeriesInstanceUID": "uid",
                    "SOPInstanceUID": "uid", "FrameOfReferenceUID": "uid"}
#: PS3.16 CID 7050 codes written into DeidentificationMethodCodeSequence
PROFILE_CODES = (("113100", "Basic Application Confidentiality Profile"),
                 ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
#: attributes a writer's own object gets a date (shifted "now") or time (000000) in, by ``stamp``
OWN_DATES = ("ContentDate", "SeriesDate", "InstanceCreationDate")
OWN_TIMES = ("ContentTime", "SeriesTime", "InstanceCreationTime")
#: values shorter than this are not searched for in free text (a sex "F" or a slice count would match anywhere)
MIN_REDACT_LENGTH = 4
REDACTED = "[removed]"
#: SOP class UIDs whose pixels are secondary captures (text burned in by design): refused
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


class DeidentificationError(ValueError):
    """A source that cannot be de-identified by this profile (burned-in text) or a value that leaked."""


@dataclass(frozen=True)
class DeidKey:
    """A de-identification secret (32 random bytes) and the file it lives in (None when not stored)."""

    secret: bytes
    path: Path | None = None

    def _digest(self, purpose: str, text: str) -> bytes:
        return hmac.new(self.secret, f"{purpose}\x00{text}".encode("utf-8"), hashlib.sha256).digest()

    def uid(self, old: str) -> str:
        """New UID ``2.25.<128-bit integer>`` for ``old``: the same under one key, unrelated across keys. UIDs the
        DICOM standard defines (SOP classes, transfer syntaxes) come back unchanged."""
        from pydicom.uid import UID_dictionary

        old = str(old).strip()
        if not old or old in UID_dictionary:
            return old
        return "2.25." + str(int.from_bytes(self._digest("uid", old)[:16], "big"))

    def shift_days(self, patient: str) -> int:
        """Days every date of ``patient`` (an identity string of the source) moves back, in ``DATE_SHIFT_DAYS``."""
        lo, hi = DATE_SHIFT_DAYS
        return lo + int.from_bytes(self._digest("date", patient)[:8], "big") % (hi - lo + 1)


def new_key(path: str | os.PathLike | None = None) -> DeidKey:
    """A fresh random key, written to ``path`` (mode 0600, whole or not at all, never overwriting:
    ``FileExistsError``) when given."""
    key = DeidKey(secrets.token_bytes(32), Path(path) if path is not None else None)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{_KEY_HEADER}\n{key.secret.hex()}\n")
            os.link(tmp, path)  # appears complete or not at all; FileExistsError when another writer was first
        finally:
            tmp.unlink(missing_ok=True)
    return key


def load_key(path: str | os.PathLike) -> DeidKey:
    """The key stored in ``path`` by ``new_key``; ``DeidentificationError`` naming the file when it is not one."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise DeidentificationError(f"cannot read the de-identification key {path} ({exc})") from exc
    hexes = [w for w in lines if re.fullmatch(r"[0-9a-fA-F]{64}", w)]
    if not hexes:
        raise DeidentificationError(f"{path} is not a de-identification key (expected 64 hex digits after the "
                                    f"line '{_KEY_HEADER}'); give another --deid-key or delete the file")
    return DeidKey(bytes.fromhex(hexes[0]), path)


def key_for_outputs(out_dir: str | os.PathLike, key_file: str | os.PathLike | None = None) -> tuple[DeidKey, bool]:
    """The key of a run writing into ``out_dir``: ``key_file`` when given (created there if it does not exist),
    else ``out_dir/deid_key.txt`` (created on the first run, reused after). Returns ``(key, created)``."""
    path = Path(key_file) if key_file is not None else Path(out_dir) / KEY_FILE_NAME
    if path.exists():
        return load_key(path), False
    try:
        return new_key(path), True
    except FileExistsError:  # a parallel worker of the same run wrote it first: use theirs
        return load_key(path), False


def shift_date(value: str, days: int) -> str:
    """``YYYYMMDD`` (a DA, or the date part of a DT) moved back by ``days``; "" when it is not a date."""
    text = str(value).strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return ""
    return (day - datetime.timedelta(days=days)).strftime("%Y%m%d")


def patient_identity(ds) -> str:
    """The source's patient identity the date shift is keyed on: PatientID, else PatientName + birth date, else
    the StudyInstanceUID (so every study of one patient shifts alike under one key)."""
    pid = str(getattr(ds, "PatientID", "") or "").strip()
    if pid:
        return "id:" + pid
    name = str(getattr(ds, "PatientName", "") or "").strip()
    if name:
        return f"name:{name}|{getattr(ds, 'PatientBirthDate', '')}"
    return "study:" + str(getattr(ds, "StudyInstanceUID", ""))


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
        import highdicom as hd
        from pydicom.sr.codedict import codes

        from nnunet_thrombus import __version__

        return [hd.ContributingEquipment("nnunet_thrombus", codes.DCM.DeIdentifyingEquipment,
                                         software_versions=__version__,
                                         contribution_description="PS3.15 Basic Profile by allow-list")]

    def stamp(self, ds, today: datetime.date | None = None) -> None:
        """Mark a finished output ``ds`` as de-identified: its own creation dates (``OWN_DATES``, contributing
        equipment's ContributionDateTime) shifted like the sources' (so "made today" does not reveal the shift),
        times 000000, PatientIdentityRemoved, DeidentificationMethod and
        its code sequence, LongitudinalTemporalInformationModified; file meta follows the SOP instance UID."""
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

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
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

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
    import copy

    from pydicom.dataset import Dataset

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


def _values_of(elem) -> list[str]:
    value = elem.value
    items = list(value) if isinstance(value, (list, tuple)) or getattr(elem, "VM", 1) > 1 else [value]
    out = []
    for v in items:
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
    from pydicom.uid import UID_dictionary

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


__all__ = ["BASIC_PROFILE", "GEOMETRY_KEYWORDS", "IDENTITY_ACTIONS", "PROFILE_CODES", "KEY_FILE_NAME",
           "DATE_SHIFT_DAYS", "DeidKey", "DeidentificationError", "DeidentifiedSources", "new_key", "load_key",
           "key_for_outputs", "shift_date", "patient_identity", "minimal_source", "deidentify_sources",
           "refuse_burned_in", "identifying_values", "check_case_sources", "redact", "redact_tree", "leaked_values"]
