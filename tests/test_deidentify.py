"""``nnunet_thrombus.deidentify``: the secret-keyed mapping (UIDs, date shift), its key file, the allow-list copy
and the text redaction; no image needed."""
from __future__ import annotations

import datetime
import os
import stat

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from nnunet_thrombus.deidentify import (BASIC_PROFILE, DATE_SHIFT_DAYS, GEOMETRY_KEYWORDS, IDENTITY_ACTIONS,
                                        DeidentificationError, DeidKey, check_case_sources, dataset_leaks,
                                        deidentify_sources, identifying_values, key_for_outputs, load_key, new_key,
                                        redact, redact_tree, shift_date)

SOURCE_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def _ct(pid: str = "PID4711", study: str = SOURCE_UID) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", study + ".3"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, study + ".1", study + ".2"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JANE", pid, "19500101"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240611", "083015", "ACC998877"
    ds.Modality, ds.Rows, ds.Columns, ds.PixelSpacing = "CT", 4, 4, [0.5, 0.5]
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 0]
    ds.InstitutionName, ds.AdmissionID, ds.ImageComments = "ST ELSEWHERE", "ADM5566", "seen by Dr WHO"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "RPID3131"
    block = ds.private_block(0x0029, "SOME VENDOR", create=True)
    block.add_new(0x10, "LO", "VENDOR^PRIVATE^NAME")
    return ds


def test_uids_map_alike_under_one_key_and_apart_under_two(tmp_path):
    key = new_key(tmp_path / "k.txt")
    again = load_key(tmp_path / "k.txt")
    assert key.uid(SOURCE_UID) == again.uid(SOURCE_UID) != SOURCE_UID
    assert key.uid(SOURCE_UID) != new_key().uid(SOURCE_UID)
    assert key.uid(SOURCE_UID) != key.uid(SOURCE_UID + "1")
    uid = key.uid(SOURCE_UID)
    assert uid.startswith("2.25.") and len(uid) <= 64 and all(p.isdigit() for p in uid.split("."))
    assert key.uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"  # a SOP class stays


def test_key_file_is_private_reused_and_checked(tmp_path):
    key, created = key_for_outputs(tmp_path / "out")
    assert created and key.path == tmp_path / "out" / "deid_key.txt"
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    same, created = key_for_outputs(tmp_path / "out")
    assert not created and same.secret == key.secret
    named, created = key_for_outputs(tmp_path / "out", tmp_path / "elsewhere.key")
    assert created and named.secret != key.secret and (tmp_path / "elsewhere.key").is_file()
    with pytest.raises(FileExistsError):  # a key is never overwritten (a parallel worker keeps the first one)
        new_key(key.path)
    assert load_key(key.path).secret == key.secret and [p.name for p in key.path.parent.iterdir()] == ["deid_key.txt"]
    (tmp_path / "bad.key").write_text("not a key\n")
    with pytest.raises(DeidentificationError, match="bad.key"):
        load_key(tmp_path / "bad.key")


def test_date_shift_is_per_patient_and_in_range():
    key = DeidKey(bytes(range(32)))
    shifts = {key.shift_days(f"id:P{i}") for i in range(200)}
    assert min(shifts) >= DATE_SHIFT_DAYS[0] and max(shifts) <= DATE_SHIFT_DAYS[1] and len(shifts) > 150
    a = deidentify_sources([_ct(study=SOURCE_UID)], key, "c1")
    b = deidentify_sources([_ct(study=SOURCE_UID + "9")], key, "c2")  # the same patient's other study
    assert a.shift_days == b.shift_days
    days = (datetime.date(2024, 6, 11) - datetime.datetime.strptime(a.datasets[0].StudyDate, "%Y%m%d").date()).days
    assert days == a.shift_days
    assert shift_date("20240301", 1) == "20240229" and shift_date("garbage", 5) == ""


