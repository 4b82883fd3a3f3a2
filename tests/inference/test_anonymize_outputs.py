"""``--anonymize`` end to end (SEG and SR included): a CTA + NCCT whose headers carry a distinct value in every
attribute of PS3.15 Table E.1-1 (patient, visit, study, equipment, operators, free text, request attributes in
sequences, a private element with a person's name, a BurnedInAnnotation flag) goes through predict and through
convert's sharing mode; no planted value appears in any byte of any output (compressed members unpacked), nor in
what was printed or logged; the anonymized SEG and SR pass dciodvfy and the SEG opens with highdicom. Each test
writes its own files."""
from __future__ import annotations

import csv
import gzip
import json
import logging
import shutil
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from _planted_headers import PRIVATE_NAME, plant_folder  # noqa: E402
from dicom_checks import dciodvfy_errors  # noqa: E402
from predict_testlib import FakePredictor, load_schema  # noqa: E402

from nnunet_thrombus.deidentify import BASIC_PROFILE, KEY_FILE_NAME, load_key  # noqa: E402
from nnunet_thrombus.inference.json_schema import schema_errors  # noqa: E402
from nnunet_thrombus.inference.options import BatchOptions, OutputOptions  # noqa: E402
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases, read_failures  # noqa: E402


@pytest.fixture(scope="module")
def planted(predict_cohort, tmp_path_factory) -> dict:
    """SYN_0001 of the cohort with planted headers in ``root/SYN_0001/{CTA,NCCT}``, and the planted values."""
    src = predict_cohort["dicom"] / "SYN_0001"
    root = tmp_path_factory.mktemp("planted")
    case = root / "SYN_0001"
    values = plant_folder(src / "CTA", case / "CTA", BASIC_PROFILE) | plant_folder(src / "NCCT", case / "NCCT",
                                                                                   BASIC_PROFILE)
    first = pydicom.dcmread(next(iter(sorted((case / "CTA").iterdir()))), stop_before_pixels=True)
    assert PRIVATE_NAME in values and "ZQ" in "".join(values) and len(values) > 200
    return {"root": root, "case": case, "values": values, "first": first}


def _contents(path: Path) -> list[bytes]:
    """The file's bytes, plus its unpacked contents: gzip members, zip (npz) members, PNG zlib streams."""
    data = path.read_bytes()
    out = [data]
    if path.name.endswith(".gz"):
        out.append(gzip.decompress(data))
    elif path.suffix == ".npz":
        with zipfile.ZipFile(path) as z:
            out += [z.read(n) for n in z.namelist()]
    elif path.suffix == ".png":
        pos, idat = 8, b""
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            if kind == b"IDAT":
                idat += body
            elif kind in (b"zTXt", b"iTXt"):
                out.append(body)
            pos += 12 + length
        out.append(zlib.decompress(idat))
    return out


def _leaks(folder: Path, values: set[str]) -> dict:
    """{relative path: [planted values found]} over every file under ``folder`` (hidden ones included)."""
    found = {}
    encoded = [(v, v.encode()) for v in values]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blobs = _contents(path)
        hits = sorted({v for v, b in encoded for blob in blobs if b in blob})
        if hits:
            found[str(path.relative_to(folder))] = hits
    return found


