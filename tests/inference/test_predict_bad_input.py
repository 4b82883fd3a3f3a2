"""Bad input, bad models and unwritable outputs: each gives a clear message naming the case, the batch goes on."""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.inference import case_outputs
from nnunet_thrombus.model_folder import ModelError
from nnunet_thrombus.model_folder import resolve_cascade as resolve_model
from nnunet_thrombus.inference.options import BatchOptions
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases, read_failures

from predict_testlib import FakePredictor


def _write(img: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), True)


def _body_ct() -> sitk.Image:
    """A 'chest' CT: soft-tissue ellipse (40 HU) in fat (-100 HU) and air, no skull around it."""
    y, x = np.ogrid[:80, :80]
    arr = np.full((40, 80, 80), -1000, np.int16)
    arr[:, ((y - 40) / 36.0) ** 2 + ((x - 40) / 36.0) ** 2 <= 1] = -100
    arr[:, ((y - 40) / 30.0) ** 2 + ((x - 40) / 30.0) ** 2 <= 1] = 40
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.5, 1.5, 1.5))
    return img


@pytest.fixture(scope="module")
def bad_batch(predict_cohort, tmp_path_factory) -> dict:
    """A NIfTI batch with one good case and one case per fault; predicted once with the fake model."""
    src = predict_cohort["nifti"] / "SYN_0000"
    root = tmp_path_factory.mktemp("bad_batch") / "in"
    cta, ncct = sitk.ReadImage(str(src / "cta.nii.gz")), sitk.ReadImage(str(src / "ncct.nii.gz"))

    def case(name, cta_img=cta, ncct_img=ncct):
        if cta_img is not None:
            _write(cta_img, root / name / "cta.nii.gz")
        if ncct_img is not None:
            _write(ncct_img, root / name / "ncct.nii.gz")
        return root / name
    case("a_good")
    case("missing_ncct", ncct_img=None)
    thick = sitk.Resample(ncct, [ncct.GetSize()[0], ncct.GetSize()[1], ncct.GetSize()[2] * 3 // 10],
                          sitk.Transform(), sitk.sitkLinear, ncct.GetOrigin(), (*ncct.GetSpacing()[:2], 5.0),
                          ncct.GetDirection(), -1024, ncct.GetPixelID())
    case("thick_slices", ncct_img=thick)
    case("swapped", cta_img=ncct, ncct_img=cta)
    case("no_contrast", cta_img=ncct)
    case("non_head", cta_img=_body_ct(), ncct_img=_body_ct())
    zero = sitk.Image(cta.GetSize(), sitk.sitkInt16)
    zero.CopyInformation(cta)
    case("all_zero", cta_img=zero)
    trunc = case("truncated")
    data = (trunc / "cta.nii.gz").read_bytes()
    (trunc / "cta.nii.gz").write_bytes(data[: len(data) // 3])
    out = root.parent / "out"
    result = predict_cases(root, out, ThrombusCasePredictor(FakePredictor()), batch=BatchOptions(quiet=True))
    return {"root": root, "out": out, "result": result, "thick_ncct": thick}


@pytest.mark.parametrize("case, words", [
    ("missing_ncct", ["missing NCCT", "put both scans"]),
    ("thick_slices", ["5.00 mm > 2.5 mm", "--allow-thick-slices"]),
    ("non_head", ["head CT"]),
    ("all_zero", ["empty image", "all voxels equal 0"]),
    ("truncated", ["truncated", "copy"]),
])
def test_bad_case_fails_with_reason(bad_batch, case, words):
    failed = bad_batch["result"]["failed"]
    assert case in failed
    msg = failed[case]
    assert msg.startswith(f"case {case}:")
    for w in words:
        assert w in msg
    rows = {r["case_id"]: r for r in read_failures(bad_batch["out"])}
    assert rows[case]["error"] == msg and rows[case]["stage"] == "input"
    assert not (bad_batch["out"] / case).exists()


@pytest.mark.parametrize("case, code", [("swapped", "swapped_channels"), ("no_contrast", "no_contrast")])
def test_warned_case_is_predicted(bad_batch, case, code):
    report = json.loads((bad_batch["out"] / case / "report.json").read_text())
    codes = [w["code"] for w in report["warnings"] if w["code"] not in ("isodense_clot", "tiny_clot")]
    assert codes == [code]


def test_good_case_done_and_batch_continued(bad_batch):
    assert bad_batch["result"]["done"] == ["a_good", "no_contrast", "swapped"]
    report = json.loads((bad_batch["out"] / "a_good" / "report.json").read_text())
    assert [w for w in report["warnings"] if w["code"] not in ("isodense_clot", "tiny_clot")] == []


def test_thick_slices_allowed_resampled_and_flagged(bad_batch, tmp_path):
    res = predict_cases(bad_batch["root"] / "thick_slices", tmp_path / "o", ThrombusCasePredictor(FakePredictor()),
                        batch=BatchOptions(allow_thick_slices=True, quiet=True))
    assert res["done"] == ["thick_slices"]
    report = json.loads((tmp_path / "o" / "thick_slices" / "report.json").read_text())
    assert "thick_slices" in [w["code"] for w in report["warnings"]]
    assert report["input"]["slice_thickness_mm"]["ncct"] == 5.0 and report["input"]["thick_slices_resampled"]


def test_disk_full_while_writing_fails_case_with_message(predict_cohort, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = case_outputs.write_image

    def full_on_second(image, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(image, path)
    monkeypatch.setattr(case_outputs, "write_image", full_on_second)
    out = tmp_path / "out"
    res = predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(FakePredictor()),
                        batch=BatchOptions(quiet=True))
    assert res["done"] == ["SYN_0000", "SYN_0002", "SYN_0003"]
    msg = res["failed"]["SYN_0001"]
    assert msg.startswith("case SYN_0001: disk full") and "re-run" in msg
    assert not (out / ".SYN_0001.partial").exists() and not (out / "SYN_0001").exists()


def test_output_folder_not_writable(predict_cohort, tmp_path, monkeypatch):
    def denied(self, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(OSError, match="not writable.*-o"):
        predict_cases(predict_cohort["flat"], tmp_path / "out", ThrombusCasePredictor(FakePredictor()),
                      batch=BatchOptions(quiet=True))
    from nnunet_thrombus import cli
    assert cli.main(["predict", "-i", str(predict_cohort["flat"]), "-o", str(tmp_path / "o2"), "-m",
                     str(tmp_path)]) == 2


def _fake_model(root: Path, channels: dict, checkpoint: bool = True) -> Path:
    for config in ("3d_lowres", "3d_cascade_fullres"):
        stage = root / f"ThrombusCascadeTrainer__ThrombusPlans__{config}"
        (stage / "fold_0").mkdir(parents=True)
        (stage / "plans.json").write_text("{}")
        (stage / "dataset.json").write_text(json.dumps({"channel_names": channels}))
        if checkpoint:
            (stage / "fold_0" / "checkpoint_final.pth").write_bytes(b"x")
    return root


def test_model_checks(tmp_path):
    with pytest.raises(ModelError, match="lacks ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres"):
        resolve_model(model_folder=tmp_path)
    other = _fake_model(tmp_path / "mri", {"0": "T1", "1": "FLAIR"})
    with pytest.raises(ModelError, match="trained on channels.*NCCT \\+ CTA"):
        resolve_model(model_folder=other)
    one = _fake_model(tmp_path / "one", {"0": "CT"})
    with pytest.raises(ModelError, match="trained on channels"):
        resolve_model(model_folder=one)
    no_ckpt = _fake_model(tmp_path / "nockpt", {"0": "CT", "1": "CT"}, checkpoint=False)
    with pytest.raises(ModelError, match="no checkpoint_final.pth"):
        resolve_model(model_folder=no_ckpt)
    ok = _fake_model(tmp_path / "ok", {"0": "CT", "1": "CT"})
    with pytest.raises(ModelError, match="fold\\(s\\) \\['3'\\]"):
        resolve_model(model_folder=ok, folds=[3])
    files = resolve_model(model_folder=ok, folds=[0])
    assert files.calibration.sources["lvo"] == "default" and files.calibration.lvo.min_volume_mm3 == 5.0
    (files.fine_dir / "lvo_thresholds.json").write_text(json.dumps({"min_volume_mm3": 12.5}))
    files = resolve_model(model_folder=ok)
    assert files.calibration.lvo.min_volume_mm3 == 12.5 and files.calibration.sources["lvo"].endswith("lvo_thresholds.json")


def test_missing_model_exit_code(predict_cohort, tmp_path, capsys):
    from nnunet_thrombus import cli

    rc = cli.main(["predict", "-i", str(predict_cohort["flat"]), "-o", str(tmp_path / "o"), "-m",
                   str(tmp_path / "nope")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
