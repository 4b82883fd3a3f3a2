"""Scale-out: --num-parts splits and a 2-worker local Ray run give the serial run's outputs exactly."""
from __future__ import annotations

import csv
import json
import logging
import re

import pytest

from nnunet_thrombus.inference.hu_threshold import HUThresholdPredictor
from nnunet_thrombus.inference.options import BatchOptions, ModelOptions
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases, rebuild_tables


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if not k.startswith("tim") and "time_" not in k}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _outputs(out_dir):
    cases = sorted(p.name for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    masks = {c: (out_dir / c / "thrombus.nii.gz").read_bytes() for c in cases}
    reports = {c: _without_times(json.loads((out_dir / c / "report.json").read_text())) for c in cases}
    with open(out_dir / "summary.csv") as fh:
        rows = [_without_times(r) for r in csv.DictReader(fh)]
    return masks, reports, rows


@pytest.fixture(scope="module")
def serial(predict_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "out"
    res = predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(HUThresholdPredictor()),
                        batch=BatchOptions(quiet=True))
    assert len(res["done"]) == 4 and not res["failed"]
    return _outputs(out)


def test_threshold_predictor_finds_hyperdense_clots(serial):
    masks, reports, _ = serial
    assert sum(r["n_components"] > 0 for r in reports.values()) >= 1


def test_num_parts_union_equals_serial(predict_cohort, serial, tmp_path):
    out = tmp_path / "parts"
    got = [predict_cases(predict_cohort["flat"], out, ThrombusCasePredictor(HUThresholdPredictor()),
                         batch=BatchOptions(num_parts=2, part_id=k, quiet=True))["done"] for k in (0, 1)]
    assert sorted(got[0] + got[1]) == sorted(serial[0]) and not set(got[0]) & set(got[1])
    rebuild_tables(out)
    assert _outputs(out) == serial


def test_ray_two_local_workers_equal_serial(predict_cohort, serial, tmp_path, caplog, capfd):
    """... and each worker's log records reach the driver's output (Ray forwards the workers' stderr), at the
    driver's level."""
    pytest.importorskip("ray")
    from nnunet_thrombus.inference.ray_backend import predict_cases_ray

    caplog.set_level(logging.INFO, logger="nnunet_thrombus")  # the driver's level, as the CLI sets it by default
    out = tmp_path / "ray"
    res = predict_cases_ray(predict_cohort["flat"], out, ThrombusCasePredictor(HUThresholdPredictor()),
                            ray_address=None, num_parts=2)
    assert res["parts"] == 2 and len(res["done"]) == 4 and not res["failed"]
    printed = capfd.readouterr()
    forwarded = printed.out + printed.err
    # each part's start and one progress line per case, written in whichever worker ran it: Ray's prefix
    # "(_run_part pid=N)" (colour codes after it on some terminals), then our record. Ray prints a line that differs
    # from an earlier one of another worker only in numbers once, then "[repeated Nx across cluster]" (N: the lines
    # it left out; docs/logging.md), so some of these lines may be counted only in such a marker
    merged = sum(int(n) for n in re.findall(r"\[repeated (\d+)x across cluster\]", forwarded))
    parts = [part for part in (1, 2) if f"Ray part {part}/2 started" in forwarded]
    shown = [case for case in res["done"]
             if re.search(rf"pid=\d+\)\S* \d\d:\d\d:\d\d \[\d/2\] {case}: ", forwarded)]
    assert parts and shown and len(parts) + len(shown) + merged >= 2 + len(res["done"]), forwarded[-3000:]
    masks, reports, rows = _outputs(out)
    assert masks == serial[0], "Ray masks differ byte for byte from the serial run"
    assert reports == serial[1]
    assert rows == serial[2]


@pytest.fixture(scope="module")
def trained(tiny_cascade, predict_cohort, tmp_path_factory):
    """The serial run of the tiny trained cascade (session fixture) over the 4 cases, loaded from its folder as
    ``predict -m`` loads it."""
    model = str(tiny_cascade["fine_dir"].parent)
    out = tmp_path_factory.mktemp("trained_serial") / "out"
    res = predict_cases(predict_cohort["flat"], out, ModelOptions(model=model, folds=[0], device="cpu", use_tta=False),
                        batch=BatchOptions(quiet=True))
    assert len(res["done"]) == 4 and not res["failed"]
    return {"model": model, "serial": _outputs(out), "dir": out}


@pytest.mark.slow
def test_num_parts_with_a_trained_network_equal_serial(predict_cohort, trained, tmp_path):
    """The parts run of a real (tiny, trained) cascade: the union of two parts is the serial run, byte for byte."""
    out = tmp_path / "parts"
    model = ModelOptions(model=trained["model"], folds=[0], device="cpu", use_tta=False)
    got = [predict_cases(predict_cohort["flat"], out, model, batch=BatchOptions(num_parts=2, part_id=k, quiet=True))[
        "done"] for k in (0, 1)]
    assert sorted(got[0] + got[1]) == sorted(trained["serial"][0]) and not set(got[0]) & set(got[1])
    rebuild_tables(out)
    masks, reports, rows = _outputs(out)
    assert masks == trained["serial"][0] and reports == trained["serial"][1] and rows == trained["serial"][2]
    assert all(r["model"]["fine"].startswith("ThrombusCascadeTrainer__ThrombusPlans") for r in reports.values())
    assert all(r["model"]["folds"] == ["0"] for r in reports.values())


def _close(a, b, rtol: float = 1e-4) -> bool:
    """Equal, floats within ``rtol`` (relative, or absolute near 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= rtol * max(1.0, abs(a))
    return a == b


@pytest.mark.slow
def test_ray_with_a_trained_network_matches_serial(predict_cohort, trained, tmp_path):
    """Two local Ray workers, each loading the trained cascade from its folder, give the serial run's outputs. Ray
    runs torch with one thread per worker, so float sums differ from the serial run in the last bits (measured:
    probabilities 1e-7 apart, 1 of 61,440 voxels flipped for a barely trained model): the masks may differ in at most
    0.01% of voxels, component volumes by 0.1%; model, call and component count are the same."""
    pytest.importorskip("ray")
    import SimpleITK as sitk

    from nnunet_thrombus.inference.ray_backend import predict_cases_ray

    out = tmp_path / "ray"
    model = ModelOptions(model=trained["model"], folds=[0], device="cpu", use_tta=False)
    res = predict_cases_ray(predict_cohort["flat"], out, model, ray_address=None, num_parts=2)
    assert res["parts"] == 2 and len(res["done"]) == 4 and not res["failed"]
    masks, reports, rows = _outputs(out)
    assert masks.keys() == trained["serial"][0].keys()
    for case in masks:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / case / "thrombus.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(trained["dir"] / case / "thrombus.nii.gz")))
        assert a.shape == b.shape and (a != b).sum() <= max(1, a.size // 10000), case
    for case, report in reports.items():
        serial = trained["serial"][1][case]
        assert report["model"] == serial["model"] and report["call"]["call"] == serial["call"]["call"]
        assert report["n_components"] == serial["n_components"]
        assert _close([c["volume_mm3"] for c in report["components"]],
                      [c["volume_mm3"] for c in serial["components"]], rtol=1e-3)
        assert _close(report["confidence"], serial["confidence"])
    assert [r["case_id"] for r in rows] == [r["case_id"] for r in trained["serial"][2]]