def _fixed_key(path: Path) -> Path:
    """A key file with a fixed secret, so the new UIDs (and any chance digit run in them) are the same every run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("nnunet_thrombus de-identification key v1\n" + "5a" * 32 + "\n", encoding="ascii")
    return path


def test_predict_anonymize_writes_no_planted_value(planted, tmp_path, capsys, caplog):
    import highdicom as hd

    from nnunet_thrombus.inference.overlay import overlay_text

    out = tmp_path / "out"
    _fixed_key(out / KEY_FILE_NAME)  # reused by the run (a run creates it when missing)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:  # Python warnings reach the user's console too
        warnings.simplefilter("always")
        res = predict_cases(planted["case"], out, ThrombusCasePredictor(FakePredictor()),
                            OutputOptions(anonymize=True, dicom_seg=True, dicom_sr=True, save_probabilities=True),
                            BatchOptions(cache_dir=out / ".preprocess_cache", quiet=False))
    assert res["done"] == ["SYN_0001"], res
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"SYN_0001/thrombus_seg.dcm", "SYN_0001/thrombus_sr.dcm", "SYN_0001/report.json", "SYN_0001/overlay.png",
            "SYN_0001/thrombus.nii.gz", "SYN_0001/probabilities.npz", "summary.csv", "failures.csv", KEY_FILE_NAME} <= names
    assert any(n.startswith(".preprocess_cache/") and n.endswith(".mha") for n in names)
    assert _leaks(out, planted["values"]) == {}
    printed = capsys.readouterr()
    text = printed.out + printed.err + caplog.text + "\n".join(str(w.message) for w in caught)
    assert "SYN_0001" in text and not [v for v in planted["values"] if v in text]

    report = json.loads((out / "SYN_0001" / "report.json").read_text())
    assert schema_errors(report, load_schema()) == [] and report["input"]["deidentified"] is True
    assert "patient" not in report and "description" not in report["input"]["series"]["cta"]["chosen"]
    title = overlay_text(report)  # the only text drawn into the overlay's pixels
    assert not [v for v in planted["values"] if v in title]

    path = out / "SYN_0001" / "thrombus_seg.dcm"
    errors, msg = dciodvfy_errors(path)
    assert not errors, msg
    seg = hd.seg.segread(str(path))
    assert seg.number_of_segments == 1 and int(seg.NumberOfFrames) == len(list((planted["case"] / "CTA").iterdir()))
    assert seg.get_volume().array.sum() > 0  # the mask made it through
    assert str(seg.PatientName) == "SYN_0001^" and seg.PatientIdentityRemoved == "YES"
    assert not [e for e in seg.iterall() if e.tag.is_private]
    # the key beside the outputs re-links: the SEG's study UID is the key's UID of the source study
    key = load_key(out / KEY_FILE_NAME)
    assert seg.StudyInstanceUID == key.uid(planted["first"].StudyInstanceUID) != planted["first"].StudyInstanceUID
    assert seg.FrameOfReferenceUID == key.uid(planted["first"].FrameOfReferenceUID)
    # the SR follows the same allow-list and key: valid, the same study, the SEG's image references
    sr_path = out / "SYN_0001" / "thrombus_sr.dcm"
    errors, msg = dciodvfy_errors(sr_path)
    assert not errors, msg
    sr = pydicom.dcmread(str(sr_path))
    assert sr.StudyInstanceUID == seg.StudyInstanceUID and str(sr.PatientName) == "SYN_0001^"
    assert sr.PatientIdentityRemoved == "YES" and sr.ContentDate == seg.ContentDate
    assert not [e for e in sr.iterall() if e.tag.is_private]


def test_convert_sharing_mode_writes_no_planted_value(planted, tmp_path, capsys, caplog):
    from dataset_conversion.conversion_options import ConversionOptions
    from dataset_conversion.convert_trial import convert_trial_dataset

    caplog.set_level(logging.DEBUG)
    options = ConversionOptions(dataset_id=502, anonymize=True,
                                deid_key=str(_fixed_key(tmp_path / "keys" / KEY_FILE_NAME)))
    res = convert_trial_dataset(planted["root"], tmp_path / "raw", options)
    assert res["converted"] == ["SYN_0001"] and not res["failed"], res
    dataset = Path(res["dataset_dir"])
    assert _leaks(dataset, planted["values"]) == {}
    printed = capsys.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "SYN_0001" in text and not [v for v in planted["values"] if v in text]
    meta = next(csv.DictReader((dataset / "metadata.csv").open()))
    key = load_key(tmp_path / "keys" / KEY_FILE_NAME)
    assert meta["cta_series_uid"] == key.uid(planted["first"].SeriesInstanceUID)  # re-linkable with the key
    assert meta["cta_series"] == str(planted["first"].SeriesNumber)  # the number, not the description
    state = json.loads(next((dataset / ".convert_state").glob("*.json")).read_text())
    assert (dataset / "qc.csv").is_file() and state["meta"]["cta_series_uid"] == meta["cta_series_uid"]


def test_burned_in_series_is_refused_not_passed(planted, tmp_path):
    case = tmp_path / "in" / "CASE_B"
    shutil.copytree(planted["case"], case)
    for path in (case / "CTA").iterdir():
        ds = pydicom.dcmread(str(path))
        ds.BurnedInAnnotation = "YES"
        ds.save_as(str(path))
    out = tmp_path / "out"
    res = predict_cases(case, out, ThrombusCasePredictor(FakePredictor()), OutputOptions(anonymize=True, dicom_seg=True),
                        BatchOptions(cache_dir=out / ".preprocess_cache", quiet=True))
    assert list(res["failed"]) == ["CASE_B"]
    assert "BurnedInAnnotation YES" in res["failed"]["CASE_B"] and "without --anonymize" in res["failed"]["CASE_B"]
    assert not (out / "CASE_B").exists() and not (out / ".preprocess_cache").exists()  # nothing written, not cached
    assert _leaks(out, planted["values"]) == {}
    assert read_failures(out)[0]["stage"] == "input"


def test_case_id_that_is_a_header_value_is_refused(planted, tmp_path):
    pid = str(planted["first"].PatientID)
    case = tmp_path / "in" / pid
    shutil.copytree(planted["case"], case)
    res = predict_cases(case, tmp_path / "out", ThrombusCasePredictor(FakePredictor()), OutputOptions(anonymize=True),
                        BatchOptions(quiet=True))
    assert "rename the folder" in res["failed"][pid]
    assert not (tmp_path / "out" / pid).exists()


def test_anonymize_and_keep_phi_contradict():
    with pytest.raises(ValueError, match="contradict"):
        OutputOptions(anonymize=True, keep_phi=True)


def test_without_anonymize_the_planted_values_do_show(planted, tmp_path):
    """The control: the same check finds the planted values in a plain run's SEG and report (series description),
    so an empty result above means they were removed, not missed."""
    out = tmp_path / "out"
    res = predict_cases(planted["case"], out, ThrombusCasePredictor(FakePredictor()), OutputOptions(dicom_seg=True),
                        BatchOptions(quiet=True, cache_dir=out / ".preprocess_cache"))
    assert res["done"] == ["SYN_0001"], res["failed"]
    leaks = _leaks(out, planted["values"])
    assert len(leaks["SYN_0001/thrombus_seg.dcm"]) > 20 and leaks["SYN_0001/report.json"]
    assert str(planted["first"].PatientName) in leaks["SYN_0001/thrombus_seg.dcm"]


@pytest.mark.parametrize("flags, message", [
    (["--anonymize", "--keep-phi"], "contradict"),
    (["--deid-key", "k.txt"], "--deid-key needs"),
    (["--anonymize-seg"], "--anonymize-seg needs --dicom-seg"),
], ids=["keep-phi", "key-alone", "seg-without-dicom-seg"])
def test_cli_refuses_contradicting_flags(tmp_path, capsys, flags, message):
    from nnunet_thrombus import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
