"""predict_cases with a fake model: outputs, schema, DICOM SEG, privacy, resume, Ctrl-C, parts."""
from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.inference.case_outputs import verify_case
from nnunet_thrombus.inference.inputs import find_cases, select_part
from nnunet_thrombus.inference.json_schema import schema_errors
from nnunet_thrombus.inference.options import BatchOptions, OutputOptions
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases, read_failures
from nnunet_thrombus.inference.report import report_schema

from predict_testlib import BLOB, FakePredictor, assert_case_valid, load_schema, read_image


def test_schema_file_matches_code():
    assert load_schema() == json.loads(json.dumps(report_schema()))


@pytest.mark.parametrize("value, n_errors", [
    ({"a": 1}, 0), ({"a": "x"}, 1), ({}, 1), ({"a": 1, "b": 2}, 1), ({"a": -1}, 1)])
def test_schema_checker(value, n_errors):
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"type": "integer", "minimum": 0}}}
    assert len(schema_errors(value, schema)) == n_errors


def test_dicom_batch_outputs_seg_and_privacy(predict_cohort, tmp_path):
    out = tmp_path / "out"
    fake = FakePredictor()
    res = predict_cases(predict_cohort["dicom"], out, ThrombusCasePredictor(fake),
                        OutputOptions(dicom_seg=True, save_probabilities=True), BatchOptions(quiet=True))
    ids = sorted(p.name for p in predict_cohort["dicom"].iterdir())
    assert res["done"] == ids and res["failed"] == {}
    schema = load_schema()
    for cid in ids:
        cta = read_image(predict_cohort["dicom"] / cid / "CTA")
        report = assert_case_valid(out / cid, cta, schema)
        assert report["case_id"] == cid
        comp = report["components"][0]
        assert report["n_components"] == 1
        assert comp["volume_mm3"] == pytest.approx(BLOB ** 3 * np.prod(cta.GetSpacing()))
        assert report["confidence"]["mean_probability_in_mask"] == pytest.approx(0.9, abs=1e-6)
        assert report["call"]["source"] == "default"
        assert set(report["timings_s"]) >= {"preprocess", "coarse", "fine", "export", "total"}
        assert report["timings_s"]["preprocess"] > 0
        probs = np.load(out / cid / "probabilities.npz")["probability"]
        assert probs.shape == sitk.GetArrayFromImage(cta).shape
        import highdicom as hd

        seg = hd.seg.segread(str(out / cid / "thrombus_seg.dcm"))
        vol = seg.get_volume().array[..., 0]
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / cid / "thrombus.nii.gz")))
        assert int(vol.sum()) == int(mask.sum()) == BLOB ** 3
        assert str(seg.PatientName).startswith("SYNTH^")  # the SEG keeps the source's patient module
        assert verify_case(out / cid, cid) == (True, "")
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(ids) and summary[1].startswith(ids[0] + ",")
    # privacy: no PHI value in any non-DICOM output (gz/npz decompressed)
    for path in out.rglob("*"):
        if not path.is_file() or path.suffix == ".dcm":
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        if path.suffix == ".npz":
            import zipfile
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        for value in predict_cohort["phi"]:
            assert value.encode() not in data, f"{value} leaked into {path}"


def test_keep_phi_and_anonymized_seg(predict_cohort, tmp_path):
    case = predict_cohort["dicom"] / "SYN_0001"
    res = predict_cases(case, tmp_path / "o", ThrombusCasePredictor(FakePredictor()),
                        OutputOptions(keep_phi=True, dicom_seg=True, anonymize_seg=True), BatchOptions(quiet=True))
    assert res["done"] == ["SYN_0001"]
    report = json.loads((tmp_path / "o" / "SYN_0001" / "report.json").read_text())
    assert report["patient"]["PatientName"] == "SYNTH^PATIENT0001"
    import pydicom

    seg = pydicom.dcmread(str(tmp_path / "o" / "SYN_0001" / "thrombus_seg.dcm"))
    assert str(seg.PatientName).rstrip("^") == "SYN_0001" and seg.PatientID == "SYN_0001"
    assert seg.PatientIdentityRemoved == "YES"
    raw = (tmp_path / "o" / "SYN_0001" / "thrombus_seg.dcm").read_bytes()
    for value in predict_cohort["phi"]:
        if "0001" in value or "STROKE" in value:
            assert value.encode() not in raw