def test_minimal_copy_holds_only_the_allow_list():
    key = DeidKey(b"k" * 32)
    src = _ct()
    out = deidentify_sources([src], key, "case9")
    copy = out.datasets[0]
    kept = {e.keyword for e in copy}
    assert kept <= set(GEOMETRY_KEYWORDS) | set(IDENTITY_ACTIONS)
    assert not [e for e in copy.iterall() if e.tag.is_private]
    assert {"InstitutionName", "AdmissionID", "ImageComments", "RequestAttributesSequence"}.isdisjoint(kept)
    assert str(copy.PatientName) == "case9^" and copy.PatientID == "case9" and copy.PatientBirthDate == ""
    assert copy.AccessionNumber == "" and copy.StudyTime == "000000"
    assert copy.StudyInstanceUID == key.uid(SOURCE_UID) and out.uids[SOURCE_UID] == copy.StudyInstanceUID
    assert copy.PixelSpacing == src.PixelSpacing and copy.ImagePositionPatient == src.ImagePositionPatient


def test_identifying_values_cover_listed_nested_and_private():
    values = identifying_values([_ct()])
    assert {"DOE^JANE", "DOE", "JANE", "PID4711", "ADM5566", "seen by Dr WHO", "RPID3131",
            "VENDOR^PRIVATE^NAME", SOURCE_UID, "20240611"} <= values
    assert "1.2.840.10008.5.1.4.1.1.2" not in values and "CT" not in values


def test_redact_longest_first_and_through_json():
    values = {"DOE^JANE", "DOE", "JANE", "PID4711", "F"}
    assert redact("patient DOE^JANE (PID4711), F, DOES ok", values) == "patient [removed] ([removed]), F, DOES ok"
    tree = redact_tree({"a": ["JANE DOE", 3.5], "b": {"c": "none"}}, values)
    assert tree == {"a": ["[removed] [removed]", 3.5], "b": {"c": "none"}}


def test_written_dates_and_times_compared_by_parts_not_as_text():
    source = _ct()
    source.StudyTime = "101500"
    sources = deidentify_sources([source], new_key(), "case01")
    # the day whose shifted date ends in 1015: stamp then writes ContributionDateTime 2026 1015 000000, whose digits
    # hold the source StudyTime 101500 (a substring check refused such an output about once a year of shifts)
    today = datetime.date(2026, 10, 15) + datetime.timedelta(days=sources.shift_days)
    out = Dataset()
    out.ContentDate, out.ContentTime = "20250101", "120000"
    out.ContributingEquipmentSequence = Sequence([Dataset()])
    out.ContributingEquipmentSequence[0].ContributionDateTime = "20260101120000"
    sources.stamp(out, today=today)
    assert out.ContributingEquipmentSequence[0].ContributionDateTime == "20261015000000"
    assert dataset_leaks(out, [source]) == []
    # a source date or time kept whole, as the date or time of a DT, or at minute precision is still a leak
    out.ContentDate = "20240611"  # the source StudyDate
    out.ContributingEquipmentSequence[0].ContributionDateTime = "202610151015"  # 10:15, the source StudyTime
    out.AcquisitionDateTime = "20240611083015.25+0100"  # the source's own date and StudyTime 083015
    out.ContentTime = "101500"
    out.ImageComments = "reviewed 101500"  # free text is still searched as text
    assert dataset_leaks(out, [source]) == ["AcquisitionDateTime", "ContentDate", "ContentTime",
                                            "ContributionDateTime", "ImageComments"]


def test_burned_in_and_case_id_refused():
    flagged = _ct()
    flagged.BurnedInAnnotation = "YES"
    with pytest.raises(DeidentificationError, match="BurnedInAnnotation"):
        deidentify_sources([flagged], new_key(), "c")
    sc = _ct()
    sc.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    with pytest.raises(DeidentificationError, match="secondary capture"):
        check_case_sources("c", [sc], [sc.SeriesInstanceUID])
    with pytest.raises(DeidentificationError, match="rename the folder"):
        check_case_sources("pid4711_cta", [_ct()], [])
    assert "PID4711" in check_case_sources("case01", [flagged], ["another series"])  # a series not read


def test_profile_table_names_real_attributes():
    assert all(tag_for_keyword(k) is not None for k in BASIC_PROFILE)
    assert {"AdmissionID", "MedicalAlerts", "Allergies", "ReasonForVisit", "DeviceSerialNumber"} <= set(BASIC_PROFILE)
    assert set(GEOMETRY_KEYWORDS).isdisjoint(BASIC_PROFILE)
