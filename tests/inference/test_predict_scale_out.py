"""Scale-out: --num-parts splits and a 2-worker local Ray run give the serial run's outputs exactly."""
from __future__ import annotations

import csv
import json

import pytest

from nnunet_thrombus.inference.hu_threshold import HUThresholdPredictor
from nnunet_thrombus.inference.pipeline import predict_cases, rebuild_tables


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
    res = predict_cases(predict_cohort["flat"], out, predictor=HUThresholdPredictor(), quiet=True)
    assert len(res["done"]) == 4 and not res["failed"]
    return _outputs(out)


def test_threshold_predictor_finds_hyperdense_clots(serial):
    masks, reports, _ = serial
    assert sum(r["n_components"] > 0 for r in reports.values()) >= 1


def test_num_parts_union_equals_serial(predict_cohort, serial, tmp_path):
    out = tmp_path / "parts"
    got = [predict_cases(predict_cohort["flat"], out, predictor=HUThresholdPredictor(), num_parts=2, part_id=k,
                         quiet=True)["done"] for k in (0, 1)]
    assert sorted(got[0] + got[1]) == sorted(serial[0]) and not set(got[0]) & set(got[1])
    rebuild_tables(out)
    assert _outputs(out) == serial


def test_ray_two_local_workers_equal_serial(predict_cohort, serial, tmp_path):
    pytest.importorskip("ray")
    from nnunet_thrombus.inference.ray_backend import predict_cases_ray

    out = tmp_path / "ray"
    res = predict_cases_ray(predict_cohort["flat"], out, ray_address=None, num_parts=2,
                            predictor=HUThresholdPredictor())
    assert res["parts"] == 2 and len(res["done"]) == 4 and not res["failed"]
    masks, reports, rows = _outputs(out)
    assert masks == serial[0], "Ray masks differ byte for byte from the serial run"
    assert reports == serial[1]
    assert rows == serial[2]