def test_resume_skips_verified_redoes_partial_and_broken(predict_cohort, tmp_path, caplog):
    out = tmp_path / "out"
    first = FakePredictor()
    predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(first), batch=BatchOptions(quiet=True))
    assert first.calls == 4
    (out / "SYN_0002" / "overlay.png").write_bytes(b"broken")   # size differs from the report
    shutil.copytree(out / "SYN_0003", out / ".SYN_0003.partial")  # leftover of an interrupted run
    shutil.rmtree(out / "SYN_0003")
    second = FakePredictor()
    caplog.set_level("INFO", logger="nnunet_thrombus")
    res = predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(second), batch=BatchOptions(quiet=False))
    assert second.calls == 2
    assert res["skipped"] == ["SYN_0000", "SYN_0001"] and res["done"] == ["SYN_0002", "SYN_0003"]
    assert not (out / ".SYN_0003.partial").exists()
    assert "already done, skipped" in caplog.text
    assert len((out / "summary.csv").read_text().splitlines()) == 5


def test_ctrl_c_keeps_finished_removes_partial(predict_cohort, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(FakePredictor(interrupt_on={3})),
                      batch=BatchOptions(quiet=True))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["SYN_0000", "SYN_0001"]
    assert verify_case(out / "SYN_0001", "SYN_0001")[0]
    assert not list(out.glob(".*partial")) and not list(out.rglob(".tmp*"))


def test_ctrl_c_exit_code_130(predict_cohort, tmp_path, monkeypatch):
    from nnunet_thrombus import cli
    from nnunet_thrombus.inference import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "predict_cases", interrupted)
    assert cli.main(["predict", "-i", str(predict_cohort["nifti"]), "-o", str(tmp_path), "-m", str(tmp_path)]) == 130


def test_model_failure_of_one_case_batch_continues(predict_cohort, tmp_path):
    out = tmp_path / "out"
    res = predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(FakePredictor(fail_on={2})),
                        batch=BatchOptions(quiet=True))
    assert res["done"] == ["SYN_0000", "SYN_0002", "SYN_0003"]
    rows = read_failures(out)
    assert [r["case_id"] for r in rows] == ["SYN_0001"] and "fake model failure" in rows[0]["error"]
    assert "SYN_0001" in rows[0]["error"]


def test_parts_split_like_nnunet(predict_cohort, tmp_path):
    cases = find_cases(predict_cohort["flat"])
    assert [c.case_id for c in select_part(cases, 3, 1)] == ["SYN_0001"]
    assert [c.case_id for c in select_part(cases, 2, 0)] == ["SYN_0000", "SYN_0002"]
    with pytest.raises(ValueError, match="part_id"):
        select_part(cases, 2, 2)
    out = tmp_path / "out"
    for k in (0, 1):
        predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(FakePredictor()),
                      batch=BatchOptions(num_parts=2, part_id=k, quiet=True))
    assert len((out / "summary.csv").read_text().splitlines()) == 5
    assert (out / "failures_part1of2.csv").is_file()


def test_inputs_single_case_and_images_ts(predict_cohort, tmp_path):
    single = find_cases(predict_cohort["dicom"] / "SYN_0002")
    assert [c.case_id for c in single] == ["SYN_0002"] and single[0].error is None
    ts = find_cases(predict_cohort["images_ts"])
    assert len(ts) == 2 and all(c.meta["preprocessed"] for c in ts)
    res = predict_cases(predict_cohort["images_ts"], tmp_path / "o", ThrombusCasePredictor(FakePredictor()),
                        batch=BatchOptions(quiet=True))
    assert len(res["done"]) == 2
    report = json.loads((tmp_path / "o" / res["done"][0] / "report.json").read_text())
    assert report["input"]["preprocessed_input"] is True and report["registration"]["note"]
