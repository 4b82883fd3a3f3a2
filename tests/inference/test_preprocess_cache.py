"""The per-case cache of registration + skull stripping: keys, hits, corrupt and unwritable entries, and a second
predict run that registers nothing yet writes the same outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import dataset_conversion.preprocess as conversion_preprocess
from nnunet_thrombus.inference import preprocess_cache as pc
from nnunet_thrombus.inference.hu_threshold import HUThresholdPredictor
from nnunet_thrombus.inference.options import BatchOptions
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases


def _scan(seed: int, spacing=(0.5, 0.5, 1.0)) -> sitk.Image:
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.integers(-1024, 1500, (6, 7, 8)).astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin((-10.25, 3.5, 1e-3))
    return img


def _fake_compute(calls: list):
    def compute(ncct, cta):
        calls.append(1)
        brain = sitk.Cast(cta > 0, sitk.sitkUInt8)
        return {"cta": cta, "ncct_on_cta": ncct, "brain_mask": brain, "registration": object(),
                "qc": {"ncc_brain": np.float64(0.8731), "reg_qc_pass": np.bool_(True), "angles_deg": (1.5, 0.0, -2.0)}}
    return compute


def test_key_follows_voxels_and_geometry_not_objects():
    ncct, cta = _scan(0), _scan(1)
    key = pc.scans_key(ncct, cta)
    assert len(key) == 40 and key == pc.scans_key(_scan(0), _scan(1))       # same scans read again
    changed = _scan(1)
    changed[3, 3, 3] = int(changed[3, 3, 3]) + 1                             # one voxel, one HU
    assert pc.scans_key(ncct, changed) != key
    assert pc.scans_key(ncct, _scan(1, spacing=(0.5, 0.5, 1.25))) != key     # geometry
    assert pc.scans_key(cta, ncct) != key                                    # which scan is which


def test_miss_then_hit_returns_the_same_images_and_qc(tmp_path):
    calls = []
    ncct, cta = _scan(0), _scan(1)
    first, status1 = pc.preprocess_cached(ncct, cta, tmp_path, _fake_compute(calls))
    second, status2 = pc.preprocess_cached(_scan(0), _scan(1), tmp_path, _fake_compute(calls))
    assert (status1, status2, len(calls)) == ("miss", "hit", 1)
    for name in ("cta", "ncct_on_cta", "brain_mask"):
        a, b = first[name], second[name]
        assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
        assert (a.GetSpacing(), a.GetOrigin(), a.GetDirection()) == (b.GetSpacing(), b.GetOrigin(), b.GetDirection())
        assert a.GetPixelID() == b.GetPixelID()
    assert second["qc"] == {"ncc_brain": 0.8731, "reg_qc_pass": True, "angles_deg": [1.5, 0.0, -2.0]}
    assert [p.name for p in tmp_path.iterdir()] == [pc.scans_key(ncct, cta)]   # no temporary folder left
    assert pc.preprocess_cached(ncct, cta, None, _fake_compute(calls))[1] == "off" and len(calls) == 2


def test_corrupt_entry_is_dropped_and_recomputed(tmp_path):
    calls = []
    ncct, cta = _scan(0), _scan(1)
    pc.preprocess_cached(ncct, cta, tmp_path, _fake_compute(calls))
    entry = tmp_path / pc.scans_key(ncct, cta)
    (entry / "cta.mha").write_bytes((entry / "cta.mha").read_bytes()[:100])   # truncated
    result, status = pc.preprocess_cached(ncct, cta, tmp_path, _fake_compute(calls))
    assert status == "miss" and len(calls) == 2
    assert pc.load(tmp_path, entry.name) is not None                         # stored again, whole


def test_failed_write_leaves_no_entry_and_prediction_goes_on(tmp_path, monkeypatch):
    calls = []
    real_write = sitk.WriteImage

    def failing_write(image, path, *args):
        if path.endswith("brain_mask.mha"):
            raise OSError(28, "No space left on device")
        return real_write(image, path, *args)

    monkeypatch.setattr(pc.sitk, "WriteImage", failing_write)
    result, status = pc.preprocess_cached(_scan(0), _scan(1), tmp_path, _fake_compute(calls))
    assert status == "miss" and "cta" in result and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert pc.preprocess_cached(_scan(0), _scan(1), blocker, _fake_compute(calls))[1] == "miss"


def test_default_folder_is_the_named_one_else_inside_the_output(monkeypatch, tmp_path):
    assert pc.default_cache_dir(tmp_path / "out", tmp_path / "c") == tmp_path / "c"
    monkeypatch.setenv(pc.CACHE_ENV, str(tmp_path / "c"))  # the command line reads it, the library does not
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))  # no longer used: never a home/cache folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pc.default_cache_dir(tmp_path / "out") == tmp_path / "out" / ".preprocess_cache"


def test_cli_keeps_the_cache_in_the_output_folder_by_default(predict_cohort, tmp_path, monkeypatch):
    """Without --cache-dir or $NNUNET_THROMBUS_CACHE, predict writes registered voxels only under OUT (PHI)."""
    from nnunet_thrombus.inference import pipeline

    monkeypatch.delenv(pc.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    seen = {}

    def fake_predict_cases(inputs, output, model, outputs=None, batch=None):
        seen["cache_dir"] = batch.cache_dir
        return {"done": [], "failed": {}, "skipped": []}

    monkeypatch.setattr(pipeline, "predict_cases", fake_predict_cases)
    from nnunet_thrombus import cli

    out = tmp_path / "out"
    cli.main(["predict", "-i", str(predict_cohort["nifti"]), "-o", str(out), "-m", str(tmp_path), "-q"])
    assert Path(seen["cache_dir"]) == out / ".preprocess_cache"
    cli.main(["predict", "-i", str(predict_cohort["nifti"]), "-o", str(out), "-m", str(tmp_path), "-q", "--no-cache"])
    assert seen["cache_dir"] is None
    assert not (tmp_path / "home").exists()


def _reports(out):
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if not k.startswith("tim") and k != "preprocess_cache"}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj
    return {p.parent.name: strip(json.loads(p.read_text())) for p in sorted(out.glob("*/report.json"))}


def test_second_predict_run_registers_nothing_and_writes_the_same(predict_cohort, tmp_path, monkeypatch, caplog):
    cases = sorted(p for p in predict_cohort["nifti"].iterdir() if p.is_dir())[:2]
    cache = tmp_path / "cache"
    first = predict_cases(cases, tmp_path / "a", ThrombusCasePredictor(HUThresholdPredictor()),
                          batch=BatchOptions(quiet=True, cache_dir=cache))
    assert len(first["done"]) == 2 and not first["failed"] and len(list(cache.iterdir())) == 2

    def no_registration(*args, **kwargs):
        raise AssertionError("registered again although the scans are cached")

    monkeypatch.setattr(conversion_preprocess, "preprocess_case", no_registration)
    caplog.set_level("INFO", logger="nnunet_thrombus")
    second = predict_cases(cases, tmp_path / "b", ThrombusCasePredictor(HUThresholdPredictor()),
                           batch=BatchOptions(quiet=False, cache_dir=cache))
    assert len(second["done"]) == 2 and not second["failed"]
    assert caplog.text.count("registration cached") == 2
    for out, status in ((tmp_path / "a", "miss"), (tmp_path / "b", "hit")):
        assert {json.loads(p.read_text())["input"]["preprocess_cache"] for p in out.glob("*/report.json")} == {status}
    assert _reports(tmp_path / "a") == _reports(tmp_path / "b")
    for c in cases:
        assert (tmp_path / "a" / c.name / "thrombus.nii.gz").read_bytes() == \
            (tmp_path / "b" / c.name / "thrombus.nii.gz").read_bytes()


def test_cli_refuses_no_cache_with_cache_dir(tmp_path, capsys):
    from nnunet_thrombus import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "-m", str(tmp_path), "--no-cache",
                  "--cache-dir", str(tmp_path / "c")])
    assert exc.value.code == 2 and "--no-cache and --cache-dir" in capsys.readouterr().err
